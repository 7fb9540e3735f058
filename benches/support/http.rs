//! A lean HTTP/1.1 client for load generators: pre-built requests on keep-alive
//! connections, whole answers read by Content-Length, success judged from the envelope.
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection sending pre-built requests and reading whole answers.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends one request; returns (status, body-is-a-success).
    pub async fn call(&mut self, req: &[u8]) -> std::io::Result<(u16, bool)> {
        let (status, body) = self.answer(req).await?;
        let body = &self.buf[body];
        let ok = status == 200
            && (body.starts_with(b"{\"status\"") || find(body, b"\"returnValue\":0,").is_some());
        Ok((status, ok))
    }

    /// Sends one request; returns the answer's body.
    pub async fn get_body(&mut self, req: &[u8]) -> std::io::Result<Vec<u8>> {
        let (_, body) = self.answer(req).await?;
        Ok(self.buf[body].to_vec())
    }

    /// Sends one request and reads the whole answer: its status and where its body is.
    async fn answer(&mut self, req: &[u8]) -> std::io::Result<(u16, std::ops::Range<usize>)> {
        self.stream.write_all(req).await?;
        self.buf.clear();
        let (head_end, status, len) = loop {
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..i]).unwrap_or("");
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())
                            .flatten()
                    })
                    .unwrap_or(0);
                break (i + 4, status, len);
            }
        };
        while self.buf.len() < head_end + len {
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, head_end..head_end + len))
    }
}

pub fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

/// A request whose JSON the generator formats itself: the hot loops skip building a
/// `serde_json::Value`, so the generator takes less of the CPU it shares with the server.
pub fn post_text(body: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(128 + body.len());
    let _ = write!(
        v,
        "POST /interface.php HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    v
}

pub fn post(body: &Value) -> Vec<u8> {
    let b = body.to_string();
    format!(
        "POST /interface.php HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    )
    .into_bytes()
}

/// One call: whether it was answered as a success. A broken connection is opened again
/// (the call counts as failed); `None` when it cannot be.
async fn call_or_reopen(conn: &mut Conn, port: u16, req: &[u8]) -> Option<bool> {
    match conn.call(req).await {
        Ok((_, ok)) => Some(ok),
        Err(_) => {
            *conn = Conn::open(port).await.ok()?;
            Some(false)
        }
    }
}

/// One closed-loop connection: sends `next(seq)` and waits for its answer, until `stop`.
/// With `done`, each answer's latency (µs) is kept and counted there. A broken connection
/// counts as an error and is opened again. Returns the latencies and the errors; `None`
/// when the connection could not be opened at all.
pub async fn closed_loop(
    port: u16,
    next: impl Fn(u64) -> Vec<u8>,
    stop: &AtomicBool,
    done: Option<&AtomicU64>,
) -> Option<(Vec<u32>, u64)> {
    let mut lat: Vec<u32> = Vec::with_capacity(if done.is_some() { 65_536 } else { 0 });
    let mut errors = 0u64;
    let mut conn = Conn::open(port).await.ok()?;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let req = next(seq);
        seq += 1;
        let t = Instant::now();
        match call_or_reopen(&mut conn, port, &req).await {
            Some(true) => {}
            Some(false) => errors += 1,
            None => break,
        }
        if let Some(done) = done {
            lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
    Some((lat, errors))
}

/// Like `closed_loop`, but each request waits for its turn on a fixed schedule (one every
/// `every`), so load can be offered at a set rate instead of as fast as answers come.
/// A connection that falls behind sends at once until it is back on schedule. Returns the
/// requests sent, each answered one's latency (µs) from when it went out, and the errors.
/// (Not from its turn: tokio's timer fires up to a millisecond late, which would count as
/// the server's; a request that waits for a late answer goes out late, and the late
/// answer's own latency already holds that wait.)
pub async fn paced_loop(
    port: u16,
    next: impl Fn(u64) -> Vec<u8>,
    stop: &AtomicBool,
    every: std::time::Duration,
) -> (u64, Vec<u32>, u64) {
    let (mut lat, mut errors) = (Vec::new(), 0);
    let Ok(mut conn) = Conn::open(port).await else {
        return (0, lat, 1);
    };
    let start = tokio::time::Instant::now();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until(start + every.mul_f64(seq as f64)).await;
        let req = next(seq);
        seq += 1;
        let sent = std::time::Instant::now();
        match call_or_reopen(&mut conn, port, &req).await {
            Some(true) => lat.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32),
            Some(false) => errors += 1,
            None => break,
        }
    }
    (seq, lat, errors)
}
