//! End to end with real parts: nginx with the RTMP module calls minilvb back, ffmpeg pushes
//! a generated test pattern to the signed push URL, nginx records it, and the recording
//! becomes playable through FetchList.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
const FFMPEG: &str = "/usr/bin/ffmpeg";

fn tools_present() -> bool {
    let present = [NGINX, RTMP_MODULE, FFMPEG]
        .iter()
        .all(|p| Path::new(p).exists());
    if !present && std::env::var_os("CI").is_some() {
        panic!("nginx, its RTMP module and ffmpeg must be installed in CI (.ci/run installs them)");
    }
    present
}

/// The shipped `deploy/nginx-rtmp.local.conf`, run as it is but for its ports and its
/// directory: this test's own free ports and a fresh directory.
fn write_nginx_conf(dir: &Path, rtmp: u16, http: u16, app_port: u16) -> PathBuf {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx-rtmp.local.conf"),
    )
    .unwrap();
    let d = dir.display().to_string();
    let mut conf = shipped.clone();
    for (from, to) in [
        (
            "listen 127.0.0.1:1935;",
            format!("listen 127.0.0.1:{rtmp};"),
        ),
        (
            "listen 127.0.0.1:8081;",
            format!("listen 127.0.0.1:{http};"),
        ),
        (
            "http://127.0.0.1:8080/",
            format!("http://127.0.0.1:{app_port}/"),
        ),
        ("/tmp/minilvb-media", d.clone()),
        (
            "error_log stderr warn;",
            format!("error_log {d}/error.log info;"),
        ),
    ] {
        assert!(
            conf.contains(from),
            "deploy/nginx-rtmp.local.conf has {from:?}"
        );
        conf = conf.replace(from, &to);
    }
    assert!(conf.contains(&format!("load_module {RTMP_MODULE};")));
    std::fs::create_dir_all(dir.join("recordings")).unwrap();
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

/// URLs for the nginx this test starts on `rtmp` and `http`.
fn point_at_media(cfg: &mut minilvb::Config, rtmp: u16, http: u16) {
    cfg.live.push_host = format!("127.0.0.1:{rtmp}");
    cfg.live.play_host = format!("127.0.0.1:{rtmp}");
    cfg.live.http_play_base = format!("http://127.0.0.1:{http}");
    cfg.media.recordings_base_url = format!("http://127.0.0.1:{http}/recordings");
}

/// Starts nginx with the shipped local config in `dir`, calling back `app_port`, and waits
/// until both its ports listen.
async fn start_nginx(dir: &Path, rtmp: u16, http: u16, app_port: u16) -> Reaped {
    let conf = write_nginx_conf(dir, rtmp, http, app_port);
    let nginx = Reaped(
        Command::new(NGINX)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts"),
    );
    eventually("nginx listens", Duration::from_secs(10), || async {
        std::net::TcpStream::connect(("127.0.0.1", rtmp)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", http)).is_ok()
    })
    .await;
    nginx
}

fn ffmpeg_push(url: &str, seconds: u32) -> Reaped {
    Reaped(
        Command::new(FFMPEG)
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=15"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", &seconds.to_string()])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-pix_fmt",
                "yuv420p",
                "-g",
                "15",
            ])
            .args(["-c:a", "aac", "-b:a", "64k", "-f", "flv", url])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg starts"),
    )
}

async fn wait_exit(child: &mut Reaped, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            return s;
        }
        assert!(t.elapsed() < limit, "process still running after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !check().await {
        assert!(t.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn listed_live(app: &TestApp, vj: &str) -> bool {
    let d = app
        .ok(json!({"Action":"FetchList","flag":1,"pagesize":100}))
        .await;
    d["pusherlist"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["userid"] == vj && p["status"] == "1")
}

#[actix_rt::test]
async fn a_real_stream_goes_live_is_recorded_and_plays_back() {
    if !tools_present() {
        eprintln!(
            "skipped: nginx with the RTMP module and ffmpeg are not installed (CI installs them)"
        );
        return;
    }
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let dir = std::env::temp_dir().join(format!("minilvb_e2e_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (rtmp, http) = (free_port(), free_port());
    let mut cfg = test_config(&db);
    point_at_media(&mut cfg, rtmp, http);
    let app = spawn_app(cfg).await;
    let _nginx = start_nginx(&dir, rtmp, http, app.port).await;

    let push = app.broadcast("e2evj").await;
    assert!(
        push.starts_with(&format!("rtmp://127.0.0.1:{rtmp}/live/{BIZID}_e2evj?")),
        "{push}"
    );
    // The push URL carries the recording parameters (live.push_params) after the
    // signature, and nginx takes it as it is.
    assert!(
        push.ends_with("&record=flv|hls&record_interval=10800"),
        "{push}"
    );
    let mut ff = ffmpeg_push(&push, 8);
    eventually(
        "room online in FetchList while the stream runs",
        Duration::from_secs(4),
        || listed_live(&app, "e2evj"),
    )
    .await;
    // A self-hosted live room plays over RTMP (nginx-rtmp serves no HTTP-FLV), and a
    // player reads frames from that URL while the push runs.
    let live = app.info("e2evj").await;
    let playurl = live["playurl"].as_str().unwrap().to_string();
    assert_eq!(
        playurl,
        format!("rtmp://127.0.0.1:{rtmp}/live/{BIZID}_e2evj")
    );
    let mut player = Reaped(
        Command::new(FFMPEG)
            .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            .args(["-i", &playurl, "-frames:v", "3", "-f", "null", "-"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg starts"),
    );
    let played = wait_exit(&mut player, Duration::from_secs(20)).await;
    assert!(
        played.success(),
        "playing the live playurl failed: {played}"
    );
    let status = wait_exit(&mut ff, Duration::from_secs(30)).await;
    assert!(status.success(), "ffmpeg push failed: {status}");
    eventually(
        "room offline after the stream stops",
        Duration::from_secs(10),
        || async { app.info("e2evj").await["status"] == "0" },
    )
    .await;
    let t = Instant::now();
    let recording: Value = loop {
        let d = app.ok(json!({"Action":"FetchList","flag":2})).await;
        if let Some(r) = d["pusherlist"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["userid"] == "e2evj")
        {
            break r.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting for the recording to be listed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(recording["type"], 1);
    assert_eq!(recording["title"], "title of e2evj");
    let url = recording["playurl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{http}/recordings/{BIZID}_e2evj")),
        "{url}"
    );
    let body = app.client.get(url).send().await.unwrap();
    assert_eq!(body.status(), 200);
    let bytes = body.bytes().await.unwrap();
    assert!(
        bytes.len() > 10_000 && bytes.starts_with(b"FLV"),
        "the recording is a real FLV file ({} bytes)",
        bytes.len()
    );

    // A tampered txSecret: minilvb says no, so nginx refuses the push.
    let (head, query) = push.split_once("txSecret=").unwrap();
    let flipped = if query.starts_with('0') { "1" } else { "0" };
    let tampered = format!("{head}txSecret={flipped}{}", &query[1..]);
    let mut bad = ffmpeg_push(&tampered, 3);
    let status = wait_exit(&mut bad, Duration::from_secs(20)).await;
    assert!(!status.success(), "nginx must refuse a tampered push");
    assert_eq!(app.info("e2evj").await["status"], "0");
    assert!(!listed_live(&app, "e2evj").await);

    app.stop().await;
    drop(_nginx);
    let _ = std::fs::remove_dir_all(&dir);
    db.drop_db().await;
}

/// An operator bans a VJ who is live on nginx-rtmp: the stream is cut through nginx's
/// control module at once, the room leaves the list, and the same push URL is refused
/// until the ban is lifted.
#[actix_rt::test]
async fn a_banned_vjs_stream_is_cut_and_refused() {
    if !tools_present() {
        eprintln!(
            "skipped: nginx with the RTMP module and ffmpeg are not installed (CI installs them)"
        );
        return;
    }
    const ADMIN: &str = "operator-token-for-e2e";
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let dir = std::env::temp_dir().join(format!("minilvb_e2e_ban_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (rtmp, http) = (free_port(), free_port());
    let mut cfg = test_config(&db);
    point_at_media(&mut cfg, rtmp, http);
    cfg.media.nginx_control_url = format!("http://127.0.0.1:{http}/control");
    cfg.admin.token = minilvb::config::Secret::new(ADMIN);
    let app = spawn_app(cfg).await;
    let _nginx = start_nginx(&dir, rtmp, http, app.port).await;

    let push = app.broadcast("banvj").await;
    // Far longer than the test: only the cut can end it in time.
    let mut ff = ffmpeg_push(&push, 120);
    eventually(
        "room online while the stream runs",
        Duration::from_secs(10),
        || listed_live(&app, "banvj"),
    )
    .await;
    let d = app
        .ok(json!({"Action":"ForbidLive","userid":"banvj","forbidflag":1,"token":ADMIN}))
        .await;
    assert_eq!(
        d,
        json!({"result":0,"ended":true,"cut":["nginx-rtmp"],"failed":[]})
    );
    // ffmpeg loses its connection: it exits (with an error) long before its 120 s.
    let status = wait_exit(&mut ff, Duration::from_secs(20)).await;
    assert!(!status.success(), "the push should have been cut: {status}");
    assert!(!listed_live(&app, "banvj").await);
    assert_eq!(app.info("banvj").await["status"], "0");
    // The same, still unexpired, push URL is refused by the publish hook.
    let mut again = ffmpeg_push(&push, 3);
    let status = wait_exit(&mut again, Duration::from_secs(20)).await;
    assert!(!status.success(), "nginx must refuse a banned VJ's push");
    assert!(!listed_live(&app, "banvj").await);

    // Lifted: a new push URL streams again.
    app.ok(json!({"Action":"ForbidLive","userid":"banvj","forbidflag":0,"token":ADMIN}))
        .await;
    let push = app.broadcast("banvj").await;
    let mut ff = ffmpeg_push(&push, 4);
    eventually(
        "room online again after the ban is lifted",
        Duration::from_secs(10),
        || listed_live(&app, "banvj"),
    )
    .await;
    let status = wait_exit(&mut ff, Duration::from_secs(30)).await;
    assert!(status.success(), "ffmpeg push failed: {status}");

    app.stop().await;
    drop(_nginx);
    let _ = std::fs::remove_dir_all(&dir);
    db.drop_db().await;
}
