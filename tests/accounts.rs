//! Accounts and access control over real HTTP: Register, Login, Refresh, every error code,
//! who may act as whom, token expiry/rotation/revocation, throttles, the IM UserSig, and
//! that no password or token ever reaches the logs.

mod common;

use common::*;
use minilvb::config::AuthMode;
use minilvb::Config;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const IM_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const IM_APPID: u64 = 1400000000;
const PW: &str = "correct horse 1";

fn config(db: &TestDb) -> Config {
    let mut c = test_config(db);
    c.auth.mode = AuthMode::Required;
    // The tests register a few users each; only the throttle test needs a tight limit.
    c.auth.register_per_addr = 1000;
    c
}

/// POSTs with `Authorization: Bearer <token>`; returns the envelope.
async fn call_as(app: &TestApp, token: &str, body: Value) -> Value {
    let resp = app
        .client
        .post(app.url("/interface.php"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn ok_as(app: &TestApp, token: &str, body: Value) -> Value {
    let v = call_as(app, token, body.clone()).await;
    assert_eq!(v["returnValue"], 0, "{body} answered {v}");
    v["returnData"].clone()
}

/// Asserts 498 and that the message does not echo the token.
async fn refused_as(app: &TestApp, token: &str, body: Value) -> String {
    let v = call_as(app, token, body.clone()).await;
    assert_eq!(v["returnValue"], 498, "{body} answered {v}");
    assert_eq!(v["returnData"], json!({}));
    let m = v["returnMsg"].as_str().unwrap().to_string();
    assert!(token.is_empty() || !m.contains(token), "{m}");
    m
}

/// A revoked token is refused: at once on one node; in a cluster, on every node within a
/// bound (the revocation reaches the other nodes' caches of verified tokens through Redis).
async fn refused_soon_as(app: &TestApp, token: &str, body: Value) {
    if !in_cluster() {
        refused_as(app, token, body).await;
        return;
    }
    for node in app.nodes() {
        let t = std::time::Instant::now();
        loop {
            let v = call_as(node, token, body.clone()).await;
            if v["returnValue"] == 498 {
                break;
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(2),
                "node {} still accepts a revoked token: {v}",
                node.port
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

async fn register(app: &TestApp, userid: &str, password: &str) {
    let d = app
        .ok(json!({"Action":"Register","userid":userid,"password":password}))
        .await;
    assert_eq!(d, json!({}));
}

/// Logs in; returns (token, refresh_token, whole answer).
async fn login(app: &TestApp, userid: &str, password: &str) -> (String, String, Value) {
    let d = app
        .ok(json!({"Action":"Login","userid":userid,"password":password}))
        .await;
    tokens_of(d)
}

fn tokens_of(d: Value) -> (String, String, Value) {
    (
        d["token"].as_str().expect("token").to_string(),
        d["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_string(),
        d,
    )
}

async fn refresh(app: &TestApp, userid: &str, rt: &str) -> Value {
    app.call(json!({"Action":"Refresh","userid":userid,"refresh_token":rt}))
        .await
}

fn lvb(userid: &str) -> Value {
    json!({"Action":"RequestLVBAddr","userid":userid,"groupid":format!("g_{userid}"),"title":"t"})
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

suite_test!(register_codes_610_611_612, |db| {
    let app = spawn_app(config(db)).await;
    for bad in [
        "abc",
        "1abcd",
        "_abcd",
        "ab.cd",
        "abc d",
        "abcdefghijklmnopqrstuvwxy",
        "用户名字",
    ] {
        let m = app
            .err(json!({"Action":"Register","userid":bad,"password":PW}), 610)
            .await;
        assert!(m.contains("'userid'"), "{m}");
    }
    for bad in ["short12", &"x".repeat(65), "tab\tinside", "pässwörd12"] {
        let m = app
            .err(
                json!({"Action":"Register","userid":"alice","password":bad}),
                611,
            )
            .await;
        assert!(m.contains("'password'") && !m.contains(bad), "{m}");
    }
    register(&app, "alice", PW).await;
    register(&app, "Alice", PW).await; // userids are case-sensitive, as everywhere
    register(&app, "a_23", &"~".repeat(64)).await;
    let m = app
        .err(
            json!({"Action":"Register","userid":"alice","password":"another password"}),
            612,
        )
        .await;
    assert!(
        m.contains("alice") && !m.contains("another password"),
        "{m}"
    );
    // Missing fields are still 602.
    app.err(json!({"Action":"Register","userid":"bob"}), 602)
        .await;
    app.stop().await;
});

suite_test!(login_codes_620_621_and_answer, |db| {
    let app = spawn_app(config(db)).await;
    register(&app, "alice", PW).await;
    app.err(
        json!({"Action":"Login","userid":"nobody","password":PW}),
        620,
    )
    .await;
    app.err(
        json!({"Action":"Login","userid":"no.such","password":PW}),
        620,
    )
    .await;
    let m = app
        .err(
            json!({"Action":"Login","userid":"alice","password":"not my password"}),
            621,
        )
        .await;
    assert!(!m.contains("not my password"), "{m}");
    // A password that breaks the rules cannot be right.
    app.err(
        json!({"Action":"Login","userid":"alice","password":"x"}),
        621,
    )
    .await;
    let (t, r, d) = login(&app, "alice", PW).await;
    let o = d.as_object().unwrap();
    assert_eq!(o.len(), 4, "{d}");
    assert_eq!(d["expires"], 7200);
    assert_eq!(t.len(), 43);
    assert_eq!(r.len(), 43);
    assert_ne!(t, r);
    let im = d["im"].as_object().unwrap();
    assert_eq!(im.len(), 3, "{d}");
    assert_eq!(d["im"]["sdkappid"], IM_APPID);
    assert_eq!(d["im"]["userid"], "alice");
    // Every login is a new session.
    let (t2, r2, _) = login(&app, "alice", PW).await;
    assert!(t2 != t && r2 != r);
    app.stop().await;
});

suite_test!(login_usersig_decodes_and_its_hmac_recomputes, |db| {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use hmac::{Hmac, Mac};
    use minilvb::sign::usersig;
    // The PROTOCOL.md section 4 vector.
    assert_eq!(
        usersig::tls_sig(IM_KEY, "xiaojun", IM_APPID, 1600000000, 15552000),
        "1Z5PngDjGaufeSiPoBuxdHY7EK3JTdAjMP93S4KvV3M="
    );
    let app = spawn_app(config(db)).await;
    register(&app, "alice_1", PW).await;
    let before = now();
    let (_, _, d) = login(&app, "alice_1", PW).await;
    let after = now();
    let sig = d["im"]["usersig"].as_str().unwrap();
    assert!(!sig.is_empty() && !sig.contains(['+', '/', '=']), "{sig}");
    let dec = usersig::decode(sig).expect("usersig decodes");
    assert_eq!(dec.ver, "2.0");
    assert_eq!(dec.identifier, "alice_1");
    assert_eq!(dec.sdkappid, IM_APPID);
    assert_eq!(dec.expire, 15_552_000);
    assert!(dec.time >= before && dec.time <= after, "{dec:?}");
    // Recompute the HMAC from the documented content, independently of the crate.
    let content = format!(
        "TLS.identifier:alice_1\nTLS.sdkappid:{IM_APPID}\nTLS.time:{}\nTLS.expire:15552000\n",
        dec.time
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(IM_KEY.as_bytes()).unwrap();
    mac.update(content.as_bytes());
    assert_eq!(dec.sig, STANDARD.encode(mac.finalize().into_bytes()));
    let v = usersig::verify(IM_KEY, sig, now()).expect("usersig verifies");
    assert_eq!(v, dec);
    assert!(usersig::verify("another key", sig, now()).is_err());
    // Refresh answers a fresh one too.
    let r = d["refresh_token"].as_str().unwrap();
    let d2 = refresh(&app, "alice_1", r).await;
    assert_eq!(d2["returnValue"], 0, "{d2}");
    let v2 = usersig::verify(
        IM_KEY,
        d2["returnData"]["im"]["usersig"].as_str().unwrap(),
        now(),
    )
    .unwrap();
    assert_eq!(v2.identifier, "alice_1");
    app.stop().await;
});

suite_test!(login_without_im_answers_an_empty_usersig, |db| {
    let mut c = config(db);
    c.im.sdkappid = 0;
    let app = spawn_app(c).await;
    register(&app, "alice", PW).await;
    let (_, _, d) = login(&app, "alice", PW).await;
    assert_eq!(d["im"], json!({"sdkappid":0,"userid":"alice","usersig":""}));
    app.stop().await;
});

suite_test!(a_user_acts_only_as_themselves, |db| {
    let app = spawn_app(config(db)).await;
    register(&app, "alice", PW).await;
    register(&app, "bob_1", PW).await;
    let (ta, _, _) = login(&app, "alice", PW).await;
    let (tb, _, _) = login(&app, "bob_1", PW).await;

    // RequestLVBAddr: no token, someone else's token, then the owner's.
    let m = app.err(lvb("alice"), 498).await;
    assert!(m.contains("token"), "{m}");
    let m = refused_as(&app, &tb, lvb("alice")).await;
    assert!(m.contains("alice"), "{m}");
    // The refused calls created no room.
    app.err(json!({"Action":"GetUserInfo","userid":"alice"}), 620)
        .await;
    let d = ok_as(&app, &ta, lvb("alice")).await;
    assert!(d["pushurl"].is_string());

    // ChangeStatus.
    let st = json!({"Action":"ChangeStatus","userid":"alice","status":0});
    app.err(st.clone(), 498).await;
    refused_as(&app, &tb, st.clone()).await;
    assert_eq!(app.info("alice").await["status"], "0");
    ok_as(&app, &ta, st.clone()).await;
    assert_eq!(app.info("alice").await["status"], "1");

    // EnterGroup: bob cannot put alice (or anyone else) in a room.
    let enter = |u: &str| json!({"Action":"EnterGroup","userid":u,"liveuserid":"alice","groupid":"g_alice","flag":0});
    app.err(enter("bob_1"), 498).await;
    refused_as(&app, &tb, enter("alice")).await;
    refused_as(&app, &tb, enter("mallory")).await;
    ok_as(&app, &tb, enter("bob_1")).await;
    let members = json!({"Action":"FetchGroupMemberList","liveuserid":"alice","groupid":"g_alice"});
    let d = app.ok(members.clone()).await;
    assert_eq!(d["totalcount"], 1, "{d}");
    assert_eq!(d["memberlist"][0]["userid"], "bob_1");

    // QuitGroup: alice cannot take bob out.
    let quit = json!({"Action":"QuitGroup","userid":"bob_1","liveuserid":"alice","groupid":"g_alice","flag":0});
    app.err(quit.clone(), 498).await;
    refused_as(&app, &ta, quit.clone()).await;
    assert_eq!(app.ok(members.clone()).await["totalcount"], 1);
    ok_as(&app, &tb, quit.clone()).await;
    assert_eq!(app.ok(members.clone()).await["totalcount"], 0);

    // The token may also come as a body field.
    let mut body = json!({"Action":"ChangeStatus","userid":"alice","status":1});
    app.err(body.clone(), 498).await;
    body["token"] = json!(tb);
    app.err(body.clone(), 498).await;
    body["token"] = json!(ta);
    app.ok(body).await;
    app.stop().await;
});

suite_test!(
    changecount_and_cossign_need_any_token_and_reads_are_public,
    |db| {
        let app = spawn_app(config(db)).await;
        register(&app, "alice", PW).await;
        register(&app, "bob_1", PW).await;
        let (ta, _, _) = login(&app, "alice", PW).await;
        let (tb, _, _) = login(&app, "bob_1", PW).await;
        ok_as(&app, &ta, lvb("alice")).await;
        let like = json!({"Action":"ChangeCount","userid":"alice","type":1,"optype":0,"flag":0});
        app.err(like.clone(), 498).await;
        refused_as(&app, &"A".repeat(43), like.clone()).await;
        ok_as(&app, &tb, like.clone()).await;
        ok_as(&app, &ta, like.clone()).await;
        assert_eq!(app.info("alice").await["likecount"], 2);
        let cos = json!({"Action":"GetCOSSign"});
        app.err(cos.clone(), 498).await;
        assert!(ok_as(&app, &tb, cos.clone()).await["sign"].is_string());
        // Public reads: no token needed.
        app.ok(json!({"Action":"FetchList","flag":3})).await;
        app.ok(json!({"Action":"GetUserInfo","userid":"alice","type":0}))
            .await;
        app.ok(json!({"Action":"FetchGroupMemberList","liveuserid":"alice","groupid":"g_alice"}))
            .await;
        app.stop().await;
    }
);

suite_test!(unknown_malformed_and_wrong_kind_tokens_are_refused, |db| {
    let app = spawn_app(config(db)).await;
    register(&app, "alice", PW).await;
    let (t, r, _) = login(&app, "alice", PW).await;
    let unknown = "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9";
    assert_eq!(unknown.len(), 43);
    for bad in [
        unknown,
        "garbage",
        &format!("{t}x"),
        &t[..42],
        r.as_str(), // a refresh token is not an access token
    ] {
        refused_as(&app, bad, lvb("alice")).await;
    }
    // An access token is not a refresh token; a refresh token of another user is refused.
    for (user, rt) in [("alice", t.as_str()), ("alice", unknown), ("alice", "x")] {
        let v = refresh(&app, user, rt).await;
        assert_eq!(v["returnValue"], 498, "{v}");
    }
    register(&app, "bob_1", PW).await;
    let v = refresh(&app, "bob_1", &r).await;
    assert_eq!(v["returnValue"], 498, "{v}");
    // ...and stays usable by its owner.
    let v = refresh(&app, "alice", &r).await;
    assert_eq!(v["returnValue"], 0, "{v}");
    ok_as(&app, &t, lvb("alice")).await;
    app.stop().await;
});

suite_test!(expired_tokens_are_refused, |db| {
    let mut c = config(db);
    c.auth.token_ttl_secs = 2;
    c.auth.refresh_ttl_secs = 2;
    let app = spawn_app(c).await;
    register(&app, "alice", PW).await;
    let (t, r, d) = login(&app, "alice", PW).await;
    assert_eq!(d["expires"], 2);
    ok_as(&app, &t, lvb("alice")).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    refused_as(&app, &t, lvb("alice")).await;
    let v = refresh(&app, "alice", &r).await;
    assert_eq!(v["returnValue"], 498, "{v}");
    // A new login works again.
    let (t, _, _) = login(&app, "alice", PW).await;
    ok_as(&app, &t, lvb("alice")).await;
    app.stop().await;
});

suite_test!(refresh_rotates_and_reuse_revokes_the_family, |db| {
    let app = spawn_app(config(db)).await;
    register(&app, "alice", PW).await;
    let (t1, r1, _) = login(&app, "alice", PW).await;
    // Another session of the same user, which must survive the revocation below.
    let (other_t, other_r, _) = login(&app, "alice", PW).await;

    let v = refresh(&app, "alice", &r1).await;
    assert_eq!(v["returnValue"], 0, "{v}");
    let (t2, r2, d) = tokens_of(v["returnData"].clone());
    assert_eq!(d.as_object().unwrap().len(), 4);
    assert!(t2 != t1 && r2 != r1);
    ok_as(&app, &t2, lvb("alice")).await;
    // The previous access token lives until it expires.
    ok_as(&app, &t1, lvb("alice")).await;
    // The new refresh token rotates in turn.
    let v = refresh(&app, "alice", &r2).await;
    assert_eq!(v["returnValue"], 0, "{v}");
    let (t3, r3, _) = tokens_of(v["returnData"].clone());

    // r1 was rotated: presenting it again is refused and revokes the whole family.
    let v = refresh(&app, "alice", &r1).await;
    assert_eq!(v["returnValue"], 498, "{v}");
    assert!(
        v["returnMsg"].as_str().unwrap().contains("already used"),
        "{v}"
    );
    for t in [&t1, &t2, &t3] {
        refused_soon_as(&app, t, lvb("alice")).await;
    }
    for r in [&r2, &r3] {
        let v = refresh(&app, "alice", r).await;
        assert_eq!(v["returnValue"], 498, "{v}");
    }
    // The other login is untouched.
    ok_as(&app, &other_t, lvb("alice")).await;
    let v = refresh(&app, "alice", &other_r).await;
    assert_eq!(v["returnValue"], 0, "{v}");
    app.stop().await;
});

suite_test!(
    concurrent_refreshes_of_one_token_let_at_most_one_win,
    |db| {
        let app = spawn_app(config(db)).await;
        register(&app, "alice", PW).await;
        let (_, r, _) = login(&app, "alice", PW).await;
        let (a, b) = futures_util::join!(refresh(&app, "alice", &r), refresh(&app, "alice", &r));
        let wins: Vec<&Value> = [&a, &b]
            .into_iter()
            .filter(|v| v["returnValue"] == 0)
            .collect();
        assert_eq!(wins.len(), 1, "{a} {b}");
        for v in [&a, &b] {
            assert!(v["returnValue"] == 0 || v["returnValue"] == 498, "{v}");
        }
        // The loser counts as reuse: the winner's tokens are revoked with the family.
        let t = wins[0]["returnData"]["token"].as_str().unwrap();
        refused_as(&app, t, lvb("alice")).await;
        app.stop().await;
    }
);

suite_test!(register_throttle_trips_and_recovers, |db| {
    let mut c = config(db);
    c.auth.register_per_addr = 2;
    c.auth.register_window_secs = 2;
    let app = spawn_app(c).await;
    // The window starts with the address's first attempt.
    let first = Instant::now();
    register(&app, "user_a", PW).await;
    // Attempts count whatever their outcome (a taken name included)...
    app.err(
        json!({"Action":"Register","userid":"user_a","password":PW}),
        612,
    )
    .await;
    let m = app
        .err(
            json!({"Action":"Register","userid":"user_c","password":PW}),
            429,
        )
        .await;
    assert_eq!(m, "Registration operation is rejected for security reason");
    // ...except malformed ones, which are answered before the throttle.
    app.err(json!({"Action":"Register","userid":"x","password":PW}), 610)
        .await;
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(first.elapsed())).await;
    register(&app, "user_c", PW).await;
    assert_eq!(
        app.state.accounts.store().user_exists("user_c").await.ok(),
        Some(true)
    );
    app.stop().await;
});

suite_test!(login_throttle_trips_and_recovers, |db| {
    let mut c = config(db);
    c.auth.login_failures_per_user = 2;
    c.auth.login_window_secs = 2;
    let app = spawn_app(c).await;
    register(&app, "alice", PW).await;
    register(&app, "bob_1", PW).await;
    // The window starts with the user's first attempt. Correct passwords do not use up
    // the allowance.
    let first = Instant::now();
    for _ in 0..3 {
        login(&app, "alice", PW).await;
    }
    let wrong = json!({"Action":"Login","userid":"alice","password":"not the password"});
    app.err(wrong.clone(), 621).await;
    app.err(wrong.clone(), 621).await;
    // Even the right password is refused while the user is throttled.
    let m = app
        .err(
            json!({"Action":"Login","userid":"alice","password":PW}),
            429,
        )
        .await;
    assert!(m.contains("alice") && !m.contains(PW), "{m}");
    app.err(wrong.clone(), 429).await;
    // Other users are not affected.
    login(&app, "bob_1", PW).await;
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(first.elapsed())).await;
    login(&app, "alice", PW).await;
    app.stop().await;
});

suite_test!(
    concurrent_correct_logins_succeed_and_concurrent_guesses_stay_bounded,
    |db| {
        let mut c = config(db);
        // Far fewer failures allowed than logins sent at once.
        c.auth.login_failures_per_user = 2;
        let app = spawn_app(c).await;
        register(&app, "alice", PW).await;
        register(&app, "bob_1", PW).await;
        let login_body = |userid: &str, password: &str| json!({"Action":"Login","userid":userid,"password":password});
        // 16 at once with the right password: none of them is a failure, so none is
        // throttled, however many are still being checked when the others arrive.
        let answers =
            futures_util::future::join_all((0..16).map(|_| app.call(login_body("alice", PW))))
                .await;
        let mut tokens = std::collections::HashSet::new();
        for v in &answers {
            assert_eq!(v["returnValue"], 0, "{v}");
            tokens.insert(v["returnData"]["token"].as_str().unwrap().to_string());
        }
        assert_eq!(tokens.len(), 16);
        // 16 wrong guesses at once: exactly the 2 allowed are checked, whatever the timing;
        // the rest are throttled, as are correct passwords afterwards.
        let answers = futures_util::future::join_all(
            (0..16).map(|_| app.call(login_body("bob_1", "not the password"))),
        )
        .await;
        let codes: Vec<i64> = answers
            .iter()
            .map(|v| v["returnValue"].as_i64().unwrap())
            .collect();
        assert_eq!(codes.iter().filter(|&&c| c == 621).count(), 2, "{codes:?}");
        assert_eq!(codes.iter().filter(|&&c| c == 429).count(), 14, "{codes:?}");
        app.err(login_body("bob_1", PW), 429).await;
        // Correct logins at once with wrong guesses: at most the allowance is checked.
        let answers = futures_util::future::join_all((0..16).map(|i| {
            let pw = if i % 2 == 0 { PW } else { "not the password" };
            app.call(login_body("alice", pw))
        }))
        .await;
        let mut failed = 0;
        for (i, v) in answers.iter().enumerate() {
            match v["returnValue"].as_i64().unwrap() {
                0 => assert_eq!(i % 2, 0, "{v}"),
                621 => failed += 1,
                429 => {}
                _ => panic!("{v}"),
            }
        }
        assert!(failed <= 2, "{answers:?}");
        app.stop().await;
    }
);

suite_test!(auth_off_keeps_the_open_protocol, |db| {
    let mut c = config(db);
    c.auth.mode = AuthMode::Off;
    let app = spawn_app(c).await;
    app.go_live("anyone").await;
    app.ok(json!({"Action":"GetCOSSign"})).await;
    // Accounts still work.
    register(&app, "alice", PW).await;
    login(&app, "alice", PW).await;
    app.stop().await;
});

suite_test!(passwords_and_tokens_never_reach_the_logs, |db| {
    let mut child = ChildServer::start(&[
        ("MINILVB_DATABASE__URL", db.url.clone()),
        ("MINILVB_LIVE__BIZID", BIZID.to_string()),
        ("MINILVB_LIVE__PUSH_KEY", PUSH_KEY.to_string()),
        ("MINILVB_IM__SDKAPPID", IM_APPID.to_string()),
        ("MINILVB_IM__SECRET_KEY", IM_KEY.to_string()),
        ("MINILVB_AUTH__MODE", "required".to_string()),
        ("MINILVB_AUTH__LOGIN_FAILURES_PER_USER", "2".to_string()),
        ("MINILVB_LOG", "debug".to_string()),
    ])
    .await;
    let base = child.base.clone();
    let client = reqwest::Client::new();
    let post = |body: Value, token: Option<String>| {
        let mut rb = client.post(format!("{base}/interface.php")).json(&body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        async move { rb.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let pw = "Sup3r-secret pw!";
    let wrong = "Wr0ng-guess pw?";
    let v = post(
        json!({"Action":"Register","userid":"logged_user","password":pw}),
        None,
    )
    .await;
    assert_eq!(v["returnValue"], 0, "{v}");
    let v = post(
        json!({"Action":"Register","userid":"logged_user","password":pw}),
        None,
    )
    .await;
    assert_eq!(v["returnValue"], 612, "{v}");
    let v = post(
        json!({"Action":"Register","userid":"9bad","password":wrong}),
        None,
    )
    .await;
    assert_eq!(v["returnValue"], 610, "{v}");
    let v = post(
        json!({"Action":"Login","userid":"logged_user","password":pw}),
        None,
    )
    .await;
    assert_eq!(v["returnValue"], 0, "{v}");
    let (t1, r1, d) = tokens_of(v["returnData"].clone());
    let sig1 = d["im"]["usersig"].as_str().unwrap().to_string();
    let v = post(lvb("logged_user"), Some(t1.clone())).await;
    assert_eq!(v["returnValue"], 0, "{v}");
    let mut body = lvb("someone_else");
    body["token"] = json!(t1);
    let v = post(body, None).await;
    assert_eq!(v["returnValue"], 498, "{v}");
    let v = post(
        json!({"Action":"Refresh","userid":"logged_user","refresh_token":r1}),
        None,
    )
    .await;
    assert_eq!(v["returnValue"], 0, "{v}");
    let (t2, r2, d) = tokens_of(v["returnData"].clone());
    let sig2 = d["im"]["usersig"].as_str().unwrap().to_string();
    // Reuse (logged as a warning), wrong passwords, then the throttle.
    let v = post(
        json!({"Action":"Refresh","userid":"logged_user","refresh_token":r1}),
        None,
    )
    .await;
    assert_eq!(v["returnValue"], 498, "{v}");
    for code in [621, 621, 429] {
        let v = post(
            json!({"Action":"Login","userid":"logged_user","password":wrong}),
            None,
        )
        .await;
        assert_eq!(v["returnValue"], code, "{v}");
    }
    let v = post(lvb("logged_user"), Some(t2.clone())).await;
    assert_eq!(v["returnValue"], 498, "{v}");
    // Let the last lines reach the pipe, then stop the server.
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill();
    let logs = child.log_text();
    assert!(
        logs.contains("user logged in"),
        "debug logs were captured:\n{logs}"
    );
    assert!(logs.contains("refresh token was presented again"), "{logs}");
    let hash = |t: &str| minilvb::accounts::tokens::hash(t);
    for (what, secret) in [
        ("password", pw.to_string()),
        ("wrong password", wrong.to_string()),
        ("access token", t1.clone()),
        ("access token", t2.clone()),
        ("refresh token", r1.clone()),
        ("refresh token", r2.clone()),
        ("token hash", hash(&t1)),
        ("token hash", hash(&r1)),
        ("usersig", sig1),
        ("usersig", sig2),
        ("password hash", "$argon2id$".to_string()),
        ("IM key", IM_KEY.to_string()),
        ("push key", PUSH_KEY.to_string()),
    ] {
        assert!(!logs.contains(&secret), "{what} appears in the logs");
    }
});
