//! Media-server callbacks: Tencent events (signed), nginx-rtmp and SRS hooks.

mod common;

use common::*;
use serde_json::{json, Value};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// When the recordings of these tests ended: an hour ago, so always inside the listing's
/// window of recent recordings (a fixed date falls out of it once it is a week old).
fn recorded_at() -> i64 {
    static AT: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| now() - 3600);
    *AT
}

fn signed(mut body: Value, t: i64) -> Value {
    body["t"] = json!(t);
    body["sign"] = json!(minilvb::sign::callback::sign(API_KEY, t as u64));
    body
}

async fn tencent(app: &TestApp, body: &Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/callback/tape_callback.php"))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> u16 {
    let body = serde_urlencoded::to_string(fields).unwrap();
    app.client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

const VJ: &str = "2500647";
const STREAM: &str = "2519_2500647";

fn recording_event(format: &str, url: &str) -> Value {
    let end = recorded_at();
    json!({"appid":1252033264,"channel_id":STREAM,"duration":272,"end_time":end,"event_type":100,
        "file_format":format,"file_id":"9031868222958931071","file_size":30045521,
        "record_file_id":"9031868222958931071","start_time":end - 272,"stream_id":STREAM,
        "video_id":"200011683_481565e0befe4e44903839aebe370ef6","video_url":url})
}

/// A Tencent recording event of `fileid` in `format`, recorded from `start` to `end`.
fn recording_file(format: &str, fileid: &str, start: i64, end: i64) -> Value {
    let mut e = recording_event(
        format,
        &format!(
            "http://1252033264.vod2.myqcloud.com/x/{fileid}.{}",
            if format == "hls" { "m3u8" } else { format }
        ),
    );
    e["file_id"] = json!(fileid);
    e["record_file_id"] = json!(fileid);
    e["start_time"] = json!(start);
    e["end_time"] = json!(end);
    e
}

suite_test!(
    a_broadcasts_recorded_formats_are_one_playable_recording,
    |db| {
        let app = spawn_app(test_config(db)).await;
        app.go_live(VJ).await;
        app.ok(json!({"Action":"ChangeCount","userid":VJ,"type":1,"optype":0}))
            .await;
        let t = now() + 600;
        let (s, e) = (recorded_at() - 7200, recorded_at() - 3600);
        // One broadcast recorded as FLV and HLS: two events, two file ids, a second apart, and
        // each delivered twice, out of order. Then a later broadcast's FLV file.
        let events = [
            recording_file("hls", "hls1", s + 1, e + 1),
            recording_file("flv", "flv1", s, e),
            recording_file("hls", "hls1", s + 1, e + 1),
            recording_file("flv", "flv1", s, e),
            recording_file("flv", "flv2", e + 600, e + 1200),
        ];
        for ev in events {
            assert_eq!(
                tencent(&app, &signed(ev, t)).await,
                (200, json!({"code":0}))
            );
        }
        app.settle().await;
        let d = app.ok(json!({"Action":"FetchList","flag":2})).await;
        let recs: Vec<&Value> = d["pusherlist"].as_array().unwrap().iter().collect();
        assert_eq!(recs.len(), 2, "one entry per recorded broadcast: {d}");
        let first = recs
            .iter()
            .find(|r| r["fileid"] == "hls1")
            .expect("the first file's entry");
        assert_eq!(
            first["playurl"],
            "http://1252033264.vod2.myqcloud.com/x/flv1.flv"
        );
        assert_eq!(
            first["hls_play_url"],
            "http://1252033264.vod2.myqcloud.com/x/hls1.m3u8"
        );
        let second = recs
            .iter()
            .find(|r| r["fileid"] == "flv2")
            .expect("the later broadcast");
        for r in &recs {
            assert!(apps::recording_refused_by(r).is_empty(), "{r}");
        }
        // FLV only: both fields carry it, so every app plays it.
        assert_eq!(second["hls_play_url"], second["playurl"]);
        // Either file's id reaches the one recording.
        for (i, id) in ["hls1", "flv1"].into_iter().enumerate() {
            let info = app
                .ok(json!({"Action":"GetUserInfo","userid":VJ,"type":1,"fileid":id}))
                .await;
            assert_eq!(info["fileid"], "hls1", "{info}");
            assert_eq!(info["likecount"], 1 + i, "{info}");
            app.ok(json!({"Action":"ChangeCount","userid":VJ,"type":1,"optype":0,"flag":1,"fileid":id}))
            .await;
            app.ok(json!({"Action":"EnterGroup","userid":format!("viewer_{id}"),"liveuserid":VJ,"groupid":id,"flag":1,"nickname":id}))
            .await;
        }
        let info = app
            .ok(json!({"Action":"GetUserInfo","userid":VJ,"type":1,"fileid":"flv1"}))
            .await;
        assert_eq!(
            info["likecount"], 3,
            "likes through both ids land on one recording"
        );
        assert_eq!(info["viewercount"], 2, "{info}");
        let members = app
            .ok(json!({"Action":"FetchGroupMemberList","liveuserid":VJ,"groupid":"flv1"}))
            .await;
        assert_eq!(members["totalcount"], 2, "{members}");
        let e = app
            .call(json!({"Action":"GetUserInfo","userid":VJ,"type":1,"fileid":"nope"}))
            .await;
        assert_ne!(e["returnValue"], 0, "{e}");
        app.stop().await;
    }
);

suite_test!(tencent_events_are_verified_and_idempotent, |db| {
    let app = spawn_app(test_config(db)).await;
    app.broadcast(VJ).await;
    let t = now() + 600;
    let start = json!({"event_type":1,"stream_id":STREAM,"channel_id":STREAM,"event_time":now()});
    // Wrong sign, expired t, missing fields: 403 with code 498.
    let mut forged = signed(start.clone(), t);
    forged["sign"] = json!("0".repeat(32));
    assert_eq!(
        tencent(&app, &forged).await,
        (
            403,
            json!({"code":498,"message":"verification failed: signature mismatch"})
        )
    );
    let (s, v) = tencent(&app, &signed(start.clone(), now() - 1)).await;
    assert_eq!((s, v["code"].clone()), (403, json!(498)));
    let (s, _) = tencent(&app, &start).await;
    assert_eq!(s, 403);
    assert_eq!(
        app.info(VJ).await["status"],
        "0",
        "nothing refused changed the room"
    );
    // A valid start, with t as a string, twice (Tencent retries).
    let mut ok = signed(start.clone(), t);
    ok["t"] = json!(t.to_string());
    for _ in 0..2 {
        assert_eq!(tencent(&app, &ok).await, (200, json!({"code":0})));
    }
    assert_eq!(app.info(VJ).await["status"], "1");
    // A late "stream ended" of an older broadcast does not end this one.
    let old_stop = signed(
        json!({"event_type":0,"stream_id":STREAM,"event_time":now() - 3600}),
        t,
    );
    assert_eq!(tencent(&app, &old_stop).await.0, 200);
    assert_eq!(app.info(VJ).await["status"], "1");
    let stop = signed(
        json!({"event_type":"0","stream_id":STREAM,"event_time":now()}),
        t,
    );
    assert_eq!(tencent(&app, &stop).await.0, 200);
    assert_eq!(app.info(VJ).await["status"], "0");
    // A late "stream started" of an older broadcast does not revive it.
    let old_start = signed(
        json!({"event_type":1,"stream_id":STREAM,"event_time":now() - 3600}),
        t,
    );
    assert_eq!(tencent(&app, &old_start).await.0, 200);
    assert_eq!(app.info(VJ).await["status"], "0");
    // Unknown streams and unknown event types are acknowledged and change nothing.
    let unknown = signed(json!({"event_type":1,"stream_id":"2519_nobody"}), t);
    assert_eq!(tencent(&app, &unknown).await.0, 200);
    let odd = signed(json!({"event_type":42,"stream_id":STREAM}), t);
    assert_eq!(tencent(&app, &odd).await, (200, json!({"code":0})));
    // Malformed bodies.
    for body in ["", "not json", "[1]"] {
        let r = app
            .client
            .post(app.url("/callback/tencent"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
    let no_type = signed(json!({"stream_id":STREAM}), t);
    assert_eq!(tencent(&app, &no_type).await.0, 400);
    // The aliases are the same handler.
    let r = app
        .client
        .post(app.url("/callback/Live_callback.php"))
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
});

suite_test!(
    tencent_recordings_copy_the_broadcast_and_merge_formats,
    |db| {
        let app = spawn_app(test_config(db)).await;
        app.go_live(VJ).await;
        app.enter("v1", VJ).await;
        app.enter("v2", VJ).await;
        app.ok(json!({"Action":"QuitGroup","userid":"v2","liveuserid":VJ,"groupid":format!("g_{VJ}"),"flag":0})).await;
        for _ in 0..3 {
            app.ok(json!({"Action":"ChangeCount","userid":VJ,"type":1,"optype":0}))
                .await;
        }
        let t = now() + 600;
        let flv = signed(
            recording_event("flv", "http://1252033264.vod2.myqcloud.com/x/f0.flv"),
            t,
        );
        // Delivered twice: one recording.
        for _ in 0..2 {
            assert_eq!(tencent(&app, &flv).await, (200, json!({"code":0})));
        }
        let hls = signed(
            recording_event("hls", "http://1252033264.vod2.myqcloud.com/x/f0.m3u8"),
            t,
        );
        assert_eq!(tencent(&app, &hls).await.0, 200);
        let info = app
            .ok(json!({"Action":"GetUserInfo","userid":VJ,"type":1,"fileid":"9031868222958931071"}))
            .await;
        assert_eq!(info["title"], format!("title of {VJ}"));
        assert_eq!(info["userinfo"]["nickname"], format!("nick {VJ}"));
        assert_eq!(info["likecount"], 3);
        assert_eq!(info["viewercount"], 2, "total views of the broadcast");
        assert_eq!(
            info["playurl"],
            "http://1252033264.vod2.myqcloud.com/x/f0.flv"
        );
        assert_eq!(
            info["hls_play_url"],
            "http://1252033264.vod2.myqcloud.com/x/f0.m3u8"
        );
        assert_eq!(info["timestamp"], recorded_at());
        app.settle().await;
        let d = app.ok(json!({"Action":"FetchList","flag":2})).await;
        let recs: Vec<&Value> = d["pusherlist"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["fileid"] == "9031868222958931071")
            .collect();
        assert_eq!(recs.len(), 1);
        assert_eq!(
            recs[0]["hls_play_url"],
            "http://1252033264.vod2.myqcloud.com/x/f0.m3u8"
        );
        // Bad recording events.
        let mut no_file = recording_event("flv", "http://x/f.flv");
        no_file.as_object_mut().unwrap().remove("file_id");
        assert_eq!(tencent(&app, &signed(no_file, t)).await.0, 400);
        let mut huge = recording_event("flv", &format!("http://x/{}.flv", "a".repeat(2000)));
        huge["file_id"] = json!("other");
        assert_eq!(tencent(&app, &signed(huge, t)).await.0, 400);
        // A screenshot is kept as the room's latest snapshot.
        let shot = signed(
            json!({"event_type":200,"stream_id":STREAM,"pic_url":"/shot/1.jpg","pic_full_url":"http://p/shot/1.jpg"}),
            t,
        );
        assert_eq!(tencent(&app, &shot).await.0, 200);
        let rec = app
            .state
            .store
            .load_room(&minilvb::model::RoomKey::Live(VJ.into()), false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.info.snapshot_url, "http://p/shot/1.jpg");
        app.stop().await;
    }
);

suite_test!(nginx_rtmp_hooks_verify_push_signatures, |db| {
    let mut cfg = test_config(db);
    cfg.media.recordings_base_url = "http://127.0.0.1:9/rec".into();
    let app = spawn_app(cfg).await;
    let push = app.broadcast("nvj").await;
    let stream = format!("{BIZID}_nvj");
    let q: std::collections::HashMap<String, String> =
        serde_urlencoded::from_str(push.split_once('?').unwrap().1).unwrap();
    let publish = |secret: String, time: String, name: String| {
        vec![
            ("call".to_string(), "publish".to_string()),
            ("app".into(), "live".into()),
            ("name".into(), name),
            ("addr".into(), "127.0.0.1".into()),
            ("clientid".into(), "7".into()),
            ("bizid".into(), BIZID.into()),
            ("txSecret".into(), secret),
            ("txTime".into(), time),
        ]
    };
    let send = |fields: Vec<(String, String)>| {
        let app = &app;
        async move {
            let f: Vec<(&str, &str)> = fields
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            form(app, "/callback/nginx-rtmp", &f).await
        }
    };
    let secret = q["txSecret"].clone();
    let time = q["txTime"].clone();
    let mut tampered = secret.clone();
    tampered.replace_range(0..1, if &secret[0..1] == "a" { "b" } else { "a" });
    assert_eq!(
        send(publish(tampered, time.clone(), stream.clone())).await,
        403
    );
    assert_eq!(
        send(publish(secret.clone(), time.clone(), "2519_unknown".into())).await,
        403
    );
    let past = minilvb::sign::push::tx_time(1_000_000);
    let past_secret = minilvb::sign::push::tx_secret(PUSH_KEY, &stream, &past);
    assert_eq!(
        send(publish(past_secret, past, stream.clone())).await,
        403,
        "expired push URL"
    );
    assert_eq!(app.info("nvj").await["status"], "0");
    assert_eq!(
        send(publish(secret.clone(), time.clone(), stream.clone())).await,
        200
    );
    assert_eq!(app.info("nvj").await["status"], "1");
    assert_eq!(
        form(
            &app,
            "/callback/nginx-rtmp",
            &[("call", "update_publish"), ("name", &stream)]
        )
        .await,
        200
    );
    assert_eq!(
        form(
            &app,
            "/callback/nginx-rtmp",
            &[("call", "publish_done"), ("name", &stream)]
        )
        .await,
        200
    );
    assert_eq!(app.info("nvj").await["status"], "0");
    let path = format!("/var/rec/{stream}-1796000000.flv");
    for _ in 0..2 {
        assert_eq!(
            form(
                &app,
                "/callback/nginx-rtmp",
                &[("call", "record_done"), ("name", &stream), ("path", &path)]
            )
            .await,
            200
        );
    }
    app.settle().await;
    let d = app.ok(json!({"Action":"FetchList","flag":2})).await;
    assert_eq!(d["totalcount"], 1);
    assert_eq!(
        d["pusherlist"][0]["playurl"],
        format!("http://127.0.0.1:9/rec/{stream}-1796000000.flv")
    );
    assert_eq!(d["pusherlist"][0]["fileid"], format!("{stream}-1796000000"));
    assert_eq!(
        form(&app, "/callback/nginx-rtmp", &[("call", "publish")]).await,
        400
    );
    app.stop().await;
});

suite_test!(srs_hooks, |db| {
    let app = spawn_app(test_config(db)).await;
    let push = app.broadcast("svj").await;
    let stream = format!("{BIZID}_svj");
    let param = format!("?{}", push.split_once('?').unwrap().1);
    let hook = |body: Value| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(app.url("/callback/srs"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = hook(json!({"action":"on_publish","app":"live","stream":stream,"param":"?txSecret=00&txTime=FFFFFFFF"})).await;
    assert_eq!((s, v["code"].clone()), (200, json!(498)));
    let (_, v) =
        hook(json!({"action":"on_publish","app":"live","stream":stream,"param":param})).await;
    assert_eq!(v, json!({"code":0}));
    assert_eq!(app.info("svj").await["status"], "1");
    let (_, v) = hook(json!({"action":"on_unpublish","app":"live","stream":stream})).await;
    assert_eq!(v, json!({"code":0}));
    assert_eq!(app.info("svj").await["status"], "0");
    let (_, v) = hook(json!({"action":"on_dvr","app":"live","stream":stream,"file":"./objs/nginx/html/live/x.1.flv"})).await;
    assert_eq!(v, json!({"code":0}));
    let info = app
        .ok(json!({"Action":"GetUserInfo","userid":"svj","type":1,"fileid":"x_1"}))
        .await;
    assert!(
        info["playurl"].as_str().unwrap().ends_with("/x.1.flv"),
        "{info}"
    );
    let (s, _) = hook(json!({"action":"on_publish"})).await;
    assert_eq!(s, 400);
    app.stop().await;
});

suite_test!(untrusted_addresses_cannot_call_self_hosted_hooks, |db| {
    let mut cfg = test_config(db);
    cfg.media.trusted_addrs = vec!["10.9.9.9".into()];
    let app = spawn_app(cfg).await;
    app.go_live("x").await;
    let stream = format!("{BIZID}_x");
    assert_eq!(
        form(
            &app,
            "/callback/nginx-rtmp",
            &[("call", "publish_done"), ("name", &stream)]
        )
        .await,
        403
    );
    assert_eq!(app.info("x").await["status"], "1");
    app.stop().await;
});

suite_test!(a_stream_whose_signs_of_life_stop_goes_offline, |db| {
    let mut cfg = test_config(db);
    cfg.live.stale_after_secs = 1;
    let app = spawn_app(cfg).await;
    // "quiet" said online once, as the apps do on Tencent, and its media server sends no
    // signs of life: it stays listed however long it runs. "beating" had nginx-rtmp's
    // on_update once, then none; "chatty" gets one every 300 ms.
    for vj in ["quiet", "beating", "chatty"] {
        app.go_live(vj).await;
    }
    let update = |vj: &str| {
        let stream = format!("{BIZID}_{vj}");
        let app = &app;
        async move {
            let fields = [("call", "update_publish"), ("name", stream.as_str())];
            assert_eq!(form(app, "/callback/nginx-rtmp", &fields).await, 200);
        }
    };
    update("beating").await;
    let t = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        update("chatty").await;
        if app.info("beating").await["status"] == "0" {
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(8),
            "a room whose signs of life stopped never went offline"
        );
    }
    // Past two sweeps of a 1 s deadline (one every second), chatty still beating.
    for _ in 0..8 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        update("chatty").await;
    }
    assert_eq!(app.info("chatty").await["status"], "1");
    assert_eq!(app.info("quiet").await["status"], "1");
    // ChangeStatus online again: a beating room gets a fresh deadline, not an instant sweep.
    app.ok(json!({"Action":"ChangeStatus","userid":"beating","status":0}))
        .await;
    assert_eq!(app.info("beating").await["status"], "1");
    app.settle().await;
    let d = app.ok(json!({"Action":"FetchList","flag":1})).await;
    assert_eq!(d["totalcount"], 3, "{d}");
    app.stop().await;
});

async fn form_reply(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let body = serde_urlencoded::to_string(fields).unwrap();
    let r = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn srs_reply(app: &TestApp, body: &Value) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/callback/srs"))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn recording_of(app: &TestApp, vj: &str, fileid: &str) -> Value {
    app.ok(json!({"Action":"GetUserInfo","userid":vj,"type":1,"fileid":fileid}))
        .await
}

suite_test!(recorded_file_names_are_checked_and_escaped, |db| {
    let mut cfg = test_config(db);
    cfg.media.recordings_base_url = "http://127.0.0.1:9/rec/".into();
    let app = spawn_app(cfg).await;
    app.go_live("fvj").await;
    let stream = format!("{BIZID}_fvj");
    let live_before = app.info("fvj").await;
    let long = format!("/var/rec/{}.flv", "a".repeat(129));
    for (path, why) in [
        // Its id would be "", the live room's own key.
        ("/var/rec/.flv", "not '.flv'"),
        ("/var/rec/..", "not '..'"),
        ("/var/rec/", "names a directory"),
        ("", "is missing"),
        ("/var/rec/2519_fvj-1796000000", "without extension"),
        ("/var/rec/2519_fvj-1796000000.txt", "names a '.txt' file"),
        (long.as_str(), "longer than 128 bytes"),
    ] {
        let (status, v) = form_reply(
            &app,
            "/callback/nginx-rtmp",
            &[("call", "record_done"), ("name", &stream), ("path", path)],
        )
        .await;
        assert_eq!((status, &v["code"]), (400, &json!(602)), "{path:?}: {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.starts_with("field 'path' ") && msg.contains(why),
            "{path:?}: {msg}"
        );
        let (status, v) = srs_reply(
            &app,
            &json!({"action":"on_dvr","app":"live","stream":stream,"file":path}),
        )
        .await;
        assert_eq!((status, &v["code"]), (400, &json!(602)), "{path:?}: {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.starts_with("field 'file' ") && msg.contains(why),
            "{path:?}: {msg}"
        );
    }
    // Nothing was recorded: not under the ids the old name mapping gave ("/var/rec/.."
    // became "_"), and the last step below lists every recording there is.
    assert_eq!(app.info("fvj").await, live_before);
    app.err(
        json!({"Action":"GetUserInfo","userid":"fvj","type":1,"fileid":"_"}),
        620,
    )
    .await;

    // A name with characters that mean something in a URL is one escaped path segment.
    let (status, _) = form_reply(
        &app,
        "/callback/nginx-rtmp",
        &[
            ("call", "record_done"),
            ("name", &stream),
            ("path", "/var/rec/a b?x=1#.flv"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        recording_of(&app, "fvj", "a_b_x_1_").await["playurl"],
        "http://127.0.0.1:9/rec/a%20b%3Fx%3D1%23.flv"
    );
    // The longest name allowed: its id fits a stored fileid.
    let longest = "b".repeat(128);
    let (_, v) = srs_reply(
        &app,
        &json!({"action":"on_dvr","app":"live","stream":stream,"file":format!("./objs/live/{longest}.mp4")}),
    )
    .await;
    assert_eq!(v, json!({"code":0}));
    assert_eq!(
        recording_of(&app, "fvj", &longest).await["playurl"],
        format!("http://127.0.0.1:9/rec/{longest}.mp4")
    );
    // An ordinary name, and its HLS playlist filling in the same recording.
    let name = format!("{stream}-1796000000");
    let path = format!("/var/rec/{name}.flv");
    let (status, _) = form_reply(
        &app,
        "/callback/nginx-rtmp",
        &[("call", "record_done"), ("name", &stream), ("path", &path)],
    )
    .await;
    assert_eq!(status, 200);
    let (_, v) = srs_reply(
        &app,
        &json!({"action":"on_dvr","app":"live","stream":stream,"file":format!("./objs/live/{name}.m3u8")}),
    )
    .await;
    assert_eq!(v, json!({"code":0}));
    let rec = recording_of(&app, "fvj", &name).await;
    assert_eq!(rec["playurl"], format!("http://127.0.0.1:9/rec/{name}.flv"));
    assert_eq!(
        rec["hls_play_url"],
        format!("http://127.0.0.1:9/rec/{name}.m3u8")
    );
    let mut want = vec![name.clone(), longest.clone(), "a_b_x_1_".to_string()];
    want.sort();
    // The list follows within a tick or so; wait for it rather than guess how long.
    let start = std::time::Instant::now();
    loop {
        let d = app.ok(json!({"Action":"FetchList","flag":2})).await;
        let mut ids: Vec<String> = d["pusherlist"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["fileid"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        if ids == want {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "recordings listed: {ids:?}, expected {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.stop().await;
});
