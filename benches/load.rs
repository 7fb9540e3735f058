//! Load harness: `cargo bench --bench load [-- OPTIONS]`.
//!
//! Starts the release `minilvb` binary as a child on 127.0.0.1, drives each target's
//! scenario over N keep-alive HTTP/1.1 connections for a bounded time, and prints
//! requests/s, p50/p99/p999 latency, errors, resident memory and each target's ratio
//! against the `/healthz` run of the same invocation. Exits non-zero when a target is
//! missed. Options:
//!   --duration SECS        per scenario, and as long again for its healthz slices (default 6)
//!   --rounds N             slices each scenario is cut into, alternating with /healthz
//!                          slices on the same server (default 4)
//!   --connections N        keep-alive connections (default 128)
//!   --only a,b,...         scenarios: healthz,enter,quit,like,hot,list,mixed,persist,memory,
//!                          celebrity (one room joined by --celebrity N viewers, then left)
//!   --mix enter=30,like=40,quit=20,list=5,members=5   the mixed scenario's weights
//!   --rooms N              live rooms for enter/quit/like (default 1000)
//!   --list-rooms N         live rooms behind FetchList (default 100000)
//!   --members N            members for the memory target (default 1000000)
//!   --celebrity N          viewers who join the celebrity's room (default 1000000)
//!   --json FILE  --svg FILE  write the results
//!   --no-fail              report misses without failing
//! MariaDB is included in the persistence comparison when MINILVB_TEST_MYSQL_URL is set.
//! MINILVB_BENCH_BIN runs another server binary (e.g. an older build, for before/after).

// The tests' helpers for child servers and /proc readings.
#[path = "../tests/common/mod.rs"]
mod common;
// The lean HTTP/1.1 client the load generators share.
#[path = "support/http.rs"]
mod http;
use http::{closed_loop, get, paced_loop, post, post_text, Conn};

use serde_json::{json, Value};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    duration: Duration,
    rounds: usize,
    connections: usize,
    only: Vec<String>,
    mix: Vec<(String, u32)>,
    rooms: usize,
    list_rooms: usize,
    members: usize,
    celebrity: usize,
    json: Option<PathBuf>,
    svg: Option<PathBuf>,
    fail: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        duration: Duration::from_secs(6),
        rounds: 4,
        connections: 128,
        only: [
            "healthz",
            "enter",
            "quit",
            "like",
            "hot",
            "list",
            "mixed",
            "persist",
            "memory",
            "celebrity",
        ]
        .map(String::from)
        .to_vec(),
        mix: parse_mix("enter=30,like=40,quit=20,list=5,members=5"),
        rooms: 1000,
        list_rooms: 100_000,
        members: 1_000_000,
        celebrity: 1_000_000,
        json: None,
        svg: None,
        fail: true,
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--duration" => o.duration = Duration::from_secs_f64(val().parse().expect("seconds")),
            "--rounds" => o.rounds = val().parse().expect("count"),
            "--connections" => o.connections = val().parse().expect("count"),
            "--only" => o.only = val().split(',').map(String::from).collect(),
            "--mix" => o.mix = parse_mix(&val()),
            "--rooms" => o.rooms = val().parse().expect("count"),
            "--list-rooms" => o.list_rooms = val().parse().expect("count"),
            "--members" => o.members = val().parse().expect("count"),
            "--celebrity" => o.celebrity = val().parse().expect("count"),
            "--json" => o.json = Some(val().into()),
            "--svg" => o.svg = Some(val().into()),
            "--no-fail" => o.fail = false,
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    o.connections = o.connections.clamp(1, 1024);
    o.rounds = o.rounds.clamp(1, 20);
    o.duration = o
        .duration
        .clamp(Duration::from_millis(500), Duration::from_secs(120));
    o
}

fn parse_mix(s: &str) -> Vec<(String, u32)> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().parse().expect("mix weight")))
        .collect()
}

// ---------------------------------------------------------------- the server under test

const BIZID: &str = "2519";
const PUSH_KEY: &str = "e12c46f2612d5106e2034781ab261ca3";

#[derive(Clone, Copy, PartialEq)]
enum Db {
    Sqlite,
    Mysql,
    Off,
}

struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
    mysql: Option<(String, String)>,
}

impl Server {
    fn url(db: Db, dir: &std::path::Path) -> (String, Option<(String, String)>) {
        match db {
            Db::Sqlite | Db::Off => (format!("sqlite://{}/load.db?mode=rwc", dir.display()), None),
            Db::Mysql => {
                let admin =
                    std::env::var("MINILVB_TEST_MYSQL_URL").expect("MINILVB_TEST_MYSQL_URL");
                let admin = admin.trim_end_matches('/').to_string();
                let name = format!("minilvb_load_{}", std::process::id());
                mysql_admin(
                    &admin,
                    &format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
                );
                (format!("{admin}/{name}"), Some((admin, name)))
            }
        }
    }

    fn env(url: &str, db: Db) -> Vec<(String, String)> {
        let mut env = vec![
            ("MINILVB_DATABASE__URL".into(), url.to_string()),
            ("MINILVB_LIVE__BIZID".into(), BIZID.into()),
            ("MINILVB_LIVE__PUSH_KEY".into(), PUSH_KEY.into()),
            ("MINILVB_AUTH__MODE".into(), "off".into()),
            ("MINILVB_LIMITS__MAX_ROOMS".into(), "1000000".into()),
            // The celebrity scenario fills one room past the default bound of a million.
            (
                "MINILVB_LIMITS__MAX_MEMBERS_PER_ROOM".into(),
                "4000000".into(),
            ),
        ];
        // Extra server settings for experiments, e.g. MINILVB_BENCH_ENV="SERVER__ROOM_THREADS=1".
        if let Ok(extra) = std::env::var("MINILVB_BENCH_ENV") {
            for kv in extra.split(',').filter_map(|kv| kv.split_once('=')) {
                env.push((format!("MINILVB_{}", kv.0.trim()), kv.1.trim().to_string()));
            }
        }
        if db == Db::Off {
            env.push(("MINILVB_DATABASE__PERSIST_SNAPSHOTS".into(), "false".into()));
        }
        env
    }

    /// Migrates, lets `seed` fill the database, then starts the server.
    async fn start(db: Db, seed: impl AsyncFnOnce(&str)) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "minilvb_load_{}_{}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (url, mysql) = Server::url(db, &dir);
        let env = Server::env(&url, db);
        let st = Command::new(server_bin())
            .env_remove("MINILVB_BENCH_BIN")
            .env_remove("MINILVB_BENCH_ENV")
            .envs(env.clone())
            .arg("migrate")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "migrate");
        seed(&url).await;
        let log = dir.join("server.log");
        let child = Command::new(server_bin())
            .env_remove("MINILVB_BENCH_BIN")
            .env_remove("MINILVB_BENCH_ENV")
            .envs(env)
            .env("MINILVB_BIND", "127.0.0.1:0")
            .env("MINILVB_LOG_FORMAT", "json")
            .env("MINILVB_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("minilvb starts");
        let started = Instant::now();
        let port = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(p) = common::listening_port(&text) {
                break p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "server did not start:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Server {
            child,
            port,
            dir,
            mysql,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin, name)) = &self.mysql {
            mysql_admin(admin, &format!("DROP DATABASE IF EXISTS {name}"));
        }
    }
}

fn server_bin() -> String {
    std::env::var("MINILVB_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_minilvb").to_string())
}

fn mysql_admin(admin: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (admin, sql) = (admin.to_string(), sql.to_string());
    std::thread::spawn(move || {
        rt.block_on(async {
            sqlx::any::install_default_drivers();
            let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .expect("mysql admin");
            sqlx::query(&sql)
                .execute(&mut c)
                .await
                .expect("mysql admin statement");
        })
    })
    .join()
    .unwrap();
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.as_nanos() as u64 ^ (std::process::id() as u64).rotate_left(32)
}

/// Fills the database with `n` online live rooms `r{i}` (group `g_r{i}`), as the server
/// itself would have written them, so start-up restores them.
async fn seed_rooms(url: &str, n: usize) {
    if n == 0 {
        return;
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(400) {
        let rows = vec!["(?,1,?,?,?,?,?)"; chunk.len()].join(",");
        let sql = format!("INSERT INTO rooms (userid, epoch, groupid, title, nickname, stream, timestamp) VALUES {rows}");
        let mut q = sqlx::query(&sql);
        for i in chunk {
            q = q
                .bind(format!("r{i}"))
                .bind(format!("g_r{i}"))
                .bind(format!("room {i}"))
                .bind(format!("主播{i}"))
                .bind(format!("{BIZID}_r{i}"))
                .bind(now - (*i as i64 % 3600));
        }
        q.execute(&mut *tx).await.unwrap();
        let rows = vec!["(?,'',1,1,?,0,?)"; chunk.len()].join(",");
        let sql = format!("INSERT INTO room_state (vj, fileid, epoch, online, likes, views, seen_at) VALUES {rows}");
        let mut q = sqlx::query(&sql);
        for i in chunk {
            q = q.bind(format!("r{i}")).bind((*i % 97) as i64).bind(now);
        }
        q.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    pool.close().await;
}

// ---------------------------------------------------------------- running a scenario

/// Builds the request a connection sends next: (connection index, its sequence number).
type Gen = Arc<dyn Fn(usize, u64) -> Vec<u8> + Send + Sync>;

#[derive(Clone, Default)]
struct Stats {
    name: String,
    requests: u64,
    errors: u64,
    secs: f64,
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    rss_mb: f64,
    server_cpu: f64,
    client_cpu: f64,
    /// Busy CPU of the rest of the machine (a database server, the kernel's own threads,
    /// anything else running), in % of one core.
    other_cpu: f64,
    /// Throughput against the `/healthz` slices interleaved with this scenario's (0: none).
    ratio: f64,
    /// p99 against those slices' p99.
    p99_ratio: f64,
}

/// One bounded stretch of load: the raw figures, so slices can be pooled.
struct Slice {
    lat: Vec<u32>,
    errors: u64,
    secs: f64,
    server_ticks: u64,
    client_ticks: u64,
    machine_ticks: u64,
    rss_mb: f64,
}

/// Busy clock ticks of the whole machine (all CPUs), from /proc/stat.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    cpu.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v.parse::<u64>().unwrap_or(0))
        .sum()
}

fn cpu_ticks(pid: u32) -> u64 {
    common::proc_cpu_ticks(&pid.to_string())
}

fn rss_mb(pid: u32) -> f64 {
    common::proc_rss_bytes(&pid.to_string()).unwrap_or(0) as f64 / (1024.0 * 1024.0)
}

/// Pools slices into one row: requests over the summed time, percentiles over every sample.
fn summarize(name: &str, slices: &[&Slice]) -> Stats {
    let mut lat: Vec<u32> = slices.iter().flat_map(|s| s.lat.iter().copied()).collect();
    lat.sort_unstable();
    let secs: f64 = slices.iter().map(|s| s.secs).sum::<f64>().max(1e-9);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let hz = 100.0; // clock ticks per second on Linux
    let ticks = |f: fn(&Slice) -> u64| slices.iter().map(|s| f(s)).sum::<u64>() as f64;
    Stats {
        name: name.into(),
        requests: lat.len() as u64,
        errors: slices.iter().map(|s| s.errors).sum(),
        secs,
        rps: lat.len() as f64 / secs,
        p50: pct(0.50),
        p99: pct(0.99),
        p999: pct(0.999),
        rss_mb: slices.last().map(|s| s.rss_mb).unwrap_or(0.0),
        server_cpu: ticks(|s| s.server_ticks) / hz / secs * 100.0,
        client_cpu: ticks(|s| s.client_ticks) / hz / secs * 100.0,
        other_cpu: (ticks(|s| s.machine_ticks)
            - ticks(|s| s.server_ticks)
            - ticks(|s| s.client_ticks))
        .max(0.0)
            / hz
            / secs
            * 100.0,
        ratio: 0.0,
        p99_ratio: 0.0,
    }
}

/// One slice, summarized on its own (set-up and memory runs, which take no ratio).
async fn drive(
    name: &str,
    server: &Server,
    measured: usize,
    gen: Gen,
    duration: Duration,
) -> Stats {
    let s = drive_slice(name, server, (measured, gen), None, duration).await;
    eprintln!();
    summarize(name, &[&s])
}

/// Drives `measured` connections with their generator (and, in the background, unmeasured
/// connections with theirs) for `duration`; closed loop, one request in flight per
/// connection.
async fn drive_slice(
    name: &str,
    server: &Server,
    (measured, gen): (usize, Gen),
    background: Option<(usize, Gen)>,
    duration: Duration,
) -> Slice {
    let (background, bg) = background.unzip();
    let background = background.unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let (cpu0, self0, all0) = (
        cpu_ticks(server.pid()),
        cpu_ticks(std::process::id()),
        machine_busy_ticks(),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..measured + background {
        let (stop, done, port) = (stop.clone(), done.clone(), server.port);
        let is_bg = c >= measured;
        let g = if is_bg {
            bg.clone().unwrap()
        } else {
            gen.clone()
        };
        tasks.push(tokio::spawn(async move {
            let counted = (!is_bg).then_some(&*done);
            match closed_loop(port, |seq| g(c, seq), &stop, counted).await {
                None => (Vec::new(), 1),
                Some((lat, errors)) => (lat, if is_bg { 0 } else { errors }),
            }
        }));
    }
    // Progress while it runs.
    let mut last = (0, Duration::ZERO);
    while started.elapsed() < duration {
        tokio::time::sleep((duration - started.elapsed()).min(Duration::from_secs(1))).await;
        let (n, t) = (done.load(Ordering::Relaxed), started.elapsed());
        eprint!(
            "\r  {name:<14} {:>5.1}s {:>9} requests  {:>8.0}/s   ",
            t.as_secs_f64(),
            n,
            (n - last.0) as f64 / (t - last.1).as_secs_f64().max(1e-3)
        );
        last = (n, t);
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, self1, all1) = (
        cpu_ticks(server.pid()),
        cpu_ticks(std::process::id()),
        machine_busy_ticks(),
    );
    Slice {
        lat,
        errors,
        secs,
        server_ticks: cpu1 - cpu0,
        client_ticks: self1 - self0,
        machine_ticks: all1.saturating_sub(all0),
        rss_mb: rss_mb(server.pid()),
    }
}

/// A scenario measured in `rounds` slices, each beside a `/healthz` slice on the same
/// server (alternating which goes first), so drift on a shared machine hits both sides of
/// the ratio alike. `settle` lets each slice's background work (snapshots) finish
/// before the next one starts. Returns the scenario's row (with its ratios) and the
/// healthz slices, for the pooled healthz row.
async fn paired(
    name: &str,
    server: &Server,
    o: &Opts,
    (measured, gen): (usize, Gen),
    background: Option<(usize, Gen)>,
) -> (Stats, Vec<Slice>) {
    let slice = o.duration.div_f64(o.rounds as f64);
    let (mut mine, mut base) = (Vec::new(), Vec::new());
    for round in 0..o.rounds {
        for turn in 0..2 {
            settle().await;
            if (round + turn) % 2 == 0 {
                base.push(
                    drive_slice(
                        "healthz",
                        server,
                        (o.connections, healthz_gen()),
                        None,
                        slice,
                    )
                    .await,
                );
            } else {
                mine.push(
                    drive_slice(
                        name,
                        server,
                        (measured, gen.clone()),
                        background.clone(),
                        slice,
                    )
                    .await,
                );
            }
        }
    }
    eprintln!();
    let mut s = summarize(name, &mine.iter().collect::<Vec<_>>());
    let b = summarize("healthz", &base.iter().collect::<Vec<_>>());
    s.ratio = s.rps / b.rps.max(1.0);
    s.p99_ratio = s.p99 / b.p99.max(0.001);
    (s, base)
}

/// Waits before a slice: at least 0.4 s (a snapshot's commit), then until the machine is
/// quiet (under 15 % of a core busy over 100 ms) so that the previous slice's background
/// work, such as a database server flushing, is not billed to the next one; at most 3 s.
async fn settle() {
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(400)).await;
    while started.elapsed() < Duration::from_secs(3) {
        let before = machine_busy_ticks();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Clock ticks are 10 ms: 15 % of one core over 100 ms is 1.5 ticks.
        if machine_busy_ticks().saturating_sub(before) <= 1 {
            return;
        }
    }
}

async fn call_ok(port: u16, body: Value) {
    let mut c = Conn::open(port).await.unwrap();
    let (s, ok) = c.call(&post(&body)).await.unwrap();
    assert!(s == 200 && ok, "setup request {body} failed");
}

/// `n` live rooms `r{i}` created through the protocol.
async fn live_rooms(port: u16, n: usize) {
    for i in 0..n {
        call_ok(port, json!({"Action":"RequestLVBAddr","userid":format!("r{i}"),"groupid":format!("g_r{i}"),"title":format!("room {i}")})).await;
        call_ok(
            port,
            json!({"Action":"ChangeStatus","userid":format!("r{i}"),"status":0}),
        )
        .await;
    }
}

fn healthz_gen() -> Gen {
    Arc::new(|_, _| get("/healthz"))
}

fn gen_enter(rooms: usize) -> Gen {
    Arc::new(move |c, s| {
        let r = (c * 7919 + s as usize) % rooms;
        post_text(&format!(
            r#"{{"Action":"EnterGroup","userid":"c{c}_{s}","liveuserid":"r{r}","groupid":"g_r{r}","flag":0,"nickname":"观众","headpic":"http://cdn.example/a.png"}}"#
        ))
    })
}

fn gen_quit(rooms: usize) -> Gen {
    Arc::new(move |c, s| {
        let r = (c * 7919 + s as usize) % rooms;
        post_text(&format!(
            r#"{{"Action":"QuitGroup","userid":"c{c}_{s}","liveuserid":"r{r}","groupid":"g_r{r}","flag":0}}"#
        ))
    })
}

fn gen_like(rooms: usize) -> Gen {
    Arc::new(move |c, s| {
        let r = (c * 7919 + s as usize * 31) % rooms;
        post_text(&format!(
            r#"{{"Action":"ChangeCount","userid":"r{r}","type":1,"optype":0,"flag":0}}"#
        ))
    })
}

fn gen_list(rooms: usize) -> Gen {
    let pages = (rooms / 20).max(1);
    Arc::new(move |c, s| {
        post_text(&format!(
            r#"{{"Action":"FetchList","flag":1,"pageno":{},"pagesize":20}}"#,
            1 + (c * 131 + s as usize * 17) % pages
        ))
    })
}

fn gen_mixed(rooms: usize, mix: &[(String, u32)]) -> Gen {
    let total: u32 = mix.iter().map(|m| m.1).sum::<u32>().max(1);
    let mix = mix.to_vec();
    let (enter, quit, like, list) = (
        gen_enter(rooms),
        gen_quit(rooms),
        gen_like(rooms),
        gen_list(rooms),
    );
    Arc::new(move |c, s| {
        let mut pick = ((c as u64 * 2654435761 + s * 40503) % total as u64) as u32;
        for (name, w) in &mix {
            if pick < *w {
                let r = (c + s as usize) % rooms;
                return match name.as_str() {
                    "enter" => enter(c, s / 2),
                    "quit" => quit(c, s / 2),
                    "like" => like(c, s),
                    "list" => list(c, s),
                    _ => post_text(&format!(
                        r#"{{"Action":"FetchGroupMemberList","liveuserid":"r{r}","groupid":"g_r{r}","pagesize":20}}"#
                    )),
                };
            }
            pick -= w;
        }
        like(c, s)
    })
}

// ---------------------------------------------------------------- the celebrity's room

/// Viewers `h{k}` of room r0 in the order of a shared counter, so that every request of
/// every slice is a new viewer (entering) or one who entered (leaving).
fn gen_celebrity(next: Arc<AtomicU64>, enter: bool) -> Gen {
    Arc::new(move |_, _| {
        let k = next.fetch_add(1, Ordering::Relaxed);
        if enter {
            post_text(&format!(
                r#"{{"Action":"EnterGroup","userid":"h{k:011}","liveuserid":"r0","groupid":"g_r0","flag":0,"nickname":"观众昵称测试一二","headpic":"http://img.example.com/avatars/h{k:011}/00000000000000000000000000000000.png"}}"#
            ))
        } else {
            post_text(&format!(
                r#"{{"Action":"QuitGroup","userid":"h{k:011}","liveuserid":"r0","groupid":"g_r0","flag":0}}"#
            ))
        }
    })
}

fn slice_max_ms(s: &Slice) -> f64 {
    s.lat.iter().copied().max().unwrap_or(0) as f64 / 1000.0
}

/// Connections of each kind that keep using the rest of the server during the storm:
/// `/healthz`, and likes on other rooms.
const NEIGHBOURS: usize = 4;

/// Likes on the rooms beside the celebrity's (r1..r10).
fn gen_neighbour_likes() -> Gen {
    Arc::new(|c, s| {
        let r = 1 + (c * 7 + s as usize) % 10;
        post_text(&format!(
            r#"{{"Action":"ChangeCount","userid":"r{r}","type":1,"optype":0,"flag":0}}"#
        ))
    })
}

/// A storm beside the neighbours: its connections, its requests, and the rate offered
/// (`None`: as fast as answers come).
struct Storm {
    conns: usize,
    gen: Gen,
    rate: Option<f64>,
}

/// Offers `rate` requests a second over `conns` connections for `slice`; returns the rate
/// sent and the answers' latencies, as a slice.
async fn drive_paced(
    srv: &Server,
    conns: usize,
    gen: Gen,
    rate: f64,
    slice: Duration,
) -> (f64, Slice) {
    let stop = Arc::new(AtomicBool::new(false));
    let every = Duration::from_secs_f64(conns as f64 / rate);
    let started = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|c| {
            let (stop, g, port) = (stop.clone(), gen.clone(), srv.port);
            tokio::spawn(async move { paced_loop(port, |seq| g(c, seq), &stop, every).await })
        })
        .collect();
    tokio::time::sleep(slice).await;
    stop.store(true, Ordering::Relaxed);
    let (mut sent, mut lat, mut errors) = (0, Vec::new(), 0);
    for t in tasks {
        let (n, l, e) = t.await.unwrap_or_default();
        sent += n;
        lat.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    let answered = Slice {
        lat,
        errors,
        secs,
        server_ticks: 0,
        client_ticks: 0,
        machine_ticks: 0,
        rss_mb: 0.0,
    };
    (sent as f64 / secs, answered)
}

/// The rate each kind of neighbour offers (requests a second, over `NEIGHBOURS`
/// connections): the rest of the platform at an ordinary hour. Offered as fast as answers
/// come, neighbours would keep both cores busy on their own, and their p99 would measure
/// how a saturated CPU queues, not what the storm does to them.
const NEIGHBOUR_RATE: f64 = 1000.0;

/// The neighbours' p99s (healthz, likes) over one slice, with a storm running beside them
/// on other connections (none: the idle figure), and the storm's rate.
async fn neighbours_beside(srv: &Server, slice: Duration, storm: Option<Storm>) -> (f64, f64, f64) {
    let health = drive_paced(srv, NEIGHBOURS, healthz_gen(), NEIGHBOUR_RATE, slice);
    let likes = drive_paced(
        srv,
        NEIGHBOURS,
        gen_neighbour_likes(),
        NEIGHBOUR_RATE,
        slice,
    );
    let ((_, h), (_, l), rate) = match storm {
        Some(Storm {
            conns,
            gen,
            rate: Some(rate),
        }) => {
            let storm = drive_paced(srv, conns, gen, rate, slice);
            let (h, l, (rate, _)) = tokio::join!(health, likes, storm);
            (h, l, rate)
        }
        Some(Storm {
            conns,
            gen,
            rate: None,
        }) => {
            let storm = drive_slice("storm", srv, (conns, gen), None, slice);
            let (h, l, s) = tokio::join!(health, likes, storm);
            let rate = s.lat.len() as f64 / s.secs.max(1e-3);
            (h, l, rate)
        }
        None => {
            let (h, l) = tokio::join!(health, likes);
            (h, l, 0.0)
        }
    };
    (summarize("h", &[&h]).p99, summarize("l", &[&l]).p99, rate)
}

/// Values of the server's unlabelled metrics, by name (0 when absent).
async fn metric_values<const N: usize>(port: u16, names: [&str; N]) -> [f64; N] {
    let Ok(mut c) = Conn::open(port).await else {
        return [0.0; N];
    };
    let body = c.get_body(&get("/metrics")).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    names.map(|name| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    })
}

/// The server's snapshot totals so far: rows written and seconds spent committing them.
async fn snapshot_totals(port: u16) -> (f64, f64) {
    let [rows, secs] = metric_values(
        port,
        [
            "minilvb_snapshot_rows_total",
            "minilvb_snapshot_duration_seconds_sum",
        ],
    )
    .await;
    (rows, secs)
}

/// Waits until every change is written (no room pending and no snapshot transaction
/// open, in two readings half a second apart; at most 30 s), then two seconds more, past
/// the allocator's one-second delay before it gives freed pages back. Memory read earlier
/// counts the snapshot backlog and buffers about to be returned: one room of a million read
/// 180 or 203 bytes a member by chance, three seconds after the last join.
async fn quiesce(port: u16) {
    let names = ["minilvb_pending_rooms", "minilvb_snapshot_in_flight"];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet = 0;
    while quiet < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let [pending, writing] = metric_values(port, names).await;
        quiet = if pending == 0.0 && writing == 0.0 {
            quiet + 1
        } else {
            0
        };
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// One slice of the celebrity's room, against the healthz slice before it.
struct CelebritySlice {
    /// The room's size at the slice's end.
    members: u64,
    p99: f64,
    max: f64,
    healthz_p99: f64,
    ratio: f64,
    /// Snapshot rows written during the slice, and the time spent committing them (ms).
    rows: f64,
    snapshot_ms: f64,
}

/// One phase of the celebrity's room: 1 s slices of joining (or leaving), each after a 1 s
/// `/healthz` slice, until `until` viewers have been sent. Prints a row per slice (the
/// room's size at its end, p99 and max against the healthz slice before it, and what the
/// snapshots wrote meanwhile) and returns the pooled row and the slices.
async fn celebrity_phase(
    name: &str,
    srv: &Server,
    n: usize,
    next: &Arc<AtomicU64>,
    enter: bool,
    until: u64,
    size: impl Fn(u64) -> u64,
) -> (Stats, Vec<CelebritySlice>) {
    let slice = Duration::from_secs(1);
    let (mut mine, mut base, mut per) = (Vec::new(), Vec::new(), Vec::new());
    // Snapshots commit whenever they are done (between slices too): each slice is billed
    // what committed since the previous slice ended.
    let (mut rows0, mut secs0) = snapshot_totals(srv.port).await;
    while next.load(Ordering::Relaxed) < until {
        let h = drive_slice("healthz", srv, (n, healthz_gen()), None, slice).await;
        let s = drive_slice(
            name,
            srv,
            (n, gen_celebrity(next.clone(), enter)),
            None,
            slice,
        )
        .await;
        let (rows1, secs1) = snapshot_totals(srv.port).await;
        let hs = summarize("healthz", &[&h]);
        let ms = summarize(name, &[&s]);
        per.push(CelebritySlice {
            members: size(next.load(Ordering::Relaxed)),
            p99: ms.p99,
            max: slice_max_ms(&s),
            healthz_p99: hs.p99,
            ratio: ms.rps / hs.rps.max(1.0),
            rows: rows1 - rows0,
            snapshot_ms: (secs1 - secs0) * 1000.0,
        });
        (rows0, secs0) = (rows1, secs1);
        base.push(h);
        mine.push(s);
    }
    eprintln!();
    let mut s = summarize(name, &mine.iter().collect::<Vec<_>>());
    let b = summarize("healthz", &base.iter().collect::<Vec<_>>());
    s.ratio = s.rps / b.rps.max(1.0);
    s.p99_ratio = s.p99 / b.p99.max(0.001);
    println!("\n{name}: room size at the end of each slice, against the healthz slice before it");
    println!(
        "{:>10} {:>9} {:>9} {:>11} {:>9} {:>9} {:>7} {:>9} {:>11} {:>9}",
        "members",
        "p99 ms",
        "max ms",
        "healthz p99",
        "p99 ×",
        "max ×",
        "ratio",
        "rows",
        "snapshot ms",
        "µs/row"
    );
    for c in &per {
        println!(
            "{:>10} {:>9.2} {:>9.2} {:>11.2} {:>9.1} {:>9.1} {:>7.2} {:>9.0} {:>11.1} {:>9.2}",
            c.members,
            c.p99,
            c.max,
            c.healthz_p99,
            c.p99 / c.healthz_p99.max(0.001),
            c.max / c.healthz_p99.max(0.001),
            c.ratio,
            c.rows,
            c.snapshot_ms,
            c.snapshot_ms * 1000.0 / c.rows.max(1.0)
        );
    }
    (s, per)
}

/// p99 of each slice against the room's size (joining, then leaving), with the healthz
/// slice before it and the 4 × target line: the chart the celebrity's targets read off.
fn celebrity_svg(join: &[CelebritySlice], quit: &[CelebritySlice]) -> String {
    let (w, h, left, top, bottom) = (760.0, 420.0, 60.0, 40.0, 50.0);
    let (pw, ph) = (w - left - 20.0, h - top - bottom);
    let max_n = join
        .iter()
        .chain(quit)
        .map(|c| c.members)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_ms = join
        .iter()
        .chain(quit)
        .map(|c| c.p99.max(4.0 * c.healthz_p99))
        .fold(1.0, f64::max)
        .ceil();
    let x = |n: u64| left + n as f64 / max_n * pw;
    let y = |ms: f64| top + ph - ms / max_ms * ph;
    let line = |pts: Vec<(f64, f64)>, color: &str, dash: &str| {
        let d: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
            d.join(" ")
        )
    };
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{left}" y="20" font-size="14">One room, a million viewers: p99 of each 1 s slice against the room's size</text>"#
    );
    for i in 0..=4 {
        let ms = max_ms * i as f64 / 4.0;
        s += &format!(
            r##"<line x1="{left}" x2="{}" y1="{y0:.1}" y2="{y0:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{ms:.1} ms</text>"##,
            left + pw,
            left - 6.0,
            y(ms) + 4.0,
            y0 = y(ms)
        );
        let n = max_n * i as f64 / 4.0;
        s += &format!(
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{:.0}k</text>"#,
            x(n as u64),
            h - bottom + 18.0,
            n / 1000.0
        );
    }
    s += &format!(
        r#"<text x="{:.1}" y="{}" text-anchor="middle">members in the room</text>"#,
        left + pw / 2.0,
        h - 10.0
    );
    let pts = |v: &[CelebritySlice], f: &dyn Fn(&CelebritySlice) -> f64| {
        v.iter()
            .map(|c| (x(c.members), y(f(c))))
            .collect::<Vec<_>>()
    };
    s += &line(pts(join, &|c| c.p99), "#c0392b", "");
    s += &line(pts(quit, &|c| c.p99), "#2874a6", "");
    s += &line(pts(join, &|c| c.healthz_p99), "#999", "4 3");
    s += &line(pts(join, &|c| 4.0 * c.healthz_p99), "#e67e22", "8 4");
    for (i, (label, color)) in [
        ("joining: p99", "#c0392b"),
        ("leaving: p99", "#2874a6"),
        ("healthz slice before: p99", "#999"),
        ("target: 4 × healthz p99", "#e67e22"),
    ]
    .iter()
    .enumerate()
    {
        let yy = top + 14.0 + 16.0 * i as f64;
        s += &format!(
            r#"<rect x="{}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}">{label}</text>"#,
            left + pw - 200.0,
            yy - 4.0,
            left + pw - 180.0,
            yy
        );
    }
    s += "</svg>";
    s
}

/// Snapshot time per row written in the first and the second half of a phase's commits
/// (slices in which something committed): a snapshot that cost the room's size, not what
/// changed, would cost more per row as the room grows.
fn snapshot_cost_growth(per: &[CelebritySlice]) -> (f64, f64) {
    let wrote: Vec<&CelebritySlice> = per.iter().filter(|c| c.rows > 0.0).collect();
    let half = wrote.len() / 2;
    let cost = |s: &[&CelebritySlice]| {
        let rows: f64 = s.iter().map(|c| c.rows).sum();
        s.iter().map(|c| c.snapshot_ms).sum::<f64>() * 1000.0 / rows.max(1.0)
    };
    (cost(&wrote[..half]), cost(&wrote[half..]))
}

/// The neighbours' worst p99 at one storm level: against their idle figure, and against
/// a control slice in which the same connections send `/healthz` instead of joins, at the
/// rate the joins reached (the load alone, with no room, no member and nothing to persist).
struct Level {
    label: String,
    idle: (f64, f64),
    control: (f64, f64),
}

/// The neighbours beside the second storm, at a quarter, half and three quarters of the
/// hot-join capacity and unpaced, each slice followed by its control slice.
async fn neighbours_phase(
    srv: &Server,
    n: usize,
    next: &Arc<AtomicU64>,
    until: u64,
    capacity: f64,
) -> Vec<Level> {
    let slice = Duration::from_secs(1);
    let first = until - next.load(Ordering::Relaxed);
    let (idle_h, idle_l, _) = neighbours_beside(srv, slice, None).await;
    let storm_conns = n.saturating_sub(2 * NEIGHBOURS).max(1);
    println!(
        "\nneighbours during the storm (idle p99: healthz {idle_h:.2} ms, likes {idle_l:.2} ms; \
         control: as many /healthz requests instead of joins)"
    );
    println!(
        "{:>10} {:>12} {:>12} {:>13} {:>11} {:>13} {:>11}",
        "members",
        "storm level",
        "storm req/s",
        "healthz × idle",
        "likes × idle",
        "healthz × ctl",
        "likes × ctl"
    );
    let mut levels = Vec::new();
    let plan = [(0.25, 3), (0.5, 3), (0.75, 3), (1.0, usize::MAX)];
    for (level, slices) in plan {
        let short = if level < 1.0 {
            format!("{:.0} %", level * 100.0)
        } else {
            "unpaced".into()
        };
        let mut worst = Level {
            label: if level < 1.0 {
                format!("{short} of capacity")
            } else {
                short.clone()
            },
            idle: (0.0, 0.0),
            control: (0.0, 0.0),
        };
        for _ in 0..slices {
            if next.load(Ordering::Relaxed) >= until {
                break;
            }
            let storm = Storm {
                conns: storm_conns,
                gen: gen_celebrity(next.clone(), true),
                rate: (level < 1.0).then_some(capacity * level),
            };
            let (h, l, rate) = neighbours_beside(srv, slice, Some(storm)).await;
            // At the rate the joins reached (unpaced: as fast as they were answered).
            let control = Storm {
                conns: storm_conns,
                gen: healthz_gen(),
                rate: Some(rate.max(1.0)),
            };
            let (control_h, control_l, _) = neighbours_beside(srv, slice, Some(control)).await;
            let (rh, rl) = (h / idle_h.max(0.001), l / idle_l.max(0.001));
            let (ch, cl) = (h / control_h.max(0.001), l / control_l.max(0.001));
            worst.idle = (worst.idle.0.max(rh), worst.idle.1.max(rl));
            worst.control = (worst.control.0.max(ch), worst.control.1.max(cl));
            let members = next.load(Ordering::Relaxed) - (until - first);
            println!(
                "{members:>10} {short:>12} {rate:>12.0} {rh:>14.1} {rl:>12.1} {ch:>13.1} {cl:>11.1}"
            );
        }
        levels.push(worst);
    }
    eprintln!();
    levels
}

/// The celebrity's room: `o.celebrity` viewers join one room (distinct viewers, one room
/// growing from 0), then all leave, with healthz slices between; then a second room's
/// storm with the neighbours (healthz, likes on other rooms) measured beside it.
async fn celebrity(o: &Opts, rows: &mut Vec<Stats>, targets: &mut Vec<Target>) {
    let srv = Server::start(Db::Sqlite, async |_: &str| {}).await;
    live_rooms(srv.port, 11).await;
    let n = o.connections;
    let total = o.celebrity as u64;
    let next = Arc::new(AtomicU64::new(0));
    let rss0 = rss_mb(srv.pid());
    let (join, per_join) = celebrity_phase("hot-join", &srv, n, &next, true, total, |k| k).await;
    let joined = next.load(Ordering::Relaxed);
    quiesce(srv.port).await;
    let per_member = (rss_mb(srv.pid()) - rss0) * 1024.0 * 1024.0 / joined.max(1) as f64;
    println!("\none room of {joined} members: {per_member:.0} bytes of RSS a member");
    targets.push(Target {
        name: format!("7. bytes per member, {joined} in one room"),
        value: per_member,
        goal: "≤ 200".into(),
        met: per_member <= 200.0,
    });
    let next = Arc::new(AtomicU64::new(0));
    let (quit, per_quit) = celebrity_phase("hot-quit", &srv, n, &next, false, joined, |k| {
        joined.saturating_sub(k)
    })
    .await;
    if let Some(p) = &o.svg {
        let path = p.with_file_name(format!(
            "{}-p99-by-size.svg",
            p.file_stem().and_then(|s| s.to_str()).unwrap_or("load")
        ));
        std::fs::write(&path, celebrity_svg(&per_join, &per_quit)).unwrap();
    }
    let capacity = join.rps;
    for (label, s, per) in [
        ("4. hot-join", join, per_join),
        ("5. hot-quit", quit, per_quit),
    ] {
        ratio_target(targets, label, &s, 0.65, None);
        let worst_p99 = per
            .iter()
            .map(|c| c.p99 / c.healthz_p99.max(0.001))
            .fold(0.0, f64::max);
        let worst_max = per
            .iter()
            .map(|c| c.max / c.healthz_p99.max(0.001))
            .fold(0.0, f64::max);
        targets.push(Target {
            name: format!("{label} p99, worst slice"),
            value: worst_p99,
            goal: "≤ 4.0 × that slice's healthz p99".into(),
            met: worst_p99 <= 4.0,
        });
        targets.push(Target {
            name: format!("{label} max, worst slice"),
            value: worst_max,
            goal: "≤ 20.0 × that slice's healthz p99".into(),
            met: worst_max <= 20.0,
        });
        let (early, late) = snapshot_cost_growth(&per);
        targets.push(Target {
            name: format!("{label} snapshot µs/row, last third vs first"),
            value: late / early.max(1e-3),
            goal: "≤ 2.0 × (cost follows changes, not size)".into(),
            met: late <= 2.0 * early,
        });
        rows.push(s);
    }
    // The same storm again (the room empty, its viewers new), with the neighbours timed.
    let next = Arc::new(AtomicU64::new(SECOND_STORM));
    let levels = neighbours_phase(&srv, n, &next, SECOND_STORM + total, capacity).await;
    for l in levels {
        for (what, idle, control) in [
            ("healthz", l.idle.0, l.control.0),
            ("likes", l.idle.1, l.control.1),
        ] {
            targets.push(Target {
                name: format!("6. neighbours' {what} p99 vs idle, storm at {}", l.label),
                value: idle,
                goal: "≤ 2.0 × idle p99".into(),
                met: idle <= 2.0,
            });
            targets.push(Target {
                name: format!("6. neighbours' {what} p99 vs control, storm at {}", l.label),
                value: control,
                goal: "≤ 2.0 × beside as many /healthz".into(),
                met: control <= 2.0,
            });
        }
    }
}

/// The second storm's first viewer number: past the first storm's, so all are new.
const SECOND_STORM: u64 = 10_000_000_000;

// ---------------------------------------------------------------- targets and reports

struct Target {
    name: String,
    value: f64,
    goal: String,
    met: bool,
}

fn ratio_target(
    out: &mut Vec<Target>,
    name: &str,
    s: &Stats,
    min_ratio: f64,
    max_p99: Option<f64>,
) {
    out.push(Target {
        name: format!("{name} throughput"),
        value: s.ratio,
        goal: format!("≥ {min_ratio:.2} × healthz"),
        met: s.ratio >= min_ratio,
    });
    if let Some(k) = max_p99 {
        out.push(Target {
            name: format!("{name} p99"),
            value: s.p99_ratio,
            goal: format!("≤ {k:.1} × healthz p99"),
            met: s.p99_ratio <= k,
        });
    }
}

fn print_table(rows: &[Stats]) {
    println!();
    println!(
        "{:<14} {:>10} {:>9} {:>9} {:>9} {:>7} {:>8} {:>7} {:>10} {:>10} {:>10} {:>12}",
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "errors",
        "RSS MB",
        "ratio",
        "server CPU",
        "client CPU",
        "other CPU",
        "server µs/req"
    );
    for s in rows {
        let ratio = if s.ratio > 0.0 {
            format!("{:.2}", s.ratio)
        } else {
            "-".into()
        };
        println!(
            "{:<14} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>8.1} {:>7} {:>9.0}% {:>9.0}% {:>9.0}% {:>12.1}",
            s.name,
            s.rps,
            s.p50,
            s.p99,
            s.p999,
            s.errors,
            s.rss_mb,
            ratio,
            s.server_cpu,
            s.client_cpu,
            s.other_cpu,
            s.server_cpu * 1e4 / s.rps.max(1.0)
        );
    }
}

fn svg(rows: &[Stats]) -> String {
    let w = 80 * rows.len().max(1) + 120;
    let max_rps = rows.iter().map(|r| r.rps).fold(1.0, f64::max);
    let max_p99 = rows.iter().map(|r| r.p99).fold(0.001, f64::max);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="560" font-family="sans-serif" font-size="12">"#
    );
    s += r#"<rect width="100%" height="100%" fill="white"/>"#;
    s += r#"<text x="10" y="20" font-size="14">throughput (requests/s)</text><text x="10" y="300" font-size="14">p99 latency (ms)</text>"#;
    for (i, r) in rows.iter().enumerate() {
        let x = 60 + i * 80;
        let h = (r.rps / max_rps * 220.0) as usize;
        let h2 = (r.p99 / max_p99 * 200.0) as usize;
        s += &format!(
            r##"<rect x="{x}" y="{}" width="50" height="{h}" fill="#4a7fd4"/><text x="{x}" y="{}">{:.0}</text>"##,
            250 - h,
            245 - h,
            r.rps
        );
        s += &format!(
            r##"<rect x="{x}" y="{}" width="50" height="{h2}" fill="#d46a4a"/><text x="{x}" y="{}">{:.2}</text>"##,
            520 - h2,
            515 - h2,
            r.p99
        );
        s += &format!(
            r#"<text x="{x}" y="268">{}</text><text x="{x}" y="540">{}</text>"#,
            r.name, r.name
        );
    }
    s += "</svg>";
    s
}

fn wrk_crosscheck(port: u16, connections: usize, duration: Duration) -> Option<(f64, f64)> {
    if Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return None;
    }
    let script = std::env::temp_dir().join(format!("minilvb_like_{}.lua", std::process::id()));
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = '{\"Action\":\"ChangeCount\",\"userid\":\"r0\",\"type\":1,\"optype\":0,\"flag\":0}'\n",
    )
    .ok()?;
    let run = |path: &str, extra: &[&str]| -> Option<f64> {
        let out = Command::new("wrk")
            .args([
                "-t1",
                &format!("-c{connections}"),
                &format!("-d{}s", duration.as_secs().max(1)),
            ])
            .args(extra)
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines()
            .find(|l| l.starts_with("Requests/sec:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let health = run("/healthz", &[])?;
    let like = run("/", &["-s", script.to_str()?])?;
    let _ = std::fs::remove_file(script);
    Some((health, like))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let o = opts();
    let want = |s: &str| o.only.iter().any(|x| x == s);
    let n = o.connections;
    println!(
        "minilvb load: {} connections, {:?} per scenario, {} cores",
        n,
        o.duration,
        std::thread::available_parallelism()
            .map(|x| x.get())
            .unwrap_or(0)
    );
    let mut rows: Vec<Stats> = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    let main = Server::start(Db::Sqlite, async |url: &str| seed_rooms(url, o.rooms).await).await;
    live_rooms(main.port, 1).await; // r0 via the protocol as well
                                    // Every healthz slice of the main server, pooled into the healthz row.
    let mut health: Vec<Slice> = Vec::new();
    for (name, gen) in [
        ("enter", gen_enter(o.rooms)),
        ("quit", gen_quit(o.rooms)),
        ("like", gen_like(o.rooms)),
    ] {
        if want(name) {
            let (s, h) = paired(name, &main, &o, (n, gen), None).await;
            ratio_target(&mut targets, &format!("1. {name}"), &s, 0.70, Some(5.0));
            rows.push(s);
            health.extend(h);
        }
    }
    if want("hot") {
        let (s, h) = paired("hot-room", &main, &o, (n, gen_like(1)), None).await;
        ratio_target(&mut targets, "2. like storm, one room", &s, 0.50, None);
        rows.push(s);
        health.extend(h);
    }
    if want("mixed") {
        let (s, h) = paired("mixed", &main, &o, (n, gen_mixed(o.rooms, &o.mix)), None).await;
        rows.push(s);
        health.extend(h);
    }
    if want("healthz") && health.is_empty() {
        health.push(drive_slice("healthz", &main, (n, healthz_gen()), None, o.duration).await);
        eprintln!();
    }
    if !health.is_empty() {
        let mut h = summarize("healthz", &health.iter().collect::<Vec<_>>());
        h.ratio = 1.0;
        rows.insert(0, h);
    }
    let cross = wrk_crosscheck(main.port, n, o.duration.min(Duration::from_secs(3)));
    drop(main);

    if want("celebrity") {
        celebrity(&o, &mut rows, &mut targets).await;
    }
    if want("list") {
        eprintln!("  seeding {} live rooms…", o.list_rooms);
        let srv = Server::start(Db::Sqlite, async |url: &str| {
            seed_rooms(url, o.list_rooms).await
        })
        .await;
        let quarter = (n / 4).max(1);
        let (s, _) = paired(
            "list-100k",
            &srv,
            &o,
            (n - quarter, gen_list(o.list_rooms)),
            Some((quarter, gen_like(o.list_rooms))),
        )
        .await;
        ratio_target(
            &mut targets,
            "3. FetchList at 100k rooms under mutations",
            &s,
            0.50,
            None,
        );
        rows.push(s);
    }

    if want("persist") {
        // The servers run side by side and take turns, slice by slice, so drift on the
        // machine weighs on each alike; the pause between slices lets a server finish
        // writing the previous slice's changes before another is measured.
        let mut kinds = vec![(Db::Off, "off"), (Db::Sqlite, "sqlite")];
        if std::env::var_os("MINILVB_TEST_MYSQL_URL").is_some() {
            kinds.push((Db::Mysql, "mariadb"));
        }
        let mut servers = Vec::new();
        for (db, label) in &kinds {
            let srv = Server::start(*db, async |url: &str| seed_rooms(url, o.rooms).await).await;
            servers.push((srv, *label));
        }
        let slice = o.duration.div_f64(o.rounds as f64);
        for (action, gen) in [("enter", gen_enter(o.rooms)), ("like", gen_like(o.rooms))] {
            let mut slices: Vec<Vec<Slice>> = servers.iter().map(|_| Vec::new()).collect();
            for round in 0..o.rounds {
                for k in 0..servers.len() {
                    // Rotate who goes first from round to round.
                    let i = (k + round) % servers.len();
                    let (srv, label) = &servers[i];
                    settle().await;
                    slices[i].push(
                        drive_slice(
                            &format!("{action}/{label}"),
                            srv,
                            (n, gen.clone()),
                            None,
                            slice,
                        )
                        .await,
                    );
                }
            }
            eprintln!();
            let stats: Vec<Stats> = servers
                .iter()
                .zip(&slices)
                .map(|((_, label), sl)| {
                    summarize(&format!("{action}/{label}"), &sl.iter().collect::<Vec<_>>())
                })
                .collect();
            let off = stats[0].rps.max(1.0);
            let per_request = |s: &Stats| s.server_cpu / s.rps.max(1.0);
            let off_cost = per_request(&stats[0]).max(1e-9);
            for mut st in stats {
                if !st.name.ends_with("/off") {
                    st.ratio = st.rps / off;
                    targets.push(Target {
                        name: format!("5. {} vs persistence off", st.name),
                        value: st.ratio,
                        goal: "≥ 0.90".into(),
                        met: st.ratio >= 0.90,
                    });
                    // Not a target, a diagnosis: how much of the gap is the server's own
                    // work for persistence, apart from a co-located database server's CPU.
                    notes.push(format!(
                        "{}: server CPU per request {:.2} × persistence off; rest of the machine {:.0} % of a core",
                        st.name,
                        per_request(&st) / off_cost,
                        st.other_cpu
                    ));
                }
                rows.push(st);
            }
        }
    }

    if want("memory") {
        let rooms = 10_000;
        let srv = Server::start(Db::Sqlite, async |url: &str| seed_rooms(url, rooms).await).await;
        // Activate every room first so the baseline holds the rooms, not the members.
        let members_per_room = o.members.div_ceil(rooms);
        let activate: Gen = Arc::new(move |c, s| {
            let r = (c + s as usize * 128) % 10_000;
            post(&json!({"Action":"GetUserInfo","userid":format!("r{r}"),"type":0}))
        });
        drive("activate", &srv, n, activate, Duration::from_secs(2)).await;
        let before = rss_mb(srv.pid());
        let total = Arc::new(AtomicU64::new(0));
        let target_n = (members_per_room * rooms) as u64;
        let t = total.clone();
        // 12-character userid, 8-character CJK nickname, 80-byte avatar URL.
        let nick = "直播观众一二三四".to_string();
        let pic = format!(
            "https://cdn.example.com/avatars/{}.png",
            "a".repeat(80 - 36)
        );
        assert_eq!(pic.len(), 80);
        let gen: Gen = Arc::new(move |_c, _s| {
            let k = t.fetch_add(1, Ordering::Relaxed);
            if k >= target_n {
                return get("/healthz");
            }
            let room = k % 10_000;
            post(
                &json!({"Action":"EnterGroup","userid":format!("u{:011}", k),"liveuserid":format!("r{room}"),"groupid":format!("g_r{room}"),"flag":0,"nickname":nick,"headpic":pic}),
            )
        });
        let deadline = Duration::from_secs(300);
        let started = Instant::now();
        let mut s = Stats::default();
        while total.load(Ordering::Relaxed) < target_n && started.elapsed() < deadline {
            s = drive("memory", &srv, n, gen.clone(), Duration::from_secs(10)).await;
        }
        quiesce(srv.port).await;
        let after = rss_mb(srv.pid());
        let members = total.load(Ordering::Relaxed).min(target_n);
        let per = (after - before) * 1024.0 * 1024.0 / members.max(1) as f64;
        println!("\nmemory: {members} members over {rooms} rooms: RSS {before:.1} MB → {after:.1} MB, {per:.0} bytes/member");
        s.name = "memory-1M".into();
        s.rss_mb = after;
        rows.push(s);
        targets.push(Target {
            name: format!("4. RSS with {members} members"),
            value: after,
            goal: "≤ 300 MB".into(),
            met: after <= 300.0 && members == target_n,
        });
        targets.push(Target {
            name: "4. bytes per member".into(),
            value: per,
            goal: "≤ 300".into(),
            met: per <= 300.0,
        });
        targets.push(Target {
            name: "7. bytes per member over 10,000 rooms".into(),
            value: per,
            goal: "≤ 200".into(),
            met: per <= 200.0,
        });
    }

    print_table(&rows);
    if let Some((h, l)) = cross {
        println!("\nwrk cross-check (1 thread): healthz {h:.0}/s, like on one room {l:.0}/s, ratio {:.2}", l / h.max(1.0));
    }
    println!("\ntargets:");
    for t in &targets {
        println!(
            "  {:<46} {:>9.2}  {:<22} {}",
            t.name,
            t.value,
            t.goal,
            if t.met { "met" } else { "MISSED" }
        );
    }
    if !notes.is_empty() {
        println!("\nnotes:");
        for n in &notes {
            println!("  {n}");
        }
    }
    if let Some(p) = &o.json {
        let doc = json!({
            "connections": n, "duration_secs": o.duration.as_secs_f64(),
            "rounds": o.rounds,
            "scenarios": rows.iter().map(|s| json!({"name": s.name, "ratio": s.ratio, "requests": s.requests, "secs": s.secs, "rps": s.rps, "p50_ms": s.p50, "p99_ms": s.p99, "p999_ms": s.p999,
                "errors": s.errors, "rss_mb": s.rss_mb, "server_cpu_pct": s.server_cpu, "client_cpu_pct": s.client_cpu, "other_cpu_pct": s.other_cpu})).collect::<Vec<_>>(),
            "targets": targets.iter().map(|t| json!({"name": t.name, "value": t.value, "goal": t.goal, "met": t.met})).collect::<Vec<_>>(),
            "notes": notes,
            "wrk": cross.map(|(h, l)| json!({"healthz": h, "like_one_room": l})),
        });
        std::fs::File::create(p)
            .unwrap()
            .write_all(serde_json::to_string_pretty(&doc).unwrap().as_bytes())
            .unwrap();
    }
    if let Some(p) = &o.svg {
        std::fs::write(p, svg(&rows)).unwrap();
    }
    if o.fail && targets.iter().any(|t| !t.met) {
        eprintln!("some targets were missed");
        std::process::exit(1);
    }
}
