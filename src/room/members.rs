//! A room's member set: O(1) membership, newest-first paging, and a compact layout — one
//! allocation per member (userid, nickname and avatar packed together), a slot vector in
//! join order, and a hash table of slot numbers, so the userid is stored once.

use crate::model::Member;
use crate::protocol::types::MemberInfo;
use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// One member in one allocation: `[userid len: u16][nickname len: u16][userid][nickname][headpic]`.
/// 24 bytes in the slot vector plus one heap block (an 8-character CJK nickname, a 12-byte
/// id and an 80-byte avatar fit a 128-byte size class).
struct Entry {
    data: Box<[u8]>,
    seq: i64,
}

impl Entry {
    fn new(userid: &str, nickname: &str, headpic: &str, seq: i64) -> Entry {
        let mut v = Vec::with_capacity(4 + userid.len() + nickname.len() + headpic.len());
        v.extend_from_slice(&(userid.len() as u16).to_le_bytes());
        v.extend_from_slice(&(nickname.len() as u16).to_le_bytes());
        v.extend_from_slice(userid.as_bytes());
        v.extend_from_slice(nickname.as_bytes());
        v.extend_from_slice(headpic.as_bytes());
        Entry {
            data: v.into_boxed_slice(),
            seq,
        }
    }
    fn lens(&self) -> (usize, usize) {
        (
            u16::from_le_bytes([self.data[0], self.data[1]]) as usize,
            u16::from_le_bytes([self.data[2], self.data[3]]) as usize,
        )
    }
    fn userid_bytes(&self) -> &[u8] {
        let (a, _) = self.lens();
        &self.data[4..4 + a]
    }
    /// The fields were whole `&str`s when stored, so they are valid UTF-8.
    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).unwrap_or("")
    }
    fn userid(&self) -> &str {
        Self::text(self.userid_bytes())
    }
    fn nickname(&self) -> &str {
        let (a, b) = self.lens();
        Self::text(&self.data[4 + a..4 + a + b])
    }
    fn headpic(&self) -> &str {
        let (a, b) = self.lens();
        Self::text(&self.data[4 + a + b..])
    }
    fn member(&self) -> Member {
        Member {
            userid: self.userid().into(),
            nickname: self.nickname().into(),
            headpic: self.headpic().into(),
            seq: self.seq,
        }
    }
}

#[derive(Default)]
pub struct Members {
    /// Join order; `None` where a member left (compacted when half are gone).
    slots: Vec<Option<Entry>>,
    live: usize,
    /// Slot numbers, hashed by the slot's userid.
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    next_seq: i64,
}

/// Longest field kept; longer input is refused at the protocol edge long before this.
const MAX_FIELD: usize = u16::MAX as usize / 2;

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

impl Members {
    /// From stored rows, oldest first.
    pub fn from_rows(mut rows: Vec<Member>) -> Self {
        rows.sort_by_key(|r| r.seq);
        let mut m = Members::default();
        for r in rows {
            m.next_seq = m.next_seq.max(r.seq + 1);
            m.push(Entry::new(
                clip(&r.userid),
                clip(&r.nickname),
                clip(&r.headpic),
                r.seq,
            ));
        }
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
            .find(h, |&i| {
                slots[i as usize]
                    .as_ref()
                    .is_some_and(|e| e.userid_bytes() == userid.as_bytes())
            })
            .copied()
    }

    fn push(&mut self, e: Entry) {
        let h = self.hasher.hash_one(e.userid());
        let idx = self.slots.len() as u32;
        self.slots.push(Some(e));
        self.live += 1;
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.table.insert_unique(h, idx, |&i| {
            hasher.hash_one(
                slots[i as usize]
                    .as_ref()
                    .map(Entry::userid)
                    .unwrap_or_default(),
            )
        });
    }

    pub fn contains(&self, userid: &str) -> bool {
        self.find(userid).is_some()
    }

    /// Adds a member; `None` when already present (a set: entering twice counts once).
    /// A repeated entry refreshes the nickname and avatar but keeps the join position.
    pub fn enter(&mut self, userid: &str, nickname: &str, headpic: &str) -> Option<Member> {
        let (userid, nickname, headpic) = (clip(userid), clip(nickname), clip(headpic));
        if let Some(i) = self.find(userid) {
            if let Some(e) = self.slots[i as usize].as_mut() {
                if e.nickname() != nickname || e.headpic() != headpic {
                    *e = Entry::new(userid, nickname, headpic, e.seq);
                }
            }
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let e = Entry::new(userid, nickname, headpic, seq);
        let m = e.member();
        self.push(e);
        Some(m)
    }

    /// The member as it is now, for persistence after a refresh.
    pub fn get(&self, userid: &str) -> Option<Member> {
        let i = self.find(userid)?;
        self.slots[i as usize].as_ref().map(Entry::member)
    }

    /// Removes a member; false when not a member.
    pub fn quit(&mut self, userid: &str) -> bool {
        let h = self.hasher.hash_one(userid);
        let slots = &self.slots;
        let Ok(found) = self.table.find_entry(h, |&i| {
            slots[i as usize]
                .as_ref()
                .is_some_and(|e| e.userid_bytes() == userid.as_bytes())
        }) else {
            return false;
        };
        let (i, _) = found.remove();
        self.slots[i as usize] = None;
        self.live -= 1;
        if self.slots.len() > 64 && self.live < self.slots.len() / 2 {
            self.compact();
        }
        true
    }

    /// Drops the holes left by members who quit and renumbers the table: amortized O(1).
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.table.clear();
        self.live = 0;
        for e in old.into_iter().flatten() {
            self.push(e);
        }
        self.slots.shrink_to(self.slots.len() * 2);
    }

    pub fn clear(&mut self) {
        self.slots = Vec::new();
        self.table = HashTable::new();
        self.live = 0;
    }

    /// Newest first.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<MemberInfo> {
        self.slots
            .iter()
            .rev()
            .flatten()
            .skip(offset)
            .take(limit)
            .map(|e| MemberInfo {
                userid: e.userid().into(),
                nickname: e.nickname().into(),
                headpic: e.headpic().into(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn matches_a_simple_model_through_compactions() {
        let mut m = Members::default();
        let mut model: Vec<String> = Vec::new(); // join order
        let mut x: u64 = 7;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = format!("u{}", x % 300);
            if x.is_multiple_of(3) {
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
        }
        let newest: Vec<String> = model.iter().rev().cloned().collect();
        let got: Vec<String> = m.page(0, 1000).into_iter().map(|i| i.userid).collect();
        assert_eq!(got, newest);
        assert_eq!(m.page(5, 3).len(), 3.min(model.len().saturating_sub(5)));
        let rebuilt = Members::from_rows(model.iter().filter_map(|u| m.get(u)).collect());
        assert_eq!(
            rebuilt
                .page(0, 1000)
                .into_iter()
                .map(|i| i.userid)
                .collect::<Vec<_>>(),
            newest
        );
    }
}
