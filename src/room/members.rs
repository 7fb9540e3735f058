//! A room's member set: O(1) membership, newest-first paging.

use crate::model::Member;
use crate::protocol::types::MemberInfo;
use std::collections::{BTreeMap, HashMap};

struct Slot {
    seq: i64,
    nickname: Box<str>,
    headpic: Box<str>,
}

#[derive(Default)]
pub struct Members {
    by_id: HashMap<Box<str>, Slot>,
    /// Join order → userid; iterated backwards for newest first.
    order: BTreeMap<i64, Box<str>>,
    next_seq: i64,
}

impl Members {
    pub fn from_rows(rows: Vec<Member>) -> Self {
        let mut m = Members::default();
        for r in rows {
            m.next_seq = m.next_seq.max(r.seq + 1);
            m.order.insert(r.seq, r.userid.clone().into_boxed_str());
            m.by_id.insert(
                r.userid.into_boxed_str(),
                Slot {
                    seq: r.seq,
                    nickname: r.nickname.into(),
                    headpic: r.headpic.into(),
                },
            );
        }
        m
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn contains(&self, userid: &str) -> bool {
        self.by_id.contains_key(userid)
    }

    /// Adds a member; `None` when already present (a set: entering twice counts once).
    /// A repeated entry refreshes the nickname and avatar but keeps the join position.
    pub fn enter(&mut self, userid: &str, nickname: &str, headpic: &str) -> Option<Member> {
        if let Some(slot) = self.by_id.get_mut(userid) {
            if &*slot.nickname != nickname || &*slot.headpic != headpic {
                slot.nickname = nickname.into();
                slot.headpic = headpic.into();
            }
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, userid.into());
        self.by_id.insert(
            userid.into(),
            Slot {
                seq,
                nickname: nickname.into(),
                headpic: headpic.into(),
            },
        );
        Some(Member {
            userid: userid.into(),
            nickname: nickname.into(),
            headpic: headpic.into(),
            seq,
        })
    }

    /// The member as it is now, for persistence after a refresh.
    pub fn get(&self, userid: &str) -> Option<Member> {
        self.by_id.get(userid).map(|s| Member {
            userid: userid.into(),
            nickname: s.nickname.to_string(),
            headpic: s.headpic.to_string(),
            seq: s.seq,
        })
    }

    /// Removes a member; false when not a member.
    pub fn quit(&mut self, userid: &str) -> bool {
        match self.by_id.remove(userid) {
            Some(slot) => {
                self.order.remove(&slot.seq);
                true
            }
            None => false,
        }
    }

    pub fn clear(&mut self) {
        self.by_id = HashMap::new();
        self.order = BTreeMap::new();
    }

    /// Newest first.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<MemberInfo> {
        self.order
            .values()
            .rev()
            .skip(offset)
            .take(limit)
            .filter_map(|id| {
                self.by_id.get(id).map(|s| MemberInfo {
                    userid: id.to_string(),
                    nickname: s.nickname.to_string(),
                    headpic: s.headpic.to_string(),
                })
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
        assert!(m.quit("a"));
        assert!(!m.quit("a"));
        assert_eq!(m.page(0, 10).len(), 1);
    }
}
