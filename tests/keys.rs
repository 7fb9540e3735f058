//! Keys compare byte for byte on every backend: a userid, fileid or groupid that differs
//! from a real one only by trailing spaces, case or Unicode normalization is another key
//! (unknown here), never a second copy of the real room.

mod common;

use common::*;
use minilvb::config::AuthMode;
use serde_json::{json, Value};

const VJ: &str = "pad123";
/// "café1" in NFC; its NFD spelling ("e" + combining acute) is another key.
const UVJ: &str = "caf\u{e9}1";
const UGROUP: &str = "gr\u{e9}";
const FILEID: &str = "vid\u{e9}o";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn signed(mut body: Value) -> Value {
    let t = now() + 600;
    body["t"] = json!(t);
    body["sign"] = json!(minilvb::sign::callback::sign(API_KEY, t as u64));
    body
}

/// Variants of a key that a PAD SPACE, case-insensitive or normalizing comparison would
/// take for the key itself.
fn variants(key: &str) -> Vec<String> {
    let nfd = key.replace('\u{e9}', "e\u{301}");
    let mut v = vec![
        format!("{key} "),
        format!("{key}   "),
        key.to_uppercase(),
        nfd.clone(),
        format!("{nfd} "),
    ];
    v.retain(|s| s != key);
    v.sort();
    v.dedup();
    v
}

/// Live rooms and recordings of FetchList flag 3, as (userid, fileid) pairs.
async fn listed(app: &TestApp) -> Vec<(String, String)> {
    let d = app
        .ok(json!({"Action":"FetchList","flag":3,"pagesize":100}))
        .await;
    let mut v: Vec<(String, String)> = d["pusherlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["userid"].as_str().unwrap().to_string(),
                p["fileid"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Polls FetchList until it lists exactly `want` (the index follows rooms within a tick or
/// so of their changes), and fails after a generous deadline.
async fn until_listed(app: &TestApp, want: &[(String, String)]) {
    let start = std::time::Instant::now();
    loop {
        let got = listed(app).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "FetchList lists {got:?}, expected {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn expected_list() -> Vec<(String, String)> {
    let mut v = vec![
        (VJ.to_string(), String::new()),
        (UVJ.to_string(), String::new()),
        (VJ.to_string(), FILEID.to_string()),
    ];
    v.sort();
    v
}

/// Every way of naming a room with a variant key answers "unknown".
async fn variants_are_unknown(app: &TestApp) {
    let group = format!("g_{VJ}");
    for (vj, groupid) in [(VJ, group.as_str()), (UVJ, UGROUP)] {
        for v in variants(vj) {
            let info = json!({"Action":"GetUserInfo","userid":v,"type":0});
            app.err(info, 620).await;
            for body in [
                json!({"Action":"ChangeCount","userid":v,"type":1,"optype":1}),
                json!({"Action":"ChangeCount","userid":v,"type":0,"optype":0}),
                json!({"Action":"ChangeStatus","userid":v,"status":1}),
                json!({"Action":"EnterGroup","userid":"intruder","liveuserid":v,"groupid":groupid,"flag":0}),
                json!({"Action":"FetchGroupMemberList","liveuserid":v,"groupid":groupid}),
            ] {
                app.err(body, 601).await;
            }
        }
        for g in variants(groupid) {
            app.err(json!({"Action":"EnterGroup","userid":"intruder","liveuserid":vj,"groupid":g,"flag":0}), 601)
                .await;
            app.err(
                json!({"Action":"FetchGroupMemberList","liveuserid":vj,"groupid":g}),
                601,
            )
            .await;
        }
    }
    for f in variants(FILEID) {
        app.err(
            json!({"Action":"GetUserInfo","userid":VJ,"type":1,"fileid":f}),
            620,
        )
        .await;
        for body in [
            json!({"Action":"ChangeCount","userid":VJ,"type":1,"optype":1,"flag":1,"fileid":f}),
            json!({"Action":"EnterGroup","userid":"intruder","liveuserid":VJ,"groupid":f,"flag":1}),
            json!({"Action":"FetchGroupMemberList","liveuserid":VJ,"groupid":f}),
        ] {
            app.err(body, 601).await;
        }
    }
    // The recording under the variants of its VJ's userid.
    for v in variants(VJ) {
        app.err(
            json!({"Action":"GetUserInfo","userid":v,"type":1,"fileid":FILEID}),
            620,
        )
        .await;
    }
}

async fn check_real_rooms(app: &TestApp) {
    let live = app.info(VJ).await;
    assert_eq!(live["userid"], VJ);
    assert_eq!(live["likecount"], 5, "{live}");
    assert_eq!(live["viewercount"], 1, "{live}");
    assert_eq!(live["status"], "1", "{live}");
    let u = app.info(UVJ).await;
    assert_eq!(u["userid"], UVJ);
    assert_eq!(u["groupid"], UGROUP);
    assert_eq!(u["likecount"], 2, "{u}");
    assert_eq!(u["status"], "1", "{u}");
    let rec = app
        .ok(json!({"Action":"GetUserInfo","userid":VJ,"type":1,"fileid":FILEID}))
        .await;
    assert_eq!(rec["fileid"], FILEID);
    assert_eq!(rec["likecount"], 5, "{rec}");
    let members = app
        .ok(json!({"Action":"FetchGroupMemberList","liveuserid":VJ,"groupid":format!("g_{VJ}")}))
        .await;
    assert_eq!(members["totalcount"], 1, "{members}");
}

db_test!(variant_keys_are_other_keys_never_a_second_room, |db| {
    let mut cfg = test_config(db);
    // No room stops while idle: the count of rooms in memory is exact.
    cfg.server.room_idle_secs = 3600;
    let app = spawn_app(cfg.clone()).await;
    app.go_live(VJ).await;
    app.enter("viewer1", VJ).await;
    for _ in 0..5 {
        app.ok(json!({"Action":"ChangeCount","userid":VJ,"type":1,"optype":0}))
            .await;
    }
    app.ok(json!({"Action":"RequestLVBAddr","userid":UVJ,"groupid":UGROUP,"title":"unicode"}))
        .await;
    app.ok(json!({"Action":"ChangeStatus","userid":UVJ,"status":0}))
        .await;
    for _ in 0..2 {
        app.ok(json!({"Action":"ChangeCount","userid":UVJ,"type":1,"optype":0}))
            .await;
    }
    let rec = json!({"event_type":100,"stream_id":format!("{BIZID}_{VJ}"),"file_id":FILEID,
        "file_format":"flv","video_url":"http://vod.example/v/f0.flv","end_time":now()});
    let r = app
        .client
        .post(format!("{}/callback/tencent", app.base))
        .json(&signed(rec))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.metric("minilvb_active_rooms").await, 3);

    variants_are_unknown(&app).await;
    check_real_rooms(&app).await;
    // No variant woke a room of its own: each would hold a copy of the member list.
    assert_eq!(app.metric("minilvb_active_rooms").await, 3);
    until_listed(&app, &expected_list()).await;
    app.stop().await;

    // Restored from the database after a graceful stop: the figures acknowledged on the
    // real rooms, and nothing else.
    let app = spawn_app(cfg).await;
    assert_eq!(listed(&app).await, expected_list());
    check_real_rooms(&app).await;
    variants_are_unknown(&app).await;
    check_real_rooms(&app).await;
    app.stop().await;
});

db_test!(padded_userids_never_reach_an_account, |db| {
    let mut cfg = test_config(db);
    cfg.auth.mode = AuthMode::Required;
    let app = spawn_app(cfg).await;
    let pw = "correct horse 1";
    app.ok(json!({"Action":"Register","userid":"alice1","password":pw}))
        .await;
    for v in ["alice1 ", "alice1  ", "ALICE1", "Alice1"] {
        app.err(json!({"Action":"Login","userid":v,"password":pw}), 620)
            .await;
    }
    for v in ["alice1 ", "alice1  "] {
        app.err(json!({"Action":"Register","userid":v,"password":pw}), 610)
            .await;
    }
    // Other spellings of a registered user are other users.
    app.ok(json!({"Action":"Register","userid":"ALICE1","password":pw}))
        .await;
    let login = app
        .ok(json!({"Action":"Login","userid":"alice1","password":pw}))
        .await;
    assert_eq!(login["im"]["userid"], "alice1");
    let refresh = login["refresh_token"].as_str().unwrap();
    for v in ["alice1 ", "ALICE1"] {
        app.err(
            json!({"Action":"Refresh","userid":v,"refresh_token":refresh}),
            498,
        )
        .await;
    }
    // alice1's token does not act for a padded spelling of alice1.
    let token = login["token"].as_str().unwrap();
    let r: Value = app
        .client
        .post(format!("{}/interface.php", app.base))
        .bearer_auth(token)
        .json(&json!({"Action":"RequestLVBAddr","userid":"alice1 ","groupid":"g","title":"t"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["returnValue"], 498, "{r}");
    app.ok(json!({"Action":"Refresh","userid":"alice1","refresh_token":refresh}))
        .await;
    app.stop().await;
});

async fn tencent_recording(app: &TestApp, vj: &str, fileid: &str, url: &str) {
    let rec = json!({"event_type":100,"stream_id":format!("{BIZID}_{vj}"),"file_id":fileid,
        "file_format":"flv","video_url":url,"end_time":now()});
    let r = app
        .client
        .post(format!("{}/callback/tencent", app.base))
        .json(&signed(rec))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "recording {fileid:?}");
}

/// Another spelling is another key: its room, members and recordings are stored beside the
/// real ones, and neither overwrites the other.
async fn check_spellings(app: &TestApp) {
    let real = app.info(VJ).await;
    assert_eq!(
        (&real["title"], &real["groupid"], &real["likecount"]),
        (
            &json!(format!("title of {VJ}")),
            &json!(format!("g_{VJ}")),
            &json!(5)
        ),
        "{real}"
    );
    let mut want = vec!["viewer1".to_string(), "vi\u{e9}w".to_string()];
    want.sort();
    assert_eq!(app.member_ids(VJ, &format!("g_{VJ}")).await, want);
    for (n, v) in ["pad123 ", "PAD123"].into_iter().enumerate() {
        let other = app.info(v).await;
        assert_eq!(other["userid"], v);
        assert_eq!(other["groupid"], format!("g_other{n}"));
        assert_eq!(other["likecount"], 1, "{other}");
        assert_eq!(
            app.member_ids(v, &format!("g_other{n}")).await,
            Vec::<String>::new()
        );
    }
    for (fileid, url) in [
        (FILEID, "http://vod.example/v/real.flv"),
        ("vid\u{e9}o ", "http://vod.example/v/padded.flv"),
        ("vide\u{301}o", "http://vod.example/v/nfd.flv"),
    ] {
        let rec = app
            .ok(json!({"Action":"GetUserInfo","userid":VJ,"type":1,"fileid":fileid}))
            .await;
        assert_eq!(
            (&rec["fileid"], &rec["playurl"]),
            (&json!(fileid), &json!(url))
        );
    }
    assert_eq!(listed(app).await, spellings());
}

/// What FetchList must list in `other_spellings_...`: each spelling once.
fn spellings() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        (VJ, ""),
        ("pad123 ", ""),
        ("PAD123", ""),
        (VJ, FILEID),
        (VJ, "vid\u{e9}o "),
        (VJ, "vide\u{301}o"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    v.sort();
    v
}

db_test!(
    other_spellings_are_rooms_members_and_recordings_of_their_own,
    |db| {
        let mut cfg = test_config(db);
        cfg.server.room_idle_secs = 3600;
        let app = spawn_app(cfg.clone()).await;
        app.go_live(VJ).await;
        for _ in 0..5 {
            app.ok(json!({"Action":"ChangeCount","userid":VJ,"type":1,"optype":0}))
                .await;
        }
        tencent_recording(&app, VJ, FILEID, "http://vod.example/v/real.flv").await;
        for (n, v) in ["pad123 ", "PAD123"].into_iter().enumerate() {
            app.ok(json!({"Action":"RequestLVBAddr","userid":v,"groupid":format!("g_other{n}"),"title":"other"}))
            .await;
            app.ok(json!({"Action":"ChangeStatus","userid":v,"status":0}))
                .await;
            app.ok(json!({"Action":"ChangeCount","userid":v,"type":1,"optype":0}))
                .await;
        }
        tencent_recording(&app, VJ, "vid\u{e9}o ", "http://vod.example/v/padded.flv").await;
        tencent_recording(&app, VJ, "vide\u{301}o", "http://vod.example/v/nfd.flv").await;
        // Members whose userids differ by padding, case or normalization are different
        // members: leaving as one of them leaves the others in the room.
        for m in ["viewer1", "viewer1 ", "VIEWER1", "vi\u{e9}w", "vie\u{301}w"] {
            app.ok(json!({"Action":"EnterGroup","userid":m,"liveuserid":VJ,"groupid":format!("g_{VJ}"),"flag":0}))
            .await;
        }
        for m in ["viewer1 ", "VIEWER1", "vie\u{301}w"] {
            app.ok(json!({"Action":"QuitGroup","userid":m,"liveuserid":VJ,"groupid":format!("g_{VJ}"),"flag":0}))
            .await;
        }
        until_listed(&app, &spellings()).await;
        check_spellings(&app).await;
        app.stop().await;
        let app = spawn_app(cfg).await;
        check_spellings(&app).await;
        app.stop().await;
    }
);

/// Runs a MariaDB-only test over a fresh database (skipped, saying so, without one); the
/// body gets the test configuration and the database's URL.
async fn on_mariadb<F, Fut>(body: F)
where
    F: FnOnce(minilvb::Config, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::FutureExt;
    let Some(db) = TestDb::new(Backend::Mysql).await else {
        eprintln!("skipped: MINILVB_TEST_MYSQL_URL is not set");
        return;
    };
    let mut cfg = test_config(&db);
    cfg.server.room_idle_secs = 3600;
    let r = std::panic::AssertUnwindSafe(body(cfg, db.url.clone()))
        .catch_unwind()
        .await;
    db.drop_db().await;
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

async fn sql(url: &str, statements: &[&str]) {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    for s in statements {
        sqlx::query(s).execute(&mut conn).await.unwrap();
    }
}

async fn collations(url: &str) -> Vec<String> {
    use sqlx::Row;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    sqlx::query(
        "SELECT DISTINCT COLLATION_NAME AS c FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> '_sqlx_migrations' \
         AND COLLATION_NAME IS NOT NULL",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>("c"))
    .collect()
}

/// A deployment that ran migrations 1 and 2 (padding keys) upgrades in place: its rooms,
/// counters and members survive, and from then on keys compare byte for byte.
#[actix_rt::test]
async fn mariadb_upgrade_keeps_data_and_makes_keys_exact() {
    on_mariadb(|cfg, url| async move {
        // Migrations 1 and 2 exactly as an older release applied them.
        let old = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(
                [
                    (1, "rooms", include_str!("../migrations/mysql/0001_rooms.sql")),
                    (2, "accounts", include_str!("../migrations/mysql/0002_accounts.sql")),
                ]
                .into_iter()
                .map(|(v, d, s)| {
                    sqlx::migrate::Migration::new(
                        v,
                        d.into(),
                        sqlx::migrate::MigrationType::Simple,
                        s.into(),
                        false,
                    )
                })
                .collect(),
            ),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        };
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        old.run(&pool).await.unwrap();
        pool.close().await;
        assert_eq!(collations(&url).await, ["utf8mb4_bin"]);
        let now = now();
        sql(
            &url,
            &[
                &format!(
                    "INSERT INTO rooms (userid, epoch, groupid, title, stream, timestamp, playurl) \
                     VALUES ('pad123', 3, 'g_pad123', 'old title', '2519_pad123', {now}, 'http://x/a.flv')"
                ),
                &format!(
                    "INSERT INTO room_state VALUES ('pad123', '', 3, 1, 5, 1, {now})"
                ),
                "INSERT INTO members VALUES ('pad123', '', 'viewer1', 3, 1, 'v', '')",
            ],
        )
        .await;
        let app = spawn_app(cfg).await;
        for c in collations(&url).await {
            assert_eq!(c, "utf8mb4_nopad_bin");
        }
        let info = app.info(VJ).await;
        assert_eq!(
            (&info["likecount"], &info["viewercount"], &info["status"], &info["title"]),
            (&json!(5), &json!(1), &json!("1"), &json!("old title")),
            "{info}"
        );
        for v in variants(VJ) {
            app.err(json!({"Action":"GetUserInfo","userid":v,"type":0}), 620)
                .await;
        }
        app.stop().await;
    })
    .await;
}

/// Should the database ever match another spelling again (a dump restored into padding
/// tables, say), a room is still found only under its own key, and the next start refuses
/// to run over such tables.
#[actix_rt::test]
async fn mariadb_a_folding_table_finds_nothing_and_is_refused_at_start() {
    on_mariadb(|cfg, url| async move {
        let app = spawn_app(cfg.clone()).await;
        app.go_live(VJ).await;
        tencent_recording(&app, VJ, FILEID, "http://vod.example/v/real.flv").await;
        sql(
            &url,
            &[
                "ALTER TABLE rooms CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
                "ALTER TABLE recordings CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci",
            ],
        )
        .await;
        for v in variants(VJ) {
            app.err(json!({"Action":"GetUserInfo","userid":v,"type":0}), 620)
                .await;
            app.err(
                json!({"Action":"ChangeCount","userid":v,"type":1,"optype":1}),
                601,
            )
            .await;
        }
        for f in variants(FILEID) {
            app.err(
                json!({"Action":"GetUserInfo","userid":VJ,"type":1,"fileid":f}),
                620,
            )
            .await;
        }
        assert_eq!(app.info(VJ).await["userid"], VJ);
        app.stop().await;
        let refused = match minilvb::Application::build(cfg).await {
            Ok(_) => panic!("started over tables whose keys fold"),
            Err(e) => e.to_string(),
        };
        assert!(
            refused.contains("utf8mb4_general_ci treats different keys as equal"),
            "{refused}"
        );
    })
    .await;
}
