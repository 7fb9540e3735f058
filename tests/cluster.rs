//! Three nodes on one MariaDB and one Redis: any node serves any room (calls for a room
//! owned elsewhere are forwarded to its owner), every node lists every room, and a node
//! that stops hands its rooms to the others. (Needs MINILVB_TEST_MYSQL_URL and
//! MINILVB_TEST_REDIS_URL; says "skipped" without them.)

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Cluster {
    nodes: Vec<TestApp>,
    db: TestDb,
    redis: TestRedis,
}

async fn cluster(n: usize) -> Option<Cluster> {
    let (db, redis) = cluster_parts().await?;
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(spawn_app(cluster_config(&db, &redis)).await);
    }
    Some(Cluster { nodes, db, redis })
}

/// A deterministic "random" node per request: every request may land anywhere.
fn pick(i: usize) -> usize {
    (i.wrapping_mul(2_654_435_761) >> 7) % 3
}

/// Waits (bounded) for every node's list to show `vjs` online with these viewer counts.
async fn lists_agree(nodes: &[TestApp], want: &[(String, u64)]) {
    let t = Instant::now();
    loop {
        let mut all = true;
        for n in nodes {
            let d = n
                .ok(json!({"Action":"FetchList","flag":1,"index":0,"count":100}))
                .await;
            let mut got: Vec<(String, u64)> = d["pusherlist"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["userid"].as_str().unwrap().to_string(),
                        p["viewercount"].as_u64().unwrap(),
                    )
                })
                .collect();
            got.sort();
            let total = d["totalcount"].as_u64().unwrap();
            if got != want || total != want.len() as u64 {
                all = false;
                if t.elapsed() > Duration::from_secs(10) {
                    panic!(
                        "node {} lists {got:?} (total {total}), want {want:?}",
                        n.port
                    );
                }
            }
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn any_node_serves_any_room() {
    let Some(c) = cluster(3).await else { return };
    let n = &c.nodes;
    // Ten VJs go live, each through some node; thirty viewers enter through others.
    let vjs: Vec<String> = (0..10).map(|i| format!("vj{i}")).collect();
    for (i, vj) in vjs.iter().enumerate() {
        n[pick(i)].broadcast(vj).await;
        n[pick(i + 1)]
            .ok(json!({"Action":"ChangeStatus","userid":vj,"status":0}))
            .await;
    }
    let mut want = Vec::new();
    for (i, vj) in vjs.iter().enumerate() {
        let viewers = i % 4;
        for v in 0..viewers {
            n[pick(i * 7 + v)].enter(&format!("u{i}_{v}"), vj).await;
        }
        want.push((vj.clone(), viewers as u64));
    }
    // Every node answers the same about every room.
    for (i, vj) in vjs.iter().enumerate() {
        let expect: Vec<String> = (0..i % 4).map(|v| format!("u{i}_{v}")).collect();
        for node in n {
            assert_eq!(node.member_ids(vj, &format!("g_{vj}")).await, expect);
            let info = node.info(vj).await;
            assert_eq!(info["viewercount"], (i % 4) as u64, "{info}");
        }
    }
    // Likes from all nodes add up on the owner.
    for i in 0..9 {
        n[pick(i)]
            .ok(json!({"Action":"ChangeCount","userid":"vj3","type":1,"optype":0,"flag":0}))
            .await;
    }
    for node in n {
        assert_eq!(node.info("vj3").await["likecount"], 9);
    }
    lists_agree(n, &want).await;

    // Rooms live on several nodes, and calls were forwarded.
    let mut owners = 0;
    let mut forwarded = 0;
    for node in n {
        if node.metric("minilvb_active_rooms").await > 0 {
            owners += 1;
        }
        forwarded += node.metric("minilvb_forwarded_calls_total").await;
    }
    assert!(owners >= 2, "rooms all on one node");
    assert!(forwarded > 0);

    // Errors come back from the owner as a single node gives them.
    let e = n[1]
        .err(
            json!({"Action":"EnterGroup","userid":"x","liveuserid":"vj1","groupid":"wrong","flag":0,"nickname":"x"}),
            601,
        )
        .await;
    assert!(e.contains("has no group 'wrong'"), "{e}");
    n[2].err(
        json!({"Action":"EnterGroup","userid":"x","liveuserid":"nobody","groupid":"g","flag":0,"nickname":"x"}),
        601,
    )
    .await;

    // Viewers leave through yet other nodes; the lists follow everywhere.
    for (i, vj) in vjs.iter().enumerate() {
        for v in 0..i % 4 {
            n[pick(i * 11 + v + 1)]
                .ok(json!({"Action":"QuitGroup","userid":format!("u{i}_{v}"),"liveuserid":vj,"groupid":format!("g_{vj}")}))
                .await;
        }
    }
    let want: Vec<(String, u64)> = vjs.iter().map(|v| (v.clone(), 0)).collect();
    lists_agree(n, &want).await;
    for node in c.nodes {
        node.stop().await;
    }
    c.db.drop_db().await;
    drop(c.redis);
}

#[actix_rt::test]
async fn a_node_that_stops_hands_its_rooms_over() {
    let Some(mut c) = cluster(3).await else {
        return;
    };
    // The room lives on node 0 (it took the broadcast); viewers enter everywhere.
    c.nodes[0].go_live("star").await;
    for i in 0..30 {
        c.nodes[i % 3].enter(&format!("fan{i:02}"), "star").await;
    }
    assert_eq!(c.nodes[0].metric("minilvb_active_rooms").await, 1);
    let first = c.nodes.remove(0);
    first.stop().await;
    // Nothing acknowledged is lost: the next node to be asked claims the room from the
    // database, at once (the stopped node gave it up).
    let t = Instant::now();
    let members = c.nodes[0].member_ids("star", "g_star").await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let want: Vec<String> = (0..30).map(|i| format!("fan{i:02}")).collect();
    assert_eq!(members, want);
    assert_eq!(c.nodes[1].member_ids("star", "g_star").await, want);
    c.nodes[1].enter("late", "star").await;
    assert_eq!(c.nodes[0].info("star").await["viewercount"], 31);
    for node in c.nodes {
        node.stop().await;
    }
    c.db.drop_db().await;
}

#[actix_rt::test]
async fn node_calls_must_be_signed() {
    let Some(c) = cluster(1).await else { return };
    let node = &c.nodes[0];
    let url = format!("{}/internal/room", node.base);
    // A batch of one call (nodes send the quick calls of a moment together).
    let body = r#"[{"op":"like","key":{"Live":"vj"},"increase":true}]"#;
    let r = node.client.post(&url).body(body).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let r = node
        .client
        .post(&url)
        .header("x-minilvb-time", &now)
        .header("x-minilvb-signature", "00".repeat(32))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Signed for this node: accepted once; the same call again, or signed for another
    // node, is refused.
    let (_, ready) = node.readyz().await;
    let me = ready["node"].as_str().unwrap().to_string();
    let signed = |target: &str, nonce: u64| {
        let time: i64 = now.parse().unwrap();
        let what = minilvb::cluster::peer::Signed {
            time,
            nonce,
            target,
            body: body.as_bytes(),
        };
        minilvb::cluster::peer::sign(CLUSTER_SECRET, &what)
    };
    let send = |sig: String, nonce: u64| {
        node.client
            .post(&url)
            .header("x-minilvb-time", &now)
            .header("x-minilvb-nonce", format!("{nonce:x}"))
            .header("x-minilvb-signature", sig)
            .body(body)
            .send()
    };
    let r = send(signed(&me, 41), 41).await.unwrap();
    assert_eq!(r.status(), 200);
    let answers: Value = r.json().await.unwrap();
    assert_eq!(answers.as_array().map(|a| a.len()), Some(1), "{answers}");
    assert_eq!(send(signed(&me, 41), 41).await.unwrap().status(), 403);
    // One call on its own (as a node of an earlier version sends it) is answered alone.
    let one = r#"{"op":"like","key":{"Live":"vj"},"increase":true}"#;
    let time: i64 = now.parse().unwrap();
    let sig = minilvb::cluster::peer::sign(
        CLUSTER_SECRET,
        &minilvb::cluster::peer::Signed {
            time,
            nonce: 43,
            target: &me,
            body: one.as_bytes(),
        },
    );
    let r = node
        .client
        .post(&url)
        .header("x-minilvb-time", &now)
        .header("x-minilvb-nonce", format!("{:x}", 43))
        .header("x-minilvb-signature", sig)
        .body(one)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert!(answer.is_object(), "{answer}");
    assert_eq!(
        send(signed("other-node", 42), 42).await.unwrap().status(),
        403
    );
    // A single node has no such door at all.
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let single = spawn_app(test_config(&db)).await;
    let r = single
        .client
        .post(format!("{}/internal/room", single.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    single.stop().await;
    db.drop_db().await;
    let (_, ready) = node.readyz().await;
    assert_eq!(ready["redis"], "up", "{ready}");
    for node in c.nodes {
        node.stop().await;
    }
    c.db.drop_db().await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(app: &TestApp, vj: &str) -> Ws {
    let url = format!("ws://127.0.0.1:{}/ws/room/{vj}", app.port);
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects")
        .0
}

/// Reads events (bounded) until one matches; returns it.
async fn ws_until(ws: &mut Ws, pred: impl Fn(&Value) -> bool) -> Value {
    use futures_util::StreamExt;
    let t = Instant::now();
    loop {
        let left = Duration::from_secs(10).saturating_sub(t.elapsed());
        let m = tokio::time::timeout(left, ws.next())
            .await
            .expect("the event arrives in time")
            .expect("stream open")
            .expect("frame ok");
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}

#[actix_rt::test]
async fn sockets_on_any_node_follow_a_room_owned_elsewhere() {
    let Some(mut c) = cluster(3).await else {
        return;
    };
    // Node 0 owns the room; sockets on nodes 1 and 2 relay it.
    c.nodes[0].go_live("vj").await;
    c.nodes[0].enter("first", "vj").await;
    let mut on1 = ws_connect(&c.nodes[1], "vj").await;
    let mut on2 = ws_connect(&c.nodes[2], "vj").await;
    for ws in [&mut on1, &mut on2] {
        let snap = ws_until(ws, |e| e["event"] == "snapshot").await;
        assert_eq!(snap["viewercount"], 1, "{snap}");
        assert_eq!(snap["members"][0]["userid"], "first", "{snap}");
    }
    assert_eq!(c.nodes[1].metric("minilvb_active_rooms").await, 0);
    // A viewer enters through node 2: both relayed sockets see it, and the count.
    c.nodes[2].enter("second", "vj").await;
    for ws in [&mut on1, &mut on2] {
        let e = ws_until(ws, |e| e["event"] == "member_enter").await;
        assert_eq!(e["members"][0]["userid"], "second", "{e}");
        let n = ws_until(ws, |e| e["event"] == "count").await;
        assert_eq!(n["viewercount"], 2, "{n}");
    }
    // The owner stops: the room moves, and relayed sockets get the new owner's snapshot
    // (or are told to reconnect) instead of going quiet.
    let owner = c.nodes.remove(0);
    owner.stop().await;
    let e = ws_until(&mut on1, |e| {
        e["event"] == "snapshot" || e["event"] == "closed"
    })
    .await;
    if e["event"] == "snapshot" {
        assert_eq!(e["viewercount"], 2, "{e}");
    }
    let mut again = ws_connect(&c.nodes[0], "vj").await;
    let snap = ws_until(&mut again, |e| e["event"] == "snapshot").await;
    assert_eq!(snap["viewercount"], 2, "{snap}");
    c.nodes[1].enter("third", "vj").await;
    let n = ws_until(&mut again, |e| e["event"] == "count").await;
    assert_eq!(n["viewercount"], 3, "{n}");
    drop((on1, on2, again));
    for node in c.nodes {
        node.stop().await;
    }
    c.db.drop_db().await;
}

#[actix_rt::test]
async fn a_revocation_on_one_node_reaches_the_others_at_once() {
    let Some((db, redis)) = cluster_parts().await else {
        return;
    };
    let config = || {
        let mut c = cluster_config(&db, &redis);
        c.auth.mode = minilvb::config::AuthMode::Required;
        c
    };
    let (a, b) = (spawn_app(config()).await, spawn_app(config()).await);
    let pw = "correct horse 42";
    a.ok(json!({"Action":"Register","userid":"alice","password":pw}))
        .await;
    let d = a
        .ok(json!({"Action":"Login","userid":"alice","password":pw}))
        .await;
    let r1 = d["refresh_token"].as_str().unwrap().to_string();
    let d = a
        .ok(json!({"Action":"Refresh","userid":"alice","refresh_token":r1}))
        .await;
    let t2 = d["token"].as_str().unwrap().to_string();
    let as_alice = |node: &TestApp| {
        node.client
            .post(format!("{}/interface.php", node.base))
            .bearer_auth(&t2)
            .json(&json!({"Action":"RequestLVBAddr","userid":"alice","groupid":"g_alice","title":"t"}))
            .send()
    };
    // Node B checks the token once and then trusts it for a while (its cache).
    let v: Value = as_alice(&b).await.unwrap().json().await.unwrap();
    assert_eq!(v["returnValue"], 0, "{v}");
    // The rotated refresh token comes back on node A: the whole login is revoked there...
    let v = a
        .call(json!({"Action":"Refresh","userid":"alice","refresh_token":r1}))
        .await;
    assert_eq!(v["returnValue"], 498, "{v}");
    // ...and on node B within moments, not when its cache would have expired (30 s).
    let t = Instant::now();
    loop {
        let v: Value = as_alice(&b).await.unwrap().json().await.unwrap();
        if v["returnValue"] == 498 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(2), "still accepted: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.stop().await;
    b.stop().await;
    db.drop_db().await;
}

#[actix_rt::test]
async fn throttles_hold_across_the_nodes() {
    let Some((db, redis)) = cluster_parts().await else {
        return;
    };
    let mut cfg = cluster_config(&db, &redis);
    cfg.auth.login_failures_per_user = 3;
    cfg.auth.login_window_secs = 600;
    cfg.auth.register_per_addr = 4;
    cfg.auth.register_window_secs = 600;
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(spawn_app(cfg.clone()).await);
    }
    const PW: &str = "correct horse 1";
    // Four registrations from one address, one node after the other: the fifth is refused
    // wherever it goes, though no node saw more than two.
    for i in 0..4 {
        nodes[i % 3]
            .ok(json!({"Action":"Register","userid":format!("user{i}"),"password":PW}))
            .await;
    }
    for n in &nodes {
        n.err(
            json!({"Action":"Register","userid":"user9","password":PW}),
            429,
        )
        .await;
    }
    // Three wrong guesses, one per node: the user is throttled on every node, even with
    // the right password; the others are not.
    let wrong = json!({"Action":"Login","userid":"user0","password":"not the password"});
    for n in &nodes {
        n.err(wrong.clone(), 621).await;
    }
    for n in &nodes {
        let m = n
            .err(
                json!({"Action":"Login","userid":"user0","password":PW}),
                429,
            )
            .await;
        assert!(m.contains("user0"), "{m}");
    }
    nodes[1]
        .ok(json!({"Action":"Login","userid":"user1","password":PW}))
        .await;
    // Six wrong guesses at once, two per node: exactly three are checked, all of them wrong.
    let guesses = json!({"Action":"Login","userid":"user2","password":"not the password"});
    let answers =
        futures_util::future::join_all((0..6).map(|i| nodes[i % 3].call(guesses.clone()))).await;
    let mut codes: Vec<i64> = answers
        .iter()
        .map(|v| v["returnValue"].as_i64().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, [429, 429, 429, 621, 621, 621], "{answers:?}");
    for n in nodes {
        n.stop().await;
    }
    db.drop_db().await;
}
