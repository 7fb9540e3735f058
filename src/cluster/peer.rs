//! Node-to-node calls: a JSON body POSTed to a peer's `/internal/room` over pooled
//! keep-alive HTTP, signed with `cluster.secret` (HMAC-SHA256 over the time, a nonce, the
//! node it is meant for and the body), so only a node of this cluster can make another act
//! for a room, and a captured call cannot be played again, nor to another node.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub const PATH: &str = "/internal/room";
pub const TIME_HEADER: &str = "x-minilvb-time";
pub const SIG_HEADER: &str = "x-minilvb-signature";
pub const NONCE_HEADER: &str = "x-minilvb-nonce";
/// A signed request older (or newer) than this is refused; within it, a nonce is accepted
/// once.
const MAX_SKEW_SECS: u64 = 10;
/// Nonces remembered at most (a flood of valid calls beyond it is refused, not stored).
const MAX_NONCES: usize = 1_000_000;

/// What a signature covers: when, which call (nonce), for which node, what.
pub struct Signed<'a> {
    pub time: i64,
    pub nonce: u64,
    pub target: &'a str,
    pub body: &'a [u8],
}

fn mac(secret: &str, s: &Signed) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(format!("{}.{:x}.{}.", s.time, s.nonce, s.target).as_bytes());
    m.update(s.body);
    m
}

pub fn sign(secret: &str, s: &Signed) -> String {
    hex::encode(mac(secret, s).finalize().into_bytes())
}

/// Checks a signature (in constant time) and its age.
pub fn verify(secret: &str, s: &Signed, sig: &str) -> bool {
    if crate::model::now_unix().abs_diff(s.time) > MAX_SKEW_SECS {
        return false;
    }
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    mac(secret, s).verify_slice(&sig).is_ok()
}

/// Nonces of the calls accepted within the time window.
#[derive(Default)]
pub struct Seen(dashmap::DashMap<u64, i64>);

impl Seen {
    /// True the first time a nonce is offered (within the window).
    pub fn first(&self, nonce: u64, time: i64) -> bool {
        if self.0.len() >= MAX_NONCES {
            let cutoff = crate::model::now_unix() - 2 * MAX_SKEW_SECS as i64;
            self.0.retain(|_, t| *t >= cutoff);
            if self.0.len() >= MAX_NONCES {
                return false;
            }
        }
        match self.0.entry(nonce) {
            dashmap::Entry::Occupied(_) => false,
            dashmap::Entry::Vacant(v) => {
                v.insert(time);
                true
            }
        }
    }
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Not connected: the call was certainly not applied (safe to retry elsewhere).
    #[error("cannot connect to peer: {0}")]
    Connect(String),
    /// Sent, but no usable answer: it may have been applied.
    #[error("peer call failed: {0}")]
    Failed(String),
}

thread_local! {
    // One pool per thread: each HTTP worker has its own event loop, and a connection
    // belongs to the loop that opened it.
    static CLIENT: reqwest::Client = reqwest::Client::builder()
        // Below the server's own keep-alive (5 s): a pooled connection is never one the peer
        // is closing, which would fail a call that was never applied as "may have been".
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(64)
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .build()
        .expect("an HTTP client without TLS always builds");
}

/// POSTs a signed body to a peer; answers its body (HTTP 200 only). A peer silent for
/// `timeout` has failed (its call may have been applied).
pub async fn call(
    secret: &str,
    peer: &super::Peer,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, PeerError> {
    let time = crate::model::now_unix();
    let nonce: u64 = rand::random();
    let signed = Signed {
        time,
        nonce,
        target: &peer.node,
        body: &body,
    };
    let sig = sign(secret, &signed);
    let peer_url = &peer.url;
    let client = CLIENT.with(|c| c.clone());
    let resp = client
        .post(format!("{peer_url}{PATH}"))
        .header(TIME_HEADER, time.to_string())
        .header(NONCE_HEADER, format!("{nonce:x}"))
        .header(SIG_HEADER, sig)
        .header("content-type", "application/json")
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_connect() {
                PeerError::Connect(e.to_string())
            } else {
                PeerError::Failed(e.to_string())
            }
        })?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| PeerError::Failed(e.to_string()))?;
    if !status.is_success() {
        return Err(PeerError::Failed(format!("peer answered HTTP {status}")));
    }
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_the_time_the_nonce_the_target_the_body_and_the_secret() {
        let now = crate::model::now_unix();
        let s = |time, nonce, target, body| Signed {
            time,
            nonce,
            target,
            body,
        };
        let key = "secret-0123456789";
        let sig = sign(key, &s(now, 7, "node-a", b"{}"));
        assert!(verify(key, &s(now, 7, "node-a", b"{}"), &sig));
        assert!(!verify(key, &s(now, 7, "node-a", b"{ }"), &sig));
        assert!(!verify(key, &s(now, 8, "node-a", b"{}"), &sig));
        assert!(!verify(key, &s(now, 7, "node-b", b"{}"), &sig));
        assert!(!verify(
            "another-secret-xx",
            &s(now, 7, "node-a", b"{}"),
            &sig
        ));
        let old = sign(key, &s(now - 60, 7, "node-a", b"{}"));
        assert!(!verify(key, &s(now - 60, 7, "node-a", b"{}"), &old));
        let far = sign(key, &s(i64::MIN, 7, "node-a", b"{}"));
        assert!(!verify(key, &s(i64::MIN, 7, "node-a", b"{}"), &far));
        assert!(!verify(key, &s(now, 7, "node-a", b"{}"), "zz"));
        let seen = Seen::default();
        assert!(seen.first(7, now));
        assert!(!seen.first(7, now));
        assert!(seen.first(8, now));
    }
}
