//! Order-statistic index for paged room lists.
//!
//! Room lists are served as pages (`offset`, `limit`) over a sorted order
//! (e.g. by viewer count, then creation time, then id). A `BTreeSet` keeps the
//! keys sorted, but it cannot seek to the k-th item: `iter().skip(offset)`
//! walks all `offset` items one by one, so deep pages cost O(offset) and a
//! client paging through a large list costs O(n²) in total. It also cannot
//! answer "what position is this key at" (rank) without a linear scan.
//!
//! [`OrderIndex`] is a size-augmented treap stored in an arena (a `Vec` of
//! nodes linked by `u32` indexes, with a free list for removed slots). Each
//! node records the size of its subtree, which gives:
//!
//! * `insert` / `remove` / `contains` / `rank` in O(log n) expected time;
//! * `page(offset, limit)` in O(log n + limit): descend by subtree sizes to
//!   the `offset`-th key, then walk in order with an explicit stack.
//!
//! Node priorities come from a per-index xorshift generator (seeded from the
//! standard library's random hasher keys), so the expected depth is O(log n)
//! regardless of insertion order — sorted insertions do not degrade the tree.
//! Recursion (in split/merge) is bounded by the tree depth. No `unsafe`.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;

/// Null link.
const NIL: u32 = u32::MAX;

#[derive(Clone)]
struct Node<K> {
    /// `None` only while the slot is on the free list.
    key: Option<K>,
    /// Left child, or the next free slot while on the free list.
    left: u32,
    right: u32,
    /// Number of keys in the subtree rooted here.
    size: u32,
    /// Heap priority: a parent's priority is >= its children's.
    prio: u32,
}

/// An ordered set of unique keys with O(log n) insert/remove/rank and O(log n + k) page reads.
#[derive(Clone)]
pub struct OrderIndex<K> {
    nodes: Vec<Node<K>>,
    root: u32,
    /// Head of the free-slot list (linked through `Node::left`).
    free: u32,
    /// xorshift64 state for priorities; never zero.
    rng: u64,
}

impl<K: Ord + Clone> OrderIndex<K> {
    pub fn new() -> Self {
        let seed = RandomState::new().hash_one(0x9E37_79B9_7F4A_7C15_u64) | 1;
        OrderIndex {
            nodes: Vec::new(),
            root: NIL,
            free: NIL,
            rng: seed,
        }
    }

    pub fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.root == NIL
    }

    /// true if inserted, false if it was already present.
    pub fn insert(&mut self, key: K) -> bool {
        if self.contains(&key) {
            return false;
        }
        let prio = self.next_prio();
        // Walk down past every node that stays above the new one, counting it
        // into their subtree sizes; then split the remaining subtree around
        // the key and hang both halves under the new node.
        let mut parent = NIL;
        let mut went_left = false;
        let mut cur = self.root;
        while cur != NIL && self.node(cur).prio >= prio {
            parent = cur;
            let node = self.node_mut(cur);
            node.size += 1;
            went_left = key < *node.key.as_ref().expect("live node has a key");
            cur = if went_left { node.left } else { node.right };
        }
        let (left, right) = self.split(cur, &key);
        let new = self.alloc(key, prio, left, right);
        self.replace_child(parent, went_left, new);
        true
    }

    /// true if it was present.
    pub fn remove(&mut self, key: &K) -> bool {
        if !self.contains(key) {
            return false;
        }
        let mut parent = NIL;
        let mut went_left = false;
        let mut cur = self.root;
        loop {
            let node = self.node_mut(cur);
            match key.cmp(node.key.as_ref().expect("live node has a key")) {
                std::cmp::Ordering::Equal => break,
                std::cmp::Ordering::Less => {
                    node.size -= 1;
                    parent = cur;
                    went_left = true;
                    cur = node.left;
                }
                std::cmp::Ordering::Greater => {
                    node.size -= 1;
                    parent = cur;
                    went_left = false;
                    cur = node.right;
                }
            }
        }
        let (left, right) = (self.node(cur).left, self.node(cur).right);
        let merged = self.merge(left, right);
        self.replace_child(parent, went_left, merged);
        self.release(cur);
        if self.root == NIL {
            // Empty again: drop the arena so churn cannot keep it large.
            self.clear();
        }
        true
    }

    pub fn contains(&self, key: &K) -> bool {
        let mut cur = self.root;
        while cur != NIL {
            let node = self.node(cur);
            match key.cmp(self.key(cur)) {
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Less => cur = node.left,
                std::cmp::Ordering::Greater => cur = node.right,
            }
        }
        false
    }

    /// Number of keys strictly less than `key`.
    pub fn rank(&self, key: &K) -> usize {
        let mut rank = 0usize;
        let mut cur = self.root;
        while cur != NIL {
            let node = self.node(cur);
            match key.cmp(self.key(cur)) {
                std::cmp::Ordering::Equal => return rank + self.size(node.left) as usize,
                std::cmp::Ordering::Less => cur = node.left,
                std::cmp::Ordering::Greater => {
                    rank += self.size(node.left) as usize + 1;
                    cur = node.right;
                }
            }
        }
        rank
    }

    /// Keys at sorted positions [offset, offset+limit), ascending; fewer if the set is shorter.
    ///
    /// Costs O(log n + limit): descends by subtree sizes to the `offset`-th
    /// key, then walks in order with an explicit stack.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<&K> {
        let len = self.len();
        if offset >= len || limit == 0 {
            return Vec::new();
        }
        let take = limit.min(len - offset);
        let mut out = Vec::with_capacity(take);
        out.extend(self.iter_from(offset).take(take));
        out
    }

    /// All keys, ascending.
    pub fn iter(&self) -> impl Iterator<Item = &K> {
        self.iter_from(0)
    }

    pub fn clear(&mut self) {
        self.nodes.clear();
        self.root = NIL;
        self.free = NIL;
    }

    // ---- internals -------------------------------------------------------

    fn node(&self, i: u32) -> &Node<K> {
        &self.nodes[i as usize]
    }

    fn node_mut(&mut self, i: u32) -> &mut Node<K> {
        &mut self.nodes[i as usize]
    }

    fn key(&self, i: u32) -> &K {
        self.node(i).key.as_ref().expect("live node has a key")
    }

    fn size(&self, i: u32) -> u32 {
        if i == NIL {
            0
        } else {
            self.node(i).size
        }
    }

    fn update_size(&mut self, i: u32) {
        let node = self.node(i);
        let size = 1 + self.size(node.left) + self.size(node.right);
        self.node_mut(i).size = size;
    }

    fn next_prio(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 32) as u32
    }

    fn alloc(&mut self, key: K, prio: u32, left: u32, right: u32) -> u32 {
        let size = 1 + self.size(left) + self.size(right);
        let node = Node {
            key: Some(key),
            left,
            right,
            size,
            prio,
        };
        if self.free != NIL {
            let i = self.free;
            self.free = self.node(i).left;
            *self.node_mut(i) = node;
            i
        } else {
            let i = u32::try_from(self.nodes.len())
                .ok()
                .filter(|&i| i != NIL)
                .expect("OrderIndex capacity exceeded (u32 indexes)");
            self.nodes.push(node);
            i
        }
    }

    fn release(&mut self, i: u32) {
        let free = self.free;
        let node = self.node_mut(i);
        node.key = None;
        node.left = free;
        node.right = NIL;
        node.size = 0;
        self.free = i;
    }

    /// Points `parent`'s left/right link (or the root if `parent` is NIL) at `child`.
    fn replace_child(&mut self, parent: u32, left: bool, child: u32) {
        if parent == NIL {
            self.root = child;
        } else if left {
            self.node_mut(parent).left = child;
        } else {
            self.node_mut(parent).right = child;
        }
    }

    /// Splits subtree `t` (which does not contain `key`) into (< key, > key).
    /// Recursion depth is bounded by the depth of `t`.
    fn split(&mut self, t: u32, key: &K) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.key(t) < key {
            let (l, r) = self.split(self.node(t).right, key);
            self.node_mut(t).right = l;
            self.update_size(t);
            (t, r)
        } else {
            let (l, r) = self.split(self.node(t).left, key);
            self.node_mut(t).left = r;
            self.update_size(t);
            (l, t)
        }
    }

    /// Joins subtrees `a` and `b` where every key in `a` is less than every key in `b`.
    /// Recursion depth is bounded by the sum of the two subtrees' depths.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.node(a).prio >= self.node(b).prio {
            let m = self.merge(self.node(a).right, b);
            self.node_mut(a).right = m;
            self.update_size(a);
            a
        } else {
            let m = self.merge(a, self.node(b).left);
            self.node_mut(b).left = m;
            self.update_size(b);
            b
        }
    }

    /// In-order iterator starting at sorted position `offset` (empty if past the end).
    fn iter_from(&self, offset: usize) -> Iter<'_, K> {
        let len = self.len();
        let mut stack = Vec::new();
        if offset < len {
            // The stack ends up holding the `offset`-th node on top, below it
            // the ancestors we descended left from: exactly the pending nodes
            // of an in-order walk.
            let mut k = offset;
            let mut cur = self.root;
            while cur != NIL {
                let node = self.node(cur);
                let left_size = self.size(node.left) as usize;
                if k < left_size {
                    stack.push(cur);
                    cur = node.left;
                } else if k == left_size {
                    stack.push(cur);
                    break;
                } else {
                    k -= left_size + 1;
                    cur = node.right;
                }
            }
        }
        Iter {
            index: self,
            stack,
            remaining: len.saturating_sub(offset),
        }
    }
}

impl<K: Ord + Clone> Default for OrderIndex<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone + fmt::Debug> fmt::Debug for OrderIndex<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// In-order iterator with an explicit stack of pending nodes (O(depth) memory).
struct Iter<'a, K> {
    index: &'a OrderIndex<K>,
    stack: Vec<u32>,
    remaining: usize,
}

impl<'a, K: Ord + Clone> Iterator for Iter<'a, K> {
    type Item = &'a K;

    fn next(&mut self) -> Option<&'a K> {
        let index = self.index;
        let top = self.stack.pop()?;
        let mut cur = index.node(top).right;
        while cur != NIL {
            self.stack.push(cur);
            cur = index.node(cur).left;
        }
        self.remaining -= 1;
        Some(index.key(top))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<K: Ord + Clone> ExactSizeIterator for Iter<'_, K> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Reverse;
    use std::collections::BTreeSet;

    impl<K: Ord + Clone> OrderIndex<K> {
        /// Checks BST order, heap order, subtree sizes and arena accounting; returns the height.
        fn check_invariants(&self) -> usize {
            fn walk<K: Ord + Clone>(
                t: &OrderIndex<K>,
                i: u32,
                lo: Option<&K>,
                hi: Option<&K>,
            ) -> (u32, usize) {
                if i == NIL {
                    return (0, 0);
                }
                let node = t.node(i);
                let key = t.key(i);
                assert!(lo.is_none_or(|lo| lo < key), "BST order violated");
                assert!(hi.is_none_or(|hi| key < hi), "BST order violated");
                for child in [node.left, node.right] {
                    if child != NIL {
                        assert!(t.node(child).prio <= node.prio, "heap order violated");
                    }
                }
                let (ls, lh) = walk(t, node.left, lo, Some(key));
                let (rs, rh) = walk(t, node.right, Some(key), hi);
                assert_eq!(node.size, ls + rs + 1, "bad subtree size");
                (node.size, lh.max(rh) + 1)
            }
            let (size, height) = walk(self, self.root, None, None);
            let mut free = 0;
            let mut f = self.free;
            while f != NIL {
                assert!(self.node(f).key.is_none());
                free += 1;
                f = self.node(f).left;
            }
            assert_eq!(size as usize + free, self.nodes.len(), "arena leak");
            height
        }
    }

    #[test]
    fn empty() {
        let idx: OrderIndex<u32> = OrderIndex::new();
        assert_eq!(idx.len(), 0);
        assert!(idx.is_empty());
        assert!(!idx.contains(&1));
        assert_eq!(idx.rank(&1), 0);
        assert!(idx.page(0, 10).is_empty());
        assert!(idx.page(5, 10).is_empty());
        assert_eq!(idx.iter().count(), 0);
        let d: OrderIndex<u32> = OrderIndex::default();
        assert!(d.is_empty());
        idx.check_invariants();
    }

    #[test]
    fn single() {
        let mut idx = OrderIndex::new();
        assert!(idx.insert(7u32));
        assert_eq!(idx.len(), 1);
        assert!(!idx.is_empty());
        assert!(idx.contains(&7));
        assert_eq!(idx.rank(&6), 0);
        assert_eq!(idx.rank(&7), 0);
        assert_eq!(idx.rank(&8), 1);
        assert_eq!(idx.page(0, 10), vec![&7]);
        assert!(idx.page(1, 10).is_empty());
        assert!(idx.remove(&7));
        assert!(idx.is_empty());
        assert!(!idx.contains(&7));
        idx.check_invariants();
    }

    #[test]
    fn duplicates() {
        let mut idx = OrderIndex::new();
        assert!(idx.insert(3u32));
        assert!(!idx.insert(3));
        assert!(idx.insert(1));
        assert!(!idx.insert(1));
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.iter().copied().collect::<Vec<_>>(), vec![1, 3]);
        idx.check_invariants();
    }

    #[test]
    fn remove_missing() {
        let mut idx = OrderIndex::new();
        assert!(!idx.remove(&1u32));
        idx.insert(2);
        idx.insert(4);
        assert!(!idx.remove(&3));
        assert!(!idx.remove(&0));
        assert!(!idx.remove(&5));
        assert_eq!(idx.len(), 2);
        assert!(idx.remove(&2));
        assert!(!idx.remove(&2));
        assert_eq!(idx.len(), 1);
        idx.check_invariants();
    }

    #[test]
    fn page_past_end_and_zero_limit() {
        let mut idx = OrderIndex::new();
        for k in 0..10u32 {
            idx.insert(k);
        }
        assert_eq!(idx.page(8, 5), vec![&8, &9]);
        assert!(idx.page(10, 5).is_empty());
        assert!(idx.page(usize::MAX, usize::MAX).is_empty());
        assert_eq!(idx.page(9, usize::MAX), vec![&9]);
        assert!(idx.page(0, 0).is_empty());
        assert!(idx.page(3, 0).is_empty());
        assert_eq!(idx.page(0, 3), vec![&0, &1, &2]);
        assert_eq!(idx.page(4, 3), vec![&4, &5, &6]);
    }

    #[test]
    fn slots_are_reused_and_clear_resets() {
        let mut idx = OrderIndex::new();
        for k in 0..100u32 {
            idx.insert(k);
        }
        for k in 0..50u32 {
            idx.remove(&k);
        }
        for k in 200..250u32 {
            idx.insert(k);
        }
        assert_eq!(idx.nodes.len(), 100);
        idx.check_invariants();
        idx.clear();
        assert!(idx.is_empty());
        assert!(idx.nodes.is_empty());
        assert!(idx.insert(1));
        assert_eq!(idx.page(0, 5), vec![&1]);
        idx.check_invariants();
    }

    #[test]
    fn sorted_insertions_stay_shallow() {
        const N: u32 = 200_000;
        let mut idx = OrderIndex::new();
        for k in 0..N {
            assert!(idx.insert(k));
        }
        assert_eq!(idx.len(), N as usize);
        let height = idx.check_invariants();
        assert!(height < 120, "height {height} too large for n = {N}");
        assert_eq!(idx.rank(&123_456), 123_456);
        assert_eq!(idx.page(150_000, 3), vec![&150_000, &150_001, &150_002]);
        assert!(idx.iter().copied().eq(0..N));
        // Descending removals and inserts as well.
        for k in (0..N / 2).rev() {
            assert!(idx.remove(&k));
        }
        for k in (N..N + N / 2).rev() {
            assert!(idx.insert(k));
        }
        let height = idx.check_invariants();
        assert!(height < 120, "height {height} too large for n = {N}");
        assert!(idx.iter().copied().eq(N / 2..N + N / 2));
    }

    /// Slow-ish in debug builds; run with `cargo test -- --ignored`.
    #[test]
    #[ignore]
    fn million_sorted_insertions() {
        const N: u32 = 1_000_000;
        let mut idx = OrderIndex::new();
        for k in 0..N {
            assert!(idx.insert(k));
        }
        let height = idx.check_invariants();
        assert!(height < 150, "height {height} too large for n = {N}");
        assert_eq!(idx.page(999_998, 10), vec![&999_998, &999_999]);
        assert_eq!(idx.rank(&777_777), 777_777);
    }

    #[test]
    fn room_list_tuple_keys() {
        type RoomKey = (Reverse<u64>, Reverse<i64>, String);
        let key = |viewers: u64, created: i64, id: &str| -> RoomKey {
            (Reverse(viewers), Reverse(created), id.to_string())
        };
        let mut idx: OrderIndex<RoomKey> = OrderIndex::new();
        assert!(idx.insert(key(10, 100, "a")));
        assert!(idx.insert(key(50, 90, "b")));
        assert!(idx.insert(key(10, 200, "c")));
        assert!(idx.insert(key(10, 200, "d")));
        assert!(idx.insert(key(0, 1, "e")));
        assert!(!idx.insert(key(10, 100, "a")));
        let ids = |idx: &OrderIndex<RoomKey>, off, lim| -> Vec<String> {
            idx.page(off, lim)
                .into_iter()
                .map(|k| k.2.clone())
                .collect()
        };
        // Most viewers first, then newest, then id ascending.
        assert_eq!(ids(&idx, 0, 10), ["b", "c", "d", "a", "e"]);
        assert_eq!(ids(&idx, 1, 2), ["c", "d"]);
        assert_eq!(idx.rank(&key(10, 100, "a")), 3);
        // A viewer-count change is remove + insert of the new key.
        assert!(idx.remove(&key(10, 100, "a")));
        assert!(idx.insert(key(99, 100, "a")));
        assert_eq!(ids(&idx, 0, 2), ["a", "b"]);
        assert_eq!(idx.rank(&key(0, 1, "e")), 4);
        assert_eq!(
            format!("{:?}", idx.page(0, 1)),
            r#"[(Reverse(99), Reverse(100), "a")]"#
        );
        idx.check_invariants();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..200).prop_map(Op::Insert),
            (0u32..200).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #[test]
        fn matches_btreeset(
            steps in prop::collection::vec((op(), 0u32..210, 0usize..220, 0usize..40), 1..400)
        ) {
            let mut idx = OrderIndex::new();
            let mut model = BTreeSet::new();
            for (op, probe, offset, limit) in steps {
                match op {
                    Op::Insert(k) => prop_assert_eq!(idx.insert(k), model.insert(k)),
                    Op::Remove(k) => prop_assert_eq!(idx.remove(&k), model.remove(&k)),
                }
                prop_assert_eq!(idx.len(), model.len());
                prop_assert_eq!(idx.is_empty(), model.is_empty());
                prop_assert_eq!(idx.contains(&probe), model.contains(&probe));
                prop_assert_eq!(idx.rank(&probe), model.range(..probe).count());
                let expected: Vec<&u32> = model.iter().skip(offset).take(limit).collect();
                prop_assert_eq!(idx.page(offset, limit), expected);
                prop_assert!(idx.iter().eq(model.iter()));
                idx.check_invariants();
            }
        }
    }
}
