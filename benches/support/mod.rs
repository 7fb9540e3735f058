//! Shared by the benches: a Config over a fresh database (SQLite in a temp dir, or a fresh
//! MariaDB database when MINILVB_TEST_MYSQL_URL is set), live rooms started through the
//! rooms' handle, and fabricated room records.
#![allow(dead_code)]

use minilvb::config::{AuthMode, Secret};
use minilvb::model::{Counters, RoomInfo, RoomKey, RoomRecord};
use minilvb::protocol::types::UserInfo;
use minilvb::{AppState, Config};

// The benches use the tests' fresh-database helper rather than a copy of it.
#[path = "../../tests/common/mod.rs"]
pub mod common;
pub use common::{Backend, TestDb as BenchDb};

/// A serving configuration over `db`: loopback on an ephemeral port, 2 workers, default
/// snapshot interval (1 s) and index tick (50 ms), auth off.
pub fn bench_config(db: &BenchDb) -> Config {
    let mut c = Config::default();
    c.server.bind = "127.0.0.1:0".into();
    c.server.workers = 2;
    c.server.shutdown_timeout_secs = 5;
    c.database.url = Secret::new(db.url.clone());
    c.live.bizid = "2519".into();
    c.live.push_key = Secret::new("e12c46f2612d5106e2034781ab261ca3");
    c.live.api_key = Secret::new("bench-api-key-0123456789");
    c.im.sdkappid = 1400000000;
    c.im.secret_key =
        Secret::new("5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e");
    c.auth.mode = AuthMode::Off;
    c
}

/// What RequestLVBAddr would store for `vj`.
pub fn room_info(vj: &str, timestamp: i64) -> RoomInfo {
    let stream = format!("2519_{vj}");
    RoomInfo {
        groupid: format!("g_{vj}"),
        title: format!("title of {vj}"),
        userinfo: UserInfo {
            nickname: format!("nick {vj}"),
            headpic: format!("http://img.example.com/{vj}.png"),
            frontcover: String::new(),
            location: "Shenzhen".into(),
        },
        playurl: format!("http://2519.liveplay.myqcloud.com/live/{stream}.flv"),
        hls_play_url: format!("http://2519.liveplay.myqcloud.com/live/{stream}.m3u8"),
        stream,
        timestamp,
        snapshot_url: String::new(),
    }
}

/// Starts a broadcast for `vj` and sets it online, through the rooms' handle (what
/// RequestLVBAddr then ChangeStatus do). Returns the room's key.
pub async fn go_live(state: &AppState, vj: &str) -> RoomKey {
    let info = room_info(vj, minilvb::model::now_unix());
    state
        .rooms
        .new_broadcast(vj, info)
        .await
        .expect("new broadcast");
    state.rooms.set_status(vj, true).await.expect("online");
    RoomKey::Live(vj.to_string())
}

/// xorshift64*: deterministic fabricated data without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `n` online live rooms with varied, heavy-tailed viewer counts (most rooms have a few
/// viewers, a few have tens of thousands) and start times spread over the last day.
pub fn fabricated_live_rooms(n: usize) -> Vec<RoomRecord> {
    let mut rng = Rng::new(0x5EED_0000 + n as u64);
    let now = minilvb::model::now_unix();
    (0..n)
        .map(|i| {
            let vj = format!("vj{i:07}");
            // 2^(0..16) scaled by a uniform factor: a long tail, many ties at the bottom.
            let viewers = (rng.next() % 64) << (rng.next() % 11);
            let started = now - (rng.next() % 86_400) as i64;
            RoomRecord {
                key: RoomKey::Live(vj.clone()),
                info: room_info(&vj, started),
                counters: Counters {
                    epoch: 1,
                    online: true,
                    likes: rng.next() % 100_000,
                    views: viewers * 3,
                    seen_at: now,
                },
                members: Vec::new(),
                member_count: viewers,
                fence: 0,
            }
        })
        .collect()
}

/// `/proc/loadavg`, to tell in the output whether other work shared the machine.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
