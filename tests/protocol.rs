//! Every Action's happy path, errors and exact JSON shapes, over real HTTP.

mod common;

use common::*;
use serde_json::{json, Value};

fn assert_pusherinfo_shape(p: &Value) {
    let o = p.as_object().expect("pusherinfo is an object");
    for k in [
        "userid",
        "groupid",
        "title",
        "playurl",
        "hls_play_url",
        "fileid",
        "status",
    ] {
        assert!(o[k].is_string(), "{k} must be a string in {p}");
    }
    for k in ["timestamp", "type", "viewercount", "likecount"] {
        assert!(o[k].is_i64(), "{k} must be an integer in {p}");
    }
    let u = o["userinfo"].as_object().expect("userinfo object");
    for k in ["nickname", "headpic", "frontcover", "location"] {
        assert!(u[k].is_string(), "userinfo.{k} must be a string in {p}");
    }
    assert_eq!(o.len(), 12, "exactly the protocol's fields: {p}");
}

suite_test!(request_lvb_addr_signs_a_push_url, |db| {
    let app = spawn_app(test_config(db)).await;
    let d = app
        .ok(json!({"Action":"RequestLVBAddr","userid":"vj.1","groupid":"g1","title":"hello",
            "userinfo":{"nickname":"Nick 😀","headpic":"http://h/p.png","frontcover":"http://h/c.png","location":"SZ"}}))
        .await;
    assert_eq!(d.as_object().unwrap().len(), 2);
    assert!(d["timestamp"].is_i64());
    let url = d["pushurl"].as_str().unwrap();
    // Stream name: bizid_userid with '.' replaced.
    let prefix =
        format!("rtmp://{BIZID}.livepush.myqcloud.com/live/{BIZID}_vj_1?bizid={BIZID}&txSecret=");
    assert!(url.starts_with(&prefix), "{url}");
    // Tencent records what is pushed with the original server's parameters.
    assert!(
        url.ends_with("&record=flv|hls&record_interval=10800"),
        "{url}"
    );
    let q: std::collections::HashMap<_, _> = url
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let now = chrono_now();
    minilvb::sign::push::verify(
        PUSH_KEY,
        &format!("{BIZID}_vj_1"),
        q["txSecret"],
        q["txTime"],
        now,
    )
    .expect("push url verifies");
    // The room exists, offline until the stream starts.
    let info = app.info("vj.1").await;
    assert_pusherinfo_shape(&info);
    assert_eq!(info["status"], "0");
    assert_eq!(info["type"], 0);
    assert_eq!(info["groupid"], "g1");
    assert_eq!(info["userinfo"]["nickname"], "Nick 😀");
    assert_eq!(
        info["playurl"],
        format!("http://{BIZID}.liveplay.myqcloud.com/live/{BIZID}_vj_1.flv")
    );
    assert_eq!(
        info["hls_play_url"],
        format!("http://{BIZID}.liveplay.myqcloud.com/live/{BIZID}_vj_1.m3u8")
    );
    app.stop().await;
});

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

suite_test!(request_lvb_addr_errors, |db| {
    let app = spawn_app(test_config(db)).await;
    let m = app
        .err(
            json!({"Action":"RequestLVBAddr","groupid":"g","title":"t"}),
            602,
        )
        .await;
    assert_eq!(m, "missing required field 'userid'");
    let m = app
        .err(
            json!({"Action":"RequestLVBAddr","userid":"u","groupid":"g","title":""}),
            602,
        )
        .await;
    assert_eq!(m, "field 'title' must not be empty");
    let m = app
        .err(
            json!({"Action":"RequestLVBAddr","userid":"u","groupid":"g","title":"x".repeat(257)}),
            602,
        )
        .await;
    assert!(m.contains("'title' is too long"), "{m}");
    let m = app
        .err(
            json!({"Action":"RequestLVBAddr","userid":"u","groupid":["g"],"title":"t"}),
            602,
        )
        .await;
    assert_eq!(m, "field 'groupid' must be a string");
    let m = app.err(json!({"Action":"RequestLVBAddr","userid":"u","groupid":"g","title":"t","userinfo":"x"}), 602).await;
    assert_eq!(m, "field 'userinfo' must be an object");
    let m = app
        .err(
            json!({"Action":"RequestLVBAddr","userid":"u".repeat(129),"groupid":"g","title":"t"}),
            602,
        )
        .await;
    assert!(m.contains("'userid' is too long"), "{m}");
    // Two userids that sanitize to the same stream name cannot both own it.
    app.broadcast("a_b").await;
    let m = app
        .err(
            json!({"Action":"RequestLVBAddr","userid":"a.b","groupid":"g","title":"t"}),
            602,
        )
        .await;
    assert!(m.contains("stream name"), "{m}");
    app.stop().await;
});

suite_test!(change_status, |db| {
    let app = spawn_app(test_config(db)).await;
    let m = app
        .err(
            json!({"Action":"ChangeStatus","userid":"nobody","status":0}),
            601,
        )
        .await;
    assert!(m.contains("nobody"), "{m}");
    app.broadcast("vj").await;
    let m = app
        .err(
            json!({"Action":"ChangeStatus","userid":"vj","status":2}),
            602,
        )
        .await;
    assert_eq!(m, "field 'status' must be one of 0, 1, got 2");
    app.err(
        json!({"Action":"ChangeStatus","userid":"vj","status":"x"}),
        602,
    )
    .await;
    app.err(json!({"Action":"ChangeStatus","userid":"vj"}), 602)
        .await;
    let d = app
        .ok(json!({"Action":"ChangeStatus","userid":"vj","status":"0"}))
        .await;
    assert_eq!(d, json!({}));
    assert_eq!(app.info("vj").await["status"], "1");
    app.ok(json!({"Action":"ChangeStatus","userid":"vj","status":1}))
        .await;
    assert_eq!(app.info("vj").await["status"], "0");
    app.stop().await;
});

suite_test!(change_count_likes_never_negative, |db| {
    let app = spawn_app(test_config(db)).await;
    app.err(
        json!({"Action":"ChangeCount","userid":"nobody","type":1,"optype":0,"flag":0}),
        601,
    )
    .await;
    app.broadcast("vj").await;
    for _ in 0..3 {
        app.ok(json!({"Action":"ChangeCount","userid":"vj","type":1,"optype":0,"flag":0}))
            .await;
    }
    for _ in 0..5 {
        app.ok(json!({"Action":"ChangeCount","userid":"vj","type":"1","optype":"1","flag":"0"}))
            .await;
    }
    assert_eq!(app.info("vj").await["likecount"], 0);
    app.ok(json!({"Action":"ChangeCount","userid":"vj","type":1,"optype":0}))
        .await;
    // Viewer counts (type 0) are accepted and ignored.
    app.ok(json!({"Action":"ChangeCount","userid":"vj","type":0,"optype":0,"flag":0}))
        .await;
    let info = app.info("vj").await;
    assert_eq!(
        (info["likecount"].clone(), info["viewercount"].clone()),
        (json!(1), json!(0))
    );
    app.err(
        json!({"Action":"ChangeCount","userid":"vj","type":2,"optype":0}),
        602,
    )
    .await;
    app.err(
        json!({"Action":"ChangeCount","userid":"vj","type":1,"optype":7}),
        602,
    )
    .await;
    let m = app
        .err(
            json!({"Action":"ChangeCount","userid":"vj","type":1,"optype":0,"flag":1}),
            602,
        )
        .await;
    assert_eq!(m, "missing required field 'fileid'");
    app.err(json!({"Action":"ChangeCount","userid":"vj","type":1,"optype":0,"flag":1,"fileid":"nofile"}), 601).await;
    app.stop().await;
});

suite_test!(enter_quit_and_member_list, |db| {
    let app = spawn_app(test_config(db)).await;
    let m = app.err(json!({"Action":"EnterGroup","userid":"v","liveuserid":"nobody","groupid":"g","flag":0}), 601).await;
    assert!(m.contains("nobody"), "{m}");
    app.go_live("vj").await;
    for v in ["v1", "v2", "v3"] {
        app.enter(v, "vj").await;
    }
    // Idempotent: entering twice counts once.
    app.enter("v2", "vj").await;
    assert_eq!(app.info("vj").await["viewercount"], 3);
    let d = app
        .ok(json!({"Action":"FetchGroupMemberList","liveuserid":"vj","groupid":"g_vj","pageno":1,"pagesize":2}))
        .await;
    assert_eq!(d["totalcount"], 3);
    assert_eq!(
        d["memberlist"],
        json!([
        {"userid":"v3","nickname":"v3","headpic":""},
        {"userid":"v2","nickname":"v2","headpic":""}])
    );
    let d = app
        .ok(json!({"Action":"FetchGroupMemberList","liveuserid":"vj","groupid":"g_vj","pageno":"2","pagesize":"2"}))
        .await;
    assert_eq!(
        d["memberlist"],
        json!([{"userid":"v1","nickname":"v1","headpic":""}])
    );
    // Wrong group: 601.
    app.err(
        json!({"Action":"EnterGroup","userid":"v9","liveuserid":"vj","groupid":"other","flag":0}),
        601,
    )
    .await;
    app.err(
        json!({"Action":"FetchGroupMemberList","liveuserid":"vj","groupid":"other"}),
        601,
    )
    .await;
    // Quit twice, and quit when never a member: not errors.
    for _ in 0..2 {
        app.ok(
            json!({"Action":"QuitGroup","userid":"v1","liveuserid":"vj","groupid":"g_vj","flag":0}),
        )
        .await;
    }
    app.ok(json!({"Action":"QuitGroup","userid":"zz","liveuserid":"vj","groupid":"g_vj","flag":0}))
        .await;
    assert_eq!(app.info("vj").await["viewercount"], 2);
    app.err(
        json!({"Action":"QuitGroup","userid":"v1","liveuserid":"vj","flag":0}),
        602,
    )
    .await;
    app.err(
        json!({"Action":"EnterGroup","userid":"v1","liveuserid":"vj","groupid":"g_vj","flag":3}),
        602,
    )
    .await;
    app.err(
        json!({"Action":"EnterGroup","liveuserid":"vj","groupid":"g_vj"}),
        602,
    )
    .await;
    app.stop().await;
});

/// Checks FetchGroupMemberList pages against `newest` (the expected members, newest first):
/// the first page, a middle one, the last partial one, just past the end and far past it.
async fn member_pages_match(app: &TestApp, newest: &[Value]) {
    let n = newest.len();
    for (pageno, pagesize) in [
        (1usize, 100usize),
        (4, 100),
        (n.div_ceil(100), 100),
        (n.div_ceil(100) + 1, 100),
        (10_000_000, 100),
        (1, 1),
        (n, 1),
        (n + 1, 1),
        (60, 7),
        (n.div_ceil(9), 9),
    ] {
        let d = app
            .ok(
                json!({"Action":"FetchGroupMemberList","liveuserid":"vj","groupid":"g_vj",
                "pageno":pageno,"pagesize":pagesize}),
            )
            .await;
        let from = ((pageno - 1) * pagesize).min(n);
        let want = &newest[from..(from + pagesize).min(n)];
        assert_eq!(d["totalcount"], n, "page {pageno} of {pagesize}");
        assert_eq!(
            d["memberlist"].as_array().unwrap(),
            want,
            "page {pageno} of {pagesize}"
        );
    }
}

suite_test!(member_list_pages_far_from_the_newest, |db| {
    let app = spawn_app(test_config(db)).await;
    app.go_live("vj").await;
    let id = |i: usize| format!("v{i:04}");
    for i in 0..1000 {
        app.enter(&id(i), "vj").await;
    }
    // A crowd that came together leaves together, and others leave here and there: the
    // join order has holes of every size.
    let leaves = |i: usize| (100..400).contains(&i) || (i >= 400 && (i - 400).is_multiple_of(7));
    for i in (0..1000).filter(|&i| leaves(i)) {
        app.ok(json!({"Action":"QuitGroup","userid":id(i),"liveuserid":"vj","groupid":"g_vj","flag":0}))
            .await;
    }
    // Entering again refreshes the profile and keeps the place.
    app.ok(
        json!({"Action":"EnterGroup","userid":id(50),"liveuserid":"vj","groupid":"g_vj",
        "flag":0,"nickname":"renamed","headpic":"http://img/p.png"}),
    )
    .await;
    let newest: Vec<Value> = (0..1000)
        .rev()
        .filter(|&i| !leaves(i))
        .map(|i| match i {
            50 => json!({"userid":id(i),"nickname":"renamed","headpic":"http://img/p.png"}),
            _ => json!({"userid":id(i),"nickname":id(i),"headpic":""}),
        })
        .collect();
    // 1000 - 300 - 86: the last page of 100 holds 14.
    assert_eq!(newest.len(), 614);
    member_pages_match(&app, &newest).await;
    // The same pages from the members reloaded from the database.
    app.stop().await;
    let app = spawn_app(test_config(db)).await;
    member_pages_match(&app, &newest).await;
    app.stop().await;
});

suite_test!(new_broadcast_resets_counters_and_members, |db| {
    let app = spawn_app(test_config(db)).await;
    app.go_live("vj").await;
    app.enter("v1", "vj").await;
    app.ok(json!({"Action":"ChangeCount","userid":"vj","type":1,"optype":0}))
        .await;
    app.broadcast("vj").await;
    let info = app.info("vj").await;
    assert_eq!(
        (
            info["viewercount"].clone(),
            info["likecount"].clone(),
            info["status"].clone()
        ),
        (json!(0), json!(0), json!("0"))
    );
    let d = app
        .ok(json!({"Action":"FetchGroupMemberList","liveuserid":"vj","groupid":"g_vj"}))
        .await;
    assert_eq!(d, json!({"totalcount":0,"memberlist":[]}));
    app.stop().await;
});

suite_test!(get_user_info_errors, |db| {
    let app = spawn_app(test_config(db)).await;
    let m = app
        .err(
            json!({"Action":"GetUserInfo","userid":"nobody","type":0}),
            620,
        )
        .await;
    assert!(m.contains("nobody"));
    app.err(
        json!({"Action":"GetUserInfo","userid":"nobody","type":1}),
        602,
    )
    .await;
    app.err(
        json!({"Action":"GetUserInfo","userid":"nobody","type":1,"fileid":"f"}),
        620,
    )
    .await;
    app.err(
        json!({"Action":"GetUserInfo","userid":"nobody","type":5}),
        602,
    )
    .await;
    app.stop().await;
});

suite_test!(cos_sign_verifies, |db| {
    let app = spawn_app(test_config(db)).await;
    let d = app.ok(json!({"Action":"GetCOSSign"})).await;
    let sign = d["sign"].as_str().unwrap();
    minilvb::sign::cos::verify("cos-secret-key", sign, chrono_now())
        .expect("cos signature verifies");
    app.stop().await;
});

suite_test!(envelope_errors, |db| {
    let app = spawn_app(test_config(db)).await;
    for (body, needle) in [
        ("", "empty body"),
        ("   ", "empty body"),
        ("{not json", "not valid JSON"),
        ("[1,2]", "must be a JSON object"),
        ("\"str\"", "must be a JSON object"),
        ("{}", "missing required field 'Action'"),
        ("{\"Action\":null}", "missing required field 'Action'"),
        ("{\"Action\":5}", "'Action' must be a string"),
        ("{\"Action\":\"Nope\"}", "unknown Action 'Nope'"),
        ("{\"Action\":\"\"}", "must not be empty"),
        (
            "{\"Action\":\"FetchList\"}",
            "missing required field 'flag'",
        ),
        (
            "{\"Action\":\"FetchList\",\"flag\":1.5}",
            "'flag' must be an integer",
        ),
        (
            "{\"Action\":\"FetchList\",\"flag\":1,\"pageno\":\"1e9999\"}",
            "'pageno' must be an integer",
        ),
        (
            "{\"Action\":\"FetchList\",\"flag\":99999999999999999999999}",
            "'flag' must be an integer",
        ),
    ] {
        let (status, v) = app.raw(body.to_string()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(v["returnValue"], 602, "{body} -> {v}");
        assert_eq!(v["returnData"], json!({}));
        assert!(
            v["returnMsg"].as_str().unwrap().contains(needle),
            "{body} -> {v}"
        );
    }
    // Oversized body: 413 with the envelope.
    let big = format!(
        "{{\"Action\":\"FetchList\",\"flag\":1,\"pad\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let (status, v) = app.raw(big).await;
    assert_eq!(status, 413);
    assert_eq!(v["returnValue"], 602);
    // Wrong method: 405, on both paths.
    for path in ["/", "/interface.php"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 405);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["returnValue"], 602);
    }
    // POST / is the same handler.
    let r = app
        .client
        .post(app.url("/"))
        .json(&json!({"Action":"FetchList","flag":1}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["returnValue"], 0);
    // Unknown fields ignored, null optional = absent.
    app.ok(json!({"Action":"FetchList","flag":1,"pageno":null,"whatever":[1]}))
        .await;
    let h = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
});

suite_test!(recording_rooms_have_their_own_members_and_counters, |db| {
    let app = spawn_app(test_config(db)).await;
    app.go_live("vj").await;
    app.enter("v1", "vj").await;
    let rec = minilvb::store::NewRecording {
        vj: "vj".into(),
        fileid: "f1".into(),
        info: minilvb::model::RoomInfo {
            title: "rec".into(),
            stream: format!("{BIZID}_vj"),
            timestamp: chrono_now() as i64,
            playurl: "http://vod/f1.flv".into(),
            ..Default::default()
        },
        likes: 5,
        views: 9,
        start_time: 0,
    };
    app.state.rooms.add_recording(rec).await.unwrap();
    let enter = |u: &str| json!({"Action":"EnterGroup","userid":u,"liveuserid":"vj","groupid":"f1","flag":1});
    app.ok(enter("r1")).await;
    app.ok(enter("r1")).await;
    app.ok(enter("r2")).await;
    app.ok(json!({"Action":"QuitGroup","userid":"r1","liveuserid":"vj","groupid":"f1","flag":1}))
        .await;
    app.ok(
        json!({"Action":"ChangeCount","userid":"vj","type":1,"optype":0,"flag":1,"fileid":"f1"}),
    )
    .await;
    let info = app
        .ok(json!({"Action":"GetUserInfo","userid":"vj","type":1,"fileid":"f1"}))
        .await;
    assert_pusherinfo_shape(&info);
    // Views only ever increase; likes were copied from the broadcast.
    assert_eq!(info["viewercount"], 11);
    assert_eq!(info["likecount"], 6);
    assert_eq!(info["type"], 1);
    assert_eq!(info["fileid"], "f1");
    assert_eq!(info["groupid"], "");
    let d = app
        .ok(json!({"Action":"FetchGroupMemberList","liveuserid":"vj","groupid":"f1"}))
        .await;
    assert_eq!(d["totalcount"], 1);
    // The live room's figures are untouched.
    assert_eq!(app.info("vj").await["viewercount"], 1);
    app.stop().await;
});

// A full server says "retry later" (429), not "storage failed" (500); rooms it holds go on.
suite_test!(room_limit_answers_retry_later, |db| {
    let mut config = test_config(db);
    config.limits.max_rooms = 2;
    let app = spawn_app(config).await;
    // The bound is per node (a node's memory): in a cluster, one node's third room is
    // refused (a new room is held by the node it first arrives at).
    let node = app.nodes().next().unwrap();
    node.go_live("vj1").await;
    node.go_live("vj2").await;
    let msg = node
        .err(
            json!({"Action":"RequestLVBAddr","userid":"vj3","groupid":"g","title":"t"}),
            429,
        )
        .await;
    assert!(msg.contains("maximum number of rooms"), "{msg}");
    app.enter("viewer", "vj1").await;
    assert_eq!(app.info("vj1").await["viewercount"], 1);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("minilvb_database_errors_total 0"),
        "not a database error"
    );
    assert!(
        metrics.contains(r#"minilvb_requests_total{action="RequestLVBAddr",code="429"} 1"#),
        "counted under its Action and code"
    );
    app.stop().await;
});
