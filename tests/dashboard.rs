//! The operators' dashboard: access rules over HTTP, its feed with a WebSocket client, and
//! the page itself in a real headless Chromium driven through the DevTools protocol: it
//! shows a live room, follows likes without a reload, renders user input as text, and
//! leaves a screenshot in `target/test-artifacts/dashboard.png`.

mod common;

use common::*;
use futures_util::{FutureExt, SinkExt, StreamExt};
use minilvb::config::{AuthMode, Secret};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const ADMIN: &str = "admin-token-5f0c8e9a7b6d4c3b2a19";
const PW: &str = "correct horse 1";
const CHROMIUM: &str = "/usr/bin/chromium";
/// User input the page must show as text, never as markup.
const TITLE: &str = "Night <b>market</b> & <img src=x onerror=\"document.title='pwned'\">";
const NICK: &str = "Alice <i>VJ</i>";

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn config(db: &TestDb, mode: AuthMode, token: &str) -> minilvb::Config {
    let mut c = test_config(db);
    c.auth.mode = mode;
    c.admin.token = Secret::new(token);
    c.admin.dashboard_interval_ms = 200;
    c
}

async fn get(app: &TestApp, path: &str, bearer: Option<&str>) -> (u16, String, String) {
    let mut r = app.client.get(format!("{}{path}", app.base));
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, resp.text().await.unwrap())
}

/// The next snapshot from the dashboard feed (pings skipped).
async fn next_snapshot(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a snapshot arrives")
            .expect("stream open")
            .expect("frame ok");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(v["event"], "snapshot", "{v}");
            return v;
        }
    }
}

async fn feed(app: &TestApp, query: &str) -> Ws {
    let url = format!("ws://127.0.0.1:{}/ws/dashboard{query}", app.port);
    tokio_tungstenite::connect_async(url)
        .await
        .expect("the dashboard feed connects")
        .0
}

db_test!(with_auth_the_dashboard_needs_the_admin_token, |db| {
    let app = spawn_app(config(db, AuthMode::Required, ADMIN)).await;
    for (path, bearer, status) in [
        ("/dashboard", None, 401),
        ("/dashboard?token=", None, 401),
        ("/dashboard?token=wrong", None, 403),
        ("/dashboard", Some("wrong"), 403),
        ("/ws/dashboard", None, 401),
        ("/ws/dashboard?token=wrong", None, 403),
    ] {
        let (s, _, body) = get(&app, path, bearer).await;
        assert_eq!(s, status, "{path}: {body}");
        assert!(body.contains("token"), "{path}: {body}");
        assert!(!body.contains("wrong") && !body.contains(ADMIN), "{body}");
    }
    let (s, ctype, body) = get(&app, "/dashboard", Some(ADMIN)).await;
    assert_eq!((s, ctype.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.contains("<title>minilvb"), "{body}");
    // Self-contained, and data is never rendered as markup.
    for banned in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
    ] {
        assert!(!body.contains(banned), "the page contains {banned}");
    }
    let r = app
        .client
        .get(format!("{}/dashboard?token={ADMIN}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    // The feed: a snapshot at once, then one per change.
    let mut ws = feed(&app, &format!("?token={ADMIN}")).await;
    let s = next_snapshot(&mut ws).await;
    assert_eq!(s["live"], json!({"total": 0, "rooms": []}), "{s}");
    app.ok(json!({"Action":"Register","userid":"vjone1","password":PW}))
        .await;
    let tok = app
        .ok(json!({"Action":"Login","userid":"vjone1","password":PW}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    app.ok(
        json!({"Action":"RequestLVBAddr","userid":"vjone1","groupid":"g1","title":"t1",
        "userinfo":{"nickname":"n1"},"token":tok}),
    )
    .await;
    app.ok(json!({"Action":"ChangeStatus","userid":"vjone1","status":0,"token":tok}))
        .await;
    let s = next_snapshot(&mut ws).await;
    let room = &s["live"]["rooms"][0];
    assert_eq!(
        (
            &room["userid"],
            &room["title"],
            &room["nickname"],
            &room["likes"]
        ),
        (&json!("vjone1"), &json!("t1"), &json!("n1"), &json!(0)),
        "{s}"
    );
    assert!(room["since"].as_i64().unwrap() > 0, "{s}");
    ws.close(None).await.unwrap();
    app.stop().await;
});

db_test!(
    auth_on_without_an_admin_token_disables_the_dashboard,
    |db| {
        let app = spawn_app(config(db, AuthMode::Required, "")).await;
        for path in ["/dashboard", "/dashboard?token=x", "/ws/dashboard?token=x"] {
            let (s, _, body) = get(&app, path, None).await;
            assert_eq!(s, 403, "{path}: {body}");
            assert!(
                body.contains("disabled") && body.contains("admin.token"),
                "{body}"
            );
        }
        app.stop().await;
    }
);

db_test!(with_auth_off_the_dashboard_is_open_and_bounded, |db| {
    let mut c = config(db, AuthMode::Off, "");
    c.admin.dashboard_max_connections = 2;
    c.admin.dashboard_rooms = 1000; // capped at 100
    let app = spawn_app(c).await;
    let (s, _, body) = get(&app, "/dashboard", None).await;
    assert_eq!(s, 200, "{body}");
    let mut a = feed(&app, "").await;
    let mut b = feed(&app, "").await;
    assert_eq!(next_snapshot(&mut a).await["limit"], 100);
    next_snapshot(&mut b).await;
    let (s, _, body) = get(&app, "/ws/dashboard", None).await;
    assert_eq!(s, 503, "a third feed is refused: {body}");
    a.close(None).await.unwrap();
    drop(a);
    // The slot is released once the server sees the close.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws/dashboard", app.port))
                .await;
        if let Ok((mut c, _)) = r {
            next_snapshot(&mut c).await;
            c.close(None).await.unwrap();
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.close(None).await.unwrap();
    app.stop().await;
});

// ---------------------------------------------------------------------------------------
// Headless Chromium over the DevTools protocol.

/// A headless Chromium on a fresh profile; killed (and its directory removed) when
/// dropped, also when the test fails.
struct Browser {
    child: Child,
    /// Holds the profile and Chromium's temporary files.
    dir: PathBuf,
    stderr: Arc<Mutex<Vec<String>>>,
    ws_url: String,
}

impl Browser {
    fn launch() -> Browser {
        let dir = std::env::temp_dir().join(format!(
            "minilvb_chromium_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let (profile, tmp) = (dir.join("profile"), dir.join("tmp"));
        std::fs::create_dir_all(&profile).unwrap();
        std::fs::create_dir_all(&tmp).unwrap();
        let mut child = Command::new(CHROMIUM)
            .env("TMPDIR", &tmp)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                &format!("--user-data-dir={}", profile.display()),
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        // Chromium logs a lot on stderr: keep draining it (a full pipe would block it), and
        // hand over the DevTools address when it appears.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(i) = line.find("DevTools listening on ") {
                    let _ = tx.send(
                        line[i + "DevTools listening on ".len()..]
                            .trim()
                            .to_string(),
                    );
                }
                let mut log = log.lock().unwrap();
                if log.len() < 2000 {
                    log.push(line);
                }
            }
        });
        let mut browser = Browser {
            child,
            dir,
            stderr,
            ws_url: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(url) => browser.ws_url = url,
            Err(_) => panic!(
                "chromium did not announce its DevTools address; stderr:\n{}",
                browser.stderr_tail()
            ),
        }
        browser
    }

    /// Waits (a bounded time) for the browser to exit after Browser.close.
    fn wait_exit(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr_tail(&self) -> String {
        let log = self.stderr.lock().unwrap();
        log[log.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its helper processes exit on their own just after: retry until they let go.
        for _ in 0..40 {
            let _ = std::fs::remove_dir_all(&self.dir);
            if !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One DevTools connection, talking to one page through a flattened session.
struct Cdp {
    ws: Ws,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    async fn connect(browser: &Browser) -> Cdp {
        let (ws, _) = tokio_tungstenite::connect_async(browser.ws_url.as_str())
            .await
            .expect("the DevTools WebSocket connects");
        let mut cdp = Cdp {
            ws,
            next_id: 0,
            session: None,
        };
        let target = cdp
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        cdp
    }

    /// Sends a command and waits for its answer (events in between are skipped).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::Text(msg.to_string())).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("DevTools connection open")
                .expect("DevTools frame");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Asks the browser to exit (the Drop guard kills it anyway).
    async fn close(&mut self) {
        self.session = None;
        let msg = json!({"id": 0, "method": "Browser.close", "params": {}});
        let _ = self.ws.send(Message::Text(msg.to_string())).await;
    }

    /// Navigates and waits until the new document has loaded (Page.navigate answers once
    /// the navigation commits, before the document is ready).
    async fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url})).await;
        assert!(r.get("errorText").is_none(), "navigation failed: {r}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.eval("[location.href, document.readyState]").await;
            if v[0] == url && v[1] == "complete" {
                return;
            }
            assert!(Instant::now() < deadline, "{url} never loaded: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Evaluates an expression in the page and returns its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Clicks the centre of the first element matching `selector` with the mouse, as a
    /// person would: it must be visible and not covered.
    async fn click(&mut self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let rect = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [r.x + r.width / 2, r.y + r.height / 2, r.width * r.height]; }})()"
            ))
            .await;
        assert!(
            rect.is_array() && rect[2].as_f64().unwrap() > 0.0,
            "nothing visible to click at {selector}"
        );
        let (x, y) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
        let hit = self
            .eval(&format!(
                "document.elementFromPoint({x}, {y}) === document.querySelector({sel})"
            ))
            .await;
        assert_eq!(hit, true, "{selector} is covered at ({x}, {y})");
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }

    async fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": false}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

/// What the page shows, read from its DOM.
const READ_PAGE: &str = r#"(() => {
  const text = (e, sel) => { const x = e.querySelector(sel); return x ? x.textContent : null; };
  return {
    live: [...document.querySelectorAll('#live tbody tr[data-userid]')].map(r => ({
      userid: r.dataset.userid, title: text(r, 'td.title > span:last-child'),
      nick: text(r, '.nick'), viewers: text(r, 'td.viewers'), likes: text(r, 'td.likes'),
      since: text(r, 'td.time'), node: text(r, '.node') })),
    nodes: [...document.querySelectorAll('#nodes tbody tr[data-node]')].map(r => ({
      id: r.dataset.node, rooms: text(r, 'td.rooms') })),
    nodes_hidden: document.getElementById('nodes').hidden,
    recordings: [...document.querySelectorAll('#recordings tbody tr[data-fileid]')].map(r => ({
      fileid: r.dataset.fileid, title: text(r, 'td.title > span:last-child') })),
    summary: document.getElementById('summary').textContent,
    conn: document.getElementById('conn-text').textContent,
    markup: document.querySelectorAll('main b, main i, main img, main script').length,
    doc_title: document.title,
    marker: window.__marker || null,
  };
})()"#;

fn artifacts() -> PathBuf {
    // target/tmp's sibling, so that CARGO_TARGET_DIR is honoured.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts")
}

/// Polls the page, read by `script`, until `pred` holds; on timeout saves a screenshot
/// (`failure` in the artefacts) and fails with what the page showed.
async fn wait_read(
    cdp: &mut Cdp,
    browser: &Browser,
    script: &str,
    failure: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = cdp.eval(script).await;
        if pred(&page) {
            return page;
        }
        if Instant::now() > deadline {
            cdp.screenshot(&artifacts().join(failure)).await;
            panic!(
                "the page never showed {what}; it shows {page:#}\nchromium stderr:\n{}",
                browser.stderr_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for(
    cdp: &mut Cdp,
    browser: &Browser,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_read(cdp, browser, READ_PAGE, "dashboard-failure.png", what, pred).await
}

async fn in_chromium(db: &TestDb) {
    let app = spawn_app(config(db, AuthMode::Required, ADMIN)).await;
    app.ok(json!({"Action":"Register","userid":"alice1","password":PW}))
        .await;
    let tok = app
        .ok(json!({"Action":"Login","userid":"alice1","password":PW}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    app.ok(
        json!({"Action":"RequestLVBAddr","userid":"alice1","groupid":"g1","title":TITLE,
        "userinfo":{"nickname":NICK},"token":tok}),
    )
    .await;
    app.ok(json!({"Action":"ChangeStatus","userid":"alice1","status":0,"token":tok}))
        .await;
    for (i, vj) in ["bob_2", "carol3"].iter().enumerate() {
        app.ok(json!({"Action":"Register","userid":vj,"password":PW}))
            .await;
        let t = app
            .ok(json!({"Action":"Login","userid":vj,"password":PW}))
            .await["token"]
            .as_str()
            .unwrap()
            .to_string();
        app.ok(json!({"Action":"RequestLVBAddr","userid":vj,"groupid":format!("g{vj}"),
            "title":format!("Cooking show #{}", i + 1),"userinfo":{"nickname":format!("Chef {vj}")},"token":t}))
            .await;
        app.ok(json!({"Action":"ChangeStatus","userid":vj,"status":0,"token":t}))
            .await;
        app.ok(
            json!({"Action":"EnterGroup","userid":vj,"liveuserid":"alice1","groupid":"g1",
            "flag":0,"nickname":vj,"token":t}),
        )
        .await;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    app.state
        .rooms
        .add_recording(minilvb::store::NewRecording {
            vj: "alice1".into(),
            fileid: "9031868222958931071".into(),
            info: minilvb::model::RoomInfo {
                title: "Yesterday's <market> tour".into(),
                stream: format!("{BIZID}_alice1"),
                timestamp: now - 3600,
                playurl: "http://vod.example/9031868222958931071.flv".into(),
                userinfo: minilvb::protocol::types::UserInfo {
                    nickname: NICK.into(),
                    ..Default::default()
                },
                ..Default::default()
            },
            likes: 12,
            views: 40,
            start_time: 0,
        })
        .await
        .unwrap();

    let mut browser = Browser::launch();
    let mut cdp = Cdp::connect(&browser).await;

    // Without the token the page is refused.
    cdp.navigate(&format!("{}/dashboard", app.base)).await;
    let body = cdp.eval("document.body.innerText").await;
    assert!(
        body.as_str().unwrap().contains("needs the admin token"),
        "{body}"
    );

    cdp.navigate(&format!("{}/dashboard?token={ADMIN}", app.base))
        .await;
    let page = wait_for(&mut cdp, &browser, "alice1's room", |p| {
        p["live"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["title"] == TITLE)
            && p["recordings"].as_array().unwrap().len() == 1
    })
    .await;
    let alice = page["live"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["userid"] == "alice1")
        .unwrap()
        .clone();
    // User input is shown verbatim, as text: no element was made of it, nothing ran.
    assert_eq!(alice["nick"], NICK, "{page:#}");
    assert_eq!(alice["viewers"], "2", "{page:#}");
    assert_eq!(alice["likes"], "0", "{page:#}");
    assert_eq!(page["markup"], 0, "{page:#}");
    assert_ne!(page["doc_title"], "pwned");
    assert_eq!(
        page["recordings"][0]["title"], "Yesterday's <market> tour",
        "{page:#}"
    );
    assert_eq!(page["live"].as_array().unwrap().len(), 3, "{page:#}");
    // One node: no cluster section, no node per room.
    assert_eq!(page["nodes_hidden"], true, "{page:#}");
    assert_eq!(alice["node"], Value::Null, "{page:#}");
    assert!(
        page["conn"].as_str().unwrap().starts_with("live"),
        "{page:#}"
    );

    // Likes arrive without a reload: the marker set now survives.
    cdp.eval("window.__marker = 'same page'").await;
    for _ in 0..3 {
        app.ok(json!({"Action":"ChangeCount","userid":"alice1","type":1,"optype":0,"token":tok}))
            .await;
    }
    let page = wait_for(&mut cdp, &browser, "3 likes", |p| {
        p["live"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["userid"] == "alice1" && r["likes"] == "3")
    })
    .await;
    assert_eq!(page["marker"], "same page", "the page was reloaded");
    // Let the highlight of the changed count fade before the picture.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    cdp.screenshot(&artifacts().join("dashboard.png")).await;

    cdp.close().await;
    browser.wait_exit(Duration::from_secs(3));
    drop(browser);
    app.stop().await;
}

/// Whether Chromium is missing here (it says "skipped"); in CI it must be there.
fn chromium_missing() -> bool {
    if Path::new(CHROMIUM).exists() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{CHROMIUM} is missing (CI is set): install Debian's chromium"
    );
    eprintln!("skipped: {CHROMIUM} is not installed");
    true
}

#[actix_rt::test]
async fn the_page_follows_a_live_room_in_headless_chromium() {
    if chromium_missing() {
        return;
    }
    let started = Instant::now();
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let r = std::panic::AssertUnwindSafe(in_chromium(&db))
        .catch_unwind()
        .await;
    db.drop_db().await;
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
    eprintln!("browser test took {:?}", started.elapsed());
}

/// What the operator parts of the page show.
const READ_OPERATOR: &str = r#"(() => {
  const rows = sel => [...document.querySelectorAll(sel)].map(r => ({
    userid: r.dataset.userid,
    buttons: [...r.querySelectorAll('button')].map(b => b.textContent) }));
  return {
    operator: document.body.classList.contains('operator'),
    moderation_hidden: document.getElementById('moderation').hidden,
    live: rows('#live tbody tr[data-userid]'),
    reports: rows('#reports tbody tr[data-userid]').map((r, i) => Object.assign(r, {
      reporters: document.querySelectorAll('#reports tbody tr[data-userid] td.reporters')[i].textContent })),
    bans: rows('#bans tbody tr[data-userid]'),
    note: document.getElementById('op-note').textContent,
  };
})()"#;

async fn wait_operator(
    cdp: &mut Cdp,
    browser: &Browser,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let failure = "dashboard-operator-failure.png";
    wait_read(cdp, browser, READ_OPERATOR, failure, what, pred).await
}

fn has(rows: &Value, userid: &str) -> bool {
    rows.as_array()
        .unwrap()
        .iter()
        .any(|r| r["userid"] == userid)
}

async fn login(app: &TestApp, userid: &str) -> String {
    app.ok(json!({"Action":"Register","userid":userid,"password":PW}))
        .await;
    app.ok(json!({"Action":"Login","userid":userid,"password":PW}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn operator_in_chromium(db: &TestDb) {
    let app = spawn_app(config(db, AuthMode::Required, ADMIN)).await;
    let mut tokens = std::collections::HashMap::new();
    for vj in ["dave1", "erin2"] {
        let t = login(&app, vj).await;
        app.ok(
            json!({"Action":"RequestLVBAddr","userid":vj,"groupid":format!("g{vj}"),
            "title":format!("Show of {vj}"),"userinfo":{"nickname":vj},"token":t}),
        )
        .await;
        app.ok(json!({"Action":"ChangeStatus","userid":vj,"status":0,"token":t}))
            .await;
        tokens.insert(vj, t);
    }
    for viewer in ["viewer1", "viewer2"] {
        let t = login(&app, viewer).await;
        app.ok(json!({"Action":"ReportUser","userid":viewer,"hostuserid":"erin2","token":t}))
            .await;
    }

    let mut browser = Browser::launch();
    let mut cdp = Cdp::connect(&browser).await;
    cdp.navigate(&format!("{}/dashboard?token={ADMIN}", app.base))
        .await;
    let page = wait_operator(&mut cdp, &browser, "both rooms and the report", |p| {
        p["operator"] == true
            && has(&p["live"], "dave1")
            && has(&p["live"], "erin2")
            && has(&p["reports"], "erin2")
    })
    .await;
    assert_eq!(page["moderation_hidden"], false, "{page:#}");
    assert_eq!(page["reports"][0]["reporters"], "2", "{page:#}");
    assert_eq!(
        page["live"][0]["buttons"],
        json!(["End", "Ban"]),
        "{page:#}"
    );

    // End dave1's broadcast: the first click asks, the second acts.
    let end = "#live tr[data-userid=\"dave1\"] button[data-op=\"stop\"]";
    cdp.click(end).await;
    let page = cdp.eval(READ_OPERATOR).await;
    let dave = page["live"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["userid"] == "dave1")
        .unwrap();
    assert_eq!(dave["buttons"][0], "Confirm end?", "{page:#}");
    assert_eq!(
        app.info("dave1").await["status"],
        "1",
        "one click does nothing"
    );
    cdp.click(end).await;
    let page = wait_operator(&mut cdp, &browser, "dave1's room ended", |p| {
        !has(&p["live"], "dave1") && p["note"].as_str().unwrap().starts_with("Done")
    })
    .await;
    assert_eq!(
        page["note"], "Done: ended the broadcast of dave1.",
        "{page:#}"
    );
    assert_eq!(app.info("dave1").await["status"], "0");

    // Ban the reported VJ from the reports table.
    let ban = "#reports tr[data-userid=\"erin2\"] button[data-op=\"ban\"]";
    cdp.click(ban).await;
    cdp.click(ban).await;
    wait_operator(&mut cdp, &browser, "erin2 banned and off the air", |p| {
        has(&p["bans"], "erin2") && !has(&p["live"], "erin2")
    })
    .await;
    let v = app
        .call(
            json!({"Action":"RequestLVBAddr","userid":"erin2","groupid":"g","title":"t",
            "token":tokens["erin2"]}),
        )
        .await;
    assert_eq!(v["returnValue"], 498, "{v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    cdp.screenshot(&artifacts().join("dashboard-moderation.png"))
        .await;

    // And lift it from the bans table.
    let unban = "#bans tr[data-userid=\"erin2\"] button[data-op=\"unban\"]";
    cdp.click(unban).await;
    cdp.click(unban).await;
    wait_operator(&mut cdp, &browser, "erin2's ban lifted", |p| {
        !has(&p["bans"], "erin2")
            && p["note"]
                .as_str()
                .unwrap()
                .contains("lifted the ban of erin2")
    })
    .await;
    app.ok(
        json!({"Action":"RequestLVBAddr","userid":"erin2","groupid":"g","title":"t",
        "token":tokens["erin2"]}),
    )
    .await;

    cdp.close().await;
    browser.wait_exit(Duration::from_secs(3));
    drop(browser);
    app.stop().await;
}

#[actix_rt::test]
async fn an_operator_ends_bans_and_unbans_by_clicking_in_headless_chromium() {
    if chromium_missing() {
        return;
    }
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    with_db(&db, operator_in_chromium(&db)).await;
}

/// In a cluster the page on any node shows every node and which node owns each room.
async fn cluster_in_chromium(db: &TestDb, redis: &TestRedis) {
    let app = spawn_app(config(db, AuthMode::Off, ADMIN)).await;
    let vjs = ["vj_a", "vj_b", "vj_c", "vj_d", "vj_e", "vj_f"];
    for vj in vjs {
        app.go_live(vj).await;
    }
    // The truth: each room's owner as Redis names it.
    let mut conn = redis.conn().await;
    let mut owners = std::collections::HashMap::new();
    for vj in vjs {
        let key = format!(
            "{}room:{}",
            redis.prefix,
            minilvb::cluster::room_field(&minilvb::model::RoomKey::Live(vj.into()))
        );
        let owner: String = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        owners.insert(vj.to_string(), owner);
    }
    let ids: Vec<String> = app
        .nodes()
        .map(|n| n.state.rooms.cluster().unwrap().node_id.clone())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    let mut browser = Browser::launch();
    let mut cdp = Cdp::connect(&browser).await;
    // The page of a node other than the first, to show it is any node's view.
    let node = app.nodes().nth(1).unwrap();
    cdp.navigate(&format!("{}/dashboard?token={ADMIN}", node.base))
        .await;
    let page = wait_for(&mut cdp, &browser, "three nodes and six owned rooms", |p| {
        let live = p["live"].as_array().unwrap();
        p["nodes"].as_array().unwrap().len() == 3
            && live.len() == vjs.len()
            && live.iter().all(|r| r["node"].as_str().is_some())
    })
    .await;
    assert_eq!(page["nodes_hidden"], false, "{page:#}");
    let shown: Vec<String> = page["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shown, sorted, "{page:#}");
    let held: u64 = page["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["rooms"].as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(held, vjs.len() as u64, "{page:#}");
    for r in page["live"].as_array().unwrap() {
        let vj = r["userid"].as_str().unwrap();
        assert_eq!(r["node"], format!("on {}", owners[vj]), "{page:#}");
    }
    // Most likely the rooms are spread; at least they are all somewhere alive.
    assert!(owners.values().all(|o| ids.contains(o)), "{owners:?}");
    cdp.screenshot(&artifacts().join("dashboard-cluster.png"))
        .await;
    cdp.close().await;
    browser.wait_exit(Duration::from_secs(3));
    drop(browser);
    app.stop().await;
}

#[actix_rt::test]
async fn in_a_cluster_the_page_shows_every_node_and_each_rooms_owner() {
    if chromium_missing() {
        return;
    }
    let Some((db, redis)) = cluster_parts().await else {
        return;
    };
    as_cluster(&redis, with_db(&db, cluster_in_chromium(&db, &redis))).await;
}

#[test]
fn admin_keys_load_from_the_environment_and_the_example_file() {
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let c = minilvb::Config::load_from(
        None,
        &env(&[
            ("MINILVB_ADMIN__TOKEN", "12345678901234567890"),
            ("MINILVB_ADMIN__DASHBOARD_INTERVAL_MS", "500"),
        ]),
    )
    .unwrap();
    // A numeric-looking token stays a string, and never prints.
    assert_eq!(c.admin.token.expose(), "12345678901234567890");
    assert_eq!(c.admin.dashboard_interval_ms, 500);
    assert!(!format!("{c:?}").contains("12345678901234567890"));
    assert!(c.warnings().iter().all(|w| !w.contains("admin.token")));
    let c = minilvb::Config::load_from(None, &[]).unwrap();
    assert!(c.warnings().iter().any(|w| w.contains("admin.token")));
    // The example documents every [admin] key with its default.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("minilvb.example.toml");
    let example = minilvb::Config::load_from(Some(&path), &[]).unwrap();
    let d = minilvb::config::AdminConfig::default();
    assert_eq!(
        (
            example.admin.token.is_empty(),
            example.admin.dashboard_interval_ms,
            example.admin.dashboard_rooms,
            example.admin.dashboard_max_connections
        ),
        (
            true,
            d.dashboard_interval_ms,
            d.dashboard_rooms,
            d.dashboard_max_connections
        )
    );
}
