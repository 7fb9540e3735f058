//! Redis under Sentinel: a primary, a replica and three Sentinels, all local `redis-server`
//! processes this test starts. Killing the primary under load: the nodes follow the
//! failover to the new primary without a restart, and nothing acknowledged is lost.
//! (Needs MINILVB_TEST_MYSQL_URL and a `redis-server` binary; says "skipped" without.)

mod common;

use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn redis_server(args: &[String]) -> Reaped {
    Reaped(
        Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts"),
    )
}

fn ping(port: u16) -> bool {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(
            t.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sentinel_query<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_connection_with_timeout(Duration::from_millis(500))?;
    let mut cmd = redis::cmd("SENTINEL");
    for a in args {
        cmd.arg(*a);
    }
    cmd.query(&mut c)
}

#[actix_rt::test]
async fn nodes_follow_a_sentinel_failover_without_a_restart() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no redis-server binary");
        return;
    }
    let Some(db) = TestDb::new(Backend::Mysql).await else {
        eprintln!("skipped: MINILVB_TEST_MYSQL_URL is not set");
        return;
    };
    let dir: PathBuf = std::env::temp_dir().join(format!("minilvb_sentinel_{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = |port: u16| {
        vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--dbfilename".into(),
            format!("dump-{port}.rdb"),
        ]
    };
    let (p_port, r_port) = (free_port(), free_port());
    let primary = redis_server(&base(p_port));
    wait_for("the primary", Duration::from_secs(10), || ping(p_port));
    let mut replica_args = base(r_port);
    replica_args.extend(["--replicaof".into(), "127.0.0.1".into(), p_port.to_string()]);
    let _replica = redis_server(&replica_args);
    wait_for("the replica", Duration::from_secs(10), || ping(r_port));
    let mut sentinels = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let conf = dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor m 127.0.0.1 {p_port} 2\n\
                 sentinel down-after-milliseconds m 1000\n\
                 sentinel failover-timeout m 5000\n\
                 sentinel parallel-syncs m 1\n",
                dir.display()
            ),
        )
        .unwrap();
        sentinels.push(redis_server(&[
            conf.display().to_string(),
            "--sentinel".into(),
        ]));
        addrs.push(port);
    }
    // The Sentinels must know the replica (and each other) before a failover can happen.
    wait_for(
        "sentinels to see the replica",
        Duration::from_secs(20),
        || {
            addrs.iter().all(|p| {
                sentinel_query::<Vec<redis::Value>>(*p, &["replicas", "m"])
                    .is_ok_and(|r| !r.is_empty())
                    && sentinel_query::<Vec<redis::Value>>(*p, &["sentinels", "m"])
                        .is_ok_and(|s| s.len() == 2)
            })
        },
    );

    // This Redis lives and dies with the test: no key prefix of its own is needed.
    let config = || {
        let mut c = test_config(&db);
        c.cluster.secret = minilvb::config::Secret::new(CLUSTER_SECRET);
        c.cluster.lease_ms = 1000;
        c.cluster.sentinels = addrs.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        c.cluster.sentinel_master = "m".into();
        c
    };
    let a = spawn_app(config()).await;
    let b = spawn_app(config()).await;
    a.go_live("vj").await;
    let mut acked = Vec::new();
    for i in 0..10 {
        let viewer = format!("before{i}");
        [&a, &b][i % 2].enter(&viewer, "vj").await;
        acked.push(viewer);
    }

    drop(primary); // SIGKILL
    let killed = Instant::now();
    let mut failed = 0;
    let mut ok_in_a_row = 0;
    let mut i = 0;
    // Traffic goes on through the failover; it must come back by itself.
    while ok_in_a_row < 20 {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no recovery 30 s after the primary died ({failed} failed)"
        );
        let viewer = format!("during{i}");
        let node = [&a, &b][i % 2];
        i += 1;
        let v = node
            .call(json!({"Action":"EnterGroup","userid":viewer,"liveuserid":"vj","groupid":"g_vj","flag":0,"nickname":"n"}))
            .await;
        if v["returnValue"] == 0 {
            acked.push(viewer);
            ok_in_a_row += 1;
        } else {
            failed += 1;
            ok_in_a_row = 0;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both nodes are on the new primary (Redis up again on /readyz).
    for n in [&a, &b] {
        let t = Instant::now();
        loop {
            let (_, r) = n.readyz().await;
            if r["redis"] == "up" {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(15), "{r}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let switched = killed.elapsed();
    // A claim needs Redis itself: a new room goes live through the new primary.
    b.go_live("newcomer").await;
    a.enter("fan", "newcomer").await;
    assert_eq!(b.info("newcomer").await["viewercount"], 1);
    eprintln!(
        "sentinel failover: {} acknowledged, {failed} refused (retry); both nodes on the new primary {switched:?} after the kill",
        acked.len(),
    );
    acked.sort();
    let mut have = a.member_ids("vj", "g_vj").await;
    have.retain(|m| acked.contains(m));
    assert_eq!(have.len(), acked.len().min(100));
    assert_eq!(b.info("vj").await["viewercount"], acked.len() as u64);
    a.stop().await;
    b.stop().await;
    drop(sentinels);
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(&dir);
}
