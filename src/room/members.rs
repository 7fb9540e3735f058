//! A room's member set: O(1) membership, newest-first paging in O(log n + page) at any
//! offset, and a compact layout — one allocation per member (userid, nickname and avatar
//! packed together), slots in join order (in segments of 16,384), a hash table of slot
//! numbers (so the userid is stored once), and a rank index of a few bytes per block of 64
//! slots.
//!
//! FetchGroupMemberList is public and rooms run on the HTTP workers' threads, so a page far
//! from the newest members must not walk the members before it: one request for page
//! 10,000,000 of a room of 400,000 would otherwise stall everything else on its worker.
//!
//! For the same reason no single enter or quit may cost what the whole room costs: a
//! celebrity's room grows by hundreds of thousands of members in minutes. Slots never move
//! when the room grows (a new segment, not a bigger copy), the table is split in 256 shards
//! once a room is large, so a doubling rehashes a 256th of it, and a compaction
//! rewrites one segment, never the room.

use crate::model::Member;
use crate::model::MemberInfo;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;
use std::ptr::NonNull;

/// One member in one allocation:
/// `[seq: 48-bit][userid len: u16][nickname len: u16][headpic len: u16][userid][nickname][headpic]`.
/// A thin pointer (8 bytes in the slot vector, 8 with `Option`'s niche) plus one heap block
/// that carries its own lengths: an 8-character CJK nickname, a 12-byte id and an 80-byte
/// avatar make exactly 128 bytes, a size class of the allocator. (A `Box<[u8]>` would be a
/// 16-byte slot: 8 MB more for a room of a million.)
struct Entry {
    ptr: NonNull<u8>,
}

// SAFETY: an Entry owns its block alone and never shares it, as a `Box<[u8]>` would.
unsafe impl Send for Entry {}

/// Bytes before the userid: the join sequence and the three lengths.
const HEAD: usize = 12;

/// A join sequence fits in 48 bits (a broadcast of 10^14 joins is not a concern); one from
/// a tampered store is clamped, which can only reorder that member.
const SEQ_MAX: i64 = (1 << 47) - 1;

impl Entry {
    fn new(userid: &str, nickname: &str, headpic: &str, seq: i64) -> Entry {
        let seq = seq.clamp(-SEQ_MAX - 1, SEQ_MAX);
        let mut v = Vec::with_capacity(HEAD + userid.len() + nickname.len() + headpic.len());
        v.extend_from_slice(&seq.to_le_bytes()[..6]);
        v.extend_from_slice(&(userid.len() as u16).to_le_bytes());
        v.extend_from_slice(&(nickname.len() as u16).to_le_bytes());
        v.extend_from_slice(&(headpic.len() as u16).to_le_bytes());
        v.extend_from_slice(userid.as_bytes());
        v.extend_from_slice(nickname.as_bytes());
        v.extend_from_slice(headpic.as_bytes());
        // Exactly as long as its capacity, so the box takes the allocation as it is; the
        // slice's length is dropped here and read back from the header.
        let block = Box::into_raw(v.into_boxed_slice()) as *mut u8;
        Entry {
            // SAFETY: a Box's pointer is never null.
            ptr: unsafe { NonNull::new_unchecked(block) },
        }
    }

    fn head(&self) -> &[u8; HEAD] {
        // SAFETY: every block starts with its HEAD bytes, written by `new`.
        unsafe { &*(self.ptr.as_ptr() as *const [u8; HEAD]) }
    }

    /// The userid, nickname and headpic lengths.
    fn lens(&self) -> (usize, usize, usize) {
        let d = self.head();
        (
            u16::from_le_bytes([d[6], d[7]]) as usize,
            u16::from_le_bytes([d[8], d[9]]) as usize,
            u16::from_le_bytes([d[10], d[11]]) as usize,
        )
    }

    /// The block's length, read from its header.
    fn data_len(&self) -> usize {
        let (a, b, c) = self.lens();
        HEAD + a + b + c
    }

    /// The userid, nickname and headpic bytes, from one reading of the header.
    fn fields(&self) -> (&[u8], &[u8], &[u8]) {
        let (a, b, c) = self.lens();
        // SAFETY: the block is exactly HEAD + a + b + c bytes, all written by `new`.
        let body = unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(HEAD), a + b + c) };
        let (userid, rest) = body.split_at(a);
        let (nickname, headpic) = rest.split_at(b);
        (userid, nickname, headpic)
    }

    fn seq(&self) -> i64 {
        let d = self.head();
        let v = i64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], 0, 0]);
        (v << 16) >> 16 // sign-extend the 48 bits
    }

    fn userid_bytes(&self) -> &[u8] {
        self.fields().0
    }
    /// The fields were whole `&str`s when stored, so they are valid UTF-8.
    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap_or("")
    }
    fn userid(&self) -> &str {
        Self::text(self.userid_bytes())
    }
    fn nickname(&self) -> &str {
        Self::text(self.fields().1)
    }
    fn headpic(&self) -> &str {
        Self::text(self.fields().2)
    }
    fn member(&self) -> Member {
        Member {
            userid: self.userid().into(),
            nickname: self.nickname().into(),
            headpic: self.headpic().into(),
            seq: self.seq(),
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let len = self.data_len();
        // SAFETY: the pointer came from `Box::into_raw` of a `Box<[u8]>` of this length
        // (read from the block's header), and is dropped once, here.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), len)) });
    }
}

/// Slots per block of the rank index: 8 bytes of index per block, so well under a byte per
/// member, while a page scans at most one block's slots for each block it reads from.
const BLOCK: usize = 64;
/// No block: the oldest non-empty block has no predecessor.
const NO_BLOCK: u32 = u32::MAX;

/// Members by rank over the slot vector: a Fenwick tree of live members per block of
/// `BLOCK` slots, so the block holding the k-th member is found in O(log n), and for each
/// non-empty block the non-empty block before it, so a newest-first page steps over any run
/// of emptied blocks at once. Together a page costs O(log n + page), holes or not.
#[derive(Default)]
struct Ranks {
    /// `tree[i - 1]` is the live count of blocks `(i - lowbit(i), i]`, `i` counted from 1.
    tree: Vec<u32>,
    /// For each non-empty block, the nearest non-empty block before it, or `NO_BLOCK`.
    /// Unused (stale) for empty blocks.
    prev: Vec<u32>,
}

fn lowbit(i: usize) -> usize {
    i & i.wrapping_neg()
}

impl Ranks {
    /// From each block's live count: O(blocks).
    fn build(counts: Vec<u32>) -> Ranks {
        let mut prev = Vec::with_capacity(counts.len());
        let mut last = NO_BLOCK;
        for (b, &c) in counts.iter().enumerate() {
            prev.push(last);
            if c > 0 {
                last = b as u32;
            }
        }
        let mut tree = counts;
        let n = tree.len();
        for i in 1..=n {
            let j = i + lowbit(i);
            if j <= n {
                tree[j - 1] += tree[i - 1];
            }
        }
        Ranks { tree, prev }
    }

    fn blocks(&self) -> usize {
        self.tree.len()
    }

    /// Live members in blocks `[0, n)`.
    fn prefix(&self, mut n: usize) -> u32 {
        let mut s = 0;
        while n > 0 {
            s += self.tree[n - 1];
            n -= lowbit(n);
        }
        s
    }

    /// Appends an empty block.
    fn grow(&mut self) {
        let i = self.tree.len() + 1;
        // The new node covers blocks (i - lowbit(i), i], all but the new one already there.
        let covered = self.prefix(i - 1) - self.prefix(i - lowbit(i));
        self.tree.push(covered);
        self.prev.push(NO_BLOCK);
    }

    fn add(&mut self, block: usize, up: bool) {
        let mut i = block + 1;
        while i <= self.tree.len() {
            if up {
                self.tree[i - 1] += 1;
            } else {
                self.tree[i - 1] -= 1;
            }
            i += lowbit(i);
        }
    }

    /// Sets one block's live count: O(log n).
    fn set(&mut self, block: usize, count: u32) {
        let old = self.prefix(block + 1) - self.prefix(block);
        let mut i = block + 1;
        while i <= self.tree.len() {
            self.tree[i - 1] = self.tree[i - 1] - old + count;
            i += lowbit(i);
        }
    }

    /// Drops the blocks from `n` on (they must be empty): a Fenwick tree's first `n` nodes
    /// cover only the first `n` blocks.
    fn truncate(&mut self, n: usize) {
        self.tree.truncate(n);
        self.prev.truncate(n);
    }

    /// The block holding the member of rank `k` (0-based, oldest first), and that member's
    /// rank within its block. `k` must be below the total.
    fn find(&self, mut k: u32) -> (usize, u32) {
        let n = self.tree.len();
        let mut pos = 0;
        let mut step = if n == 0 { 0 } else { 1 << n.ilog2() };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next - 1] <= k {
                pos = next;
                k -= self.tree[next - 1];
            }
            step >>= 1;
        }
        (pos, k)
    }
}

/// Slots per segment of the slot storage: a multiple of `BLOCK`. A segment is allocated
/// once at full size (but the first, which grows as a small room does), so growing a room
/// never copies its older members, and one segment is what a compaction rewrites.
const SEG: usize = 1 << 14;

/// The slots in join order, in segments of `SEG` addresses: slot `i` lives in segment
/// `i / SEG`, at `i % SEG`. A segment's vector may be shorter than `SEG` (compacted, or the
/// newest): the addresses past its end are holes.
#[derive(Default)]
struct Slots {
    segs: Vec<Vec<Option<Entry>>>,
    /// Members in each segment.
    live: Vec<u32>,
}

impl Slots {
    /// Addresses in use: every segment's `SEG`, but the newest's length.
    fn len(&self) -> usize {
        match self.segs.last() {
            None => 0,
            Some(last) => (self.segs.len() - 1) * SEG + last.len(),
        }
    }

    fn get(&self, i: u32) -> Option<&Entry> {
        let i = i as usize;
        self.segs.get(i / SEG)?.get(i % SEG)?.as_ref()
    }

    fn get_mut(&mut self, i: u32) -> Option<&mut Entry> {
        let i = i as usize;
        self.segs.get_mut(i / SEG)?.get_mut(i % SEG)?.as_mut()
    }

    /// Appends; returns the new slot's address.
    fn push(&mut self, e: Entry) -> u32 {
        if self.segs.last().is_none_or(|s| s.len() == SEG) {
            // The first segment grows with the room; later ones start at full size.
            let cap = if self.segs.is_empty() { 0 } else { SEG };
            self.segs.push(Vec::with_capacity(cap));
            self.live.push(0);
        }
        let seg = self.segs.len() - 1;
        let v = &mut self.segs[seg];
        if v.len() == v.capacity() {
            // Only the first segment fills up this way: grow it by a quarter, not double,
            // so the ten thousand small rooms of a busy evening keep little unused room.
            v.reserve_exact((v.len() / 4).clamp(8, SEG - v.len()));
        }
        let at = seg * SEG + v.len();
        v.push(Some(e));
        self.live[seg] += 1;
        at as u32
    }

    fn take(&mut self, i: u32) -> Option<Entry> {
        let i = i as usize;
        let e = self.segs.get_mut(i / SEG)?.get_mut(i % SEG)?.take();
        if e.is_some() {
            self.live[i / SEG] -= 1;
        }
        e
    }

    /// The slots of block `b` (fewer than `BLOCK` at a segment's end; none past it).
    fn block(&self, b: usize) -> &[Option<Entry>] {
        let start = b * BLOCK;
        let Some(seg) = self.segs.get(start / SEG) else {
            return &[];
        };
        let off = (start % SEG).min(seg.len());
        &seg[off..seg.len().min(off + BLOCK)]
    }
}

/// Tables of slot addresses, hashed by the slot's userid. A large room's table is split in
/// `SHARDS` by the hash, so that it grows a shard at a time: a doubling rehashes a
/// 256th of the room, never the whole of it.
enum Table {
    One(HashTable<u32>),
    Sharded(Box<[HashTable<u32>]>),
}

impl Default for Table {
    fn default() -> Self {
        Table::One(HashTable::new())
    }
}

/// Addresses per member (plus a segment) past which a room is renumbered.
const SPARSE: usize = 1024;

/// A table this large is split (once; about a millisecond).
const SHARD_AT: usize = 1 << 14;
const SHARDS: usize = 256;

/// The shard of a hash: bits that hashbrown uses neither for the bucket (the low bits) nor
/// for the control byte (the top seven).
fn shard_of(h: u64) -> usize {
    ((h >> 32) as usize) % SHARDS
}

impl Table {
    fn for_hash(&self, h: u64) -> &HashTable<u32> {
        match self {
            Table::One(t) => t,
            Table::Sharded(s) => &s[shard_of(h)],
        }
    }

    fn for_hash_mut(&mut self, h: u64) -> &mut HashTable<u32> {
        match self {
            Table::One(t) => t,
            Table::Sharded(s) => &mut s[shard_of(h)],
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Table::One(t) => t.len(),
            Table::Sharded(s) => s.iter().map(HashTable::len).sum(),
        }
    }
}

#[derive(Default)]
pub struct Members {
    slots: Slots,
    live: usize,
    table: Table,
    hasher: DefaultHashBuilder,
    next_seq: i64,
    /// Kept in step with `slots` by `push`, `quit`, the compactions, `from_rows` and `clear`.
    ranks: Ranks,
}

/// Longest field kept; longer input is refused at the protocol edge long before this.
const MAX_FIELD: usize = u16::MAX as usize / 2;

/// `clip` for an owned field: what the member set stores is what is persisted.
pub fn clip_owned(mut s: String) -> String {
    let n = clip(&s).len();
    s.truncate(n);
    s
}

fn clip(s: &str) -> &str {
    if s.len() <= MAX_FIELD {
        return s;
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The userid hash of the slot at an address (0 for a hole: never asked).
fn slot_hash(slots: &Slots, hasher: &DefaultHashBuilder, i: u32) -> u64 {
    hasher.hash_one(slots.get(i).map(Entry::userid).unwrap_or_default())
}

impl Members {
    /// From stored rows, oldest first.
    pub fn from_rows(mut rows: Vec<Member>) -> Self {
        rows.sort_by_key(|r| r.seq);
        let mut m = Members::default();
        for r in rows {
            // Stored sequences are ours, so in range; a tampered one must not overflow.
            let seq = r.seq.clamp(-SEQ_MAX, SEQ_MAX - 1);
            m.next_seq = m.next_seq.max(seq + 1);
            m.push_slot(Entry::new(
                clip(&r.userid),
                clip(&r.nickname),
                clip(&r.headpic),
                seq,
            ));
        }
        m.rebuild_ranks();
        m
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn find(&self, userid: &str) -> Option<u32> {
        let h = self.hasher.hash_one(userid);
        let slots = &self.slots;
        self.table
            .for_hash(h)
            .find(h, |&i| {
                slots
                    .get(i)
                    .is_some_and(|e| e.userid_bytes() == userid.as_bytes())
            })
            .copied()
    }

    /// Appends a member, rank index included.
    fn push(&mut self, e: Entry) {
        let b = self.slots.len() / BLOCK;
        if b == self.ranks.blocks() {
            self.ranks.grow();
        }
        if self.ranks.prefix(b + 1) == self.ranks.prefix(b) {
            // The last block was empty (new, or every member in it left): it now follows
            // the block of the newest member.
            self.ranks.prev[b] = match self.live {
                0 => NO_BLOCK,
                n => self.ranks.find(n as u32 - 1).0 as u32,
            };
        }
        self.ranks.add(b, true);
        self.push_slot(e);
    }

    /// Appends a member to the slots and the table only; the caller keeps the ranks.
    fn push_slot(&mut self, e: Entry) {
        let h = self.hasher.hash_one(e.userid());
        let idx = self.slots.push(e);
        self.live += 1;
        if let Table::One(t) = &self.table {
            if t.len() >= SHARD_AT {
                self.shard();
            }
        }
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table
            .for_hash_mut(h)
            .insert_unique(h, idx, |&i| slot_hash(slots, hasher, i));
    }

    /// Splits the one table into shards (each reserved for its share, and a little more).
    fn shard(&mut self) {
        let Table::One(one) = std::mem::take(&mut self.table) else {
            return;
        };
        let per = one.len() / SHARDS * 2;
        let mut shards: Vec<HashTable<u32>> =
            (0..SHARDS).map(|_| HashTable::with_capacity(per)).collect();
        let (slots, hasher) = (&self.slots, &self.hasher);
        for i in one {
            let h = slot_hash(slots, hasher, i);
            shards[shard_of(h)].insert_unique(h, i, |&j| slot_hash(slots, hasher, j));
        }
        self.table = Table::Sharded(shards.into_boxed_slice());
    }

    pub fn contains(&self, userid: &str) -> bool {
        self.find(userid).is_some()
    }

    /// Adds a member: the new member's join sequence, or `None` when already present (a
    /// set: entering twice counts once; the nickname and avatar are refreshed, the join
    /// position kept). The caller builds the row to persist from its own strings, so an
    /// enter makes one allocation here, the member's block.
    pub fn enter(&mut self, userid: &str, nickname: &str, headpic: &str) -> Option<i64> {
        let (userid, nickname, headpic) = (clip(userid), clip(nickname), clip(headpic));
        if let Some(i) = self.find(userid) {
            if let Some(e) = self.slots.get_mut(i) {
                if e.nickname() != nickname || e.headpic() != headpic {
                    *e = Entry::new(userid, nickname, headpic, e.seq());
                }
            }
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.push(Entry::new(userid, nickname, headpic, seq));
        Some(seq)
    }

    /// The member as it is now, for persistence after a refresh.
    pub fn get(&self, userid: &str) -> Option<Member> {
        let i = self.find(userid)?;
        self.slots.get(i).map(Entry::member)
    }

    /// Removes a member; false when not a member.
    pub fn quit(&mut self, userid: &str) -> bool {
        let h = self.hasher.hash_one(userid);
        let slots = &self.slots;
        let Ok(found) = self.table.for_hash_mut(h).find_entry(h, |&i| {
            slots
                .get(i)
                .is_some_and(|e| e.userid_bytes() == userid.as_bytes())
        }) else {
            return false;
        };
        let (i, _) = found.remove();
        self.slots.take(i);
        self.live -= 1;
        let b = i as usize / BLOCK;
        self.ranks.add(b, false);
        let before = self.ranks.prefix(b);
        if self.ranks.prefix(b + 1) == before && (before as usize) < self.live {
            // The block is empty now: the next non-empty block follows its predecessor.
            let (next, _) = self.ranks.find(before);
            self.ranks.prev[next] = self.ranks.prev[b];
        }
        let seg = i as usize / SEG;
        let (len, live) = (self.slots.segs[seg].len(), self.slots.live[seg] as usize);
        if self.live == 0 {
            // Everyone left: start again from address 0 (O(segments), no member to move).
            self.clear();
        } else if len > BLOCK && live < len / 2 {
            self.compact_segment(seg);
        } else if self.slots.len() > SPARSE * (self.live + SEG) || self.slots.len() >= 1 << 31 {
            // Churn left the addresses very sparse (a segment per 16,384 joins, however
            // many left) or near the end of u32: renumber, amortized O(1). Sparse addresses
            // cost only the rank index's few bytes per 64 of them, so this waits long: a
            // room emptying gets here only past a thousand times more joins than members.
            self.compact();
        }
        true
    }

    /// Packs one segment's members to its front, in join order, and re-points their table
    /// entries: O(`SEG`) whatever the room's size (plus the rank index's few bytes a block).
    fn compact_segment(&mut self, seg: usize) {
        let base = (seg * SEG) as u32;
        let old = std::mem::take(&mut self.slots.segs[seg]);
        let mut packed = Vec::with_capacity(self.slots.live[seg] as usize);
        let mut moves = Vec::new();
        for (off, s) in old.into_iter().enumerate() {
            if let Some(e) = s {
                let (from, to) = (base + off as u32, base + packed.len() as u32);
                if from != to {
                    moves.push((self.hasher.hash_one(e.userid()), from, to));
                }
                packed.push(Some(e));
            }
        }
        self.slots.segs[seg] = packed;
        for (h, from, to) in moves {
            if let Some(i) = self.table.for_hash_mut(h).find_mut(h, |&i| i == from) {
                *i = to;
            }
        }
        self.reindex_segment(seg);
    }

    /// Brings the rank index up to date with one rewritten segment: its blocks' counts and
    /// the chain of non-empty blocks through it, in O(`SEG` + log n) — rebuilding the
    /// index would scan every slot of the room.
    fn reindex_segment(&mut self, seg: usize) {
        let first = seg * SEG / BLOCK;
        let end = ((seg + 1) * SEG / BLOCK).min(self.ranks.blocks());
        let counts: Vec<u32> = (first..end)
            .map(|b| self.slots.block(b).iter().filter(|s| s.is_some()).count() as u32)
            .collect();
        for (b, &n) in (first..).zip(&counts) {
            self.ranks.set(b, n);
        }
        // The newest segment may have shrunk, and the room's addresses with it.
        let blocks = self.slots.len().div_ceil(BLOCK);
        if blocks < self.ranks.blocks() {
            self.ranks.truncate(blocks);
        }
        let end = end.min(blocks);
        let before = self.ranks.prefix(first);
        let mut last = match before {
            0 => NO_BLOCK,
            n => self.ranks.find(n - 1).0 as u32,
        };
        for (b, &n) in (first..end).zip(&counts) {
            self.ranks.prev[b] = last;
            if n > 0 {
                last = b as u32;
            }
        }
        let through = self.ranks.prefix(end);
        if (through as usize) < self.live {
            let (next, _) = self.ranks.find(through);
            self.ranks.prev[next] = last;
        }
    }

    /// Renumbers every member from address 0 (rare: only after heavy churn).
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.table = Table::default();
        self.live = 0;
        for e in old.segs.into_iter().flatten().flatten() {
            self.push_slot(e);
        }
        self.rebuild_ranks();
    }

    /// Recomputes the rank index from the slots: O(blocks), a few bytes a block.
    fn rebuild_ranks(&mut self) {
        let counts = (0..self.slots.len().div_ceil(BLOCK))
            .map(|b| self.slots.block(b).iter().filter(|s| s.is_some()).count() as u32)
            .collect();
        self.ranks = Ranks::build(counts);
    }

    pub fn clear(&mut self) {
        self.slots = Slots::default();
        self.table = Table::default();
        self.live = 0;
        self.ranks = Ranks::default();
    }

    /// Newest first: `limit` members after skipping the `offset` newest, in
    /// O(log n + limit) whatever the offset.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<MemberInfo> {
        let want = limit.min(self.live.saturating_sub(offset));
        let mut out = Vec::with_capacity(want);
        if want == 0 {
            return out;
        }
        // The page's first member is the one of rank live - 1 - offset, oldest first.
        let (mut block, k) = self.ranks.find((self.live - 1 - offset) as u32);
        let Some(at) = self
            .slots
            .block(block)
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .nth(k as usize)
            .map(|(j, _)| j)
        else {
            // Only if the ranks were out of step with the slots (the tests check they never
            // are): a short page beats a panic on a worker's thread.
            debug_assert!(false, "rank index out of step with the slots");
            return out;
        };
        let mut end = at + 1;
        loop {
            let slots = self.slots.block(block);
            for e in slots[..end.min(slots.len())].iter().rev().flatten() {
                out.push(MemberInfo {
                    userid: e.userid().into(),
                    nickname: e.nickname().into(),
                    headpic: e.headpic().into(),
                });
                if out.len() == want {
                    return out;
                }
            }
            match self.ranks.prev[block] {
                NO_BLOCK => return out,
                p => block = p as usize,
            }
            end = BLOCK;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_a_thin_pointer_that_keeps_its_fields() {
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 8);
        let nick = "观众观众观众观众";
        let pic = "p".repeat(80);
        for seq in [0, 1, -1, 123_456_789_012, SEQ_MAX, -SEQ_MAX - 1] {
            let e = Entry::new("u_0123456789", nick, &pic, seq);
            assert_eq!(e.data_len(), 128, "the memory scenario's size class");
            assert_eq!(
                (e.userid(), e.nickname(), e.headpic(), e.seq()),
                ("u_0123456789", nick, pic.as_str(), seq)
            );
        }
        // Out of 48 bits (only a tampered store could say so): clamped, not wrapped.
        assert_eq!(Entry::new("a", "", "", i64::MAX).seq(), SEQ_MAX);
        assert_eq!(Entry::new("a", "", "", i64::MIN).seq(), -SEQ_MAX - 1);
        let mut m = Members::from_rows(vec![Member {
            userid: "x".into(),
            nickname: String::new(),
            headpic: String::new(),
            seq: i64::MAX,
        }]);
        assert!(
            m.enter("y", "", "").is_some(),
            "no overflow after a tampered row"
        );
        assert!(m.get("y").unwrap().seq > m.get("x").unwrap().seq);
        let empty = Entry::new("", "", "", 7);
        assert_eq!((empty.userid(), empty.headpic(), empty.seq()), ("", "", 7));
    }

    #[test]
    fn set_semantics_and_newest_first() {
        let mut m = Members::default();
        assert!(m.enter("a", "A", "").is_some());
        assert!(m.enter("b", "B", "").is_some());
        assert!(m.enter("a", "A2", "").is_none());
        assert_eq!(m.len(), 2);
        let p = m.page(0, 10);
        assert_eq!(
            p.iter().map(|x| x.userid.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(p[1].nickname, "A2");
        assert_eq!(m.get("a").unwrap().seq, 0);
        assert!(m.quit("a"));
        assert!(!m.quit("a"));
        assert_eq!(m.page(0, 10).len(), 1);
    }

    impl Members {
        /// The rank index agrees with the slots: each block's count, the chain of
        /// non-empty blocks, the total.
        fn check(&self) {
            assert_eq!(self.ranks.blocks(), self.slots.len().div_ceil(BLOCK));
            assert_eq!(self.table.len(), self.live);
            let mut last = NO_BLOCK;
            for b in 0..self.ranks.blocks() {
                let n = self.slots.block(b).iter().filter(|s| s.is_some()).count() as u32;
                assert_eq!(
                    self.ranks.prefix(b + 1) - self.ranks.prefix(b),
                    n,
                    "block {b}"
                );
                if n > 0 {
                    assert_eq!(self.ranks.prev[b], last, "predecessor of block {b}");
                    last = b as u32;
                }
            }
            assert_eq!(self.ranks.prefix(self.ranks.blocks()) as usize, self.live);
        }

        fn ids(&self, offset: usize, limit: usize) -> Vec<String> {
            self.page(offset, limit)
                .into_iter()
                .map(|i| i.userid)
                .collect()
        }
    }

    /// The model's page: newest first.
    fn model_page(model: &[String], offset: usize, limit: usize) -> Vec<String> {
        model
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Pages at `offset` and the edges (first, last partial, just past the end) agree.
    fn pages_agree(m: &Members, model: &[String], offset: usize, limit: usize) {
        m.check();
        assert_eq!(m.len(), model.len());
        let n = model.len();
        let last = n.saturating_sub(1) / limit.max(1) * limit.max(1);
        for o in [
            offset,
            0,
            n.saturating_sub(1),
            last,
            n,
            n + 1,
            usize::MAX / 2,
        ] {
            assert_eq!(
                m.ids(o, limit),
                model_page(model, o, limit),
                "offset {o} limit {limit} of {n}"
            );
        }
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// A room past several segments and the table's split: joins, a crowd leaving at
    /// random (segment compactions), joins again after it, and every page the model's.
    #[test]
    fn a_room_of_many_segments_matches_the_model() {
        let n = 3 * SEG + 1000;
        let mut m = Members::default();
        let mut model: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        for id in &model {
            assert!(m.enter(id, "n", "").is_some());
        }
        assert!(matches!(m.table, Table::Sharded(_)));
        m.check();
        let mut x = XorShift(11);
        let mut gone = std::collections::HashSet::new();
        while gone.len() < n * 3 / 4 {
            let i = (x.next() % n as u64) as usize;
            if gone.insert(i) {
                assert!(m.quit(&model[i]));
            }
        }
        model = model
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, id)| id)
            .collect();
        m.check();
        for i in 0..2000 {
            let id = format!("late{i}");
            assert!(m.enter(&id, "n", "").is_some());
            model.push(id);
        }
        m.check();
        assert_eq!(m.len(), model.len());
        for id in model.iter().step_by(997) {
            assert!(m.contains(id), "{id}");
        }
        for _ in 0..50 {
            let r = x.next() as usize;
            pages_agree(&m, &model, r % (model.len() + 30), 1 + r / 7 % 100);
        }
    }

    #[test]
    fn matches_a_simple_model_through_compactions() {
        let mut m = Members::default();
        let mut model: Vec<String> = Vec::new(); // join order
        let mut x = XorShift(7);
        for step in 0..20_000 {
            let r = x.next();
            let id = format!("u{}", r % 300);
            if r.is_multiple_of(3) {
                assert_eq!(m.quit(&id), model.contains(&id));
                model.retain(|u| *u != id);
            } else {
                assert_eq!(
                    m.enter(&id, "昵称", "http://p").is_some(),
                    !model.contains(&id)
                );
                if !model.contains(&id) {
                    model.push(id);
                }
            }
            assert_eq!(m.len(), model.len());
            if step % 97 == 0 {
                let r = x.next() as usize;
                pages_agree(&m, &model, r % (model.len() + 30), 1 + r / 7 % 100);
            }
        }
        let newest: Vec<String> = model.iter().rev().cloned().collect();
        assert_eq!(m.ids(0, 1000), newest);
        assert_eq!(m.page(5, 3).len(), 3.min(model.len().saturating_sub(5)));
        let rebuilt = Members::from_rows(model.iter().filter_map(|u| m.get(u)).collect());
        assert_eq!(rebuilt.ids(0, 1000), newest);
        pages_agree(&rebuilt, &model, 17, 20);
    }

    /// Large rooms with long runs of emptied blocks (a crowd that came together leaves
    /// together), random quits, compactions, a reload from rows and a clear: every page,
    /// at random offsets, is the model's.
    #[test]
    fn far_pages_match_the_model_across_emptied_blocks() {
        let mut m = Members::default();
        let mut model: Vec<String> = Vec::new();
        let mut x = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut fresh = 0u64;
        for round in 0..60 {
            // A crowd enters...
            for _ in 0..x.next() % 3000 {
                let id = format!("v{fresh}");
                fresh += 1;
                assert!(m.enter(&id, "观众", "http://img/a.png").is_some());
                model.push(id);
            }
            // ...a contiguous stretch of it leaves, emptying whole blocks...
            if !model.is_empty() {
                let from = x.next() as usize % model.len();
                let to = (from + x.next() as usize % 1500).min(model.len());
                for id in model.drain(from..to) {
                    assert!(m.quit(&id));
                }
            }
            // ...and some leave at random (a few compactions happen here and above).
            for _ in 0..x.next() % 400 {
                if model.is_empty() {
                    break;
                }
                let id = model.remove(x.next() as usize % model.len());
                assert!(m.quit(&id));
            }
            for _ in 0..8 {
                let r = x.next() as usize;
                pages_agree(&m, &model, r % (model.len() + 50), 1 + r / 13 % 100);
            }
            if round % 7 == 3 {
                // The renumbering that very sparse addresses trigger, at any point.
                m.compact();
                pages_agree(&m, &model, 0, 20);
            }
            if round % 20 == 19 {
                m = Members::from_rows(model.iter().filter_map(|u| m.get(u)).collect());
                pages_agree(&m, &model, 0, 20);
            }
        }
        m.clear();
        model.clear();
        pages_agree(&m, &model, 0, 20);
        for i in 0..100 {
            let id = format!("w{i}");
            m.enter(&id, "", "");
            model.push(id);
        }
        pages_agree(&m, &model, 33, 20);
    }

    #[test]
    fn refresh_keeps_the_position_in_far_pages() {
        let mut m = Members::default();
        for i in 0..1000 {
            m.enter(&format!("u{i}"), "old", "");
        }
        for i in 0..500 {
            assert!(m.quit(&format!("u{}", 2 * i + 1)));
        }
        assert!(m.enter("u10", "new", "http://p").is_none());
        // Newest first over u998, u996, ...: u10 is the 495th.
        let p = m.page(494, 2);
        assert_eq!(
            (p[0].userid.as_str(), p[0].nickname.as_str()),
            ("u10", "new")
        );
        assert_eq!(p[1].userid, "u8");
        m.check();
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            /// This many new members.
            Crowd(u16),
            /// Enter (or refresh) one of a small set of ids.
            Enter(u8),
            Quit(u8),
            /// The members from this fraction of the join order on, this many of them.
            QuitRun(u16, u16),
            Page(u16, u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                2 => (0u16..400).prop_map(Op::Crowd),
                3 => any::<u8>().prop_map(Op::Enter),
                2 => any::<u8>().prop_map(Op::Quit),
                2 => (any::<u16>(), 0u16..300).prop_map(|(a, b)| Op::QuitRun(a, b)),
                3 => (any::<u16>(), 0u8..=100).prop_map(|(o, l)| Op::Page(o, l)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn pages_match_the_model(ops in proptest::collection::vec(op(), 1..200)) {
                let mut m = Members::default();
                let mut model: Vec<String> = Vec::new();
                let mut fresh = 0u32;
                for op in ops {
                    match op {
                        Op::Crowd(n) => {
                            for _ in 0..n {
                                let id = format!("c{fresh}");
                                fresh += 1;
                                prop_assert!(m.enter(&id, "", "").is_some());
                                model.push(id);
                            }
                        }
                        Op::Enter(i) => {
                            let id = format!("e{i}");
                            let new = !model.contains(&id);
                            prop_assert_eq!(m.enter(&id, "n", "").is_some(), new);
                            if new {
                                model.push(id);
                            }
                        }
                        Op::Quit(i) => {
                            let id = format!("e{i}");
                            prop_assert_eq!(m.quit(&id), model.contains(&id));
                            model.retain(|u| *u != id);
                        }
                        Op::QuitRun(at, n) => {
                            let from = at as usize * model.len() / (u16::MAX as usize + 1);
                            let to = (from + n as usize).min(model.len());
                            for id in model.drain(from..to) {
                                prop_assert!(m.quit(&id));
                            }
                        }
                        Op::Page(o, l) => {
                            let o = o as usize % (model.len() + 40);
                            prop_assert_eq!(m.ids(o, l as usize), model_page(&model, o, l as usize));
                        }
                    }
                }
                pages_agree(&m, &model, 0, 20);
            }
        }
    }
}
