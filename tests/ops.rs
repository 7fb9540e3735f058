//! Operations: metrics, request ids, log files, and the `check` command.

mod common;

use common::*;
use serde_json::json;
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_minilvb"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MINILVB_LOG", "warn");
    c
}

fn good_env(db: &TestDb) -> Vec<(&'static str, String)> {
    vec![
        ("MINILVB_DATABASE__URL", db.url.clone()),
        ("MINILVB_LIVE__BIZID", BIZID.into()),
        ("MINILVB_LIVE__PUSH_KEY", PUSH_KEY.into()),
        ("MINILVB_LIVE__API_KEY", API_KEY.into()),
        ("MINILVB_COS__APPID", "1252033264".into()),
        ("MINILVB_COS__BUCKET", "minilvb-1252033264".into()),
        ("MINILVB_COS__SECRET_ID", "AKIDexampleexampleexample".into()),
        (
            "MINILVB_COS__SECRET_KEY",
            "bLcPnl88WU30VY57ipRhSePfPdOfSruK".into(),
        ),
        ("MINILVB_IM__SDKAPPID", "1400000000".into()),
        (
            "MINILVB_IM__SECRET_KEY",
            "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e".into(),
        ),
    ]
}

db_test!(check_passes_a_good_configuration_and_prints_samples, |db| {
    let env = good_env(db);
    let out = bin()
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("schema migrated"), "{text}");
    assert!(
        text.contains(&format!(
            "rtmp://{BIZID}.livepush.myqcloud.com/live/{BIZID}_check_user?"
        )),
        "{text}"
    );
    assert!(
        text.contains("COS signature: ") && text.contains("UserSig for check_user: "),
        "{text}"
    );
    assert!(text.contains("0 error(s)"), "{text}");
    // The auth mode says what it means for the unmodified apps, which never Login.
    assert!(
        text.contains("auth.mode = \"required\"")
            && text.contains("Unmodified Mini LVB apps never call Login")
            && text.contains("MINILVB_AUTH__MODE=off"),
        "{text}"
    );
    let off = bin()
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .env("MINILVB_AUTH__MODE", "off")
        .arg("check")
        .output()
        .unwrap();
    let off = String::from_utf8_lossy(&off.stdout).to_string();
    assert!(
        off.contains("the legacy open protocol the unmodified Mini LVB apps speak"),
        "{off}"
    );
    // Secrets themselves never print.
    for (_, secret) in env.iter().filter(|(k, _)| k.contains("KEY")) {
        assert!(
            !text.contains(secret.as_str()),
            "a secret was printed:\n{text}"
        );
    }
});

db_test!(check_names_the_likely_cause_of_each_problem, |db| {
    let mut env = good_env(db);
    env.retain(|(k, _)| *k != "MINILVB_LIVE__API_KEY" && *k != "MINILVB_LIVE__BIZID");
    // Production: a missing key is missing, not generated.
    env.push(("MINILVB_SERVER__PRODUCTION", "true".into()));
    env.push(("MINILVB_LIVE__BIZID", "12a".into()));
    env.push(("MINILVB_COS__BUCKET", "Bad_Bucket".into()));
    env.push(("MINILVB_DATABASE__MIGRATE_ON_START", "false".into()));
    let out = bin()
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("no recordings appear"),
        "wrong API key → no recordings:\n{text}"
    );
    assert!(
        text.contains("pushes are refused"),
        "wrong bizid → pushes refused:\n{text}"
    );
    assert!(
        text.contains("uploads fail"),
        "wrong bucket → uploads fail:\n{text}"
    );
    assert!(
        text.contains("run `minilvb migrate`"),
        "unmigrated database:\n{text}"
    );
});

#[test]
fn check_reports_an_unreachable_database() {
    let out = bin()
        .env(
            "MINILVB_DATABASE__URL",
            "mysql://nobody:pw@127.0.0.1:1/nothing",
        )
        .env("MINILVB_DATABASE__ACQUIRE_TIMEOUT_SECS", "1")
        .arg("check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success());
    assert!(
        text.contains("cannot open the database") || text.contains("does not answer"),
        "{text}"
    );
    assert!(
        !text.contains(":pw@"),
        "the database password never prints:\n{text}"
    );
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let out = bin()
        .env("MINILVB_LIVE__NOPE", "1")
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

db_test!(metrics_and_request_ids, |db| {
    let app = spawn_app(test_config(db)).await;
    app.go_live("vj").await;
    app.enter("v1", "vj").await;
    for _ in 0..3 {
        app.ok(json!({"Action":"FetchList","flag":1})).await;
    }
    app.err(
        json!({"Action":"ChangeStatus","userid":"nobody","status":0}),
        601,
    )
    .await;
    app.raw("not json").await;
    let r = app
        .client
        .post(format!("{}/callback/tencent", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.settle().await;
    let r = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let m = r.text().await.unwrap();
    for needle in [
        "minilvb_requests_total{action=\"FetchList\",code=\"0\"} 3",
        "minilvb_requests_total{action=\"ChangeStatus\",code=\"601\"} 1",
        "minilvb_requests_total{action=\"invalid\",code=\"602\"} 1",
        "minilvb_request_duration_seconds_count{action=\"FetchList\"} 3",
        "minilvb_request_duration_seconds_bucket{action=\"EnterGroup\",le=\"+Inf\"} 1",
        "minilvb_callbacks_total{source=\"tencent\",outcome=\"refused\"} 1",
        "minilvb_live_rooms 1",
        "minilvb_members 1",
        "minilvb_ws_connections 0",
        "# TYPE minilvb_snapshot_in_flight gauge",
        "# TYPE minilvb_snapshot_duration_seconds histogram",
        "minilvb_database_errors_total",
    ] {
        assert!(m.contains(needle), "missing {needle} in:\n{m}");
    }
    // Request ids: fresh ones, or the client's own when sane.
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(!id.is_empty());
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id with spaces");
    app.stop().await;
});

#[actix_rt::test]
async fn json_logs_go_to_daily_files_with_request_ids() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let dir = std::env::temp_dir().join(format!("minilvb_logs_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = ChildServer::start(&[
        ("MINILVB_DATABASE__URL", db.url.clone()),
        ("MINILVB_LOG_DIR", dir.display().to_string()),
        ("MINILVB_LOG", "info,minilvb=debug".into()),
        ("MINILVB_AUTH__MODE", "off".into()),
    ])
    .await;
    let client = reqwest::Client::new();
    client
        .post(format!("{}/interface.php", server.base))
        .header("x-request-id", "trace-me-42")
        .json(&json!({"Action":"ChangeStatus","userid":"ghost","status":0}))
        .send()
        .await
        .unwrap();
    // The file is written by a background thread: wait (bounded) for the line to land
    // before the server is killed, which would lose what is still buffered.
    let read_files = || -> Vec<std::fs::DirEntry> {
        std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok()).collect())
            .unwrap_or_default()
    };
    let waited = std::time::Instant::now();
    let text = loop {
        let files = read_files();
        let text = files
            .first()
            .and_then(|f| std::fs::read_to_string(f.path()).ok())
            .unwrap_or_default();
        if text.contains("request refused") || waited.elapsed() > std::time::Duration::from_secs(10)
        {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    drop(server);
    let files = read_files();
    assert_eq!(files.len(), 1, "one daily file");
    let name = files[0].file_name().to_string_lossy().to_string();
    assert!(name.starts_with("minilvb.log."), "{name}");
    let line = text
        .lines()
        .find(|l| l.contains("request refused"))
        .expect("the refusal was logged");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON lines");
    assert_eq!(v["span"]["id"], "trace-me-42", "{line}");
    // The start-up log says which auth mode is on and what it means for the apps.
    assert!(
        text.lines().any(|l| l.contains("\"WARN\"")
            && l.contains("the legacy open protocol the unmodified Mini LVB apps speak")),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    db.drop_db().await;
}
