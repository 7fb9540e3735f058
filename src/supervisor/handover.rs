//! How rooms hand their changes to the supervisor, and how changes of one room that have
//! not reached the database yet are merged (across ticks, over a row read from the store).

use crate::model::{Member, RoomKey, RoomRecord, SnapshotItem};
use crate::supervisor::ListEntry;
use hashbrown::HashMap;

/// Rooms hand their changes over through this queue rather than the supervisor's mailbox:
/// a hand-over wakes no thread (thousands of rooms each hand over every tick), and the
/// supervisor takes them all, in order, on its own tick and before anything that reads
/// them (LoadRoom, a snapshot write).
#[derive(Clone)]
pub struct Handover(std::sync::mpsc::Sender<RoomChanged>);

impl Handover {
    pub(super) fn new(tx: std::sync::mpsc::Sender<RoomChanged>) -> Self {
        Handover(tx)
    }

    pub fn send(&self, change: RoomChanged) {
        // Fails only once the supervisor is gone: the process is ending.
        let _ = self.0.send(change);
    }
}

/// A room's state after changes: its list entry (None: not listed) and its snapshot.
pub struct RoomChanged {
    pub key: RoomKey,
    pub entry: Option<ListEntry>,
    pub snapshot: SnapshotItem,
}

/// Pending changes of one room: counters and member upserts/deletes merged across ticks.
#[derive(Clone)]
pub(super) struct Pending {
    pub item: SnapshotItem,
    members: HashMap<String, Option<Member>>,
}

impl Pending {
    pub fn from_item(mut item: SnapshotItem) -> Self {
        let mut members = HashMap::with_capacity(item.upserts.len() + item.deletes.len());
        // The userid moves into the key (and back in `into_item`): no copy per member.
        for mut m in item.upserts.drain(..) {
            members.insert(std::mem::take(&mut m.userid), Some(m));
        }
        for d in item.deletes.drain(..) {
            members.insert(d, None);
        }
        Pending { item, members }
    }

    /// Folds a newer change in: a newer claim (fence) or a newer epoch replaces everything
    /// older.
    pub fn merge_newer(&mut self, newer: Pending) {
        if newer.item.fence != self.item.fence {
            if newer.item.fence > self.item.fence {
                *self = newer;
            }
            return;
        }
        if newer.item.counters.epoch > self.item.counters.epoch {
            *self = newer;
            return;
        }
        if newer.item.counters.epoch < self.item.counters.epoch {
            return;
        }
        self.item.counters = newer.item.counters;
        self.members.extend(newer.members);
    }

    pub fn into_item(mut self) -> SnapshotItem {
        for (id, m) in self.members {
            match m {
                Some(mut m) => {
                    m.userid = id;
                    self.item.upserts.push(m);
                }
                None => self.item.deletes.push(id),
            }
        }
        self.item
    }
}

/// Lays changes not yet written over a record read from the store.
pub(super) fn apply_pending(record: &mut RoomRecord, item: SnapshotItem) {
    if item.counters.epoch < record.counters.epoch {
        return;
    }
    let fresh_epoch = item.counters.epoch > record.counters.epoch;
    record.counters = item.counters;
    let mut members: std::collections::HashMap<String, Member> = if fresh_epoch {
        Default::default()
    } else {
        record
            .members
            .drain(..)
            .map(|m| (m.userid.clone(), m))
            .collect()
    };
    for d in item.deletes {
        members.remove(&d);
    }
    for m in item.upserts {
        members.insert(m.userid.clone(), m);
    }
    let mut list: Vec<_> = members.into_values().collect();
    list.sort_by_key(|m| m.seq);
    record.member_count = list.len() as u64;
    record.members = list;
}
