//! Core paths, measured with criterion:
//!
//! * `room/*` — Enter, Quit and Like round trips through `Rooms` (the handle requests use:
//!   the room's lookup, then send + await the reply) to one live room of a real
//!   `Application` (SQLite in a fresh temp dir), from the System thread to the room's
//!   arbiter thread, as an HTTP worker does; plus the same Like through HTTP.
//! * `fetchlist_read/*` — the page read the FetchList action does, under the shared list's
//!   read lock, over a list seeded by a Supervisor with 10k / 100k online live rooms: first,
//!   middle and last page.
//! * `orderindex_page/*` — the index's `page(offset, 20)` alone, same sizes and offsets,
//!   beside `btreeset_skip/*` (`iter().skip(offset).take(20)` on a `BTreeSet` of the same keys,
//!   the obvious alternative that src/supervisor/index.rs explains away).
//! * `member_page/*` — a room's `Members::page(offset, 20)` (what FetchGroupMemberList reads)
//!   over 10k / 1M members: the newest page and the oldest.
//!
//! Run: `cargo bench --bench core`.

mod support;

use criterion::async_executor::AsyncExecutor;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use minilvb::config::ListOrder;
use minilvb::metrics::Health;
use minilvb::model::RoomKey;
use minilvb::protocol::request::ListFlag;
use minilvb::room::{Members, Rooms, Viewer};
use minilvb::store::{SqlStore, Store};
use minilvb::supervisor::index::OrderIndex;
use minilvb::supervisor::{ListIndex, SharedList, Supervisor, SupervisorConfig};
use minilvb::Application;
use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use support::{Backend, BenchDb};

/// Runs criterion's async routines inside an actix System (actors need one).
struct ActixExec(actix::SystemRunner);

impl AsyncExecutor for &ActixExec {
    fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.0.block_on(future)
    }
}

const VJ: &str = "bench_vj";
const PAGE: usize = 20;

fn short<M: criterion::measurement::Measurement>(g: &mut criterion::BenchmarkGroup<'_, M>) {
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
}

fn room_benches(c: &mut Criterion) {
    eprintln!("load average at start: {}", support::loadavg());
    let exec = ActixExec(actix::System::new());
    let db = exec.0.block_on(BenchDb::new(Backend::Sqlite)).unwrap();
    let config = support::bench_config(&db);
    // The server runs (and flushes on stop) in a task of this System.
    let (port, handle, state, server) = exec.0.block_on(async {
        let app = Application::build(config).await.expect("app builds");
        let (port, handle, state) = (app.port(), app.handle(), app.state());
        (port, handle, state, actix::spawn(app.run_until_stopped()))
    });
    let key = exec.0.block_on(support::go_live(&state, VJ));
    let room = Room {
        rooms: state.rooms.clone(),
        key,
    };
    // A room with an audience already: 1,000 members.
    exec.0.block_on(async {
        for i in 0..1_000 {
            enter(&room, &format!("base{i}")).await;
        }
    });

    let mut g = c.benchmark_group("room");
    short(&mut g);
    g.bench_function("like", |b| {
        b.to_async(&exec).iter(|| async { room.like().await })
    });
    // Enter of a viewer who is not a member yet (timed), then Quit (untimed) to keep the
    // room at its base size.
    let next = std::cell::Cell::new(0u64);
    g.bench_function("enter_new_viewer", |b| {
        b.to_async(&exec).iter_custom(|iters| {
            let first = next.get();
            next.set(first + iters);
            let room = room.clone();
            async move {
                let start = Instant::now();
                for i in first..first + iters {
                    enter(&room, &format!("v{i}")).await;
                }
                let took = start.elapsed();
                for i in first..first + iters {
                    quit(&room, &format!("v{i}")).await;
                }
                took
            }
        })
    });
    // Quit of a member (timed), who entered untimed just before.
    g.bench_function("quit_member", |b| {
        b.to_async(&exec).iter_custom(|iters| {
            let first = next.get();
            next.set(first + iters);
            let room = room.clone();
            async move {
                for i in first..first + iters {
                    enter(&room, &format!("v{i}")).await;
                }
                let start = Instant::now();
                for i in first..first + iters {
                    quit(&room, &format!("v{i}")).await;
                }
                start.elapsed()
            }
        })
    });
    // 64 likes in flight at once on the same room: the mailbox serializes them.
    g.throughput(Throughput::Elements(64));
    g.bench_function("like_64_concurrent", |b| {
        b.to_async(&exec).iter(|| async {
            let sends = (0..64).map(|_| room.like());
            futures_util::future::join_all(sends).await;
        })
    });
    g.finish();

    // The same Like as a client sends it: ChangeCount over HTTP on loopback (parse,
    // envelope, the actor round trip, the JSON answer).
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/interface.php");
    let body = serde_json::json!({"Action":"ChangeCount","userid":VJ,"type":1,"optype":0,"flag":0})
        .to_string();
    let mut g = c.benchmark_group("http");
    short(&mut g);
    g.bench_function("changecount_like", |b| {
        b.to_async(&exec).iter(|| async {
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["returnValue"], 0, "{v}");
        })
    });
    g.finish();

    // What the benches above cost the database (one snapshot per second of dirty rooms).
    let h = &state.health;
    eprintln!(
        "room benches: {} snapshot transactions, {} rows written, {} failed",
        h.snapshots_ok.load(std::sync::atomic::Ordering::Relaxed),
        h.rows_written.load(std::sync::atomic::Ordering::Relaxed),
        h.snapshot_failures
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    exec.0.block_on(async {
        handle.stop(true).await;
        server.await.unwrap().expect("graceful stop");
    });
    exec.0.block_on(db.drop_db());
}

/// The benched room, reached as requests reach it.
#[derive(Clone)]
struct Room {
    rooms: Rooms,
    key: RoomKey,
}

impl Room {
    async fn like(&self) {
        self.rooms.like(&self.key, true).await.unwrap();
    }
}

async fn enter(room: &Room, userid: &str) {
    let viewer = Viewer {
        userid: userid.to_string(),
        nickname: userid.to_string(),
        headpic: String::new(),
    };
    room.rooms
        .enter(&room.key, Some(format!("g_{VJ}")), viewer)
        .await
        .unwrap();
}

async fn quit(room: &Room, userid: &str) {
    room.rooms
        .quit(&room.key, userid.to_string(), Some(format!("g_{VJ}")))
        .await
        .unwrap();
}

/// First, middle and last page offsets of a list of `n`.
fn offsets(n: usize) -> [(&'static str, usize); 3] {
    [("first", 0), ("middle", n / 2), ("last", n - PAGE)]
}

fn fetchlist_benches(c: &mut Criterion) {
    let exec = ActixExec(actix::System::new());
    let db = exec.0.block_on(BenchDb::new(Backend::Sqlite)).unwrap();
    let config = support::bench_config(&db);
    // The store is never written (seeded rooms are not dirty); the supervisor just needs one.
    let store: Arc<dyn Store> = Arc::new(
        exec.0
            .block_on(SqlStore::connect(&config.database))
            .expect("store"),
    );
    for n in [10_000usize, 100_000] {
        let list: SharedList = Arc::new(RwLock::new(ListIndex::new(ListOrder::Popular, 7)));
        exec.0.block_on(async {
            let mut sup = Supervisor::new(
                SupervisorConfig {
                    persist: true,
                    handover_interval: Duration::from_millis(50),
                    snapshot_interval: Duration::from_millis(1000),
                    max_backoff: Duration::from_millis(10_000),
                },
                store.clone(),
                Arc::new(Health::default()),
                list.clone(),
            );
            sup.seed(support::fabricated_live_rooms(n), Vec::new());
        });
        for (_, offset) in offsets(n) {
            // Sanity: a full page at every offset, and the total is n.
            let guard = list.read().unwrap();
            let page = guard.page(ListFlag::Live, offset, PAGE);
            assert_eq!((page.total, page.items.len()), (n, PAGE));
        }
        // What the FetchList action does now: a page read under the shared read lock.
        let mut g = c.benchmark_group("fetchlist_read");
        short(&mut g);
        for (name, offset) in offsets(n) {
            g.bench_with_input(BenchmarkId::new(name, n), &offset, |b, &offset| {
                b.iter(|| {
                    let guard = list.read().unwrap();
                    let page = guard.page(ListFlag::Live, black_box(offset), PAGE);
                    black_box(page.items.iter().map(|i| i.len()).sum::<usize>())
                })
            });
        }
        g.finish();
    }
    exec.0.block_on(db.drop_db());
}

/// The live list's key, as src/supervisor/list.rs has it.
type LiveKey = (Reverse<u64>, Reverse<i64>, Arc<str>);

fn live_keys(n: usize) -> Vec<LiveKey> {
    support::fabricated_live_rooms(n)
        .into_iter()
        .map(|r| {
            (
                Reverse(r.member_count),
                Reverse(r.info.timestamp),
                Arc::<str>::from(r.key.vj()),
            )
        })
        .collect()
}

fn index_benches(c: &mut Criterion) {
    for n in [10_000usize, 100_000] {
        let keys = live_keys(n);
        let mut idx = OrderIndex::new();
        let mut set = BTreeSet::new();
        for k in keys {
            idx.insert(k.clone());
            set.insert(k);
        }
        assert_eq!((idx.len(), set.len()), (n, n));

        let mut g = c.benchmark_group("orderindex_page");
        short(&mut g);
        for (name, offset) in offsets(n) {
            assert!(idx
                .page(offset, PAGE)
                .into_iter()
                .eq(set.iter().skip(offset).take(PAGE)));
            g.bench_with_input(BenchmarkId::new(name, n), &offset, |b, &offset| {
                b.iter(|| black_box(idx.page(black_box(offset), PAGE)).len())
            });
        }
        g.finish();

        let mut g = c.benchmark_group("btreeset_skip");
        short(&mut g);
        for (name, offset) in offsets(n) {
            g.bench_with_input(BenchmarkId::new(name, n), &offset, |b, &offset| {
                b.iter(|| {
                    set.iter()
                        .skip(black_box(offset))
                        .take(PAGE)
                        .collect::<Vec<_>>()
                        .len()
                })
            });
        }
        g.finish();
    }
}

/// Members as the memory target sizes them: a 12-character userid, an 8-character CJK
/// nickname and an 80-byte avatar URL.
fn members(n: usize) -> Members {
    let mut m = Members::default();
    for i in 0..n {
        let userid = format!("u{i:011}");
        let headpic = format!("http://img.example.com/avatars/{userid}/{:0>32}.png", i);
        debug_assert_eq!(headpic.len(), 80);
        assert!(m.enter(&userid, "观众昵称测试一二", &headpic).is_some());
    }
    m
}

fn member_page_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("member_page");
    short(&mut g);
    for n in [10_000usize, 1_000_000] {
        let m = members(n);
        for (name, offset) in [("first", 0), ("last", n - PAGE)] {
            let page = m.page(offset, PAGE);
            assert_eq!(page.len(), PAGE);
            // Newest first: the last page ends with the first member who entered.
            if name == "last" {
                assert_eq!(page[PAGE - 1].userid, "u00000000000");
            }
            g.bench_with_input(BenchmarkId::new(name, n), &offset, |b, &offset| {
                b.iter(|| black_box(m.page(black_box(offset), PAGE)).len())
            });
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    room_benches,
    fetchlist_benches,
    index_benches,
    member_page_benches
);
criterion_main!(benches);
