//! A lean HTTP/1.1 client for load generators: pre-built requests on keep-alive
//! connections, whole answers read by Content-Length, success judged from the envelope.
#![allow(dead_code)]

use serde_json::Value;
use std::io::Write as _;
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
