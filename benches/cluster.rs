//! Cluster bench: `cargo bench --bench cluster [-- OPTIONS]`. Needs MINILVB_TEST_MYSQL_URL
//! and MINILVB_TEST_REDIS_URL (says "skipped" without them).
//!
//! Starts release `minilvb` nodes as child processes on 127.0.0.1 (one MariaDB database,
//! one Redis key prefix) and measures, as ratios within this one run:
//! - throughput of 1, 2 and 3 nodes (EnterGroup on random rooms, each request to a random
//!   node, so most are forwarded) against one node's `/healthz`, with the total server CPU
//!   per request across the nodes;
//! - a local against a forwarded EnterGroup: total CPU across both nodes per request
//!   (target: forwarded ≤ 2× local);
//! - FetchList on every node over `--list-rooms` live rooms while likes change rooms on
//!   their owners, against `/healthz` on the same nodes (target: ≥ 0.5);
//! - failover: rooms online on a node that is killed (SIGKILL), until the survivors hold
//!   them all, at `--failover` room counts.
//!
//! Options: --duration SECS (per measurement, default 5), --connections N (default 64),
//! --rooms N (default 1000), --list-rooms N (default 100000), --failover 1000,10000,
//! --no-fail. On two cores the nodes, MariaDB, Redis and the generator share the CPU:
//! more nodes cannot add throughput here; CPU per request says what a node costs.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/http.rs"]
mod http;

use http::{closed_loop, get, post_text, Conn};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    duration: Duration,
    connections: usize,
    rooms: usize,
    list_rooms: usize,
    failover: Vec<usize>,
    fail: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        duration: Duration::from_secs(5),
        connections: 64,
        rooms: 1000,
        list_rooms: 100_000,
        failover: vec![1000, 10_000],
        fail: true,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--duration" => o.duration = Duration::from_secs_f64(v.parse().unwrap()),
            "--connections" => o.connections = v.parse().unwrap(),
            "--rooms" => o.rooms = v.parse().unwrap(),
            "--list-rooms" => o.list_rooms = v.parse().unwrap(),
            "--failover" => o.failover = v.split(',').map(|n| n.parse().unwrap()).collect(),
            "--no-fail" => {
                o.fail = false;
                i += 1;
                continue;
            }
            "--bench" => {
                i += 1;
                continue;
            }
            _ => {}
        }
        i += 2;
    }
    o
}

/// A node: the release binary as a child, killed when dropped.
struct Node {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Node {
    async fn start(db: &common::TestDb, redis: &common::TestRedis) -> Node {
        let log = std::env::temp_dir().join(format!(
            "minilvb_cluster_bench_{}_{}.log",
            std::process::id(),
            rand::random::<u32>()
        ));
        let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/minilvb");
        let child = Command::new(bin)
            .env_remove("MINILVB_TEST_MYSQL_URL")
            .env_remove("MINILVB_TEST_REDIS_URL")
            .env("MINILVB_DATABASE__URL", &db.url)
            .env("MINILVB_LIVE__BIZID", common::BIZID)
            .env("MINILVB_LIVE__PUSH_KEY", common::PUSH_KEY)
            .env("MINILVB_AUTH__MODE", "off")
            .env("MINILVB_LIMITS__MAX_ROOMS", "1000000")
            .env("MINILVB_CLUSTER__REDIS_URL", &redis.url)
            .env("MINILVB_CLUSTER__KEY_PREFIX", &redis.prefix)
            .env("MINILVB_CLUSTER__SECRET", common::CLUSTER_SECRET)
            .env("MINILVB_BIND", "127.0.0.1:0")
            .env("MINILVB_LOG_FORMAT", "json")
            .env("MINILVB_LOG", "warn,minilvb=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the release binary starts (cargo build --release)");
        // Owned (and so killed) before anything can fail.
        let mut node = Node {
            child,
            port: 0,
            log,
        };
        let t = Instant::now();
        loop {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            if let Some(port) = common::listening_port(&text) {
                node.port = port;
                return node;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "node did not start:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn ticks(&self) -> u64 {
        common::proc_cpu_ticks(&self.child.id().to_string())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        // The log stays behind (in the temp dir) for a post-mortem.
    }
}

/// Builds the request a connection sends next: (connection, sequence number).
type Gen = Arc<dyn Fn(usize, u64) -> Vec<u8> + Send + Sync>;

struct Run {
    rps: f64,
    p99_ms: f64,
    errors: u64,
    /// Server CPU (all nodes given) per request, µs.
    cpu_us: f64,
}

/// Closed loop: `connections` keep-alive connections, connection `c` to `ports[c % n]`.
async fn drive(ports: &[u16], nodes: &[&Node], connections: usize, gen: Gen, d: Duration) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let cpu0: u64 = nodes.iter().map(|n| n.ticks()).sum();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (stop, done, gen) = (stop.clone(), done.clone(), gen.clone());
        let port = ports[c % ports.len()];
        tasks.push(tokio::spawn(async move {
            closed_loop(port, |seq| gen(c, seq), &stop, Some(&*done))
                .await
                .unwrap_or((Vec::new(), 1))
        }));
    }
    tokio::time::sleep(d).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1: u64 = nodes.iter().map(|n| n.ticks()).sum();
    lat.sort_unstable();
    let n = lat.len().max(1);
    let ticks_per_sec = 100.0;
    Run {
        rps: lat.len() as f64 / secs,
        p99_ms: lat.get(n * 99 / 100).copied().unwrap_or(0) as f64 / 1000.0,
        errors,
        cpu_us: (cpu1 - cpu0) as f64 / ticks_per_sec * 1e6 / n as f64,
    }
}

fn healthz() -> Gen {
    let req = get("/healthz");
    Arc::new(move |_, _| req.clone())
}

/// EnterGroup of a distinct viewer into one of `vjs`.
fn enter(vjs: Arc<Vec<String>>) -> Gen {
    Arc::new(move |c, seq| {
        let vj = &vjs[(c * 7919 + seq as usize * 104_729) % vjs.len()];
        post_text(&format!(
            r#"{{"Action":"EnterGroup","userid":"u{c}_{seq}","liveuserid":"{vj}","groupid":"g_{vj}","flag":0,"nickname":"n"}}"#
        ))
    })
}

async fn call_ok(port: u16, body: String) {
    let mut conn = Conn::open(port).await.unwrap();
    let answer = conn.get_body(&post_text(&body)).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("\"returnValue\":0,"), "{body} -> {text}");
}

/// Makes `vjs` live, each through `ports[i % n]` (which then owns it), 32 at a time.
async fn go_live(ports: &[u16], vjs: &[String]) {
    let next = Arc::new(AtomicU64::new(0));
    let vjs = Arc::new(vjs.to_vec());
    let ports = Arc::new(ports.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (next, vjs, ports) = (next.clone(), vjs.clone(), ports.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(vj) = vjs.get(i) else { return };
                let port = ports[i % ports.len()];
                call_ok(port, format!(r#"{{"Action":"RequestLVBAddr","userid":"{vj}","groupid":"g_{vj}","title":"t"}}"#)).await;
                call_ok(port, format!(r#"{{"Action":"ChangeStatus","userid":"{vj}","status":0}}"#)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn metric(port: u16, name: &str) -> u64 {
    let mut conn = Conn::open(port).await.unwrap();
    let body = conn.get_body(&get("/metrics")).await.unwrap();
    common::metric_in(&String::from_utf8_lossy(&body), name).unwrap_or(0)
}

fn vjs(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}{i}")).collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let o = opts();
    let (Some(db), Some(redis)) = (
        common::TestDb::new(common::Backend::Mysql).await,
        common::TestRedis::new(),
    ) else {
        eprintln!("skipped: set MINILVB_TEST_MYSQL_URL and MINILVB_TEST_REDIS_URL");
        return;
    };
    let d = o.duration;
    let c = o.connections;
    let mut misses = Vec::new();
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // One node: the baseline.
    let n1 = Node::start(&db, &redis).await;
    let base = drive(&[n1.port], &[&n1], c, healthz(), d).await;
    println!(
        "1 node  /healthz        {:>9.0}/s  p99 {:>6.2} ms  {:>6.1} µs CPU/request",
        base.rps, base.p99_ms, base.cpu_us
    );
    let r1 = Arc::new(vjs("one", o.rooms));
    go_live(&[n1.port], &r1).await;
    let e1 = drive(&[n1.port], &[&n1], c, enter(r1.clone()), d).await;
    println!(
        "1 node  EnterGroup      {:>9.0}/s  p99 {:>6.2} ms  {:>6.1} µs CPU/request  ratio {:.2}  errors {}",
        e1.rps, e1.p99_ms, e1.cpu_us, e1.rps / base.rps, e1.errors
    );

    // Two and three nodes: rooms spread over the owners, requests to random nodes.
    let n2 = Node::start(&db, &redis).await;
    let r2 = Arc::new(vjs("two", o.rooms));
    go_live(&[n1.port, n2.port], &r2).await;
    let e2 = drive(&[n1.port, n2.port], &[&n1, &n2], c, enter(r2.clone()), d).await;
    println!(
        "2 nodes EnterGroup      {:>9.0}/s  p99 {:>6.2} ms  {:>6.1} µs CPU/request  ratio {:.2}  errors {}",
        e2.rps, e2.p99_ms, e2.cpu_us, e2.rps / base.rps, e2.errors
    );

    // Local against forwarded: rooms owned by node 1, sent to node 1 or to node 2.
    let owned = Arc::new(vjs("own", o.rooms));
    go_live(&[n1.port], &owned).await;
    let local = drive(&[n1.port], &[&n1, &n2], c, enter(owned.clone()), d).await;
    let fwd = drive(&[n2.port], &[&n1, &n2], c, enter(owned.clone()), d).await;
    let cost = fwd.cpu_us / local.cpu_us.max(1e-9);
    println!(
        "local     EnterGroup    {:>9.0}/s  p99 {:>6.2} ms  {:>6.1} µs CPU/request (both nodes)",
        local.rps, local.p99_ms, local.cpu_us
    );
    println!(
        "forwarded EnterGroup    {:>9.0}/s  p99 {:>6.2} ms  {:>6.1} µs CPU/request (both nodes)  cost {cost:.2}× local (target ≤ 2)",
        fwd.rps, fwd.p99_ms, fwd.cpu_us
    );
    if cost > 2.0 {
        misses.push(format!("forwarded cost {cost:.2}× local"));
    }

    let n3 = Node::start(&db, &redis).await;
    let ports = [n1.port, n2.port, n3.port];
    let all = [&n1, &n2, &n3];
    let r3 = Arc::new(vjs("three", o.rooms));
    go_live(&ports, &r3).await;
    let e3 = drive(&ports, &all, c, enter(r3.clone()), d).await;
    println!(
        "3 nodes EnterGroup      {:>9.0}/s  p99 {:>6.2} ms  {:>6.1} µs CPU/request  ratio {:.2}  errors {}",
        e3.rps, e3.p99_ms, e3.cpu_us, e3.rps / base.rps, e3.errors
    );

    // FetchList over many rooms on every node, while likes change rooms on their owners.
    let list_vjs = vjs("l", o.list_rooms);
    let t = Instant::now();
    go_live(&ports, &list_vjs).await;
    println!(
        "{} rooms live in {:.1} s",
        o.list_rooms,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    loop {
        let mut conn = Conn::open(n3.port).await.unwrap();
        let body = conn
            .get_body(&post_text(
                r#"{"Action":"FetchList","flag":1,"index":0,"count":1}"#,
            ))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        let want = format!("\"totalcount\":{}", o.list_rooms + 4 * o.rooms);
        if text.contains(&want) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "lists never agreed: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hz = drive(&ports, &all, c, healthz(), d).await;
    let likes_vjs = Arc::new(list_vjs);
    let list_gen: Gen = {
        let vjs = likes_vjs.clone();
        Arc::new(move |c, seq| {
            // One connection in eight likes (rooms change on their owners); the rest page.
            if c % 8 == 0 {
                let vj = &vjs[(c * 31 + seq as usize * 7) % vjs.len()];
                post_text(&format!(
                    r#"{{"Action":"ChangeCount","userid":"{vj}","type":1,"optype":0,"flag":0}}"#
                ))
            } else {
                let index = (seq as usize * 20) % 2000;
                post_text(&format!(
                    r#"{{"Action":"FetchList","flag":1,"index":{index},"count":20}}"#
                ))
            }
        })
    };
    let lst = drive(&ports, &all, c, list_gen, d).await;
    let list_ratio = lst.rps / hz.rps;
    println!(
        "3 nodes FetchList+likes {:>9.0}/s  p99 {:>6.2} ms  ratio {list_ratio:.2} of /healthz on the same nodes ({:.0}/s) (target ≥ 0.5)",
        lst.rps, lst.p99_ms, hz.rps
    );
    if list_ratio < 0.5 {
        misses.push(format!("FetchList ratio {list_ratio:.2}"));
    }
    drop((n1, n2, n3));

    // Failover: rooms online on one node; it is killed; the survivors take them over.
    for &n in &o.failover {
        let fresh = common::TestRedis::new().unwrap();
        let mut victim = Node::start(&db, &fresh).await;
        let a = Node::start(&db, &fresh).await;
        let b = Node::start(&db, &fresh).await;
        let rooms = vjs(&format!("f{n}_"), n);
        go_live(&[victim.port], &rooms).await;
        // Written (snapshot interval 1 s by default).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        victim.kill();
        let t = Instant::now();
        let mut marks = Vec::new();
        loop {
            let held = metric(a.port, "minilvb_active_rooms").await
                + metric(b.port, "minilvb_active_rooms").await;
            for q in [0.5, 0.9, 0.99, 1.0] {
                if held as f64 >= q * n as f64 && marks.iter().all(|(m, _)| *m != q) {
                    marks.push((q, t.elapsed()));
                }
            }
            if held as usize >= n || t.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let show: Vec<String> = marks
            .iter()
            .map(|(q, d)| format!("{:.0}% at {:.2} s", q * 100.0, d.as_secs_f64()))
            .collect();
        println!(
            "failover of {n} online rooms after SIGKILL: {}",
            show.join(", ")
        );
        if marks.iter().all(|(q, _)| *q != 1.0) {
            misses.push(format!("failover of {n} rooms incomplete after 60 s"));
        }
    }
    db.drop_db().await;
    if !misses.is_empty() {
        eprintln!("missed: {}", misses.join("; "));
        if o.fail {
            std::process::exit(1);
        }
    }
}
