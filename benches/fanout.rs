//! "A like burst reaches every subscriber of a room, once per coalescing window."
//!
//! Runs the real release binary (`minilvb`) as a child process on 127.0.0.1, on a port it
//! picks itself (read back from its JSON log), over SQLite in a fresh temp dir with
//! `auth.mode = "off"`. For each size N (1,000 and 10,000 sockets) on a fresh child:
//!
//! 1. creates one live room over HTTP (RequestLVBAddr + ChangeStatus online);
//! 2. reads the child's VmRSS, opens N WebSocket clients on `/ws/room/{vj}`
//!    (tokio-tungstenite, 64 handshakes in flight), each reading its snapshot and then
//!    every event; once all N have their snapshot and the server has settled, reads VmRSS
//!    again: (after - before) / N is the server's memory per idle connection;
//! 3. sends bursts of 1,000 ChangeCount likes over HTTP from 4 keep-alive connections
//!    (3 bursts as fast as they go, then 2 paced at 1,000 likes/s, so that they span about
//!    ten coalescing windows) and measures, per socket, the time from the last like's
//!    answer until that socket saw a `count` event with the burst's final likecount
//!    (min/p50/p99/max over sockets; the max is when the last socket had it), and how many
//!    `count` events each socket got during the burst (coalescing: at most one per
//!    `ws.coalesce_ms` = 100 ms window);
//! 4. closes every client and measures how long the server takes to let them all go
//!    (`minilvb_ws_connections` back to 0 on /metrics).
//!
//! The likes are sent from their own thread and runtime, so that the 10,000 reading
//! clients do not delay them; the clients run on a 2-thread tokio runtime. Every loop has
//! a count and a deadline; the child is killed (SIGKILL) and its temp dir removed when the
//! run ends, also on error. The soft RLIMIT_NOFILE is raised towards the hard limit when
//! it is too low for N clients (the child inherits it).
//!
//! Run: `cargo bench --bench fanout`. MINILVB_BENCH_SOCKETS="1000,10000" (the default)
//! chooses the sizes, MINILVB_BENCH_BURSTS (default 3) and MINILVB_BENCH_PACED (default 2)
//! the number of bursts of each kind, MINILVB_BENCH_BIN another server binary to run.

// The tests' helpers for child servers and /proc readings.
#[path = "../tests/common/mod.rs"]
mod common;

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Likes in one burst.
const LIKES: u64 = 1_000;
/// Keep-alive HTTP connections the likes are sent on (each sends LIKES / SENDERS).
const SENDERS: u64 = 4;
const _: () = assert!(LIKES.is_multiple_of(SENDERS));
/// WebSocket handshakes in flight while connecting.
const CONNECT_CONCURRENCY: usize = 64;
/// The server's coalescing window (set explicitly on the child).
const COALESCE_MS: u64 = 100;
/// Likes per second of a paced burst.
const PACED_RATE: u64 = 1_000;
const VJ: &str = "benchvj";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn main() {
    let sizes: Vec<usize> = std::env::var("MINILVB_BENCH_SOCKETS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    let count = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
            .min(20)
    };
    let mut plan = vec![None; count("MINILVB_BENCH_BURSTS", 3)];
    plan.extend(vec![Some(PACED_RATE); count("MINILVB_BENCH_PACED", 2)]);
    if plan.is_empty() {
        plan.push(None);
    }
    let need = sizes.iter().max().copied().unwrap_or(0) as u64 + 512;
    match raise_nofile(need) {
        Ok(n) => eprintln!("RLIMIT_NOFILE soft limit: {n}"),
        Err(e) => eprintln!("warning: {e}"),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut results = Vec::new();
    for &n in &sizes {
        eprintln!("--- {n} sockets ---");
        match rt.block_on(run_size(n, &plan)) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("{n} sockets: FAILED: {e}");
                std::process::exit(1);
            }
        }
    }
    rt.shutdown_timeout(Duration::from_secs(5));
    print_tables(&results);
}

// ---------------------------------------------------------------------------------------
// The child server

/// The release binary as a child process; killed and its temp dir removed when dropped.
struct ChildServer {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl ChildServer {
    fn start(max_sockets: usize) -> Result<ChildServer, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "minilvb_fanout_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir {}: {e}", dir.display()))?;
        let log = dir.join("server.log");
        let stderr = std::fs::File::create(&log).map_err(|e| format!("log file: {e}"))?;
        let mut cmd = std::process::Command::new(server_binary());
        // Nothing from the caller's environment configures the child; no minilvb.toml.
        for (k, _) in std::env::vars() {
            if k.starts_with("MINILVB_") {
                cmd.env_remove(k);
            }
        }
        let limit = (max_sockets + 1_000).to_string();
        cmd.current_dir(&dir)
            .env("MINILVB_BIND", "127.0.0.1:0")
            .env("MINILVB_LOG_FORMAT", "json")
            .env("MINILVB_LOG", "info")
            .env("NO_COLOR", "1")
            .env(
                "MINILVB_DATABASE__URL",
                format!("sqlite://{}/bench.db?mode=rwc", dir.display()),
            )
            .env("MINILVB_AUTH__MODE", "off")
            .env("MINILVB_LIVE__BIZID", "2519")
            .env("MINILVB_LIVE__PUSH_KEY", "e12c46f2612d5106e2034781ab261ca3")
            .env("MINILVB_LIVE__API_KEY", "bench-api-key-0123456789")
            .env("MINILVB_WS__COALESCE_MS", COALESCE_MS.to_string())
            .env("MINILVB_WS__MAX_PER_ROOM", &limit)
            .env("MINILVB_WS__MAX_CONNECTIONS", &limit)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", server_binary()))?;
        let mut server = ChildServer {
            child,
            port: 0,
            dir,
            log,
        };
        let started = Instant::now();
        for _ in 0..600 {
            if let Some(port) = server.listening_port() {
                server.port = port;
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "minilvb exited ({status}) before listening; log:\n{}",
                    server.log_text()
                ));
            }
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "minilvb never listened; log:\n{}",
            server.log_text()
        ))
    }

    fn listening_port(&self) -> Option<u16> {
        common::listening_port(&self.log_text())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the child, in bytes.
    fn rss(&self) -> Result<u64, String> {
        common::proc_rss_bytes(&self.pid().to_string())
            .ok_or_else(|| format!("no VmRSS in /proc/{}/status", self.pid()))
    }

    /// User + system CPU time of the child so far.
    fn cpu(&self) -> Duration {
        proc_cpu(&self.pid().to_string())
    }
}

/// The server binary: the one cargo built with this bench, or MINILVB_BENCH_BIN (another
/// build, to compare).
fn server_binary() -> String {
    std::env::var("MINILVB_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_minilvb").into())
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("MINILVB_BENCH_KEEP").is_some() {
            eprintln!("kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------------------------------------------------------------------------------------
// One size

struct SizeResult {
    sockets: usize,
    connect: Duration,
    rss_before: u64,
    rss_after: u64,
    bursts: Vec<BurstResult>,
    disconnect: Option<Duration>,
    slow_drops: usize,
    other_events: u64,
}

struct BurstResult {
    /// Likes per second, or `None`: as fast as the senders go.
    paced: Option<u64>,
    /// First like sent to last like answered.
    sending: Duration,
    /// How long each like took to be answered, sorted.
    answers: Vec<Duration>,
    /// From the last like's answer to each socket's final count, sorted.
    latency: Vec<Duration>,
    /// `count` events each socket received for this burst, sorted.
    counts: Vec<u32>,
    /// CPU time of the server (child) and of this process (clients and senders), from the
    /// first like until every socket had the final count.
    server_cpu: Duration,
    client_cpu: Duration,
}

/// What the readers share with the driver.
struct Shared {
    ready: AtomicUsize,
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
    /// Sockets that have seen each burst's final likecount.
    finals: Vec<AtomicUsize>,
}

/// What one socket saw.
struct Report {
    /// Per burst: when the final likecount arrived, and how many count events arrived.
    finals: Vec<Option<Instant>>,
    counts: Vec<u32>,
    other: u64,
    error: Option<String>,
}

async fn run_size(n: usize, plan: &[Option<u64>]) -> Result<SizeResult, String> {
    let server = ChildServer::start(n)?;
    let r = drive(&server, n, plan).await;
    if r.is_err() {
        let log = server.log_text();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("last server log lines:");
        for l in tail.into_iter().rev() {
            eprintln!("  {l}");
        }
    }
    r
}

async fn drive(server: &ChildServer, n: usize, plan: &[Option<u64>]) -> Result<SizeResult, String> {
    let base = format!("http://127.0.0.1:{}", server.port);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    ok(&http, &base, json!({"Action":"RequestLVBAddr","userid":VJ,"groupid":format!("g_{VJ}"),
        "title":"fan-out bench","userinfo":{"nickname":"VJ","headpic":"","frontcover":"","location":""}}))
    .await?;
    ok(
        &http,
        &base,
        json!({"Action":"ChangeStatus","userid":VJ,"status":0}),
    )
    .await?;
    // Warm-up: one socket in and out, so one-off allocations are not charged per connection.
    {
        let mut ws = connect(server.port).await?;
        let snap = next_text(&mut ws, Duration::from_secs(10)).await?;
        if !snap.contains(r#""event":"snapshot""#) {
            return Err(format!("first frame is not a snapshot: {snap}"));
        }
        drop(ws);
        wait_gauge(&http, &base, 0, Duration::from_secs(10)).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss()?;

    // N sockets, each reading its snapshot, then every event until told to stop.
    let shared = Arc::new(Shared {
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        first_error: Mutex::new(None),
        finals: plan.iter().map(|_| AtomicUsize::new(0)).collect(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    // No reader outlives this, whatever happens.
    let hard_deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let started = Instant::now();
    let mut readers = Vec::with_capacity(n);
    for _ in 0..n {
        readers.push(tokio::spawn(reader(
            server.port,
            plan.len(),
            shared.clone(),
            gate.clone(),
            stop_rx.clone(),
            hard_deadline,
        )));
    }
    let connect = wait_until(Duration::from_secs(300), || {
        shared.ready.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed) >= n
    })
    .await
    .map(|_| started.elapsed());
    let failed = shared.failed.load(Ordering::Relaxed);
    if connect.is_err() || failed > 0 {
        let _ = stop_tx.send(true);
        let first = shared.first_error.lock().unwrap().clone();
        return Err(format!(
            "{} of {n} sockets ready, {failed} failed (first error: {first:?})",
            shared.ready.load(Ordering::Relaxed)
        ));
    }
    let connect = connect.unwrap_or_default();
    eprintln!(
        "{n} sockets connected with their snapshot in {:.2} s",
        connect.as_secs_f64()
    );
    wait_gauge(&http, &base, n as u64, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = server.rss()?;

    // Like bursts, from their own thread.
    let senders = LikeSender::start(base.clone())?;
    let mut results = Vec::new();
    let mut last_answers = Vec::new();
    for (b, &paced) in plan.iter().enumerate() {
        let (cpu0, own0) = (server.cpu(), own_cpu());
        let (first_sent, last_answer, answers) = senders.burst(paced).await?;
        let done = wait_until(Duration::from_secs(60), || {
            shared.finals[b].load(Ordering::Relaxed) >= n
        })
        .await;
        let (server_cpu, client_cpu) = (
            server.cpu().saturating_sub(cpu0),
            own_cpu().saturating_sub(own0),
        );
        if done.is_err() {
            let _ = stop_tx.send(true);
            return Err(format!(
                "burst {}: only {} of {n} sockets saw likecount {} within 60 s",
                b + 1,
                shared.finals[b].load(Ordering::Relaxed),
                (b as u64 + 1) * LIKES
            ));
        }
        eprintln!(
            "burst {} (+{:.1} s): {LIKES} likes in {:.0} ms; all {n} sockets had the final count",
            b + 1,
            first_sent.duration_since(started).as_secs_f64(),
            (last_answer - first_sent).as_secs_f64() * 1e3
        );
        last_answers.push(last_answer);
        results.push(BurstResult {
            paced,
            sending: last_answer - first_sent,
            answers,
            latency: Vec::new(),
            counts: Vec::new(),
            server_cpu,
            client_cpu,
        });
        // A quiet gap, so the next burst starts in a fresh coalescing window.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(senders);

    // Stop the readers (each drops its socket) and collect what they saw.
    let _ = stop_tx.send(true);
    let closing = Instant::now();
    let mut other_events = 0;
    for r in readers {
        let rep = tokio::time::timeout(Duration::from_secs(30), r)
            .await
            .map_err(|_| "a reader did not stop".to_string())?
            .map_err(|e| format!("a reader panicked: {e}"))?;
        if let Some(e) = rep.error {
            return Err(format!("a socket failed during the bursts: {e}"));
        }
        other_events += rep.other;
        for (b, res) in results.iter_mut().enumerate() {
            let at = rep.finals[b].ok_or("a socket missed a final count")?;
            res.latency
                .push(at.saturating_duration_since(last_answers[b]));
            res.counts.push(rep.counts[b]);
        }
    }
    let disconnect = wait_gauge(&http, &base, 0, Duration::from_secs(60))
        .await
        .ok()
        .map(|_| closing.elapsed());
    for res in &mut results {
        res.latency.sort();
        res.counts.sort();
    }
    let slow_drops = server.log_text().matches("slow subscriber dropped").count();
    Ok(SizeResult {
        sockets: n,
        connect,
        rss_before,
        rss_after,
        bursts: results,
        disconnect,
        slow_drops,
        other_events,
    })
}

/// One client: connect and read the snapshot (a handshake slot held meanwhile), then read
/// every event until stopped.
async fn reader(
    port: u16,
    bursts: usize,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    deadline: tokio::time::Instant,
) -> Report {
    let mut rep = Report {
        finals: vec![None; bursts],
        counts: vec![0; bursts],
        other: 0,
        error: None,
    };
    let fail = |rep: &mut Report, e: String| {
        shared.failed.fetch_add(1, Ordering::Relaxed);
        shared.first_error.lock().unwrap().get_or_insert(e.clone());
        rep.error = Some(e);
    };
    let mut ws = {
        let Ok(_permit) = gate.acquire().await else {
            fail(&mut rep, "semaphore closed".into());
            return rep;
        };
        let mut ws = match connect(port).await {
            Ok(ws) => ws,
            Err(e) => {
                fail(&mut rep, e);
                return rep;
            }
        };
        match next_text(&mut ws, Duration::from_secs(30)).await {
            Ok(t) if t.contains(r#""event":"snapshot""#) => {}
            Ok(t) => {
                fail(&mut rep, format!("first frame is not a snapshot: {t}"));
                return rep;
            }
            Err(e) => {
                fail(&mut rep, e);
                return rep;
            }
        }
        ws
    };
    shared.ready.fetch_add(1, Ordering::Relaxed);
    let expire = tokio::time::sleep_until(deadline);
    tokio::pin!(expire);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = &mut expire => break,
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => on_event(&t, &shared, &mut rep),
                Some(Ok(Message::Close(c))) => {
                    rep.error = Some(format!("the server closed the socket: {c:?}"));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    rep.error = Some(format!("socket error: {e}"));
                    break;
                }
                None => {
                    rep.error = Some("the socket ended".into());
                    break;
                }
            },
        }
    }
    rep
}

/// The likecount of a `count` event (the server's exact format, else a JSON parse).
fn likecount(text: &str) -> Option<u64> {
    if !text.starts_with(r#"{"event":"count""#) {
        let v: Value = serde_json::from_str(text).ok()?;
        return (v["event"] == "count").then(|| v["likecount"].as_u64())?;
    }
    let rest = &text[text.find(r#""likecount":"#)? + 12..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn on_event(text: &str, shared: &Shared, rep: &mut Report) {
    let Some(likes) = likecount(text) else {
        rep.other += 1;
        return;
    };
    // Burst b (0-based) moves likecount from b*LIKES to (b+1)*LIKES.
    let b = (likes.saturating_sub(1) / LIKES) as usize;
    if likes == 0 || b >= rep.counts.len() {
        rep.other += 1;
        return;
    }
    rep.counts[b] += 1;
    if likes == (b as u64 + 1) * LIKES && rep.finals[b].is_none() {
        rep.finals[b] = Some(Instant::now());
        shared.finals[b].fetch_add(1, Ordering::Relaxed);
    }
}

async fn connect(port: u16) -> Result<Ws, String> {
    let url = format!("ws://127.0.0.1:{port}/ws/room/{VJ}");
    match tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(url),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(format!("connect: {e}")),
        Err(_) => Err("connect: no handshake within 30 s".into()),
    }
}

/// The next text frame, within `limit`.
async fn next_text(ws: &mut Ws, limit: Duration) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + limit;
    for _ in 0..1_000 {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("no frame in time".into()),
            Ok(None) => return Err("the socket ended".into()),
            Ok(Some(Err(e))) => return Err(format!("socket error: {e}")),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t),
            Ok(Some(Ok(Message::Close(c)))) => return Err(format!("closed: {c:?}")),
            Ok(Some(Ok(_))) => continue,
        }
    }
    Err("no text frame".into())
}

// ---------------------------------------------------------------------------------------
// The likes

/// When the first like was sent, when the last answer arrived, and each like's answer
/// time (sorted).
type BurstOutcome = (Instant, Instant, Vec<Duration>);
type BurstReply = tokio::sync::oneshot::Sender<Result<BurstOutcome, String>>;

/// A thread with its own single-threaded runtime and HTTP client (SENDERS keep-alive
/// connections) that sends bursts of likes on request. It ends when this is dropped.
struct LikeSender {
    tx: std::sync::mpsc::Sender<(Option<u64>, BurstReply)>,
}

impl LikeSender {
    fn start(base: String) -> Result<LikeSender, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("sender runtime: {e}"))?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(SENDERS as usize)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        let (tx, rx) = std::sync::mpsc::channel::<(Option<u64>, BurstReply)>();
        std::thread::Builder::new()
            .name("like-sender".into())
            .spawn(move || {
                while let Ok((paced, reply)) = rx.recv() {
                    let r = rt.block_on(burst(&http, &base, paced));
                    let _ = reply.send(r);
                }
            })
            .map_err(|e| format!("sender thread: {e}"))?;
        Ok(LikeSender { tx })
    }

    async fn burst(&self, paced: Option<u64>) -> Result<BurstOutcome, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send((paced, reply))
            .map_err(|_| "the sender thread is gone".to_string())?;
        tokio::time::timeout(Duration::from_secs(150), answer)
            .await
            .map_err(|_| "no burst result in 150 s".to_string())?
            .map_err(|_| "the sender thread is gone".to_string())?
    }
}

/// One burst: LIKES likes from SENDERS keep-alive connections, each sending in sequence,
/// as fast as answers come or at `paced` likes per second in total. Returns when the first
/// was sent and when the last answer arrived.
async fn burst(
    http: &reqwest::Client,
    base: &str,
    paced: Option<u64>,
) -> Result<BurstOutcome, String> {
    let first_sent = Instant::now();
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for s in 0..SENDERS {
        let (http, base) = (http.clone(), base.to_string());
        let mine = LIKES / SENDERS;
        tasks.push(tokio::spawn(async move {
            let mut last = Instant::now();
            let mut answers = Vec::with_capacity(mine as usize);
            for i in 0..mine {
                if let Some(rate) = paced {
                    // Like k of the burst (k = i * SENDERS + s) is due at k / rate.
                    let k = i * SENDERS + s;
                    let due = start + Duration::from_secs_f64(k as f64 / rate.max(1) as f64);
                    tokio::time::sleep_until(due).await;
                }
                let sent = Instant::now();
                ok(
                    &http,
                    &base,
                    json!({"Action":"ChangeCount","userid":VJ,"type":1,"optype":0,"flag":0}),
                )
                .await?;
                last = Instant::now();
                answers.push(last - sent);
            }
            Ok::<_, String>((last, answers))
        }));
    }
    let mut last_answer = first_sent;
    let mut answers = Vec::new();
    for t in tasks {
        let (last, mine) = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .map_err(|_| "the like senders did not finish in 120 s".to_string())?
            .map_err(|e| format!("a like sender panicked: {e}"))??;
        last_answer = last_answer.max(last);
        answers.extend(mine);
    }
    answers.sort();
    Ok((first_sent, last_answer, answers))
}

/// POSTs an action; success or an error naming the answer.
async fn ok(http: &reqwest::Client, base: &str, body: Value) -> Result<Value, String> {
    let resp = http
        .post(format!("{base}/interface.php"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", body["Action"]))?;
    let v: Value = resp
        .json()
        .await
        .map_err(|e| format!("{}: {e}", body["Action"]))?;
    if v["returnValue"] != 0 {
        return Err(format!("{} answered {v}", body["Action"]));
    }
    Ok(v["returnData"].clone())
}

/// Waits until /metrics reports `want` open realtime connections.
async fn wait_gauge(
    http: &reqwest::Client,
    base: &str,
    want: u64,
    limit: Duration,
) -> Result<(), String> {
    let started = Instant::now();
    let mut last = None;
    for _ in 0..100_000 {
        if let Ok(r) = http.get(format!("{base}/metrics")).send().await {
            if let Ok(text) = r.text().await {
                last = text.lines().find_map(|l| {
                    l.strip_prefix("minilvb_ws_connections ")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                });
                if last == Some(want) {
                    return Ok(());
                }
            }
        }
        if started.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(format!(
        "minilvb_ws_connections is {last:?}, not {want}, after {limit:?}"
    ))
}

/// Polls `cond` every millisecond until it holds or `limit` passes.
async fn wait_until(limit: Duration, cond: impl Fn() -> bool) -> Result<(), ()> {
    let started = Instant::now();
    let rounds = limit.as_millis() as u64 + 1;
    for _ in 0..rounds {
        if cond() {
            return Ok(());
        }
        if started.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if cond() {
        Ok(())
    } else {
        Err(())
    }
}

// ---------------------------------------------------------------------------------------
// Output

/// Nearest-rank percentile of a sorted slice.
fn pct<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn print_tables(results: &[SizeResult]) {
    println!();
    println!(
        "Realtime fan-out: {} as a child on 127.0.0.1, SQLite, auth off, one live room, \
         ws.coalesce_ms = {COALESCE_MS}, {} cores",
        server_binary(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();
    println!("Connections and memory (server VmRSS before the N sockets and with N idle sockets)");
    println!(
        "{:>8} | {:>10} | {:>9} | {:>14} | {:>13} | {:>14}",
        "sockets", "connect s", "conn/s", "RSS before MiB", "RSS after MiB", "bytes per conn"
    );
    for r in results {
        let per = (r.rss_after as f64 - r.rss_before as f64) / r.sockets as f64;
        println!(
            "{:>8} | {:>10.2} | {:>9.0} | {:>14.1} | {:>13.1} | {:>14.0}",
            r.sockets,
            r.connect.as_secs_f64(),
            r.sockets as f64 / r.connect.as_secs_f64().max(1e-9),
            r.rss_before as f64 / 1048576.0,
            r.rss_after as f64 / 1048576.0,
            per
        );
    }
    println!();
    println!(
        "Like bursts: {LIKES} ChangeCount likes over HTTP from {SENDERS} keep-alive connections, \
         unpaced or paced at {PACED_RATE}/s; latency = last like's answer -> the socket's \
         count event with the final likecount; times in ms"
    );
    println!(
        "{:>7} | {:>5} | {:>6} | {:>7} | {:>17} | {:>6} | {:>6} | {:>6} | {:>6} | {:>6} | {:>18} | {:>5} | {:>7} | {:>7}",
        "sockets",
        "burst",
        "pace/s",
        "sending",
        "like p50/p99/max",
        "min",
        "p50",
        "p99",
        "max",
        "spread",
        "counts min/p50/max",
        "bound",
        "srv CPU",
        "cli CPU"
    );
    for r in results {
        for (i, b) in r.bursts.iter().enumerate() {
            let bound = b.sending.as_millis() as u64 / COALESCE_MS + 2;
            println!(
                "{:>7} | {:>5} | {:>6} | {:>7} | {:>17} | {:>6} | {:>6} | {:>6} | {:>6} | {:>6} | {:>18} | {:>5} | {:>7} | {:>7}",
                r.sockets,
                i + 1,
                b.paced.map_or("max".to_string(), |p| p.to_string()),
                ms(b.sending),
                format!(
                    "{:.1}/{:.0}/{:.0}",
                    pct(&b.answers, 50.0).as_secs_f64() * 1e3,
                    pct(&b.answers, 99.0).as_secs_f64() * 1e3,
                    pct(&b.answers, 100.0).as_secs_f64() * 1e3
                ),
                ms(pct(&b.latency, 0.0)),
                ms(pct(&b.latency, 50.0)),
                ms(pct(&b.latency, 99.0)),
                ms(pct(&b.latency, 100.0)),
                ms(pct(&b.latency, 100.0).saturating_sub(pct(&b.latency, 0.0))),
                format!(
                    "{}/{}/{}",
                    pct(&b.counts, 0.0),
                    pct(&b.counts, 50.0),
                    pct(&b.counts, 100.0)
                ),
                bound,
                ms(b.server_cpu),
                ms(b.client_cpu)
            );
        }
    }
    println!();
    println!("Disconnect (all clients drop at once; until minilvb_ws_connections = 0)");
    for r in results {
        println!(
            "{:>8} sockets: {} ms; slow subscribers dropped: {}; non-count events seen: {}",
            r.sockets,
            r.disconnect.map(ms).unwrap_or_else(|| "> 60000".into()),
            r.slow_drops,
            r.other_events
        );
    }
    println!();
    println!(
        "sending: first like sent -> last like answered; like p50/p99/max: each like's \
         answer time. min..max: the final count goes out at \
         once after a quiet spell, else at the end of the coalescing window ({COALESCE_MS} ms) \
         that the first count opened, then to every socket; spread = max - min is that fan-out. bound: \
         sending / {COALESCE_MS} ms + 2, the most count events coalescing allows. srv CPU / \
         cli CPU: user+system time of the server and of this process (10k clients and the \
         senders) from the first like until every socket had the final count."
    );
}

// ---------------------------------------------------------------------------------------
// Limits (Linux)

#[repr(C)]
struct RLimit {
    cur: u64,
    max: u64,
}

const RLIMIT_NOFILE: i32 = 7;
const SC_CLK_TCK: i32 = 2;

extern "C" {
    fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
    fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
    fn sysconf(name: i32) -> i64;
}

/// Raises the soft open-file limit to at least `need` (within the hard limit).
fn raise_nofile(need: u64) -> Result<u64, String> {
    let mut l = RLimit { cur: 0, max: 0 };
    // SAFETY: getrlimit writes one struct rlimit (two rlim_t = u64 on 64-bit Linux).
    if unsafe { getrlimit(RLIMIT_NOFILE, &mut l) } != 0 {
        return Err("getrlimit(RLIMIT_NOFILE) failed".into());
    }
    if l.cur >= need {
        return Ok(l.cur);
    }
    let want = need.min(l.max);
    let new = RLimit {
        cur: want,
        max: l.max,
    };
    // SAFETY: setrlimit reads one struct rlimit.
    if unsafe { setrlimit(RLIMIT_NOFILE, &new) } != 0 {
        return Err(format!("setrlimit(RLIMIT_NOFILE, {want}) failed"));
    }
    if want < need {
        return Err(format!(
            "open-file limit {want} (hard) is below the {need} this run needs"
        ));
    }
    Ok(want)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { sysconf(SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// User + system CPU time of a process so far (`/proc/<pid>/stat`), zero if unreadable.
fn proc_cpu(pid: &str) -> Duration {
    Duration::from_secs_f64(common::proc_cpu_ticks(pid) as f64 / clock_ticks() as f64)
}

fn own_cpu() -> Duration {
    proc_cpu("self")
}
