//! A fixed-window counter per key, in a map of bounded size.
//!
//! Every key's window starts at its first hit, and all windows are equally long, so the
//! insertion order is also the expiry order: a queue beside the map finds expired keys (and,
//! when the map is full, the oldest key) without scanning.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct Throttle<K> {
    limit: u32,
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    map: HashMap<K, Slot>,
    /// One entry per key in `map`, oldest window first.
    order: VecDeque<(K, Instant)>,
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
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K>> {
        // The map stays consistent at every await-free step, so a panic elsewhere while
        // holding the lock leaves nothing half-done: ignore poisoning.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
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
        if let Some(slot) = g.map.get_mut(key) {
            if slot.count >= self.limit {
                return Err((slot.start + self.window).saturating_duration_since(now));
            }
            slot.count += 1;
            return Ok(());
        }
        // Full of live windows: forget the oldest. An attacker who floods the map can only
        // evict keys older than everything it added, and the capacity makes that expensive.
        while g.map.len() >= self.capacity {
            let Some((old, start)) = g.order.pop_front() else {
                break;
            };
            if g.map.get(&old).is_some_and(|s| s.start == start) {
                g.map.remove(&old);
            }
        }
        g.map.insert(
            key.clone(),
            Slot {
                start: now,
                count: 1,
            },
        );
        g.order.push_back((key.clone(), now));
        Ok(())
    }

    /// Takes back one hit (an attempt that turned out not to count, e.g. a correct password).
    pub fn refund(&self, key: &K) {
        if let Some(slot) = self.lock().map.get_mut(key) {
            slot.count = slot.count.saturating_sub(1);
        }
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash> Inner<K> {
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
    fn refund_gives_back_one_hit() {
        let t = Throttle::new(1, W, 100);
        let t0 = Instant::now();
        assert!(t.hit_at(&"a", t0).is_ok());
        assert!(t.hit_at(&"a", t0).is_err());
        t.refund(&"a");
        assert!(t.hit_at(&"a", t0).is_ok());
        t.refund(&"nobody");
        assert_eq!(t.len(), 1);
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
