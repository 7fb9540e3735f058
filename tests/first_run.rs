//! The first run of the real binary with no configuration at all: the secrets it needs
//! are generated once, kept private beside the embedded database, reused, never logged,
//! overridden by explicit values, and refused in production; push URLs point at a media
//! server on this machine.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const KEYS: [&str; 4] = [
    "admin.token",
    "live.push_key",
    "live.api_key",
    "live.play_key",
];

fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "minilvb_first_run_{name}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn secrets(dir: &Path) -> toml::Table {
    std::fs::read_to_string(dir.join("minilvb.secrets.toml"))
        .unwrap()
        .parse()
        .unwrap()
}

fn value(t: &toml::Table, key: &str) -> String {
    let (s, k) = key.split_once('.').unwrap();
    t[s][k].as_str().unwrap().to_string()
}

async fn call(base: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/interface.php"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Registers and logs in `userid`, then asks for a push URL; returns the answer.
async fn push_url(base: &str, userid: &str) -> Value {
    let pw = "correct horse 1";
    let r = call(
        base,
        json!({"Action":"Register","userid":userid,"password":pw}),
    )
    .await;
    assert!(r["returnValue"] == 0 || r["returnValue"] == 612, "{r}");
    let t = call(
        base,
        json!({"Action":"Login","userid":userid,"password":pw}),
    )
    .await;
    let token = t["returnData"]["token"].as_str().unwrap().to_string();
    call(
        base,
        json!({"Action":"RequestLVBAddr","userid":userid,"groupid":"g","title":"t","token":token}),
    )
    .await
}

fn signed_with(push: &str, key: &str, stream: &str) -> bool {
    let q: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(push.split_once('?').unwrap().1).unwrap();
    q["txSecret"] == minilvb::sign::push::tx_secret(key, stream, &q["txTime"])
}

fn check_in(dir: &Path, envs: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_minilvb"));
    cmd.current_dir(dir)
        .arg("check")
        .env_remove("MINILVB_TEST_MYSQL_URL")
        .env("NO_COLOR", "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[actix_rt::test]
async fn a_first_start_generates_its_secrets_once_and_keeps_them_private() {
    let dir = fresh_dir("secrets");
    // Before any start, check says what the first start will generate, and writes nothing.
    let (_, text) = check_in(&dir, &[]);
    assert!(
        text.contains("live.push_key is not set: the first start generates it"),
        "{text}"
    );
    assert!(!dir.join("minilvb.secrets.toml").exists());

    let mut server = ChildServer::start_in(Some(&dir), &[]).await;
    let file = dir.join("minilvb.secrets.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "owner-only");
    }
    let first = std::fs::read(&file).unwrap();
    let t = secrets(&dir);
    for key in KEYS {
        let v = value(&t, key);
        assert!(
            v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
    }
    // The main job works: a push URL for a local media server, signed with the key.
    let d = push_url(&server.base, "alice1").await;
    assert_eq!(d["returnValue"], 0, "{d}");
    let push = d["returnData"]["pushurl"].as_str().unwrap();
    assert!(
        push.starts_with("rtmp://127.0.0.1:1935/live/alice1?"),
        "{push}"
    );
    assert!(signed_with(push, &value(&t, "live.push_key"), "alice1"));
    // The dashboard opens with the generated token.
    let admin = value(&t, "admin.token");
    let page = reqwest::get(format!("{}/dashboard?token={admin}", server.base))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    // The log names the keys and the file, never a value, and warns of nothing missing.
    let log = server.log_text();
    assert!(log.contains("using generated secrets"), "{log}");
    for key in KEYS {
        assert!(!log.contains(&value(&t, key)), "{key} leaked into the log");
    }
    assert!(!log.contains("push_key is not set"), "{log}");
    server.kill();

    // A second start reuses them: the file is untouched, old URLs still verify.
    let mut server = ChildServer::start_in(Some(&dir), &[]).await;
    assert_eq!(std::fs::read(&file).unwrap(), first);
    let d = push_url(&server.base, "alice1").await;
    assert!(signed_with(
        d["returnData"]["pushurl"].as_str().unwrap(),
        &value(&t, "live.push_key"),
        "alice1"
    ));
    server.kill();

    // An explicit value wins, and the file keeps its own.
    let mut server = ChildServer::start_in(
        Some(&dir),
        &[(
            "MINILVB_LIVE__PUSH_KEY",
            "an-operator-chosen-push-key".into(),
        )],
    )
    .await;
    let d = push_url(&server.base, "alice1").await;
    assert!(signed_with(
        d["returnData"]["pushurl"].as_str().unwrap(),
        "an-operator-chosen-push-key",
        "alice1"
    ));
    assert_eq!(std::fs::read(&file).unwrap(), first);
    server.kill();

    // check says which values are generated and where, without printing them.
    let (code, text) = check_in(&dir, &[]);
    assert!(
        text.contains("live.push_key is generated, kept in minilvb.secrets.toml"),
        "{text}"
    );
    for key in KEYS {
        assert!(!text.contains(&value(&t, key)), "check printed {key}");
    }
    assert_ne!(code, 2, "{text}");

    // A file others can read is refused, by the server and by check.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (code, text) = check_in(&dir, &[]);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains("chmod 600"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[actix_rt::test]
async fn production_mode_generates_nothing_and_says_what_is_missing() {
    let dir = fresh_dir("production");
    let server =
        ChildServer::start_in(Some(&dir), &[("MINILVB_SERVER__PRODUCTION", "true".into())]).await;
    assert!(!dir.join("minilvb.secrets.toml").exists());
    let d = push_url(&server.base, "bob1").await;
    assert_eq!(d["returnValue"], 500, "{d}");
    assert!(
        d["returnMsg"].as_str().unwrap().contains("live.push_key"),
        "{d}"
    );
    let log = server.log_text();
    assert!(log.contains("live.push_key is not set"), "{log}");
    assert!(!log.contains("using generated secrets"), "{log}");
    drop(server);
    let (code, text) = check_in(&dir, &[("MINILVB_SERVER__PRODUCTION", "true")]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("production: every secret must be set"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Long store work reports progress in the log: each migration as it is applied, and the
/// rows a start restores with their rate.
#[actix_rt::test]
async fn migrating_and_restoring_report_progress() {
    let dir = fresh_dir("progress");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_minilvb"))
        .current_dir(&dir)
        .arg("migrate")
        .args(["--log-format", "json"])
        .env_remove("MINILVB_TEST_MYSQL_URL")
        .output()
        .unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let applied: Vec<u64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "migration applied")
        .map(|v| v["fields"]["version"].as_u64().unwrap())
        .collect();
    assert_eq!(applied, [1, 2, 3, 4, 5, 6], "{log}");

    let envs = [("MINILVB_AUTH__MODE", "off".to_string())];
    let mut server = ChildServer::start_in(Some(&dir), &envs).await;
    for vj in ["vj1", "vj2", "vj3"] {
        let d = call(
            &server.base,
            json!({"Action":"RequestLVBAddr","userid":vj,"groupid":"g","title":"t"}),
        )
        .await;
        assert_eq!(d["returnValue"], 0, "{d}");
        let d = call(
            &server.base,
            json!({"Action":"ChangeStatus","userid":vj,"status":0}),
        )
        .await;
        assert_eq!(d["returnValue"], 0, "{d}");
    }
    assert!(server.terminate().await.success());
    let server = ChildServer::start_in(Some(&dir), &envs).await;
    let restored: Vec<(String, u64)> = server
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "restored")
        .map(|v| {
            assert!(v["fields"]["rows_per_sec"].is_u64(), "{v}");
            (
                v["fields"]["what"].as_str().unwrap().to_string(),
                v["fields"]["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        restored,
        [
            ("online rooms".to_string(), 3),
            ("recordings".to_string(), 0)
        ]
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
