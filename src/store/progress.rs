//! Progress of long store work (restoring a large database, migrating it) in the log: rows
//! so far and the rate, every few seconds, then a final line.

use std::time::{Duration, Instant};

/// How often a long pass reports.
const EVERY: Duration = Duration::from_secs(2);

pub struct Progress {
    what: &'static str,
    started: Instant,
    last: Instant,
    rows: u64,
}

impl Progress {
    pub fn new(what: &'static str) -> Progress {
        let now = Instant::now();
        Progress {
            what,
            started: now,
            last: now,
            rows: 0,
        }
    }

    fn rate(&self) -> u64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 {
            (self.rows as f64 / secs) as u64
        } else {
            0
        }
    }

    /// One more row; logs when a report is due.
    pub fn row(&mut self) {
        self.rows += 1;
        if self.rows.is_multiple_of(1024) && self.last.elapsed() >= EVERY {
            self.last = Instant::now();
            tracing::info!(
                what = self.what,
                rows = self.rows,
                rows_per_sec = self.rate(),
                "restoring"
            );
        }
    }

    pub fn done(self) {
        tracing::info!(
            what = self.what,
            rows = self.rows,
            rows_per_sec = self.rate(),
            secs = format!("{:.2}", self.started.elapsed().as_secs_f64()),
            "restored"
        );
    }
}
