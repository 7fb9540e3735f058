//! FetchList paging and ordering over hundreds of rooms; membership under concurrency.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

async fn page(app: &TestApp, flag: i64, pageno: usize, pagesize: usize) -> (u64, Vec<Value>) {
    let d = app
        .ok(json!({"Action":"FetchList","flag":flag,"pageno":pageno,"pagesize":pagesize}))
        .await;
    (
        d["totalcount"].as_u64().unwrap(),
        d["pusherlist"].as_array().unwrap().clone(),
    )
}

async fn all_pages(app: &TestApp, flag: i64, pagesize: usize) -> (u64, Vec<Value>) {
    let (total, mut items) = page(app, flag, 1, pagesize).await;
    let mut p = 2;
    loop {
        let (t, more) = page(app, flag, p, pagesize).await;
        assert_eq!(t, total, "totalcount is stable across pages");
        if more.is_empty() {
            break;
        }
        assert!(more.len() <= pagesize);
        items.extend(more);
        p += 1;
    }
    (total, items)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn add_recording(app: &TestApp, vj: &str, fileid: &str, ended: i64) {
    let rec = minilvb::store::NewRecording {
        vj: vj.into(),
        fileid: fileid.into(),
        info: minilvb::model::RoomInfo {
            title: format!("rec {fileid}"),
            stream: format!("{BIZID}_{vj}"),
            timestamp: ended,
            playurl: format!("http://vod/{fileid}.flv"),
            ..Default::default()
        },
        likes: 0,
        views: 0,
        start_time: 0,
    };
    app.state.rooms.add_recording(rec).await.unwrap();
}

suite_test!(fetch_list_pages_hundreds_of_rooms, |db| {
    let app = spawn_app(test_config(db)).await;
    let n = 240;
    let mut viewers: HashMap<String, usize> = HashMap::new();
    for i in 0..n {
        let vj = format!("vj{i:03}");
        app.go_live(&vj).await;
        let v = (i * 7) % 5;
        for k in 0..v {
            app.enter(&format!("viewer{k}"), &vj).await;
        }
        viewers.insert(vj, v);
    }
    // Ten rooms that are not online do not appear.
    for i in 0..10 {
        app.broadcast(&format!("offline{i}")).await;
    }
    app.settle().await;
    for pagesize in [1usize, 7, 20, 100] {
        let (total, items) = all_pages(&app, 1, pagesize).await;
        assert_eq!(total, n as u64);
        assert_eq!(items.len(), n, "pagesize {pagesize}: every item once");
        let ids: HashSet<_> = items
            .iter()
            .map(|i| i["userid"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), n, "no item twice");
        // Ordered by viewercount desc, then timestamp desc, then userid.
        let keys: Vec<(i64, i64, String)> = items
            .iter()
            .map(|i| {
                (
                    -i["viewercount"].as_i64().unwrap(),
                    -i["timestamp"].as_i64().unwrap(),
                    i["userid"].as_str().unwrap().into(),
                )
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for i in &items {
            assert_eq!(
                i["viewercount"].as_u64().unwrap() as usize,
                viewers[i["userid"].as_str().unwrap()]
            );
            assert_eq!(i["status"], "1");
        }
    }
    // Past the end: empty page, exact total. Out-of-range paging values are clamped.
    let (total, items) = page(&app, 1, 1000, 20).await;
    assert_eq!((total, items.len()), (n as u64, 0));
    let (_, items) = page(&app, 1, 0, 0).await;
    assert_eq!(items.len(), 1);
    let d = app
        .ok(json!({"Action":"FetchList","flag":1,"pageno":-5,"pagesize":100000}))
        .await;
    assert_eq!(d["pusherlist"].as_array().unwrap().len(), 100);
    // Going offline removes a room from the list.
    app.ok(json!({"Action":"ChangeStatus","userid":"vj000","status":1}))
        .await;
    app.settle().await;
    assert_eq!(page(&app, 1, 1, 1).await.0, n as u64 - 1);
    app.stop().await;
});

suite_test!(flag_3_splices_live_then_recordings, |db| {
    let app = spawn_app(test_config(db)).await;
    for i in 0..5 {
        app.go_live(&format!("live{i}")).await;
    }
    let t = now();
    for i in 0..8 {
        add_recording(
            &app,
            &format!("vj{}", i % 3),
            &format!("file{i}"),
            t - 100 * i,
        )
        .await;
    }
    // Too old: stays in the database but out of the list.
    add_recording(&app, "vj0", "ancient", t - 8 * 86_400).await;
    app.settle().await;
    let (total, recs) = all_pages(&app, 2, 3).await;
    assert_eq!(total, 8);
    let files: Vec<&str> = recs.iter().map(|r| r["fileid"].as_str().unwrap()).collect();
    assert_eq!(
        files,
        (0..8).map(|i| format!("file{i}")).collect::<Vec<_>>(),
        "newest first"
    );
    for r in &recs {
        assert_eq!(r["type"], 1);
        assert_eq!(r["groupid"], "");
    }
    // flag 3 with pagesize 4: page 2 holds the last live room and the first 3 recordings.
    let (total, p2) = page(&app, 3, 2, 4).await;
    assert_eq!(total, 13);
    let kinds: Vec<i64> = p2.iter().map(|i| i["type"].as_i64().unwrap()).collect();
    assert_eq!(kinds, vec![0, 1, 1, 1]);
    assert_eq!(p2[1]["fileid"], "file0");
    let (_, all) = all_pages(&app, 3, 4).await;
    assert_eq!(all.len(), 13);
    let (_, last) = page(&app, 3, 4, 4).await;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["fileid"], "file7");
    // A retried delivery makes no second recording.
    add_recording(&app, "vj0", "file0", t).await;
    app.settle().await;
    assert_eq!(page(&app, 2, 1, 100).await.0, 8);
    app.stop().await;
});

suite_test!(concurrent_enter_quit_like_match_a_sequential_model, |db| {
    let app = std::sync::Arc::new(spawn_app(test_config(db)).await);
    app.go_live("hot").await;
    let tasks = 50;
    let ops = 200;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let app = app.clone();
        handles.push(actix_rt::spawn(async move {
            // A deterministic per-task op sequence; the model is applied per task, and since
            // tasks touch disjoint viewers and never drive likes below their own balance, the
            // final state is independent of the interleaving.
            let mut rng: u64 = 0x9E3779B97F4A7C15 ^ (t as u64 + 1);
            let mut members = HashSet::new();
            let mut likes: i64 = 0;
            for _ in 0..ops {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let viewer = format!("t{t}v{}", rng % 6);
                match (rng >> 8) % 4 {
                    0 => {
                        app.enter(&viewer, "hot").await;
                        members.insert(viewer);
                    }
                    1 => {
                        app.ok(json!({"Action":"QuitGroup","userid":viewer,"liveuserid":"hot","groupid":"g_hot","flag":0})).await;
                        members.remove(&viewer);
                    }
                    2 => {
                        app.ok(json!({"Action":"ChangeCount","userid":"hot","type":1,"optype":0,"flag":0})).await;
                        likes += 1;
                    }
                    _ => {
                        if likes > 0 {
                            app.ok(json!({"Action":"ChangeCount","userid":"hot","type":1,"optype":1,"flag":0})).await;
                            likes -= 1;
                        }
                    }
                }
            }
            (members, likes)
        }));
    }
    let mut members = HashSet::new();
    let mut likes = 0;
    for h in handles {
        let (m, l) = h.await.unwrap();
        members.extend(m);
        likes += l;
    }
    let info = app.info("hot").await;
    assert_eq!(
        info["viewercount"].as_u64().unwrap() as usize,
        members.len()
    );
    assert_eq!(info["likecount"].as_i64().unwrap(), likes);
    let d = app.ok(json!({"Action":"FetchGroupMemberList","liveuserid":"hot","groupid":"g_hot","pagesize":100})).await;
    let mut got: HashSet<String> = HashSet::new();
    let total = d["totalcount"].as_u64().unwrap();
    let mut p = 1;
    loop {
        let d = app.ok(json!({"Action":"FetchGroupMemberList","liveuserid":"hot","groupid":"g_hot","pageno":p,"pagesize":100})).await;
        let l = d["memberlist"].as_array().unwrap();
        if l.is_empty() {
            break;
        }
        got.extend(l.iter().map(|m| m["userid"].as_str().unwrap().to_string()));
        p += 1;
    }
    assert_eq!(total as usize, members.len());
    assert_eq!(got, members);
    app.settle().await;
    let list = app.ok(json!({"Action":"FetchList","flag":1})).await;
    assert_eq!(
        list["pusherlist"][0]["viewercount"].as_u64().unwrap() as usize,
        members.len()
    );
    std::sync::Arc::try_unwrap(app)
        .ok()
        .expect("all tasks done")
        .stop()
        .await;
});

// The apps list right after they go live: a status change is on the list before its
// answer, however long the index tick (counts stay coalesced per tick). On one node; in a
// cluster the node that owns the room lists it at once and the others through the feed.
db_test!(a_status_change_is_listed_before_its_answer, |db| {
    let mut cfg = test_config(db);
    // A tick far longer than the test: only the listing path can show the changes.
    cfg.list.index_tick_ms = 60_000;
    let app = spawn_app(cfg).await;
    let listed = |d: &Value| -> Vec<String> {
        d["pusherlist"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["userid"].as_str().unwrap().to_string())
            .collect()
    };
    for round in 0..3 {
        app.broadcast("now").await;
        let d = app.ok(json!({"Action":"FetchList","flag":1})).await;
        assert!(listed(&d).is_empty(), "round {round}: {d}");
        app.ok(json!({"Action":"ChangeStatus","userid":"now","status":0}))
            .await;
        let d = app.ok(json!({"Action":"FetchList","flag":1})).await;
        assert_eq!(
            listed(&d),
            ["now"],
            "round {round}: online, listed at once: {d}"
        );
        app.ok(json!({"Action":"ChangeStatus","userid":"now","status":1}))
            .await;
        let d = app.ok(json!({"Action":"FetchList","flag":1})).await;
        assert!(
            listed(&d).is_empty(),
            "round {round}: offline, gone at once: {d}"
        );
        app.ok(json!({"Action":"ChangeStatus","userid":"now","status":0}))
            .await;
    }
    // A new broadcast takes the old one off the list at once.
    app.broadcast("now").await;
    let d = app.ok(json!({"Action":"FetchList","flag":1})).await;
    assert!(listed(&d).is_empty(), "new broadcast, not yet online: {d}");
    app.stop().await;
});
