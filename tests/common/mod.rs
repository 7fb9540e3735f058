//! Test harness: every test gets a real server on port 0, built by the same factory as
//! `main`, over its own fresh database (SQLite always; MariaDB when MINILVB_TEST_MYSQL_URL
//! is set), and a real HTTP client.
#![allow(dead_code)]

use actix_web::dev::ServerHandle;
use minilvb::config::{AuthMode, Secret};
use minilvb::{AppState, Application, Config};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

pub const PUSH_KEY: &str = "e12c46f2612d5106e2034781ab261ca3";
pub const API_KEY: &str = "test-api-key-0123456789";
pub const BIZID: &str = "2519";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mariadb",
        }
    }
}

/// A database that exists for one test only.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    name: String,
    admin_url: Option<String>,
    dir: Option<PathBuf>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000
    )
}

impl TestDb {
    /// `None` when the backend is not available here (MariaDB without the variable).
    pub async fn new(backend: Backend) -> Option<TestDb> {
        let name = format!("minilvb_t_{}", unique());
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir).unwrap();
                let url = format!("sqlite://{}/test.db?mode=rwc", dir.display());
                Some(TestDb {
                    backend,
                    url,
                    name,
                    admin_url: None,
                    dir: Some(dir),
                })
            }
            Backend::Mysql => {
                let admin = std::env::var("MINILVB_TEST_MYSQL_URL").ok()?;
                let admin = admin.trim_end_matches('/').to_string();
                sqlx::any::install_default_drivers();
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .unwrap();
                sqlx::query(&format!(
                    "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                ))
                .execute(&mut conn)
                .await
                .unwrap();
                let url = format!("{admin}/{name}");
                Some(TestDb {
                    backend,
                    url,
                    name,
                    admin_url: Some(admin),
                    dir: None,
                })
            }
        }
    }

    pub async fn drop_db(&self) {
        // Keep the database for a post-mortem when asked.
        if std::env::var_os("MINILVB_TEST_KEEP_DB").is_some() {
            eprintln!("kept database {}", self.url);
            return;
        }
        if let Some(admin) = &self.admin_url {
            if let Ok(mut conn) = <sqlx::AnyConnection as sqlx::Connection>::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {}", self.name))
                    .execute(&mut conn)
                    .await;
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub fn test_config(db: &TestDb) -> Config {
    let mut c = Config::default();
    c.server.bind = "127.0.0.1:0".into();
    c.server.workers = 2;
    c.server.shutdown_timeout_secs = 5;
    c.database.url = Secret::new(db.url.clone());
    c.database.snapshot_interval_ms = 100;
    c.database.max_connections = 4;
    c.list.index_tick_ms = 10;
    c.live.bizid = BIZID.into();
    c.live.push_key = Secret::new(PUSH_KEY);
    c.live.api_key = Secret::new(API_KEY);
    c.cos.appid = "1252033264".into();
    c.cos.bucket = "bucket".into();
    c.cos.secret_id = "AKIDtest".into();
    c.cos.secret_key = Secret::new("cos-secret-key");
    c.im.sdkappid = 1400000000;
    c.im.secret_key =
        Secret::new("5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e");
    c.auth.mode = AuthMode::Off;
    c
}

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub state: actix_web::web::Data<AppState>,
    /// Open client connections and their bounds.
    pub connections: std::sync::Arc<minilvb::http::connections::Connections>,
    handle: ServerHandle,
    /// `None` for a cluster's front (its nodes have theirs).
    join: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// In a suite run as a cluster: its nodes (the fields above are the first node's).
    /// Each request goes to a node picked at random, so most calls land on a node that
    /// does not own the room.
    others: Vec<TestApp>,
    pick: AtomicU64,
}

thread_local! {
    /// Set while a `suite_test!` runs as a cluster: the Redis URL and key prefix its nodes
    /// share. Tests run on one thread each (actix_rt), so this is per test.
    static CLUSTER_MODE: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// Nodes `spawn_app` starts in a suite run as a cluster.
pub const SUITE_NODES: usize = 3;

/// Whether this test runs its suite against a cluster.
pub fn in_cluster() -> bool {
    CLUSTER_MODE.with(|m| m.borrow().is_some())
}

/// Runs `f` with every `spawn_app` starting a three-node cluster on `redis`.
pub async fn as_cluster<F: std::future::Future>(redis: &TestRedis, f: F) -> F::Output {
    CLUSTER_MODE.with(|m| *m.borrow_mut() = Some((redis.url.clone(), redis.prefix.clone())));
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CLUSTER_MODE.with(|m| *m.borrow_mut() = None);
        }
    }
    let _reset = Reset;
    f.await
}

/// One server, or in a suite run as a cluster, `SUITE_NODES` nodes of one cluster.
pub async fn spawn_app(config: Config) -> TestApp {
    let Some((url, prefix)) = CLUSTER_MODE.with(|m| m.borrow().clone()) else {
        return spawn_node(config).await;
    };
    let mut config = config;
    config.cluster.redis_url = Secret::new(url);
    config.cluster.key_prefix = prefix;
    config.cluster.secret = Secret::new(CLUSTER_SECRET);
    config.cluster.lease_ms = 1000;
    let mut nodes = Vec::new();
    for _ in 0..SUITE_NODES {
        nodes.push(spawn_node(config.clone()).await);
    }
    let seed = std::env::var("CLUSTER_SUITE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u64>() | 1);
    eprintln!("cluster of {SUITE_NODES} nodes, request order seed {seed} (CLUSTER_SUITE_SEED)");
    let n0 = &nodes[0];
    TestApp {
        base: n0.base.clone(),
        port: n0.port,
        client: n0.client.clone(),
        state: n0.state.clone(),
        connections: n0.connections.clone(),
        handle: n0.handle.clone(),
        join: None,
        others: nodes,
        pick: AtomicU64::new(seed),
    }
}

async fn spawn_node(config: Config) -> TestApp {
    let app = Application::build(config).await.expect("app builds");
    let port = app.port();
    let handle = app.handle();
    let state = app.state();
    let connections = app.connections();
    let join = actix_rt::spawn(app.run_until_stopped());
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap(),
        state,
        connections,
        handle,
        join: Some(join),
        others: Vec::new(),
        pick: AtomicU64::new(0),
    }
}

impl TestApp {
    /// The node the next request goes to: this one, or in a cluster any node at random.
    pub fn node(&self) -> &TestApp {
        if self.others.is_empty() {
            return self;
        }
        // xorshift64: cheap, and a failing order can be replayed from the printed seed.
        let step = |mut x: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let prev = self
            .pick
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .unwrap();
        let x = step(prev);
        &self.others[(x % self.others.len() as u64) as usize]
    }

    /// Every node: this one, or each node of its cluster (each requests only itself).
    pub fn nodes(&self) -> std::slice::Iter<'_, TestApp> {
        match self.others.is_empty() {
            true => std::slice::from_ref(self).iter(),
            false => self.others.iter(),
        }
    }

    /// Open WebSockets, over every node.
    pub fn ws_connections(&self) -> u64 {
        self.nodes()
            .map(|n| {
                n.state
                    .health
                    .ws_connections
                    .load(std::sync::atomic::Ordering::Relaxed) as u64
            })
            .sum()
    }

    /// Room actors running, over every node.
    pub fn rooms_active(&self) -> usize {
        self.nodes().map(|n| n.state.rooms.active()).sum()
    }

    /// `path` on the node the next request goes to.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.node().base)
    }

    /// A WebSocket URL of `path` on the node the next request goes to.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.node().port)
    }

    /// POSTs a body to /interface.php; asserts HTTP 200 and JSON; returns the envelope.
    pub async fn call(&self, body: Value) -> Value {
        let resp = self
            .client
            .post(self.url("/interface.php"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "body {body}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let v: Value = resp.json().await.unwrap();
        assert!(v["returnValue"].is_i64(), "{v}");
        assert!(v["returnMsg"].is_string(), "{v}");
        assert!(v["returnData"].is_object(), "{v}");
        v
    }

    /// Asserts success and returns `returnData`.
    pub async fn ok(&self, body: Value) -> Value {
        let v = self.call(body.clone()).await;
        assert_eq!(v["returnValue"], 0, "request {body} answered {v}");
        assert_eq!(v["returnMsg"], "return successfully!");
        v["returnData"].clone()
    }

    /// Asserts failure with `code`; returns the message.
    pub async fn err(&self, body: Value, code: i64) -> String {
        let v = self.call(body.clone()).await;
        assert_eq!(v["returnValue"], code, "request {body} answered {v}");
        assert_eq!(v["returnData"], json!({}), "{v}");
        v["returnMsg"].as_str().unwrap().to_string()
    }

    pub async fn raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url("/interface.php"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Starts a broadcast for `userid` (group `g_{userid}`) and returns the push URL.
    pub async fn broadcast(&self, userid: &str) -> String {
        let d = self
            .ok(json!({"Action":"RequestLVBAddr","userid":userid,"groupid":format!("g_{userid}"),
                "title":format!("title of {userid}"),"userinfo":{"nickname":format!("nick {userid}")}}))
            .await;
        d["pushurl"].as_str().unwrap().to_string()
    }

    pub async fn go_live(&self, userid: &str) {
        self.broadcast(userid).await;
        self.ok(json!({"Action":"ChangeStatus","userid":userid,"status":0}))
            .await;
    }

    pub async fn enter(&self, viewer: &str, vj: &str) {
        self.ok(json!({"Action":"EnterGroup","userid":viewer,"liveuserid":vj,"groupid":format!("g_{vj}"),"flag":0,"nickname":viewer}))
            .await;
    }

    pub async fn info(&self, vj: &str) -> Value {
        self.ok(json!({"Action":"GetUserInfo","userid":vj,"type":0}))
            .await
    }

    /// The `/metrics` text; in a cluster, each series summed over the nodes, so counters
    /// read as the cluster's totals.
    pub async fn metrics(&self) -> String {
        let mut texts = Vec::new();
        for n in self.nodes() {
            let resp = n
                .client
                .get(format!("{}/metrics", n.base))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            texts.push(resp.text().await.unwrap());
        }
        if texts.len() == 1 {
            return texts.pop().unwrap();
        }
        sum_metrics(&texts)
    }

    /// One unlabelled figure of `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        metric_in(&self.metrics().await, name).unwrap_or_else(|| panic!("no {name} in /metrics"))
    }

    /// `GET /readyz`: status and body.
    pub async fn readyz(&self) -> (u16, Value) {
        let r = self.client.get(self.url("/readyz")).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// The userids of a room's group (first 100), sorted.
    pub async fn member_ids(&self, vj: &str, groupid: &str) -> Vec<String> {
        let d = self
            .ok(json!({"Action":"FetchGroupMemberList","liveuserid":vj,"groupid":groupid,"pagesize":100}))
            .await;
        member_userids(&d)
    }

    /// Waits until the list index reflects recent changes (one index tick and a margin);
    /// in a cluster, also until every node's list has caught up with the others'.
    pub async fn settle(&self) {
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        if self.others.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        loop {
            let mut views = Vec::new();
            for n in self.nodes() {
                views.push(n.list_view().await);
            }
            if views.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "the nodes' lists never agreed: {views:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// This node's whole FetchList (live rooms then recordings), for comparing nodes.
    async fn list_view(&self) -> Vec<Value> {
        let mut all = Vec::new();
        for pageno in 1.. {
            let resp = self
                .client
                .post(format!("{}/interface.php", self.base))
                .json(&json!({"Action":"FetchList","flag":3,"pageno":pageno,"pagesize":100}))
                .send()
                .await
                .unwrap();
            let v: Value = resp.json().await.unwrap();
            let page = v["returnData"]["pusherlist"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if page.is_empty() {
                all.push(v["returnData"]["totalcount"].clone());
                return all;
            }
            all.extend(page);
        }
        unreachable!()
    }

    /// Graceful stop: drains, flushes everything, and returns once the server is gone
    /// (in a cluster, every node, one after the other, each handing its rooms on).
    pub async fn stop(self) {
        if !self.others.is_empty() {
            let text = self.metrics().await;
            let forwarded: u64 = text
                .lines()
                .filter(|l| l.starts_with("minilvb_forwarded_calls_total"))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
                .sum();
            eprintln!("cluster: {forwarded} room calls were forwarded to their owners");
        }
        for n in self.others {
            Box::pin(n.stop()).await;
        }
        if let Some(join) = self.join {
            self.handle.stop(true).await;
            join.await.unwrap().expect("graceful stop flushes");
        }
    }
}

/// Several nodes' `/metrics` texts as one: each series' values added up, in the first
/// text's order (comments kept from the first).
pub fn sum_metrics(texts: &[String]) -> String {
    let mut order: Vec<String> = Vec::new();
    let mut sums: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for t in texts {
        for line in t.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            if !sums.contains_key(series) {
                order.push(series.to_string());
            }
            *sums.entry(series.to_string()).or_default() += v;
        }
    }
    let mut out = String::new();
    for series in order {
        let v = sums[&series];
        if v.fract() == 0.0 && v.abs() < 1e15 {
            out.push_str(&format!("{series} {}\n", v as i64));
        } else {
            out.push_str(&format!("{series} {v}\n"));
        }
    }
    out
}

/// One unlabelled figure of a `/metrics` text.
pub fn metric_in(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
}

/// The userids of a FetchGroupMemberList answer's `returnData`, sorted.
pub fn member_userids(d: &Value) -> Vec<String> {
    let mut v: Vec<String> = d["memberlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userid"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (SIGKILL) when dropped, so nothing outlives a failing test.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The database and Redis key space of a cluster test; `None` (having said "skipped")
/// when MariaDB or Redis is not configured.
pub async fn cluster_parts() -> Option<(TestDb, TestRedis)> {
    let Some(redis) = TestRedis::new() else {
        eprintln!("skipped: MINILVB_TEST_REDIS_URL is not set");
        return None;
    };
    let Some(db) = TestDb::new(Backend::Mysql).await else {
        eprintln!("skipped: MINILVB_TEST_MYSQL_URL is not set");
        return None;
    };
    Some((db, redis))
}

/// Declares one test per backend: `name::sqlite` and `name::mysql` (the latter passes
/// trivially, saying so, when MariaDB is not configured).
#[macro_export]
macro_rules! db_test {
    ($name:ident, |$db:ident| $body:block) => {
        $crate::db_test!(@mod $name, |$db| $body, {});
    };
    (@mod $name:ident, |$db:ident| $body:block, { $($extra:tt)* }) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($db: &$crate::common::TestDb) $body

            async fn with(backend: $crate::common::Backend) {
                let Some(db) = $crate::common::TestDb::new(backend).await else {
                    eprintln!("skipped: MINILVB_TEST_MYSQL_URL is not set");
                    return;
                };
                $crate::common::with_db(&db, run(&db)).await;
            }

            #[actix_rt::test]
            async fn sqlite() {
                with($crate::common::Backend::Sqlite).await
            }

            #[actix_rt::test]
            async fn mysql() {
                with($crate::common::Backend::Mysql).await
            }

            $($extra)*
        }
    };
}

/// Like `db_test!`, plus `name::cluster`: the same body against a cluster of
/// `SUITE_NODES` nodes on MariaDB and Redis, each request to a node picked at random, so
/// most calls are for rooms another node owns (says "skipped" without MariaDB and Redis).
#[macro_export]
macro_rules! suite_test {
    ($name:ident, |$db:ident| $body:block) => {
        $crate::db_test!(@mod $name, |$db| $body, {
            #[actix_rt::test]
            async fn cluster() {
                let Some((db, redis)) = $crate::common::cluster_parts().await else {
                    return;
                };
                $crate::common::as_cluster(&redis, $crate::common::with_db(&db, run(&db))).await;
            }
        });
    };
}

/// Runs a test body, then drops its database whether or not the body panicked.
pub async fn with_db<F: std::future::Future<Output = ()>>(db: &TestDb, body: F) {
    use futures_util::FutureExt;
    let r = std::panic::AssertUnwindSafe(body).catch_unwind().await;
    db.drop_db().await;
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

/// The real `minilvb` binary as a child process, on a port it chose itself (port 0, read
/// back from its JSON log), logging to a file that stays behind as a test artefact.
/// Killed (SIGKILL) when dropped, so nothing outlives a failing test.
pub struct ChildServer {
    child: std::process::Child,
    pub port: u16,
    pub base: String,
    pub log: PathBuf,
}

impl ChildServer {
    pub async fn start(envs: &[(&str, String)]) -> ChildServer {
        Self::start_in(None, envs).await
    }

    /// Started in `dir` (its working directory: the embedded database and its secrets
    /// file land there by default).
    pub async fn start_in(dir: Option<&std::path::Path>, envs: &[(&str, String)]) -> ChildServer {
        let log = std::env::temp_dir().join(format!("minilvb_child_{}.log", unique()));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_minilvb"));
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        cmd.env_remove("MINILVB_TEST_MYSQL_URL")
            .env("MINILVB_BIND", "127.0.0.1:0")
            .env("MINILVB_LOG_FORMAT", "json")
            .env("MINILVB_LOG", "info")
            .env("NO_COLOR", "1");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the minilvb binary starts");
        let mut server = ChildServer {
            child,
            port: 0,
            base: String::new(),
            log,
        };
        let started = std::time::Instant::now();
        loop {
            if let Some(port) = server.listening_port() {
                server.port = port;
                server.base = format!("http://127.0.0.1:{port}");
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "minilvb exited ({status}) before listening; log:\n{}",
                    server.log_text()
                );
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "minilvb never listened"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    fn listening_port(&self) -> Option<u16> {
        listening_port(&self.log_text())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and waits for the graceful shutdown (which flushes every dirty room).
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "minilvb did not stop on SIGTERM"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown hook runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The port a `minilvb` child reported in its JSON log ("minilvb listening").
pub fn listening_port(log: &str) -> Option<u16> {
    log.lines().find_map(|line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["fields"]["message"] == "minilvb listening")
            .then(|| v["fields"]["port"].as_u64())?
            .map(|p| p as u16)
    })
}

/// User + system CPU time of a process so far, in clock ticks (`pid` may be "self");
/// zero if unreadable.
pub fn proc_cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // utime and stime are the 12th and 13th fields after the parenthesised command name.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// Resident memory of a process in bytes (`VmRSS`), if readable.
pub fn proc_rss_bytes(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Redis for cluster tests (MINILVB_TEST_REDIS_URL), under a key prefix of the test's own;
/// its keys are deleted when dropped.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    /// `None` when MINILVB_TEST_REDIS_URL is not set.
    pub fn new() -> Option<TestRedis> {
        let url = std::env::var("MINILVB_TEST_REDIS_URL").ok()?;
        Some(TestRedis {
            url,
            prefix: format!("minilvb_t_{}:", unique()),
        })
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // Synchronous: a drop may run outside any runtime.
        if let Ok(mut c) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection()) {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.prefix))
                .query(&mut c)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut c);
            }
        }
    }
}

pub const CLUSTER_SECRET: &str = "cluster-secret-for-tests-0123456789";

/// A node of a cluster on `db` (MariaDB) and `redis`.
pub fn cluster_config(db: &TestDb, redis: &TestRedis) -> Config {
    let mut c = test_config(db);
    c.cluster.redis_url = Secret::new(redis.url.clone());
    c.cluster.key_prefix = redis.prefix.clone();
    c.cluster.secret = Secret::new(CLUSTER_SECRET);
    c.cluster.lease_ms = 1000;
    c
}

/// A loopback TCP proxy that can drop every connection and refuse new ones.
pub struct Proxy {
    pub port: u16,
    cut: Rc<RefCell<bool>>,
    conns: Rc<RefCell<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Rc::new(RefCell::new(false));
        let conns: Rc<RefCell<Vec<tokio::task::JoinHandle<()>>>> = Rc::default();
        let (c2, k2) = (cut.clone(), conns.clone());
        let accept = actix_rt::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    break;
                };
                if *c2.borrow() {
                    drop(down);
                    continue;
                }
                let up = upstream.clone();
                k2.borrow_mut().push(actix_rt::spawn(async move {
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(up).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut upstream).await;
                    }
                }));
            }
        });
        Proxy {
            port,
            cut,
            conns,
            accept,
        }
    }

    pub fn cut(&self) {
        *self.cut.borrow_mut() = true;
        for c in self.conns.borrow_mut().drain(..) {
            c.abort();
        }
    }

    pub fn restore(&self) {
        *self.cut.borrow_mut() = false;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The real apps' play-URL rules, as their sources apply them before playing.
pub mod apps {
    use serde_json::Value;

    fn http(u: &str) -> bool {
        u.starts_with("http://") || u.starts_with("https://")
    }

    /// A live room (type 0): every app plays `playurl`, `rtmp://` or http(s) with `.flv`
    /// (the iOS app first turns `http:` into `https:`).
    pub fn live_playable(item: &Value) -> bool {
        let u = item["playurl"].as_str().unwrap_or("");
        u.starts_with("rtmp://") || (http(u) && u.contains(".flv"))
    }

    /// A recording (type 1), by all three apps' rules: the Android 3.7 and iOS apps play
    /// `hls_play_url` if it is http(s) with `.flv`, `.m3u8` or `.mp4`; the 2017 Android app
    /// plays `playurl`, `rtmp://` or http(s) with `.flv`. Returns the apps that refuse it.
    pub fn recording_refused_by(item: &Value) -> Vec<&'static str> {
        let hls = item["hls_play_url"].as_str().unwrap_or("");
        let play = item["playurl"].as_str().unwrap_or("");
        let vod = http(hls) && [".flv", ".m3u8", ".mp4"].iter().any(|e| hls.contains(e));
        let old = play.starts_with("rtmp://") || (http(play) && play.contains(".flv"));
        let mut refused = Vec::new();
        if !vod {
            refused.extend(["android 3.7", "ios"]);
        }
        if !old {
            refused.push("android 2017");
        }
        refused
    }
}
