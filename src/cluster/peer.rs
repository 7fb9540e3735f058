//! Node-to-node calls: a JSON body POSTed to a peer's `/internal/room` over pooled
//! keep-alive HTTP, signed with `cluster.secret` (HMAC-SHA256 over the time, a nonce, the
//! node it is meant for and the body), so only a node of this cluster can make another act
//! for a room, and a captured call cannot be played again, nor to another node.
//!
//! The body is a JSON array of calls, answered by an array of answers in the same order:
//! quick calls made on one thread to one peer while a batch forms (one pass of the
//! thread's ready tasks) share a request, so under load a forwarded call costs a share
//! of one HTTP exchange, one signature and one nonce rather than all of them. Slow calls
//! (those that write the database) go alone, so they hold up no one else's answer.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::oneshot;

pub const PATH: &str = "/internal/room";
pub const TIME_HEADER: &str = "x-minilvb-time";
pub const SIG_HEADER: &str = "x-minilvb-signature";
pub const NONCE_HEADER: &str = "x-minilvb-nonce";
/// A signed request older (or newer) than this is refused; within it, a nonce is accepted
/// once.
const MAX_SKEW_SECS: u64 = 10;
/// Nonces remembered at most (a flood of valid calls beyond it is refused, not stored).
const MAX_NONCES: usize = 1_000_000;
/// Calls in one request, at most.
pub const MAX_BATCH: usize = 64;
/// A batch is sent once its calls hold this many bytes (a single call goes whatever its size).
const BATCH_BYTES: usize = 256 * 1024;
/// The largest node call body a node accepts: a full batch and one large call.
pub const MAX_BODY: usize = 512 * 1024;

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

/// Whether a signed time is within the window a signature is accepted in.
pub fn fresh(time: i64) -> bool {
    crate::model::now_unix().abs_diff(time) <= MAX_SKEW_SECS
}

/// Checks a signature (in constant time) and its age.
pub fn verify(secret: &str, s: &Signed, sig: &str) -> bool {
    if !fresh(s.time) {
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
#[derive(Debug, Clone, thiserror::Error)]
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

type Answered = oneshot::Sender<Result<Vec<u8>, PeerError>>;

/// Quick calls waiting for the next batch to one peer, on this thread.
#[derive(Default)]
struct Queue {
    calls: Vec<(Vec<u8>, Answered)>,
    /// A task will send what is queued (a batch is forming).
    forming: bool,
}

thread_local! {
    static QUEUES: RefCell<HashMap<super::Peer, Rc<RefCell<Queue>>>> = RefCell::default();
}

/// Runs one call (a JSON body) on a peer; answers its answer's JSON. A `quick` call may
/// share a request with others (see the module). A peer silent for `timeout` has failed
/// (its call may have been applied).
pub async fn call(
    secret: &str,
    peer: &super::Peer,
    body: Vec<u8>,
    timeout: Duration,
    quick: bool,
) -> Result<Vec<u8>, PeerError> {
    if !quick {
        let mut answers = exchange(secret, peer, vec![body], timeout).await?;
        return Ok(answers.pop().unwrap_or_default());
    }
    let rx = enqueue(secret, peer, body, timeout);
    // The batch's own exchange is bounded by `timeout`; this bounds the wait for it too.
    match tokio::time::timeout(timeout + Duration::from_secs(1), rx).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(_)) => Err(PeerError::Failed("the call was dropped".into())),
        Err(_) => Err(PeerError::Failed("no answer in time".into())),
    }
}

/// Queues a quick call for the next batch to `peer` (starting the task that sends it).
fn enqueue(
    secret: &str,
    peer: &super::Peer,
    body: Vec<u8>,
    timeout: Duration,
) -> oneshot::Receiver<Result<Vec<u8>, PeerError>> {
    let (tx, rx) = oneshot::channel();
    let queue = QUEUES.with(|q| q.borrow_mut().entry(peer.clone()).or_default().clone());
    let start = {
        let mut q = queue.borrow_mut();
        q.calls.push((body, tx));
        !std::mem::replace(&mut q.forming, true)
    };
    if start {
        let (secret, peer) = (secret.to_string(), peer.clone());
        actix::spawn(async move {
            // Calls that become ready in this pass of the thread's tasks join the batch.
            tokio::task::yield_now().await;
            loop {
                let batch = {
                    let mut q = queue.borrow_mut();
                    let (mut n, mut bytes) = (0, 0);
                    while n < q.calls.len() && n < MAX_BATCH && (n == 0 || bytes < BATCH_BYTES) {
                        bytes += q.calls[n].0.len();
                        n += 1;
                    }
                    let batch: Vec<_> = q.calls.drain(..n).collect();
                    if q.calls.is_empty() {
                        q.forming = false;
                    }
                    batch
                };
                if batch.is_empty() {
                    return;
                }
                let more = queue.borrow().forming;
                let (bodies, answered): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let (secret, peer) = (secret.clone(), peer.clone());
                // Each batch on its own: one slow peer answer holds up only its batch.
                actix::spawn(async move {
                    match exchange(&secret, &peer, bodies, timeout).await {
                        Ok(answers) => {
                            for (a, tx) in answers.into_iter().zip(answered) {
                                let _ = tx.send(Ok(a));
                            }
                        }
                        Err(e) => {
                            for tx in answered {
                                let _ = tx.send(Err(e.clone()));
                            }
                        }
                    }
                });
                if !more {
                    return;
                }
            }
        });
    }
    rx
}

/// POSTs a signed batch of calls to a peer and splits its answer: one answer per call, in
/// order (HTTP 200 only).
async fn exchange(
    secret: &str,
    peer: &super::Peer,
    calls: Vec<Vec<u8>>,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, PeerError> {
    let n = calls.len();
    let mut body = Vec::with_capacity(calls.iter().map(|c| c.len() + 1).sum::<usize>() + 1);
    body.push(b'[');
    for (i, c) in calls.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(c);
    }
    body.push(b']');
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
    let answers: Vec<&serde_json::value::RawValue> = serde_json::from_slice(&bytes)
        .map_err(|e| PeerError::Failed(format!("unreadable answer: {e}")))?;
    if answers.len() != n {
        return Err(PeerError::Failed(format!(
            "{} answers to {n} calls",
            answers.len()
        )));
    }
    Ok(answers
        .into_iter()
        .map(|a| a.get().as_bytes().to_vec())
        .collect())
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
