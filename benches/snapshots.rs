//! "Database writes follow dirty rooms, not requests."
//!
//! Builds the real `Application` (SQLite in a fresh temp dir; also MariaDB in a fresh
//! database when MINILVB_TEST_MYSQL_URL is set) with the default snapshot interval (1 s)
//! and index tick (50 ms), starts 1,000 live rooms, then runs bounded like storms through
//! the room actors (the path an HTTP worker takes after parsing ChangeCount):
//!
//! * 1 room, as fast as the senders go;
//! * 1,000 rooms round-robin, as fast as the senders go;
//! * 1,000 rooms round-robin, paced at 2,000 likes/s (every room still dirty every tick);
//! * 1,000 rooms round-robin, paced at 200 likes/s (only ~200 rooms dirty per tick).
//!
//! For each it prints likes accepted, snapshot transactions and rows written (from
//! `state.health`), and rows per like. At the end it checks that every accepted like is in
//! the database. Everything stops by itself; traffic never leaves the process.
//!
//! Run: `cargo bench --bench snapshots` (MINILVB_BENCH_SECS sets the storm length, default 5).

mod support;

use minilvb::model::RoomKey;
use minilvb::room::Rooms;
use minilvb::Application;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::{Backend, BenchDb};

const ROOMS: usize = 1_000;
const SENDERS: usize = 16;

struct Scenario {
    name: &'static str,
    rooms: usize,
    /// Likes per second, or `None` for as fast as the senders go.
    rate: Option<f64>,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "1 room, unpaced",
        rooms: 1,
        rate: None,
    },
    Scenario {
        name: "1000 rooms, unpaced",
        rooms: ROOMS,
        rate: None,
    },
    Scenario {
        name: "1000 rooms, 2000/s",
        rooms: ROOMS,
        rate: Some(2_000.0),
    },
    Scenario {
        name: "1000 rooms, 200/s",
        rooms: ROOMS,
        rate: Some(200.0),
    },
];

struct Row {
    backend: &'static str,
    scenario: &'static str,
    likes: u64,
    errors: u64,
    storm: Duration,
    snapshots: u64,
    rows: u64,
    failures: u64,
    /// Rows of each snapshot transaction caused by the storm, in order.
    per_txn: Vec<u64>,
}

fn main() {
    let secs: u64 = std::env::var("MINILVB_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .clamp(1, 60);
    // `cargo bench` passes `--bench`; nothing to parse.
    eprintln!("load average at start: {}", support::loadavg());
    let sys = actix::System::new();
    let mut table = Vec::new();
    for backend in [Backend::Sqlite, Backend::Mysql] {
        let Some(db) = sys.block_on(BenchDb::new(backend)) else {
            eprintln!("mariadb: skipped (MINILVB_TEST_MYSQL_URL is not set)");
            continue;
        };
        let rows = sys.block_on(run_backend(&db, Duration::from_secs(secs)));
        sys.block_on(db.drop_db());
        table.extend(rows);
    }
    eprintln!("load average at end: {}", support::loadavg());
    print_table(&table, secs);
}

async fn run_backend(db: &BenchDb, storm: Duration) -> Vec<Row> {
    let config = support::bench_config(db);
    let interval = Duration::from_millis(config.database.snapshot_interval_ms);
    let index_tick = Duration::from_millis(config.list.index_tick_ms);
    eprintln!(
        "{}: snapshot interval {interval:?}, index tick {index_tick:?}, {SENDERS} senders, {storm:?} per storm",
        db.backend.name()
    );
    let app = Application::build(config).await.expect("app builds");
    let state = app.state();
    let handle = app.handle();
    let server = actix::spawn(app.run_until_stopped());

    let t = Instant::now();
    let mut rooms: Vec<RoomKey> = Vec::with_capacity(ROOMS);
    for chunk in 0..ROOMS / 50 {
        let batch = (chunk * 50..(chunk + 1) * 50).map(|i| {
            let state = state.clone();
            async move { support::go_live(&state, &format!("r{i:04}")).await }
        });
        rooms.extend(futures_util::future::join_all(batch).await);
    }
    eprintln!(
        "{}: {ROOMS} rooms live in {:?}",
        db.backend.name(),
        t.elapsed()
    );
    // Let the start-up changes reach the database.
    quiesce(&state, interval).await;

    let rooms = Rc::new(rooms);
    // Records the rows of every snapshot transaction as it completes.
    let log: Rc<RefCell<Vec<u64>>> = Rc::default();
    let monitor = {
        let (state, log) = (state.clone(), log.clone());
        actix::spawn(async move {
            let h = &state.health;
            let mut seen = (
                h.snapshots_ok.load(Ordering::Relaxed),
                h.rows_written.load(Ordering::Relaxed),
            );
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let now = (
                    h.snapshots_ok.load(Ordering::Relaxed),
                    h.rows_written.load(Ordering::Relaxed),
                );
                if now.0 != seen.0 {
                    // At most one per poll at a 1 s interval; if two, they are summed.
                    log.borrow_mut().push(now.1 - seen.1);
                    seen = now;
                }
            }
        })
    };
    let mut out = Vec::new();
    let mut accepted_total = 0u64;
    for s in &SCENARIOS {
        let h = &state.health;
        let before = (
            h.snapshots_ok.load(Ordering::Relaxed),
            h.rows_written.load(Ordering::Relaxed),
            h.snapshot_failures.load(Ordering::Relaxed),
        );
        log.borrow_mut().clear();
        let t0 = Instant::now();
        let (likes, errors) =
            storm_run(state.rooms.clone(), rooms.clone(), s.rooms, s.rate, storm).await;
        let storm_took = t0.elapsed();
        // Count the write of the storm's last tick too.
        quiesce(&state, interval).await;
        let after = (
            h.snapshots_ok.load(Ordering::Relaxed),
            h.rows_written.load(Ordering::Relaxed),
            h.snapshot_failures.load(Ordering::Relaxed),
        );
        accepted_total += likes;
        let row = Row {
            backend: db.backend.name(),
            scenario: s.name,
            likes,
            errors,
            storm: storm_took,
            snapshots: after.0 - before.0,
            rows: after.1 - before.1,
            failures: after.2 - before.2,
            per_txn: std::mem::take(&mut *log.borrow_mut()),
        };
        eprintln!(
            "{}: {:<22} likes {:>9} ({:>9.0}/s)  snapshots {:>3}  rows {:>6}",
            row.backend,
            row.scenario,
            row.likes,
            row.likes as f64 / row.storm.as_secs_f64(),
            row.snapshots,
            row.rows
        );
        out.push(row);
    }

    // Every accepted like reached the database.
    let mut stored = 0u64;
    for i in 0..ROOMS {
        let rec = state
            .store
            .load_room(&RoomKey::Live(format!("r{i:04}")), false)
            .await
            .expect("load")
            .expect("room exists");
        stored += rec.counters.likes;
    }
    assert_eq!(
        stored, accepted_total,
        "likes in the database differ from likes accepted"
    );
    eprintln!(
        "{}: database holds {stored} likes = {accepted_total} accepted",
        db.backend.name()
    );

    monitor.abort();
    handle.stop(true).await;
    server.await.unwrap().expect("graceful stop");
    out
}

/// Waits until no room change is pending and one more snapshot interval has passed.
async fn quiesce(state: &minilvb::AppState, interval: Duration) {
    let deadline = Instant::now() + interval * 10;
    tokio::time::sleep(interval + Duration::from_millis(200)).await;
    while state.health.pending_rooms.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last hand-over may still be in flight: one more tick.
    tokio::time::sleep(interval).await;
}

/// `SENDERS` tasks send Like to `rooms[..n]` round-robin until `dur` has passed, each
/// awaiting its reply before the next (at most `SENDERS` likes in flight). With a rate,
/// like k is not sent before `start + k / rate`.
async fn storm_run(
    handle: Rooms,
    rooms: Rc<Vec<RoomKey>>,
    n: usize,
    rate: Option<f64>,
    dur: Duration,
) -> (u64, u64) {
    let next = Rc::new(std::cell::Cell::new(0u64));
    let start = tokio::time::Instant::now();
    let end = start + dur;
    let tasks: Vec<_> = (0..SENDERS)
        .map(|_| {
            let rooms = rooms.clone();
            let handle = handle.clone();
            let next = next.clone();
            actix::spawn(async move {
                let (mut ok, mut err) = (0u64, 0u64);
                loop {
                    let k = next.get();
                    next.set(k + 1);
                    if let Some(rate) = rate {
                        let due = start + Duration::from_secs_f64(k as f64 / rate);
                        if due >= end {
                            break;
                        }
                        tokio::time::sleep_until(due).await;
                    } else if tokio::time::Instant::now() >= end {
                        break;
                    }
                    match handle.like(&rooms[(k % n as u64) as usize], true).await {
                        Ok(()) => ok += 1,
                        Err(_) => err += 1,
                    }
                }
                (ok, err)
            })
        })
        .collect();
    let mut total = (0, 0);
    for t in tasks {
        let (ok, err) = t.await.unwrap();
        total.0 += ok;
        total.1 += err;
    }
    total
}

fn print_table(rows: &[Row], secs: u64) {
    println!();
    println!("like storms of {secs} s, {SENDERS} concurrent senders, snapshot interval 1 s, index tick 50 ms");
    println!("DB columns count every snapshot caused by the storm (its last tick is written just");
    println!("after it ends); DB rates divide them by the storm's length.");
    println!();
    println!(
        "| backend | scenario | likes accepted | likes/s | errors | snapshot txns | txns/s | rows written | rows/s | rows/txn | rows/likes |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let s = r.storm.as_secs_f64();
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.2} | {} | {:.1} | {:.1} | {:.2e} |",
            r.backend,
            r.scenario,
            r.likes,
            r.likes as f64 / s,
            r.errors,
            r.snapshots,
            r.snapshots as f64 / s,
            r.rows,
            r.rows as f64 / s,
            r.rows as f64 / r.snapshots.max(1) as f64,
            r.rows as f64 / r.likes.max(1) as f64,
        );
    }
    println!();
    println!("rows of each snapshot transaction, in order:");
    for r in rows {
        let list: Vec<String> = r.per_txn.iter().map(|n| n.to_string()).collect();
        println!(
            "  {:<8} {:<20} [{}]{}",
            r.backend,
            r.scenario,
            list.join(", "),
            if r.failures > 0 {
                format!("  ({} failed transactions, retried)", r.failures)
            } else {
                String::new()
            }
        );
    }
}
