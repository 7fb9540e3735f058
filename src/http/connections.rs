//! Bounds on client connections: in total (below the process's file-descriptor limit) and
//! per client address, so that one address cannot take the connections everyone else needs.
//! A connection past a bound is refused as it is accepted, before it can cost a worker
//! anything: a one-line HTTP answer is written to it and it is shut down.
//!
//! Each connection also has a clock: actix cuts a slow first request head, but once a
//! keep-alive connection has sent a byte of its next request nothing bounds the rest of that
//! head, and nothing bounds the writing of an answer to a client that stops reading. Each
//! worker sweeps its connections every second and shuts down any that has been waiting for
//! a request, or writing an answer, longer than the keep-alive time plus the request
//! deadline (a WebSocket, once upgraded, has its own timeouts).

use crate::config::Config;
use crate::net::{addr_key, Cidrs};
use actix_web::dev::Extensions;
use dashmap::DashMap;
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an idle keep-alive connection is kept (set on the server to match).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// File descriptors kept for everything but client connections: the listener, each worker's
/// poller, the database pool (an SQLite connection holds up to three files), logs.
fn reserved_fds(config: &Config) -> u64 {
    256 + 4 * config.database.max_connections as u64
}

/// Raises the soft open-files limit to the hard one; the limit now in force, if known.
pub fn raise_fd_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// The client connections this process can hold given `fd_limit`, and what the operator
/// should hear about it.
pub fn budget(config: &Config, fd_limit: Option<u64>) -> (usize, Vec<String>) {
    let wanted = config.limits.max_connections;
    let mut warnings = Vec::new();
    let max = match fd_limit {
        Some(fds) => {
            let fit = fds.saturating_sub(reserved_fds(config)).max(16) as usize;
            if fit < wanted {
                warnings.push(format!(
                    "limits.max_connections = {wanted} does not fit in the open-file limit of \
                     {fds}: at most {fit} client connections will be accepted (raise the hard \
                     limit, e.g. LimitNOFILE= or ulimit -Hn)"
                ));
            }
            fit.min(wanted)
        }
        None => wanted,
    };
    let ws = config.ws.max_connections + config.admin.dashboard_max_connections;
    if ws > max {
        warnings.push(format!(
            "ws.max_connections + admin.dashboard_max_connections = {ws} cannot be reached: \
             WebSockets count toward the {max} client connections this process accepts"
        ));
    }
    (max, warnings)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Total,
    PerAddr,
}

pub struct Connections {
    open: AtomicUsize,
    per_addr: DashMap<IpAddr, usize>,
    max_total: usize,
    max_per_addr: usize,
    /// Trusted proxies (and a local one) carry many clients on their connections: only the
    /// total bounds them.
    exempt: Cidrs,
    refused_total: AtomicU64,
    refused_per_addr: AtomicU64,
    /// A connection waiting this long for a request is shut down.
    idle_limit: Duration,
}

/// Held in the connection's extensions for as long as it is open.
struct Admitted {
    conns: Arc<Connections>,
    key: Option<IpAddr>,
    clock: Option<Rc<Clock>>,
}

/// Since when a connection has been waiting for its next request.
struct Clock {
    fd: RawFd,
    peer: SocketAddr,
    local: SocketAddr,
    /// Requests being served (pipelined requests may overlap).
    busy: Cell<u32>,
    idle_since: Cell<Instant>,
    /// Since when the oldest answer not yet written has been ready.
    answering_since: Cell<Option<Instant>>,
    closed: Cell<bool>,
}

thread_local! {
    /// This worker's open connections, swept every second.
    static CLOCKS: RefCell<Vec<Rc<Clock>>> = const { RefCell::new(Vec::new()) };
    static SWEEPING: Cell<bool> = const { Cell::new(false) };
}

/// Marks a connection busy while one request is served; dropped with the answer's body
/// (for a WebSocket: when it closes).
pub struct Busy(Rc<Clock>);

impl Busy {
    /// The answer is ready: from now on, writing it is on the clock.
    pub fn answering(&self) {
        if self.0.answering_since.get().is_none() {
            self.0.answering_since.set(Some(Instant::now()));
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let busy = self.0.busy.get().saturating_sub(1);
        self.0.busy.set(busy);
        let now = Instant::now();
        self.0.idle_since.set(now);
        // Pipelined answers are written in order: the next one starts its clock now.
        self.0
            .answering_since
            .set((busy > 0 && self.0.answering_since.get().is_some()).then_some(now));
    }
}

/// Marks the request's connection busy until the returned guard is dropped.
pub fn busy(req: &actix_web::dev::ServiceRequest) -> Option<Busy> {
    let clock = req.conn_data::<Admitted>()?.clock.clone()?;
    clock.busy.set(clock.busy.get() + 1);
    Some(Busy(clock))
}

/// Shuts down this worker's connections that have waited for a request longer than `limit`.
fn sweep(limit: Duration) {
    let now = Instant::now();
    CLOCKS.with_borrow_mut(|clocks| {
        clocks.retain(|c| {
            if c.closed.get() {
                return false;
            }
            let waiting = c.busy.get() == 0 && now.duration_since(c.idle_since.get()) > limit;
            let writing = c
                .answering_since
                .get()
                .is_some_and(|t| now.duration_since(t) > limit);
            if waiting || writing {
                // Still open (its guard would have marked it closed), and the descriptor is
                // still that connection: check both ends before touching it. The guard lives
                // in the connection's shared data, which no handler keeps past its
                // connection (pooled requests drop it), and this runs on the thread that
                // drops the connection, so the descriptor cannot close mid-sweep.
                // SAFETY: the descriptor is open while the connection's guard lives, and it
                // is only borrowed for these calls.
                let fd = unsafe { BorrowedFd::borrow_raw(c.fd) };
                let sock = socket2::SockRef::from(&fd);
                let same = sock.peer_addr().ok().and_then(|a| a.as_socket()) == Some(c.peer)
                    && sock.local_addr().ok().and_then(|a| a.as_socket()) == Some(c.local);
                if same {
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                }
                return false;
            }
            true
        })
    });
}

fn watch(stream: &actix_web::rt::net::TcpStream, limit: Duration) -> Option<Rc<Clock>> {
    let clock = Rc::new(Clock {
        fd: stream.as_raw_fd(),
        peer: stream.peer_addr().ok()?,
        local: stream.local_addr().ok()?,
        busy: Cell::new(0),
        idle_since: Cell::new(Instant::now()),
        answering_since: Cell::new(None),
        closed: Cell::new(false),
    });
    CLOCKS.with_borrow_mut(|c| c.push(clock.clone()));
    if !SWEEPING.replace(true) {
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                sweep(limit);
            }
        });
    }
    Some(clock)
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(c) = &self.clock {
            c.closed.set(true);
        }
        self.conns.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(key) = self.key {
            self.conns.per_addr.remove_if_mut(&key, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
    }
}

impl Connections {
    /// `request_timeout`: the deadline for a request's head (and again for its body).
    pub fn new(
        max_total: usize,
        max_per_addr: usize,
        exempt: Cidrs,
        request_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Connections {
            idle_limit: KEEP_ALIVE + request_timeout,
            open: AtomicUsize::new(0),
            per_addr: DashMap::new(),
            max_total,
            max_per_addr,
            exempt,
            refused_total: AtomicU64::new(0),
            refused_per_addr: AtomicU64::new(0),
        })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn max_total(&self) -> usize {
        self.max_total
    }

    /// Connections refused: (over the total, over an address's share).
    pub fn refused(&self) -> (u64, u64) {
        (
            self.refused_total.load(Ordering::Relaxed),
            self.refused_per_addr.load(Ordering::Relaxed),
        )
    }

    fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Admitted, Refusal> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.refused_total.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Total);
        }
        // From here on, dropping `held` gives the slot back.
        let mut held = Admitted {
            conns: self.clone(),
            key: None,
            clock: None,
        };
        let Some(ip) = peer.filter(|ip| self.max_per_addr > 0 && !self.exempt.contains(*ip)) else {
            return Ok(held);
        };
        let key = addr_key(ip);
        let mut n = self.per_addr.entry(key).or_insert(0);
        if *n >= self.max_per_addr {
            drop(n);
            self.refused_per_addr.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::PerAddr);
        }
        *n += 1;
        held.key = Some(key);
        Ok(held)
    }

    /// `HttpServer::on_connect`: admits the connection or refuses it on the spot.
    pub fn on_connect(self: &Arc<Self>, conn: &dyn Any, ext: &mut Extensions) {
        let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        match self.admit(stream.peer_addr().ok().map(|a| a.ip())) {
            Ok(mut held) => {
                held.clock = watch(stream, self.idle_limit);
                ext.insert(held);
            }
            Err(why) => refuse(stream, why),
        }
    }
}

/// Writes a short answer (a fresh socket's send buffer always takes it) and shuts the
/// socket down: the worker then reads end-of-stream and drops it without parsing anything.
fn refuse(stream: &actix_web::rt::net::TcpStream, why: Refusal) {
    let (status, msg) = match why {
        Refusal::Total => (
            "503 Service Unavailable",
            "the server holds its maximum number of connections; retry later",
        ),
        Refusal::PerAddr => (
            "429 Too Many Requests",
            "too many connections from this address",
        ),
    };
    let body = crate::protocol::envelope::error_body(&crate::protocol::ApiError::new(
        crate::protocol::Code::TooManyRequests,
        msg,
    ));
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    // Straight to the socket: tokio's own write would wait for a readiness event first.
    let sock = socket2::SockRef::from(stream);
    let _ = sock.send(answer.as_bytes());
    let _ = sock.shutdown(std::net::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let exempt = Cidrs::parse(&["10.0.0.1".into()]).unwrap();
        let c = Connections::new(3, 2, exempt, Duration::from_secs(5));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let x1 = c.admit(Some(a)).unwrap();
        let x2 = c.admit(Some(a)).unwrap();
        assert_eq!(c.admit(Some(a)).err(), Some(Refusal::PerAddr));
        assert_eq!(c.open(), 2, "a refused connection holds no slot");
        let p = c.admit(Some("10.0.0.1".parse().unwrap())).unwrap();
        assert_eq!(
            c.admit(Some("192.0.2.9".parse().unwrap())).err(),
            Some(Refusal::Total)
        );
        drop((x1, p));
        assert_eq!(c.open(), 1);
        let _x3 = c.admit(Some(a)).unwrap();
        drop(x2);
        drop(_x3);
        assert_eq!(c.open(), 0);
        assert!(c.per_addr.is_empty(), "no entry outlives its connections");
        assert_eq!(c.refused(), (1, 1));
    }

    #[test]
    fn the_budget_fits_the_fd_limit_and_says_so() {
        let mut config = Config::default();
        config.limits.max_connections = 60_000;
        let (max, w) = budget(&config, Some(20_000));
        assert!(max < 20_000 && max > 19_000, "{max}");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("limits.max_connections") && w[1].contains("ws.max_connections"));
        config.ws.max_connections = 1000;
        let (max, w) = budget(&config, Some(1 << 20));
        assert_eq!((max, w.len()), (60_000, 0), "{w:?}");
    }
}
