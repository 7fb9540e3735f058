//! A fixed-window counter per key, in a map of bounded size.
//!
//! Every key's window starts at its first hit (or attempt), and all windows are equally long, so the
//! insertion order is also the expiry order: a queue beside the map finds expired keys (and,
//! when the map is full, the oldest key) without scanning.
//!
//! Hits are either counted at once (`hit`: every Register counts) or only when an attempt
//! turns out to fail (`attempt`: only wrong passwords count). A running attempt holds one of
//! its key's remaining hits until it finishes, so attempts running at once can never add up
//! to more failures than the limit, and an attempt that succeeds uses up nothing.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Windows counted where every node sees them (a cluster's Redis), so that a client
/// spreading its requests over the nodes meets the same limits as on one node. The
/// semantics are `Throttle`'s: a window starts with a key's first hit or attempt, and a
/// running attempt holds one of the hits left until it finishes.
#[async_trait::async_trait]
pub trait SharedWindows: Send + Sync {
    /// Counts one hit of `key` (see `Throttle::hit`): `Ok(None)` under the limit,
    /// `Ok(Some(retry_after))` over it. `Err` when the count cannot be reached: the node's
    /// own throttle then decides alone.
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<Option<Duration>, ()>;

    /// Starts an attempt (see `Throttle::attempt`), holding a hit until `finish`.
    async fn begin(&self, key: &str, limit: u32, window: Duration) -> Result<Shared, ()>;

    /// Ends an attempt `begin` started: a failure counts as a hit.
    async fn finish(&self, key: &str, failed: bool, window: Duration);
}

/// What a shared window says to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// Go on: a hit is held for it.
    Go,
    /// Every hit left is held by running attempts: try again shortly.
    Busy,
    /// The window is used up: retry after this long.
    Throttled(Duration),
}

pub struct Throttle<K> {
    limit: u32,
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner<K>>,
    /// Signalled whenever an attempt finishes, for attempts waiting for a free hit.
    finished: Notify,
}

struct Inner<K> {
    map: HashMap<K, Slot>,
    /// One entry per key in `map`, oldest window first.
    order: VecDeque<(K, Instant)>,
    /// Attempts running per key (no entry at zero). Each is held by a live `Attempt`, so
    /// this is bounded by the requests in flight.
    running: HashMap<K, u32>,
}

/// Why an attempt was not started.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The key has used up its window: retry after this long.
    Throttled(Duration),
    /// Every hit the key has left was held by a running attempt for the whole wait.
    Busy,
}

/// A running attempt: holds one of its key's remaining hits. `fail` counts it; dropping it
/// otherwise (success, an error, a cancelled request) gives the hit back.
pub struct Attempt<'a, K: Eq + Hash + Clone> {
    throttle: &'a Throttle<K>,
    /// `None` when the throttle is unlimited.
    key: Option<K>,
}

impl<K: Eq + Hash + Clone> Attempt<'_, K> {
    /// The attempt failed: it counts as a hit.
    pub fn fail(mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.finish(&key, true);
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for Attempt<'_, K> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.finish(&key, false);
        }
    }
}

#[derive(Clone, Copy)]
struct Slot {
    start: Instant,
    count: u32,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    /// `limit` hits per key per `window`; `limit` 0 means unlimited. At most `capacity` keys
    /// are remembered.
    pub fn new(limit: u32, window: Duration, capacity: usize) -> Self {
        Throttle {
            limit,
            window,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                running: HashMap::new(),
            }),
            finished: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K>> {
        // The map stays consistent at every await-free step, so a panic elsewhere while
        // holding the lock leaves nothing half-done: ignore poisoning.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Counts one hit for `key`. `Err(retry_after)` when the key has used up its window.
    pub fn hit(&self, key: &K) -> Result<(), Duration> {
        self.hit_at(key, Instant::now())
    }

    pub fn hit_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let mut g = self.lock();
        g.expire(now, self.window);
        if let Some(slot) = g.map.get(key) {
            if slot.count >= self.limit {
                return Err((slot.start + self.window).saturating_duration_since(now));
            }
        }
        g.window(key, now, self.capacity).count += 1;
        Ok(())
    }

    /// Starts an attempt for `key` that counts as a hit only if it fails. When the key's
    /// remaining hits are all held by running attempts, waits (up to `max_wait`) for one to
    /// finish: a success frees its hit for the next, a failure uses it up.
    pub async fn attempt(&self, key: &K, max_wait: Duration) -> Result<Attempt<'_, K>, Refused> {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            // Created before the check, so an attempt finishing in between still wakes us.
            let finished = self.finished.notified();
            if let Some(a) = self.try_attempt_at(key, Instant::now())? {
                return Ok(a);
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return Err(Refused::Busy);
            }
        }
    }

    /// `Ok(None)` when every hit `key` has left is held by a running attempt.
    pub fn try_attempt_at(&self, key: &K, now: Instant) -> Result<Option<Attempt<'_, K>>, Refused> {
        if self.limit == 0 {
            return Ok(Some(Attempt {
                throttle: self,
                key: None,
            }));
        }
        let mut g = self.lock();
        g.expire(now, self.window);
        let failed = match g.map.get(key) {
            Some(slot) if slot.count >= self.limit => {
                let wait = (slot.start + self.window).saturating_duration_since(now);
                return Err(Refused::Throttled(wait));
            }
            Some(slot) => slot.count,
            None => 0,
        };
        let running = g.running.entry(key.clone()).or_insert(0);
        if failed.saturating_add(*running) >= self.limit {
            return Ok(None);
        }
        *running += 1;
        // As with `hit`, the window starts with the key's first attempt.
        g.window(key, now, self.capacity);
        Ok(Some(Attempt {
            throttle: self,
            key: Some(key.clone()),
        }))
    }

    fn finish(&self, key: &K, failed: bool) {
        {
            let mut g = self.lock();
            if let Some(n) = g.running.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    g.running.remove(key);
                }
            }
            if failed {
                let now = Instant::now();
                g.expire(now, self.window);
                let slot = g.window(key, now, self.capacity);
                slot.count = slot.count.saturating_add(1);
            }
        }
        // Wakes every waiting attempt, of any key; only keys with more attempts at once
        // than hits left have any, and each just checks again.
        self.finished.notify_waiters();
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash + Clone> Inner<K> {
    /// The current window of `key`, opened now (with no hits) if it has none.
    fn window(&mut self, key: &K, now: Instant, capacity: usize) -> &mut Slot {
        if !self.map.contains_key(key) {
            // Full of live windows: forget the oldest. An attacker who floods the map can
            // only evict keys older than everything it added, and the capacity makes that
            // expensive.
            while self.map.len() >= capacity {
                let Some((old, start)) = self.order.pop_front() else {
                    break;
                };
                if self.map.get(&old).is_some_and(|s| s.start == start) {
                    self.map.remove(&old);
                }
            }
            self.order.push_back((key.clone(), now));
        }
        self.map.entry(key.clone()).or_insert(Slot {
            start: now,
            count: 0,
        })
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((key, start)) = self.order.front() {
            if now.saturating_duration_since(*start) < window {
                break;
            }
            if self.map.get(key).is_some_and(|s| s.start == *start) {
                self.map.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(10);

    #[test]
    fn trips_at_the_limit_and_recovers_after_the_window() {
        let t = Throttle::new(2, W, 100);
        let t0 = Instant::now();
        assert!(t.hit_at(&"a", t0).is_ok());
        assert!(t.hit_at(&"a", t0 + Duration::from_secs(1)).is_ok());
        let wait = t.hit_at(&"a", t0 + Duration::from_secs(4)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        // Other keys are independent.
        assert!(t.hit_at(&"b", t0 + Duration::from_secs(4)).is_ok());
        // The window is counted from the first hit.
        assert!(t.hit_at(&"a", t0 + W).is_ok());
        assert!(t.hit_at(&"a", t0 + W).is_ok());
        assert!(t.hit_at(&"a", t0 + W).is_err());
    }

    #[test]
    fn only_failed_attempts_count_and_running_ones_hold_a_hit() {
        let t = Throttle::new(2, W, 100);
        let t0 = Instant::now();
        let try_at = |t| Throttle::try_attempt_at(t, &"a", t0).unwrap();
        // Any number of successes, one after another, uses up nothing.
        for _ in 0..10 {
            drop(try_at(&t).unwrap());
        }
        // Two at once hold both hits: a third must wait, whatever the outcome will be.
        let (a, b) = (try_at(&t).unwrap(), try_at(&t).unwrap());
        assert!(try_at(&t).is_none());
        // Other keys are independent.
        assert!(t.try_attempt_at(&"b", t0).unwrap().is_some());
        drop(a); // succeeded: its hit is free again
        let c = try_at(&t).unwrap();
        b.fail();
        assert!(try_at(&t).is_none());
        c.fail();
        // Both hits used up by failures: refused for the rest of the window.
        assert!(matches!(
            t.try_attempt_at(&"a", t0),
            Err(Refused::Throttled(w)) if w <= W
        ));
        assert!(t.hit_at(&"a", t0).is_err());
        assert!(t.lock().running.is_empty());
        // A new window starts afresh.
        assert!(t.try_attempt_at(&"a", t0 + 2 * W).unwrap().is_some());
    }

    #[actix_rt::test]
    async fn a_waiting_attempt_starts_when_one_succeeds_and_is_refused_when_one_fails() {
        let t = Throttle::new(1, W, 100);
        // Only a lost wake-up could use up this wait.
        let long = Duration::from_secs(60);
        let first = t.attempt(&"a", long).await.unwrap();
        let waiting = t.attempt(&"a", long);
        let finish = async {
            // Lets the waiter check and park first (nothing here depends on how long).
            tokio::task::yield_now().await;
            drop(first);
        };
        let (second, ()) = futures_util::join!(waiting, finish);
        let second = second.unwrap();
        let waiting = t.attempt(&"a", long);
        let finish = async {
            tokio::task::yield_now().await;
            second.fail();
        };
        let (third, ()) = futures_util::join!(waiting, finish);
        assert!(matches!(third, Err(Refused::Throttled(_))));
    }

    #[actix_rt::test]
    async fn a_wait_that_sees_no_attempt_finish_ends_busy() {
        let t = Throttle::new(1, W, 100);
        let _held = t.attempt(&"a", W).await.unwrap();
        let r = t.attempt(&"a", Duration::from_millis(10)).await;
        assert_eq!(r.err(), Some(Refused::Busy));
    }

    #[actix_rt::test]
    async fn unlimited_attempts_are_not_tracked() {
        let t = Throttle::new(0, W, 1);
        let held: Vec<_> = (0..100)
            .map(|_| t.try_attempt_at(&1u32, Instant::now()))
            .collect();
        assert!(held.iter().all(|a| matches!(a, Ok(Some(_)))));
        drop(held);
        t.attempt(&1u32, W).await.unwrap().fail();
        assert!(t.is_empty());
    }

    #[test]
    fn zero_limit_is_unlimited_and_remembers_nothing() {
        let t = Throttle::new(0, W, 1);
        for _ in 0..100 {
            assert!(t.hit(&1u32).is_ok());
        }
        assert!(t.is_empty());
    }

    #[test]
    fn capacity_bounds_memory_and_evicts_the_oldest() {
        let t = Throttle::new(1, W, 3);
        let t0 = Instant::now();
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            assert!(t.hit_at(k, t0 + Duration::from_millis(i as u64)).is_ok());
        }
        assert_eq!(t.len(), 3);
        let later = t0 + Duration::from_millis(10);
        // "a" was forgotten; "b".."d" are still limited.
        assert!(t.hit_at(&"b", later).is_err());
        assert!(t.hit_at(&"d", later).is_err());
        assert!(t.hit_at(&"a", later).is_ok());
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn a_flood_of_keys_stays_within_capacity() {
        let t = Throttle::new(1, W, 3);
        let t0 = Instant::now();
        for i in 0..10_000u32 {
            assert!(t.hit_at(&i, t0).is_ok());
        }
        let g = t.lock();
        assert_eq!((g.map.len(), g.order.len()), (3, 3));
    }

    #[test]
    fn expired_keys_are_dropped() {
        let t = Throttle::new(5, W, 100);
        let t0 = Instant::now();
        for i in 0..50u32 {
            t.hit_at(&i, t0).unwrap();
        }
        t.hit_at(&999, t0 + W).unwrap();
        assert_eq!(t.len(), 1);
    }
}
