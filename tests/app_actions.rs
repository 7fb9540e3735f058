//! The Actions the real apps send beyond the core session: co-hosting (link-mic), short
//! videos, reports, stream mixing and the operators' moderation. Each test sends what the
//! app sends and reads the answer by the app's own rule. Tencent's live API cannot be
//! reached from here: a small local server stands in for it and checks every call's
//! signature as Tencent documents it.

mod common;

use base64::Engine;
use common::*;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ADMIN: &str = "operator-token-0123456789";
const PLAY_KEY: &str = "play-hotlink-key-abcdef";
const TENCENT_APPID: &str = "1252033264";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn query_of(url: &str) -> HashMap<String, String> {
    serde_urlencoded::from_str(url.split_once('?').map_or("", |(_, q)| q)).unwrap()
}

/// One call the stand-in received: its query and body.
#[derive(Debug, Clone)]
struct Received {
    query: HashMap<String, String>,
    body: String,
    /// Whether `sign = md5(api_key + t)` held and `t` was in the future.
    signed: bool,
}

/// Tencent's `common_access`, standing in: checks the signature, records the call and
/// answers as Tencent does (`Mix_StreamV2`: `{code, message, timestamp}`;
/// `Live_Channel_SetStatus`: `{ret, retcode, errmsg, message}`). `delay` holds every answer.
struct TencentStandIn {
    url: String,
    calls: Arc<Mutex<Vec<Received>>>,
    handle: actix_web::dev::ServerHandle,
}

impl TencentStandIn {
    async fn start(api_key: &str, delay: Duration) -> TencentStandIn {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        let calls: Arc<Mutex<Vec<Received>>> = Arc::default();
        let (key, seen) = (api_key.to_string(), calls.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (key, seen) = (key.clone(), seen.clone());
            App::new().route(
                "/common_access",
                web::to(move |req: HttpRequest, body: web::Bytes| {
                    let (key, seen) = (key.clone(), seen.clone());
                    async move {
                        tokio::time::sleep(delay).await;
                        let query: HashMap<String, String> =
                            serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
                        let t = query.get("t").cloned().unwrap_or_default();
                        let signed = query.get("sign") == Some(&md5_hex(&format!("{key}{t}")))
                            && t.parse::<i64>().is_ok_and(|t| t > now())
                            && query.get("appid").map(String::as_str) == Some(TENCENT_APPID);
                        let interface = query.get("interface").cloned().unwrap_or_default();
                        seen.lock().unwrap().push(Received {
                            query,
                            body: String::from_utf8_lossy(&body).into_owned(),
                            signed,
                        });
                        let answer = match (interface.as_str(), signed) {
                            ("Mix_StreamV2", true)
                                if serde_json::from_slice::<Value>(&body)
                                    .is_ok_and(|v| v.is_object()) =>
                            {
                                json!({"code":0,"message":"Success!","timestamp":now()})
                            }
                            ("Mix_StreamV2", true) => {
                                json!({"code":-2,"message":"body is not JSON","timestamp":now()})
                            }
                            ("Mix_StreamV2", false) => {
                                json!({"code":-1,"message":"sign error","timestamp":now()})
                            }
                            (_, true) => json!({"ret":0,"retcode":0,"errmsg":"","message":""}),
                            (_, false) => {
                                json!({"ret":-1,"retcode":-1,"errmsg":"sign error","message":"sign error"})
                            }
                        };
                        HttpResponse::Ok().json(answer)
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        TencentStandIn {
            url: format!("http://127.0.0.1:{port}/common_access"),
            calls,
            handle,
        }
    }

    fn calls(&self) -> Vec<Received> {
        self.calls.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn nginx_publish(app: &TestApp, push_url: &str) -> u16 {
    let q = query_of(push_url);
    let stream = push_url
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let fields = [
        ("call", "publish"),
        ("app", "live"),
        ("name", stream),
        ("addr", "127.0.0.1"),
        ("txSecret", q["txSecret"].as_str()),
        ("txTime", q["txTime"].as_str()),
    ];
    app.client
        .post(app.url("/callback/nginx-rtmp"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

suite_test!(a_cohost_gets_a_stream_and_signed_play_urls, |db| {
    let mut cfg = test_config(db);
    cfg.live.play_key = minilvb::config::Secret::new(PLAY_KEY);
    let app = spawn_app(cfg).await;

    // RequestLVBAddrForLinkMic, as the 3.7 app sends it.
    let d = app
        .ok(
            json!({"Action":"RequestLVBAddrForLinkMic","userid":"cohost1","title":"",
            "userinfo":{"nickname":"观众一","headpic":"","frontcover":"","location":""}}),
        )
        .await;
    let push = d["pushurl"].as_str().unwrap().to_string();
    let playurl = d["playurl"].as_str().unwrap().to_string();
    assert!(d["timestamp"].as_i64().unwrap() >= now() - 5, "{d}");
    let q = query_of(&push);
    let stream = format!("{BIZID}_cohost1_{}", q["txTime"]);
    assert!(
        push.starts_with(&format!(
            "rtmp://{BIZID}.livepush.myqcloud.com/live/{stream}?"
        )),
        "{push}"
    );
    assert_eq!(
        q["txSecret"],
        minilvb::sign::push::tx_secret(PUSH_KEY, &stream, &q["txTime"])
    );
    assert_eq!(q["bizid"], BIZID);
    assert_eq!(
        playurl,
        format!("rtmp://{BIZID}.liveplay.myqcloud.com/live/{stream}")
    );
    assert!(apps::live_playable(&d), "{d}");
    // A self-hosted media server admits the co-host's publish on that URL.
    assert_eq!(nginx_publish(&app, &push).await, 200);

    // The VJ is live: the co-host asks for the VJ's stream, signed with the play key.
    app.go_live("vj1").await;
    let origin = app.info("vj1").await["playurl"]
        .as_str()
        .unwrap()
        .to_string();
    let d = app
        .ok(
            json!({"Action":"RequestPlayUrlWithSignForLinkMic","userid":"cohost1",
            "originStreamUrl":origin}),
        )
        .await;
    let signed = d["streamUrlWithSignature"].as_str().unwrap();
    assert!(signed.starts_with(&format!("{origin}?")), "{signed}");
    let sq = query_of(signed);
    let vj_stream = format!("{BIZID}_vj1");
    assert_eq!(
        sq["txSecret"],
        minilvb::sign::push::tx_secret(PLAY_KEY, &vj_stream, &sq["txTime"])
    );
    // Not a push signature: the push key signs nothing here.
    assert_ne!(
        sq["txSecret"],
        minilvb::sign::push::tx_secret(PUSH_KEY, &vj_stream, &sq["txTime"])
    );
    assert_eq!(sq["bizid"], BIZID);
    assert!(d["timestamp"].is_i64());
    // And the VJ asks for the co-host's stream.
    let d = app
        .ok(
            json!({"Action":"RequestPlayUrlWithSignForLinkMic","userid":"vj1",
            "originStreamUrl":playurl}),
        )
        .await;
    let cq = query_of(d["streamUrlWithSignature"].as_str().unwrap());
    assert_eq!(
        cq["txSecret"],
        minilvb::sign::push::tx_secret(PLAY_KEY, &stream, &cq["txTime"])
    );

    // Streams this server did not issue, or that are not live, are not signed.
    let msg = app
        .err(
            json!({"Action":"RequestPlayUrlWithSignForLinkMic","userid":"cohost1",
            "originStreamUrl":format!("rtmp://x/live/{BIZID}_stranger")}),
            601,
        )
        .await;
    assert!(msg.contains("is not live"), "{msg}");
    app.ok(json!({"Action":"ChangeStatus","userid":"vj1","status":1}))
        .await;
    app.err(
        json!({"Action":"RequestPlayUrlWithSignForLinkMic","userid":"cohost1",
            "originStreamUrl":origin}),
        601,
    )
    .await;
    let msg = app
        .err(
            json!({"Action":"RequestPlayUrlWithSignForLinkMic","userid":"cohost1",
            "originStreamUrl":"not a url"}),
            602,
        )
        .await;
    assert!(msg.contains("originStreamUrl"), "{msg}");
    app.stop().await;

    // Without a play key nothing is signed, whatever the push key.
    let app = spawn_app(test_config(db)).await;
    app.go_live("vj2").await;
    let msg = app
        .err(
            json!({"Action":"RequestPlayUrlWithSignForLinkMic","userid":"c",
            "originStreamUrl":format!("rtmp://x/live/{BIZID}_vj2")}),
            500,
        )
        .await;
    assert!(msg.contains("live.play_key"), "{msg}");
    app.stop().await;
});

suite_test!(a_vod_upload_signature_recomputes_with_the_key, |db| {
    let app = spawn_app(test_config(db)).await;
    let msg = app
        .err(json!({"Action":"GetVodSignatureV2","userid":"u1"}), 500)
        .await;
    assert!(msg.contains("vod.secret_id"), "{msg}");
    app.stop().await;

    let mut cfg = test_config(db);
    cfg.vod.secret_id = "AKIDvodSecretId".into();
    cfg.vod.secret_key = minilvb::config::Secret::new("vod-secret-key");
    cfg.vod.procedure = "XIAOZHIBO-DEFAULT".into();
    let app = spawn_app(cfg).await;
    let before = now();
    let d = app
        .ok(json!({"Action":"GetVodSignatureV2","userid":"u1"}))
        .await;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(d["signature"].as_str().unwrap())
        .unwrap();
    let (digest, original) = raw.split_at(20);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"vod-secret-key").unwrap();
    mac.update(original);
    mac.verify_slice(digest)
        .expect("HMAC-SHA1 of the query with the VOD key");
    let text = std::str::from_utf8(original).unwrap();
    let names: Vec<&str> = text
        .split('&')
        .map(|p| p.split('=').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "secretId",
            "currentTimeStamp",
            "expireTime",
            "procedure",
            "random"
        ]
    );
    let q: HashMap<String, String> = serde_urlencoded::from_str(text).unwrap();
    assert_eq!(q["secretId"], "AKIDvodSecretId");
    assert_eq!(q["procedure"], "XIAOZHIBO-DEFAULT");
    let t: i64 = q["currentTimeStamp"].parse().unwrap();
    assert!((before..=now()).contains(&t), "{text}");
    assert_eq!(q["expireTime"].parse::<i64>().unwrap(), t + 86_400);
    assert!(!text.contains("vod-secret-key"));
    app.stop().await;
});

suite_test!(short_videos_list_newest_first_and_play_in_every_app, |db| {
    let mut cfg = test_config(db);
    cfg.limits.max_videos_per_user = 2;
    let app = spawn_app(cfg).await;
    let upload = |userid: &str, file: &str, title: &str| {
        json!({"Action":"UploadUGCVideo","userid":userid,"file_id":file,"title":title,
            "play_url":format!("http://1252033264.vod2.myqcloud.com/v/{file}.mp4"),
            "userinfo":{"nickname":format!("{userid} 的昵称"),"headpic":"http://h/p.png",
                "frontcover":"http://h/c.jpg","location":"深圳"}})
    };
    // Nothing yet: flag 5 is an empty list, not an unknown flag.
    let d = app.ok(json!({"Action":"FetchList","flag":5})).await;
    assert_eq!(d, json!({"totalcount":0,"pusherlist":[]}));
    app.ok(upload("ugc1", "f1", "first")).await;
    app.ok(upload("ugc2", "f2", "second")).await;
    app.ok(upload("ugc1", "f3", "third")).await;
    // The bound: a third video of one user is refused, a repeat of one replaces it.
    let msg = app.err(upload("ugc1", "f4", "fourth"), 602).await;
    assert!(msg.contains("2 short videos"), "{msg}");
    app.ok(upload("ugc1", "f1", "first, again")).await;
    let msg = app
        .err(
            json!({"Action":"UploadUGCVideo","userid":"ugc3","file_id":"f9",
            "play_url":"javascript:alert(1)"}),
            602,
        )
        .await;
    assert!(msg.contains("play_url"), "{msg}");

    let d = app
        .ok(json!({"Action":"FetchList","flag":5,"pageno":1,"pagesize":2}))
        .await;
    assert_eq!(d["totalcount"], 3, "{d}");
    let items = d["pusherlist"].as_array().unwrap();
    let files: Vec<&str> = items
        .iter()
        .map(|i| i["fileid"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["f1", "f3"], "newest first: {d}");
    let d2 = app
        .ok(json!({"Action":"FetchList","flag":5,"pageno":2,"pagesize":2}))
        .await;
    assert_eq!(d2["pusherlist"][0]["fileid"], "f2", "{d2}");
    let v = &items[0];
    assert_eq!(v["type"], 2);
    assert_eq!(v["title"], "first, again");
    assert_eq!(v["userid"], "ugc1");
    assert_eq!(v["userinfo"]["nickname"], "ugc1 的昵称");
    assert_eq!(v["userinfo"]["location"], "深圳");
    assert!(v["timestamp"].as_i64().unwrap() >= now() - 60);
    // The apps' rules: type 2 plays `playurl` on Android 3.7 (http(s) with .flv, .m3u8
    // or .mp4); both URL fields carry it, as for a recording.
    assert_eq!(v["playurl"], "http://1252033264.vod2.myqcloud.com/v/f1.mp4");
    assert!(apps::recording_refused_by(v)
        .iter()
        .all(|a| *a == "android 2017"));

    // GetUserInfo type 2: one video, by file id or the user's newest.
    let one = app
        .ok(json!({"Action":"GetUserInfo","userid":"ugc1","type":2,"fileid":"f3"}))
        .await;
    assert_eq!(one["fileid"], "f3");
    assert_eq!(one["type"], 2);
    let newest = app
        .ok(json!({"Action":"GetUserInfo","userid":"ugc1","type":2}))
        .await;
    assert_eq!(newest["fileid"], "f1");
    app.err(
        json!({"Action":"GetUserInfo","userid":"ugc9","type":2}),
        620,
    )
    .await;
    // Short videos are not rooms: the live and recording lists do not show them.
    let d = app.ok(json!({"Action":"FetchList","flag":3})).await;
    assert_eq!(d["totalcount"], 0, "{d}");
    app.stop().await;
});

suite_test!(reports_are_kept_bounded_and_shown_to_operators, |db| {
    let mut cfg = test_config(db);
    cfg.limits.max_reports_per_user = 2;
    cfg.admin.token = minilvb::config::Secret::new(ADMIN);
    let app = spawn_app(cfg).await;
    let report =
        |from: &str, vj: &str| json!({"Action":"ReportUser","userid":from,"hostuserid":vj});
    app.ok(report("viewer1", "badvj")).await;
    app.ok(report("viewer1", "badvj")).await;
    app.ok(report("viewer2", "badvj")).await;
    app.ok(report("viewer1", "othervj")).await;
    let msg = app.err(report("viewer1", "thirdvj"), 602).await;
    assert!(msg.contains("already reported 2"), "{msg}");
    // A repeat of a VJ already reported is still counted.
    app.ok(report("viewer1", "othervj")).await;
    app.err(report("viewer1", "viewer1"), 602).await;

    let moderation = |bearer: Option<&str>| {
        let mut r = app.client.get(app.url("/dashboard/moderation"));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        async move {
            let resp = r.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    // Operators only, in every auth mode (this server runs with auth off).
    let (status, v) = moderation(None).await;
    assert_eq!((status, v["returnValue"].as_i64()), (401, Some(498)), "{v}");
    assert_eq!(moderation(Some("wrong")).await.0, 403);
    let (status, v) = moderation(Some(ADMIN)).await;
    assert_eq!(status, 200, "{v}");
    let reports = v["returnData"]["reports"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(reports.len(), 2, "{v}");
    assert_eq!(reports[0]["userid"], "badvj");
    assert_eq!(reports[0]["reporters"], 2);
    assert_eq!(reports[0]["reports"], 3);
    assert_eq!(reports[1]["userid"], "othervj");
    assert_eq!(reports[1]["reports"], 2);
    assert_eq!(v["returnData"]["bans"], json!([]));
    app.stop().await;
});

suite_test!(
    moderation_needs_the_admin_token_and_a_ban_holds_everywhere,
    |db| {
        // Without an admin token moderation is off, whatever the auth mode.
        let app = spawn_app(test_config(db)).await;
        app.go_live("vjx").await;
        let msg = app
            .err(json!({"Action":"StopLVB","userid":"vjx"}), 498)
            .await;
        assert!(msg.contains("admin.token"), "{msg}");
        assert_eq!(app.info("vjx").await["status"], "1");
        app.stop().await;

        let tencent = TencentStandIn::start(API_KEY, Duration::ZERO).await;
        let mut cfg = test_config(db);
        cfg.admin.token = minilvb::config::Secret::new(ADMIN);
        cfg.live.appid = TENCENT_APPID.into();
        cfg.live.api_url = tencent.url.clone();
        let app = spawn_app(cfg).await;
        let stop = json!({"Action":"StopLVB","userid":"vjx"});
        app.err(stop.clone(), 498).await;
        let mut wrong = stop.clone();
        wrong["token"] = json!("not-the-token");
        let msg = app.err(wrong, 498).await;
        assert_eq!(msg, "the admin token is not valid");
        assert!(!msg.contains(ADMIN));

        // StopLVB ends the broadcast now and drops the stream at Tencent (status 2).
        let push_x = app.broadcast("vjx").await;
        assert_eq!(nginx_publish(&app, &push_x).await, 200);
        assert_eq!(app.info("vjx").await["status"], "1");
        let mut stop = stop;
        stop["token"] = json!(ADMIN);
        let d = app.ok(stop.clone()).await;
        assert_eq!(
            d,
            json!({"result":0,"ended":true,"cut":["tencent"],"failed":[]})
        );
        assert_eq!(app.info("vjx").await["status"], "0");
        let d = app.ok(json!({"Action":"FetchList","flag":1})).await;
        assert_eq!(d["totalcount"], 0, "{d}");
        // The SDK reconnects on its own: the stopped broadcast's URL is refused, and the app
        // cannot say it is online again, until the VJ starts a new broadcast.
        assert_eq!(nginx_publish(&app, &push_x).await, 403);
        let msg = app
            .err(
                json!({"Action":"ChangeStatus","userid":"vjx","status":0}),
                498,
            )
            .await;
        assert!(msg.contains("ended by an operator"), "{msg}");
        assert_eq!(app.info("vjx").await["status"], "0");
        // Again: nothing is live, and that is no error.
        let d = app.ok(stop).await;
        assert_eq!(d["ended"], false);
        let push_x = app.broadcast("vjx").await;
        assert_eq!(nginx_publish(&app, &push_x).await, 200);
        assert_eq!(app.info("vjx").await["status"], "1");

        // ForbidLive 1: the VJ gets no push URL, cannot go online, and a push URL issued
        // before is refused by the media-server hook.
        let push = app.broadcast("vjb").await;
        app.ok(json!({"Action":"ChangeStatus","userid":"vjb","status":0}))
            .await;
        // Its co-host stream goes with it.
        let cohost = app
            .ok(json!({"Action":"RequestLVBAddrForLinkMic","userid":"vjb"}))
            .await["pushurl"]
            .as_str()
            .unwrap()
            .to_string();
        let cohost_stream = cohost
            .split('?')
            .next()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let ban = |flag: i64| json!({"Action":"ForbidLive","userid":"vjb","forbidflag":flag,"token":ADMIN});
        let d = app.ok(ban(1)).await;
        assert_eq!(
            d,
            json!({"result":0,"ended":true,"cut":["tencent","tencent"],"failed":[]})
        );
        assert_eq!(nginx_publish(&app, &cohost).await, 403);
        assert_eq!(app.info("vjb").await["status"], "0");
        let msg = app
            .err(
                json!({"Action":"RequestLVBAddr","userid":"vjb","groupid":"g","title":"t"}),
                498,
            )
            .await;
        assert!(msg.contains("banned"), "{msg}");
        app.err(
            json!({"Action":"ChangeStatus","userid":"vjb","status":0}),
            498,
        )
        .await;
        app.err(
            json!({"Action":"RequestLVBAddrForLinkMic","userid":"vjb"}),
            498,
        )
        .await;
        assert_eq!(nginx_publish(&app, &push).await, 403);
        let (status, v) = {
            let r = app
                .client
                .get(app.url("/dashboard/moderation"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        };
        assert_eq!(status, 200);
        assert_eq!(v["returnData"]["bans"][0]["userid"], "vjb", "{v}");

        // ForbidLive 0 lifts it.
        let d = app.ok(ban(0)).await;
        assert_eq!(
            d,
            json!({"result":0,"ended":false,"cut":["tencent"],"failed":[]})
        );
        let push = app.broadcast("vjb").await;
        assert_eq!(nginx_publish(&app, &push).await, 200);
        assert_eq!(app.info("vjb").await["status"], "1");

        // What Tencent was told, every call signed: drop vjx, disable vjb, enable vjb.
        let calls = tencent.calls();
        let seen: Vec<(String, String, String)> = calls
            .iter()
            .map(|c| {
                assert!(c.signed, "unsigned call {c:?}");
                (
                    c.query["interface"].clone(),
                    c.query["Param.s.channel_id"].clone(),
                    c.query["Param.n.status"].clone(),
                )
            })
            .collect();
        let call = |s: &str, n: &str| {
            (
                "Live_Channel_SetStatus".to_string(),
                format!("{BIZID}_{s}"),
                n.to_string(),
            )
        };
        assert_eq!(
            seen,
            [
                call("vjx", "2"),
                call("vjx", "2"),
                call("vjb", "0"),
                (
                    "Live_Channel_SetStatus".to_string(),
                    cohost_stream.clone(),
                    "0".to_string()
                ),
                call("vjb", "1")
            ]
        );
        app.stop().await;
        tencent.stop().await;
    }
);

/// POSTs a body as the 3.7 app's stream-mix request does: `Content-Type: text/plain`.
async fn send(app: &TestApp, body: Value) -> Value {
    let r = app
        .client
        .post(app.url("/interface.php"))
        .header("content-type", "text/plain; charset=utf-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()
}

suite_test!(
    stream_mixing_goes_signed_to_the_mix_api_and_back_as_the_app_reads_it,
    |db| {
        let tencent = TencentStandIn::start(API_KEY, Duration::ZERO).await;
        let mut cfg = test_config(db);
        cfg.live.appid = TENCENT_APPID.into();
        cfg.live.api_url = tencent.url.clone();
        let app = spawn_app(cfg).await;
        // Mixing is into the caller's current broadcast.
        let v = send(
            &app,
            json!({"Action":"MergeVideoStream","userid":"mixvj","mergeparams":{"interface":{
                "interfaceName":"Mix_StreamV2","para":{"interface":"mix_streamv2.cancel_mix_stream",
                "mix_stream_session_id":format!("{BIZID}_mixvj"),"output_stream_id":format!("{BIZID}_mixvj")}}}}),
        )
        .await;
        assert_eq!(v["returnValue"], 601, "{v}");
        app.broadcast("mixvj").await;
        let own = format!("{BIZID}_mixvj");
        // The 3.7 app's request: its own mix parameters, sent as text/plain.
        let mergeparams = json!({"timestamp":now(),"eventId":now(),"interface":{
        "interfaceName":"Mix_StreamV2","para":{"app_id":TENCENT_APPID,
        "interface":"mix_streamv2.start_mix_stream_advanced","mix_stream_session_id":own,
        "output_stream_id":own,"input_stream_list":[
            {"input_stream_id":own,"layout_params":{"image_layer":1}},
            {"input_stream_id":format!("{BIZID}_cohost_5C271099"),"layout_params":{"image_layer":2}}]}}});
        let v = send(
            &app,
            json!({"Action":"MergeVideoStream","userid":"mixvj","mergeparams":mergeparams}),
        )
        .await;
        assert_eq!(v["returnValue"], 0, "{v}");
        // The app's rule: returnData.msg is a JSON string carrying the mix service's code.
        let msg: Value = serde_json::from_str(v["returnData"]["msg"].as_str().unwrap()).unwrap();
        assert_eq!(msg["code"], 0, "{msg}");
        let calls = tencent.calls();
        assert_eq!(calls.len(), 1);
        assert!(calls[0].signed, "{:?}", calls[0]);
        assert_eq!(calls[0].query["interface"], "Mix_StreamV2");
        let forwarded: Value = serde_json::from_str(&calls[0].body).unwrap();
        assert_eq!(forwarded, mergeparams);
        // Given as a string holding the JSON, the same.
        let v = send(&app, json!({"Action":"MergeVideoStream","userid":"mixvj","mergeparams":mergeparams.to_string()}))
        .await;
        assert_eq!(v["returnValue"], 0, "{v}");

        // Only what the app does, into the caller's own stream: every other shape is refused.
        let refused: [(&str, Value); 6] = [
            ("output_stream_id", json!(format!("{BIZID}_victim"))),
            ("output_stream_id", Value::Null),
            ("mix_stream_session_id", json!(7)),
            ("mix_stream_session_id", Value::Null),
            ("interface", json!("mix_streamv2.something_else")),
            ("interface", Value::Null),
        ];
        for (field, value) in refused {
            let mut other = mergeparams.clone();
            let para = other["interface"]["para"].as_object_mut().unwrap();
            if value.is_null() {
                para.remove(field);
            } else {
                para.insert(field.into(), value);
            }
            let v = send(
                &app,
                json!({"Action":"MergeVideoStream","userid":"mixvj","mergeparams":other}),
            )
            .await;
            assert_eq!(v["returnValue"], 602, "{field}: {v}");
        }
        let mut other = mergeparams.clone();
        other["interface"]["interfaceName"] = json!("Live_Channel_SetStatus");
        let v = send(
            &app,
            json!({"Action":"MergeVideoStream","userid":"mixvj","mergeparams":other}),
        )
        .await;
        assert_eq!(v["returnValue"], 602, "{v}");
        let v = send(
            &app,
            json!({"Action":"MergeVideoStream","userid":"mixvj","mergeparams":"{not json"}),
        )
        .await;
        assert_eq!(v["returnValue"], 602, "{v}");
        assert_eq!(tencent.calls().len(), 2, "refused requests reach no one");
        app.stop().await;

        // A wrong API key: Tencent's refusal reaches the app in `msg`, as its code.
        let mut cfg = test_config(db);
        cfg.live.appid = TENCENT_APPID.into();
        cfg.live.api_key = minilvb::config::Secret::new("a-different-key");
        cfg.live.api_url = tencent.url.clone();
        let app = spawn_app(cfg).await;
        let v = send(
            &app,
            json!({"Action":"MergeVideoStream","userid":"mixvj","mergeparams":mergeparams}),
        )
        .await;
        let msg: Value = serde_json::from_str(v["returnData"]["msg"].as_str().unwrap()).unwrap();
        assert_eq!(msg["code"], -1, "{msg}");
        app.stop().await;
        tencent.stop().await;

        // A mix API that does not answer: a bounded wait, then a retryable error.
        let slow = TencentStandIn::start(API_KEY, Duration::from_secs(30)).await;
        let mut cfg = test_config(db);
        cfg.live.appid = TENCENT_APPID.into();
        cfg.live.api_url = slow.url.clone();
        cfg.live.api_timeout_ms = 300;
        let app = spawn_app(cfg).await;
        let started = std::time::Instant::now();
        let v = send(
            &app,
            json!({"Action":"MergeVideoStream","userid":"mixvj","mergeparams":mergeparams}),
        )
        .await;
        assert_eq!(v["returnValue"], 500, "{v}");
        assert!(
            v["returnMsg"]
                .as_str()
                .unwrap()
                .contains("did not answer in time"),
            "{v}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        app.stop().await;
        drop(slow);

        // Not configured: said so.
        let app = spawn_app(test_config(db)).await;
        let v = send(
            &app,
            json!({"Action":"MergeVideoStream","userid":"mixvj","mergeparams":mergeparams}),
        )
        .await;
        assert_eq!(v["returnValue"], 500, "{v}");
        assert!(
            v["returnMsg"].as_str().unwrap().contains("live.appid"),
            "{v}"
        );
        app.stop().await;
    }
);

suite_test!(
    with_auth_on_the_new_actions_act_only_as_their_caller,
    |db| {
        let mut cfg = test_config(db);
        cfg.auth.mode = minilvb::config::AuthMode::Required;
        cfg.live.play_key = minilvb::config::Secret::new(PLAY_KEY);
        cfg.vod.secret_id = "AKIDvod".into();
        cfg.vod.secret_key = minilvb::config::Secret::new("vod-key");
        let app = spawn_app(cfg).await;
        let mut tokens = HashMap::new();
        for u in ["owner1", "other1"] {
            let pw = "correct horse 1";
            app.ok(json!({"Action":"Register","userid":u,"password":pw}))
                .await;
            let t = app
                .ok(json!({"Action":"Login","userid":u,"password":pw}))
                .await["token"]
                .as_str()
                .unwrap()
                .to_string();
            tokens.insert(u, t);
        }
        let as_owner = |mut body: Value, token: Option<&str>| {
            if let Some(t) = token {
                body["token"] = json!(t);
            }
            body
        };
        let bodies = [
            json!({"Action":"RequestLVBAddrForLinkMic","userid":"owner1"}),
            json!({"Action":"RequestPlayUrlWithSignForLinkMic","userid":"owner1","originStreamUrl":"rtmp://h/live/x"}),
            json!({"Action":"UploadUGCVideo","userid":"owner1","file_id":"f","play_url":"http://v/f.mp4"}),
            json!({"Action":"ReportUser","userid":"owner1","hostuserid":"vj"}),
            json!({"Action":"MergeVideoStream","userid":"owner1","mergeparams":{}}),
        ];
        for body in &bodies {
            // No token, and another user's token: refused before anything is done.
            app.err(as_owner(body.clone(), None), 498).await;
            let msg = app
                .err(as_owner(body.clone(), Some(&tokens["other1"])), 498)
                .await;
            assert!(msg.contains("owner1"), "{body}: {msg}");
        }
        // A logged-in user only for the upload signature.
        app.err(json!({"Action":"GetVodSignatureV2"}), 498).await;
        app.ok(json!({"Action":"GetVodSignatureV2","token":tokens["other1"]}))
            .await;
        // The owner's own token works.
        app.ok(as_owner(bodies[0].clone(), Some(&tokens["owner1"])))
            .await;
        app.ok(as_owner(bodies[2].clone(), Some(&tokens["owner1"])))
            .await;
        app.ok(as_owner(bodies[3].clone(), Some(&tokens["owner1"])))
            .await;
        // Moderation needs the admin token, not a user's.
        app.err(
            json!({"Action":"StopLVB","userid":"owner1","token":tokens["owner1"]}),
            498,
        )
        .await;
        app.stop().await;
    }
);

suite_test!(
    an_expired_cohost_stream_is_neither_signed_nor_admitted,
    |db| {
        let mut cfg = test_config(db);
        cfg.live.play_key = minilvb::config::Secret::new(PLAY_KEY);
        // Push URLs valid for one second: the co-host stream's expires at once.
        cfg.live.url_validity_secs = 1;
        let app = spawn_app(cfg).await;
        let d = app
            .ok(json!({"Action":"RequestLVBAddrForLinkMic","userid":"brief1"}))
            .await;
        let push = d["pushurl"].as_str().unwrap().to_string();
        let playurl = d["playurl"].as_str().unwrap().to_string();
        // Wait until the push URL's expiry (txTime) is in the past, as the server's clock says.
        let expiry = i64::from_str_radix(&query_of(&push)["txTime"], 16).unwrap();
        while now() <= expiry {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        app.err(
        json!({"Action":"RequestPlayUrlWithSignForLinkMic","userid":"x","originStreamUrl":playurl}),
        601,
    )
    .await;
        assert_eq!(nginx_publish(&app, &push).await, 403);
        app.stop().await;
    }
);
