//! A database outage: a TCP proxy the test controls sits between the pool and MariaDB.
//! Cut it while traffic flows, restore it, and check that everything converges.

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[actix_rt::test]
async fn outage_keeps_serving_and_converges_when_the_database_returns() {
    let Some(db) = TestDb::new(Backend::Mysql).await else {
        eprintln!("skipped: MINILVB_TEST_MYSQL_URL is not set");
        return;
    };
    // mysql://user@host:port/name → the proxy stands in for host:port.
    let (scheme_user, rest) = db.url.rsplit_once('@').unwrap();
    let (hostport, name) = rest.split_once('/').unwrap();
    let proxy = Proxy::start(hostport.to_string()).await;
    let mut cfg = test_config(&db);
    cfg.database.url =
        minilvb::config::Secret::new(format!("{scheme_user}@127.0.0.1:{}/{name}", proxy.port));
    cfg.database.acquire_timeout_secs = 1;
    cfg.database.max_backoff_ms = 400;
    let app = spawn_app(cfg).await;
    app.go_live("vj").await;
    for i in 0..20 {
        app.enter(&format!("before{i}"), "vj").await;
    }
    app.settle().await;

    proxy.cut();
    // Memory-only operations keep working while the database is down.
    for i in 0..50 {
        app.enter(&format!("during{i}"), "vj").await;
        app.ok(json!({"Action":"ChangeCount","userid":"vj","type":1,"optype":0,"flag":0}))
            .await;
    }
    app.ok(json!({"Action":"QuitGroup","userid":"before0","liveuserid":"vj","groupid":"g_vj","flag":0})).await;
    // A synchronous write answers 500 within a bounded time, never hangs.
    let t = Instant::now();
    let msg = app
        .err(
            json!({"Action":"RequestLVBAddr","userid":"newvj","groupid":"g","title":"t"}),
            500,
        )
        .await;
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "500 came after {:?}",
        t.elapsed()
    );
    assert!(
        !msg.contains("mysql") && !msg.contains("root"),
        "no connection details leak: {msg}"
    );
    // Readiness reports the degraded state once a snapshot has failed.
    let t = Instant::now();
    loop {
        let (status, body) = app.readyz().await;
        // Degraded as soon as the ping fails; the dirty rooms count as pending once the
        // write that holds them (in flight while the database hangs) has failed.
        if status == 503
            && body["status"] == "degraded"
            && body["pending_rooms"].as_u64().unwrap() >= 1
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "readyz never reported degraded: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    proxy.restore();
    let t = Instant::now();
    loop {
        let (status, body) = app.readyz().await;
        if status == 200 && body["pending_rooms"] == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "never converged: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;

    // A fresh server on the database itself (no proxy) sees everything.
    let app = spawn_app(test_config(&db)).await;
    let info = app.info("vj").await;
    assert_eq!(info["likecount"], 50);
    assert_eq!(info["viewercount"], 69);
    let d = app.ok(json!({"Action":"FetchGroupMemberList","liveuserid":"vj","groupid":"g_vj","pagesize":100})).await;
    let ids: Vec<&str> = d["memberlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["userid"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"during49") && !ids.contains(&"before0"));
    app.stop().await;
    drop(proxy);
    db.drop_db().await;
}
