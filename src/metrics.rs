//! Prometheus metrics, kept in atomics so that recording costs no lock on the hot path,
//! and rendered in the text exposition format at `GET /metrics`.

use dashmap::DashMap;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Observable persistence health, shared with `/readyz` and metrics.
#[derive(Default)]
pub struct Health {
    pub degraded: AtomicBool,
    pub pending_rooms: AtomicUsize,
    /// A snapshot transaction is being written.
    pub snapshot_writing: AtomicBool,
    pub snapshots_ok: AtomicU64,
    pub snapshot_failures: AtomicU64,
    pub rows_written: AtomicU64,
    pub ws_connections: AtomicUsize,
    /// Members across active rooms (rooms add and subtract as viewers come and go).
    pub members: AtomicI64,
    /// Room snapshots refused because another server had claimed the room.
    pub fenced_writes: AtomicU64,
    pub snapshot_seconds: Histogram,
    /// Cluster: from a list change published by its owner to this node's index.
    pub list_staleness: Histogram,
    /// Cluster: room calls this node forwarded to the room's owner.
    pub forwarded: AtomicU64,
}

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// The bucket of requests that never parsed into an Action.
pub const INVALID: &str = "invalid";

/// Figures read from elsewhere when `/metrics` is rendered.
pub struct Gauges {
    pub live_rooms: usize,
    pub active_rooms: usize,
    pub connections_open: usize,
    pub connections_max: usize,
    pub refused_over_total: u64,
    pub refused_over_addr: u64,
}

pub struct Metrics {
    /// Action names in the order they are rendered (each has a latency histogram).
    actions: Vec<&'static str>,
    requests: DashMap<(&'static str, i32), AtomicU64>,
    latency: HashMap<&'static str, Histogram>,
    callbacks: DashMap<(&'static str, &'static str), AtomicU64>,
    /// Failed database operations behind answers (counted where the answer is written).
    db_errors: AtomicU64,
}

impl Metrics {
    /// Request metrics for these Actions (and for requests that never parsed).
    pub fn new(actions: impl IntoIterator<Item = &'static str>) -> Self {
        let actions: Vec<&'static str> = actions.into_iter().chain([INVALID]).collect();
        Metrics {
            latency: actions.iter().map(|a| (*a, Histogram::default())).collect(),
            actions,
            requests: DashMap::new(),
            callbacks: DashMap::new(),
            db_errors: AtomicU64::new(0),
        }
    }

    /// An answer failed because the database did.
    pub fn db_error(&self) {
        self.db_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn request(&self, action: &'static str, code: i32, took: Duration) {
        match self.requests.get(&(action, code)) {
            Some(c) => {
                c.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.requests
                    .entry((action, code))
                    .or_default()
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(h) = self.latency.get(action) {
            h.observe(took);
        }
    }

    /// A media-server callback: `source` (tencent, nginx-rtmp, srs) and its outcome.
    pub fn callback(&self, source: &'static str, outcome: &'static str) {
        self.callbacks
            .entry((source, outcome))
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, h: &Health, g: &Gauges) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str("# HELP minilvb_requests_total Action requests by Action and returnValue.\n");
        out.push_str("# TYPE minilvb_requests_total counter\n");
        let mut rows: Vec<_> = self
            .requests
            .iter()
            .map(|e| (*e.key(), e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for ((action, code), n) in rows {
            let _ = writeln!(
                out,
                "minilvb_requests_total{{action=\"{action}\",code=\"{code}\"}} {n}"
            );
        }
        out.push_str("# HELP minilvb_request_duration_seconds Action latency.\n");
        out.push_str("# TYPE minilvb_request_duration_seconds histogram\n");
        for a in &self.actions {
            if let Some(hist) = self.latency.get(a) {
                hist.render(
                    &mut out,
                    "minilvb_request_duration_seconds",
                    &format!("action=\"{a}\""),
                );
            }
        }
        out.push_str(
            "# HELP minilvb_callbacks_total Media-server callbacks by source and outcome.\n",
        );
        out.push_str("# TYPE minilvb_callbacks_total counter\n");
        let mut rows: Vec<_> = self
            .callbacks
            .iter()
            .map(|e| (*e.key(), e.value().load(Ordering::Relaxed)))
            .collect();
        rows.sort();
        for ((source, outcome), n) in rows {
            let _ = writeln!(
                out,
                "minilvb_callbacks_total{{source=\"{source}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let gauges: [(&str, &str, u64); 7] = [
            (
                "minilvb_live_rooms",
                "Live rooms online (listed).",
                g.live_rooms as u64,
            ),
            (
                "minilvb_active_rooms",
                "Room actors in memory.",
                g.active_rooms as u64,
            ),
            (
                "minilvb_members",
                "Members across active rooms.",
                h.members.load(Ordering::Relaxed).max(0) as u64,
            ),
            (
                "minilvb_ws_connections",
                "Open realtime connections.",
                h.ws_connections.load(Ordering::Relaxed) as u64,
            ),
            (
                "minilvb_pending_rooms",
                "Dirty rooms waiting for a snapshot.",
                h.pending_rooms.load(Ordering::Relaxed) as u64,
            ),
            (
                "minilvb_snapshot_in_flight",
                "1 while a snapshot transaction is being written.",
                h.snapshot_writing.load(Ordering::Relaxed) as u64,
            ),
            (
                "minilvb_degraded",
                "1 while snapshots are failing.",
                h.degraded.load(Ordering::Relaxed) as u64,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let counters: [(&str, &str, u64); 5] = [
            (
                "minilvb_snapshots_total",
                "Snapshot transactions committed.",
                h.snapshots_ok.load(Ordering::Relaxed),
            ),
            (
                "minilvb_snapshot_failures_total",
                "Snapshot transactions that failed.",
                h.snapshot_failures.load(Ordering::Relaxed),
            ),
            (
                "minilvb_fenced_writes_total",
                "Room snapshots refused because another server holds the room (the room is dropped here).",
                h.fenced_writes.load(Ordering::Relaxed),
            ),
            (
                "minilvb_snapshot_rows_total",
                "Rows written by snapshots.",
                h.rows_written.load(Ordering::Relaxed),
            ),
            (
                "minilvb_database_errors_total",
                "Database failures behind answers, callbacks and push checks.",
                self.db_errors.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP minilvb_connections_open Open client connections (limit {}).\n\
             # TYPE minilvb_connections_open gauge\nminilvb_connections_open {}",
            g.connections_max, g.connections_open
        );
        let _ = writeln!(
            out,
            "# HELP minilvb_connections_refused_total Connections refused as they arrived.\n\
             # TYPE minilvb_connections_refused_total counter\n\
             minilvb_connections_refused_total{{reason=\"total\"}} {}\n\
             minilvb_connections_refused_total{{reason=\"per_addr\"}} {}",
            g.refused_over_total, g.refused_over_addr
        );
        out.push_str("# HELP minilvb_snapshot_duration_seconds Time to commit one snapshot.\n");
        out.push_str("# TYPE minilvb_snapshot_duration_seconds histogram\n");
        h.snapshot_seconds
            .render(&mut out, "minilvb_snapshot_duration_seconds", "");
        let _ = writeln!(
            out,
            "# HELP minilvb_forwarded_calls_total Room calls forwarded to the room's owner node.\n\
             # TYPE minilvb_forwarded_calls_total counter\n\
             minilvb_forwarded_calls_total {}",
            h.forwarded.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP minilvb_list_feed_staleness_seconds From a list change on its owner node to this node's list.\n",
        );
        out.push_str("# TYPE minilvb_list_feed_staleness_seconds histogram\n");
        h.list_staleness
            .render(&mut out, "minilvb_list_feed_staleness_seconds", "");
        out
    }
}
