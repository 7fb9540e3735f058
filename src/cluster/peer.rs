//! Node-to-node calls: a JSON body POSTed to a peer's `/internal/room` over pooled
//! keep-alive HTTP, signed with `cluster.secret` (HMAC-SHA256 over the time and the body),
//! so only a node of this cluster can make another act for a room.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

pub const PATH: &str = "/internal/room";
pub const TIME_HEADER: &str = "x-minilvb-time";
pub const SIG_HEADER: &str = "x-minilvb-signature";
pub const NODE_HEADER: &str = "x-minilvb-node";
/// A signed request older (or newer) than this is refused: a captured one cannot be
/// replayed later.
const MAX_SKEW_SECS: i64 = 30;

fn mac(secret: &str, time: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    m.update(time.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

pub fn sign(secret: &str, time: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, time, body).finalize().into_bytes())
}

/// Checks a peer's signature (in constant time) and its age.
pub fn verify(secret: &str, time: Option<&str>, sig: Option<&str>, body: &[u8]) -> bool {
    let (Some(time), Some(sig)) = (time, sig) else {
        return false;
    };
    let Ok(time) = time.parse::<i64>() else {
        return false;
    };
    if (crate::model::now_unix() - time).abs() > MAX_SKEW_SECS {
        return false;
    }
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    mac(secret, time, body).verify_slice(&sig).is_ok()
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
        .pool_idle_timeout(Duration::from_secs(30))
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
    from_node: &str,
    peer_url: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, PeerError> {
    let time = crate::model::now_unix();
    let sig = sign(secret, time, &body);
    let client = CLIENT.with(|c| c.clone());
    let resp = client
        .post(format!("{peer_url}{PATH}"))
        .header(TIME_HEADER, time.to_string())
        .header(SIG_HEADER, sig)
        .header(NODE_HEADER, from_node)
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
    fn signatures_bind_the_body_the_time_and_the_secret() {
        let now = crate::model::now_unix();
        let s = sign("secret-0123456789", now, b"{}");
        let t = now.to_string();
        assert!(verify("secret-0123456789", Some(&t), Some(&s), b"{}"));
        assert!(!verify("secret-0123456789", Some(&t), Some(&s), b"{ }"));
        assert!(!verify("another-secret-xx", Some(&t), Some(&s), b"{}"));
        let old = (now - 3600).to_string();
        let s_old = sign("secret-0123456789", now - 3600, b"{}");
        assert!(!verify(
            "secret-0123456789",
            Some(&old),
            Some(&s_old),
            b"{}"
        ));
        assert!(!verify("secret-0123456789", None, Some(&s), b"{}"));
        assert!(!verify("secret-0123456789", Some(&t), Some("zz"), b"{}"));
    }
}
