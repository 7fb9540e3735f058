//! The sorted room lists behind FetchList. The supervisor is the only writer (one update
//! per changed room per tick); request handlers read pages under a shared read lock, so
//! list reads run on every worker in parallel instead of queueing in one mailbox.

use super::index::OrderIndex;
use crate::config::ListOrder;
use crate::model::{now_unix, ListFlag, PusherInfoRef, RoomKey};
use hashbrown::HashMap;
use std::cmp::{Ordering, Reverse};
use std::sync::{Arc, RwLock};

/// A room's list item: its sort fields and its JSON, encoded once per change.
#[derive(Debug, Clone)]
pub struct ListEntry {
    pub viewers: u64,
    pub timestamp: i64,
    /// Last sign of life, for the stale-stream sweep.
    pub seen_at: i64,
    pub json: Arc<str>,
}

impl ListEntry {
    pub fn new(info: &PusherInfoRef, seen_at: i64) -> Self {
        ListEntry {
            viewers: info.viewercount,
            timestamp: info.timestamp,
            seen_at,
            json: serde_json::to_string(info).unwrap_or_default().into(),
        }
    }
}

type LiveKey = (Reverse<u64>, Reverse<i64>, Arc<str>);
type VodKey = (Reverse<i64>, Arc<str>, Arc<str>);

/// A node of a sorted list: ordered by its sort key alone, and carrying the room's encoded
/// item, so a page is read straight off the tree (no map lookup, no reference counting).
#[derive(Debug, Clone)]
struct Item<K> {
    key: K,
    json: Arc<str>,
}

impl<K: Ord> Ord for Item<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl<K: Ord> PartialOrd for Item<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord> PartialEq for Item<K> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<K: Ord> Eq for Item<K> {}

/// A page of encoded items, borrowed from the index: read it under the lock.
pub struct ListPage<'a> {
    pub total: usize,
    pub items: Vec<&'a str>,
}

impl ListPage<'_> {
    /// FetchList's `returnData`: `{"totalcount":N,"pusherlist":[...]}`, with the items
    /// spliced in as they were encoded when their room changed (no re-encoding).
    pub fn to_json(&self) -> String {
        let items: usize = self.items.iter().map(|i| i.len() + 1).sum();
        let mut out = String::with_capacity(48 + items);
        out.push_str("{\"totalcount\":");
        out.push_str(&self.total.to_string());
        out.push_str(",\"pusherlist\":[");
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(item);
        }
        out.push_str("]}");
        out
    }
}

pub struct ListIndex {
    order: ListOrder,
    recording_days: u64,
    live: OrderIndex<Item<LiveKey>>,
    /// Each listed live room's node, and its last sign of life.
    live_keys: HashMap<Arc<str>, (Item<LiveKey>, i64)>,
    vod: OrderIndex<Item<VodKey>>,
    vod_keys: HashMap<(Arc<str>, Arc<str>), Item<VodKey>>,
}

/// The handle both the supervisor (writes) and handlers (reads) hold.
pub type SharedList = Arc<RwLock<ListIndex>>;

impl ListIndex {
    pub fn new(order: ListOrder, recording_days: u64) -> Self {
        ListIndex {
            order,
            recording_days,
            live: OrderIndex::new(),
            live_keys: HashMap::new(),
            vod: OrderIndex::new(),
            vod_keys: HashMap::new(),
        }
    }

    pub fn live_len(&self) -> usize {
        self.live.len()
    }

    pub fn set_entry(&mut self, key: &RoomKey, entry: Option<ListEntry>) {
        match key {
            RoomKey::Live(vj) => {
                if let Some((old, _)) = self.live_keys.remove(vj.as_str()) {
                    self.live.remove(&old);
                }
                if let Some(e) = entry {
                    let viewers = match self.order {
                        ListOrder::Popular => e.viewers,
                        ListOrder::Newest => 0,
                    };
                    let id: Arc<str> = vj.as_str().into();
                    let item = Item {
                        key: (Reverse(viewers), Reverse(e.timestamp), id.clone()),
                        json: e.json,
                    };
                    self.live.insert(item.clone());
                    self.live_keys.insert(id, (item, e.seen_at));
                }
            }
            RoomKey::Recording { vj, fileid } => {
                let id: (Arc<str>, Arc<str>) = (vj.as_str().into(), fileid.as_str().into());
                if let Some(old) = self.vod_keys.remove(&id) {
                    self.vod.remove(&old);
                }
                if let Some(e) = entry {
                    let item = Item {
                        key: (Reverse(e.timestamp), id.0.clone(), id.1.clone()),
                        json: e.json,
                    };
                    self.vod.insert(item.clone());
                    self.vod_keys.insert(id, item);
                }
            }
        }
    }

    fn vod_cutoff(&self) -> i64 {
        now_unix() - (self.recording_days as i64) * 86_400
    }

    /// Recordings at or after the cutoff sort first; their count is the rank of the cutoff.
    fn vod_listed(&self) -> usize {
        let probe = Item {
            key: (Reverse(self.vod_cutoff() - 1), "".into(), "".into()),
            json: "".into(),
        };
        self.vod.rank(&probe)
    }

    /// Old recordings leave memory (they stay in the database).
    pub fn prune_recordings(&mut self) {
        let keep = self.vod_listed();
        while self.vod.len() > keep {
            let Some(last) = self
                .vod
                .page(self.vod.len() - 1, 1)
                .first()
                .map(|item| (*item).clone())
            else {
                break;
            };
            self.vod.remove(&last);
            self.vod_keys.remove(&(last.key.1, last.key.2));
        }
    }

    fn live_page(&self, offset: usize, limit: usize) -> Vec<&str> {
        let page = self.live.page(offset, limit);
        page.into_iter().map(|item| &*item.json).collect()
    }

    fn vod_page(&self, offset: usize, limit: usize) -> Vec<&str> {
        let page = self.vod.page(offset, limit);
        page.into_iter().map(|item| &*item.json).collect()
    }

    /// One page of a list: live rooms, recordings, or live rooms followed by recordings.
    /// Costs O(log n + limit).
    pub fn page(&self, flag: ListFlag, offset: usize, limit: usize) -> ListPage<'_> {
        match flag {
            ListFlag::Live => ListPage {
                total: self.live.len(),
                items: self.live_page(offset, limit),
            },
            ListFlag::Recordings => {
                // Recordings past the cutoff may linger until pruned: never page into them.
                let n = self.vod_listed();
                ListPage {
                    total: n,
                    items: self.vod_page(offset, limit.min(n.saturating_sub(offset))),
                }
            }
            ListFlag::Both => {
                let live_n = self.live.len();
                let vod_n = self.vod_listed();
                let mut items = self.live_page(offset, limit);
                if items.len() < limit {
                    let voff = offset.saturating_sub(live_n);
                    let vlim = (limit - items.len()).min(vod_n.saturating_sub(voff));
                    items.extend(self.vod_page(voff, vlim));
                }
                ListPage {
                    total: live_n + vod_n,
                    items,
                }
            }
        }
    }

    /// Whether the VJ's live room is listed (online).
    pub fn is_live(&self, vj: &str) -> bool {
        self.live_keys.contains_key(vj)
    }

    /// Listed live rooms whose media server sent signs of life, the last one before
    /// `before`. (0: it never sent one; such a broadcast stays until its stop event.)
    pub fn stale_live(&self, before: i64, limit: usize) -> Vec<String> {
        self.live_keys
            .iter()
            .filter(|(_, (_, seen))| *seen > 0 && *seen < before)
            .map(|(vj, _)| vj.to_string())
            .take(limit)
            .collect()
    }
}
