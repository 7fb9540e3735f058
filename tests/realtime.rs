//! The realtime room channel with a real WebSocket client.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp, vj: &str) -> Ws {
    let url = app.ws_url(&format!("/ws/room/{vj}"));
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects")
        .0
}

/// The next JSON event (pings and pongs skipped), within a deadline.
async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event arrives")
            .expect("stream open")
            .expect("frame ok");
        match m {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Close(c) => {
                return json!({"event":"__close","reason": c.map(|c| c.reason.to_string())})
            }
            _ => continue,
        }
    }
}

/// Reads events until `pred` matches one; returns all events read.
async fn until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let e = next_event(ws).await;
        let done = pred(&e);
        seen.push(e);
        if done {
            return seen;
        }
    }
}

fn rt_config(db: &TestDb) -> minilvb::Config {
    let mut c = test_config(db);
    c.ws.coalesce_ms = 100;
    c
}

suite_test!(events_arrive_in_order_and_agree_with_http, |db| {
    let app = spawn_app(rt_config(db)).await;
    app.go_live("vj").await;
    app.enter("early", "vj").await;
    let mut ws = connect(&app, "vj").await;
    let snap = next_event(&mut ws).await;
    assert_eq!(snap["event"], "snapshot");
    assert_eq!(snap["status"], "1");
    assert_eq!(snap["viewercount"], 1);
    assert_eq!(snap["members"][0]["userid"], "early");
    app.enter("v1", "vj").await;
    let ev = until(&mut ws, |e| e["event"] == "count").await;
    assert_eq!(ev[0]["event"], "member_enter");
    assert_eq!(
        ev[0]["members"][0],
        json!({"userid":"v1","nickname":"v1","headpic":""})
    );
    assert_eq!(ev.last().unwrap()["viewercount"], 2);
    app.ok(json!({"Action":"ChangeCount","userid":"vj","type":1,"optype":0}))
        .await;
    let ev = until(&mut ws, |e| e["event"] == "count").await;
    assert_eq!(ev.last().unwrap()["likecount"], 1);
    app.ok(json!({"Action":"QuitGroup","userid":"v1","liveuserid":"vj","groupid":"g_vj","flag":0}))
        .await;
    let ev = until(&mut ws, |e| e["event"] == "count").await;
    assert_eq!(ev[0]["event"], "member_quit");
    assert_eq!(ev[0]["members"][0]["userid"], "v1");
    let info = app.info("vj").await;
    assert_eq!(
        (
            ev.last().unwrap()["viewercount"].clone(),
            ev.last().unwrap()["likecount"].clone()
        ),
        (info["viewercount"].clone(), info["likecount"].clone())
    );
    app.ok(json!({"Action":"ChangeStatus","userid":"vj","status":1}))
        .await;
    assert_eq!(
        next_event(&mut ws).await,
        json!({"event":"status","status":"0"})
    );
    // A like over the socket.
    ws.send(Message::Text(r#"{"type":"like"}"#.into()))
        .await
        .unwrap();
    let ev = until(&mut ws, |e| e["event"] == "count").await;
    assert_eq!(ev.last().unwrap()["likecount"], 2);
    // Malformed frames get error events; abuse closes.
    ws.send(Message::Text("nope".into())).await.unwrap();
    assert_eq!(next_event(&mut ws).await["event"], "error");
    // A new broadcast closes this one's subscribers.
    app.broadcast("vj").await;
    let ev = next_event(&mut ws).await;
    assert_eq!(ev["event"], "closed");
    let close = next_event(&mut ws).await;
    assert_eq!(close["event"], "__close");
    // Unknown rooms are refused before the upgrade.
    let r = app
        .client
        .get(app.url("/ws/room/nobody"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
});

suite_test!(coalescing_bounds_count_events_under_10000_likes, |db| {
    let app = std::sync::Arc::new(spawn_app(rt_config(db)).await);
    app.go_live("hot").await;
    let mut ws = connect(&app, "hot").await;
    assert_eq!(next_event(&mut ws).await["event"], "snapshot");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        tasks.push(actix_rt::spawn(async move {
            for _ in 0..500 {
                app.ok(json!({"Action":"ChangeCount","userid":"hot","type":1,"optype":0}))
                    .await;
            }
        }));
    }
    let mut arrivals = Vec::new();
    loop {
        let e = next_event(&mut ws).await;
        assert_eq!(e["event"], "count", "only counts: {e}");
        arrivals.push(Instant::now());
        if e["likecount"] == 10_000 {
            break;
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "10000 likes in {elapsed:?}: {} count events",
        arrivals.len()
    );
    // At most one count per 100 ms window, never one per like. Judged from the start, not
    // from the gaps between arrivals: a reader that falls behind takes two events at once,
    // but none can arrive before it was sent, and the k-th was sent k windows or more
    // after the first.
    for (k, at) in arrivals.iter().enumerate() {
        assert!(
            at.duration_since(started) >= Duration::from_millis(100) * k as u32,
            "count event {k} arrived {:?} after the likes began",
            at.duration_since(started)
        );
    }
    assert!(
        arrivals.len() as u128 <= elapsed.as_millis() / 100 + 2,
        "{} events in {elapsed:?}",
        arrivals.len()
    );
    std::sync::Arc::try_unwrap(app).ok().unwrap().stop().await;
});

/// A WebSocket client that never reads, asking the kernel for a receive buffer of
/// `rcvbuf` bytes (the kernel rounds and caps it).
async fn client_that_never_reads(
    app: &TestApp,
    vj: &str,
    rcvbuf: u32,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(rcvbuf).unwrap();
    let stream = sock
        .connect(format!("127.0.0.1:{}", app.port).parse().unwrap())
        .await
        .unwrap();
    let url = app.ws_url(&format!("/ws/room/{vj}"));
    tokio_tungstenite::client_async(url, stream)
        .await
        .unwrap()
        .0
}

/// What a reader that keeps up has seen: text bytes, and the latest count event.
#[derive(Default)]
struct Seen {
    bytes: AtomicU64,
    likecount: AtomicU64,
    closed: std::sync::atomic::AtomicBool,
    reason: std::sync::Mutex<String>,
}

/// Reads every frame as it comes, parsing only the small `count` events (parsing every
/// member batch would make this reader the slow one).
async fn keep_up(mut ws: Ws, seen: Arc<Seen>) {
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(t) = m else {
            if let Message::Close(c) = m {
                *seen.reason.lock().unwrap() = format!("{c:?}");
                break;
            }
            continue;
        };
        seen.bytes.fetch_add(t.len() as u64, Ordering::Relaxed);
        if t.starts_with(r#"{"event":"count""#) {
            let e: Value = serde_json::from_str(&t).unwrap();
            seen.likecount
                .store(e["likecount"].as_u64().unwrap(), Ordering::Relaxed);
        }
    }
    seen.closed.store(true, Ordering::Relaxed);
}

/// Fifty members with large profiles enter the room (or leave it again).
async fn fifty_members(app: Arc<TestApp>, round: usize, task: usize, quit: bool, pic: String) {
    for i in 0..50 {
        let id = format!("u{round}_{task}_{i}");
        let (g, vj) = ("g_vj", "vj");
        let body = if quit {
            json!({"Action":"QuitGroup","userid":id,"liveuserid":vj,"groupid":g,"flag":0})
        } else {
            json!({"Action":"EnterGroup","userid":id,"liveuserid":vj,"groupid":g,"flag":0,"headpic":pic})
        };
        app.ok(body).await;
    }
}

// Two clients stop reading: one with a tiny receive buffer and one with the largest the
// kernel grants. Events are driven until the server has cut both, however much the
// kernel's buffers absorbed first (bounded in time and in bytes), while a client that
// keeps up stays connected and keeps receiving. The heartbeat is set out of reach, so
// only slowness can cut anyone.
suite_test!(a_slow_consumer_is_cut_while_others_keep_receiving, |db| {
    let mut cfg = rt_config(db);
    cfg.ws.coalesce_ms = 20;
    cfg.ws.max_lag_ms = 1000;
    cfg.ws.ping_interval_secs = 3600;
    cfg.ws.timeout_secs = 3600;
    cfg.limits.max_url_len = 4096;
    let app = Arc::new(spawn_app(cfg).await);
    app.go_live("vj").await;
    let small = client_that_never_reads(&app, "vj", 4096).await;
    let large = client_that_never_reads(&app, "vj", 256 << 20).await;
    let mut fast = connect(&app, "vj").await;
    assert_eq!(next_event(&mut fast).await["event"], "snapshot");
    assert_eq!(app.ws_connections(), 3);
    let seen = Arc::new(Seen::default());
    let reader = actix_rt::spawn(keep_up(fast, seen.clone()));
    let headpic = format!("http://cdn.example/{}", "p".repeat(4000));
    // Far beyond what any socket buffers hold, yet a bound.
    const MAX_BYTES: u64 = 1 << 30;
    let started = Instant::now();
    for round in 0.. {
        if app.ws_connections() == 1 {
            break;
        }
        let bytes = seen.bytes.load(Ordering::Relaxed);
        assert!(
            started.elapsed() < Duration::from_secs(60) && bytes < MAX_BYTES,
            "clients that never read still connected after {:?} and {bytes} bytes of events",
            started.elapsed()
        );
        assert!(
            !seen.closed.load(Ordering::Relaxed),
            "the client that keeps up was cut: {}",
            seen.reason.lock().unwrap()
        );
        // Members enter together, then leave together: a window holds one long run of
        // either, so it makes one large frame rather than many small ones.
        for quit in [false, true] {
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    actix_rt::spawn(fifty_members(app.clone(), round, t, quit, headpic.clone()))
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    }
    eprintln!(
        "both clients that never read were cut after {:?} and {} MB of events",
        started.elapsed(),
        seen.bytes.load(Ordering::Relaxed) >> 20
    );
    // The one left is the client that keeps up: it still receives.
    for _ in 0..3 {
        app.ok(json!({"Action":"ChangeCount","userid":"vj","type":1,"optype":0}))
            .await;
    }
    let t = Instant::now();
    while seen.likecount.load(Ordering::Relaxed) != 3 {
        assert!(
            !seen.closed.load(Ordering::Relaxed),
            "the client that keeps up was cut: {}",
            seen.reason.lock().unwrap()
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the client that keeps up never got the last count"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.ws_connections(), 1);
    drop((small, large));
    reader.abort();
    Arc::try_unwrap(app).ok().unwrap().stop().await;
});

suite_test!(
    a_silent_client_is_dropped_after_the_heartbeat_timeout,
    |db| {
        let mut cfg = rt_config(db);
        cfg.ws.ping_interval_secs = 1;
        cfg.ws.timeout_secs = 2;
        let app = spawn_app(cfg).await;
        app.go_live("vj").await;
        let mut ws = connect(&app, "vj").await;
        // Silent: do not read (so no pong) for longer than the timeout.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let mut reason = None;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            if let Message::Close(c) = m {
                reason = c.map(|c| c.reason.to_string());
                break;
            }
        }
        assert_eq!(reason.as_deref(), Some("heartbeat timeout"));
        assert_eq!(app.ws_connections(), 0);
        app.stop().await;
    }
);

suite_test!(
    likes_over_the_socket_are_throttled_and_need_a_token_when_auth_is_on,
    |db| {
        let mut cfg = rt_config(db);
        cfg.auth.mode = minilvb::config::AuthMode::Required;
        cfg.ws.likes_per_sec = 5;
        cfg.ws.max_errors = 3;
        let app = spawn_app(cfg).await;
        app.ok(json!({"Action":"Register","userid":"vjuser","password":"password-123"}))
            .await;
        let d = app
            .ok(json!({"Action":"Login","userid":"vjuser","password":"password-123"}))
            .await;
        let token = d["token"].as_str().unwrap().to_string();
        let r = app
            .client
            .post(app.url("/interface.php"))
            .bearer_auth(&token)
            .json(&json!({"Action":"RequestLVBAddr","userid":"vjuser","groupid":"g","title":"t"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["returnValue"], 0);
        let mut ws = connect(&app, "vjuser").await;
        next_event(&mut ws).await;
        ws.send(Message::Text(r#"{"type":"like"}"#.into()))
            .await
            .unwrap();
        let e = next_event(&mut ws).await;
        assert_eq!(e["event"], "error");
        assert!(e["message"].as_str().unwrap().contains("token"), "{e}");
        ws.send(Message::Text(
            json!({"type":"like","token":"bogus"}).to_string(),
        ))
        .await
        .unwrap();
        assert_eq!(next_event(&mut ws).await["event"], "error");
        for _ in 0..8 {
            ws.send(Message::Text(
                json!({"type":"like","token":token}).to_string(),
            ))
            .await
            .unwrap();
        }
        // Five pass (two were spent above), the rest are throttled.
        let mut errors = 0;
        let mut last_count = 0;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(1500) {
            let Ok(Some(Ok(Message::Text(txt)))) =
                tokio::time::timeout(Duration::from_millis(300), ws.next()).await
            else {
                continue;
            };
            let e: Value = serde_json::from_str(&txt).unwrap();
            match e["event"].as_str() {
                Some("error") => errors += 1,
                Some("count") => last_count = e["likecount"].as_u64().unwrap(),
                _ => {}
            }
        }
        assert_eq!(last_count, 3, "likes within the per-second limit count");
        assert_eq!(errors, 5);
        // Repeated malformed frames close the connection.
        for _ in 0..5 {
            let _ = ws.send(Message::Binary(vec![1, 2, 3])).await;
        }
        let close = until(&mut ws, |e| e["event"] == "__close").await;
        assert_eq!(close.last().unwrap()["reason"], "too many malformed frames");
        app.stop().await;
    }
);

#[actix_rt::test]
async fn a_thousand_sockets_on_one_room_all_receive_the_final_count() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(rt_config(&db)).await;
    app.go_live("big").await;
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let mut ws = connect(&app, "big").await;
        assert_eq!(next_event(&mut ws).await["event"], "snapshot");
        clients.push(ws);
    }
    assert_eq!(app.ws_connections(), 1000);
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut ws| {
            actix_rt::spawn(async move {
                until(&mut ws, |e| e["event"] == "count" && e["likecount"] == 100).await;
                ws
            })
        })
        .collect();
    for _ in 0..100 {
        app.ok(json!({"Action":"ChangeCount","userid":"big","type":1,"optype":0}))
            .await;
    }
    let started = Instant::now();
    let mut done = Vec::new();
    for r in readers {
        done.push(
            tokio::time::timeout(Duration::from_secs(30), r)
                .await
                .expect("every socket gets the final count")
                .unwrap(),
        );
    }
    eprintln!(
        "1000 sockets had the final count {:?} after the last like",
        started.elapsed()
    );
    drop(done);
    app.stop().await;
    db.drop_db().await;
}

suite_test!(an_idle_room_stops_and_comes_back_with_its_state, |db| {
    let mut cfg = rt_config(db);
    cfg.server.room_idle_secs = 1;
    let app = spawn_app(cfg).await;
    app.go_live("idle").await;
    app.enter("v1", "idle").await;
    for _ in 0..3 {
        app.ok(json!({"Action":"ChangeCount","userid":"idle","type":1,"optype":0}))
            .await;
    }
    app.ok(
        json!({"Action":"QuitGroup","userid":"v1","liveuserid":"idle","groupid":"g_idle","flag":0}),
    )
    .await;
    app.ok(json!({"Action":"ChangeStatus","userid":"idle","status":1}))
        .await;
    // Offline, no members, no subscribers: the actor stops after the grace period.
    let t = Instant::now();
    while app.rooms_active() != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the idle room never stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Reactivated on the next request, with what it had (from the store or the
    // supervisor's not-yet-written changes).
    let info = app.info("idle").await;
    assert_eq!(info["likecount"], 3);
    assert_eq!(info["viewercount"], 0);
    assert_eq!(app.rooms_active(), 1);
    app.ok(json!({"Action":"ChangeStatus","userid":"idle","status":0}))
        .await;
    assert_eq!(app.info("idle").await["status"], "1");
    app.stop().await;
});
