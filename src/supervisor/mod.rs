//! The supervisor actor: the sorted list index behind FetchList, and the snapshot writer
//! that persists dirty rooms in batches, retrying with back-off while the database is down.

pub mod feed;
mod handover;
pub mod index;
pub mod list;

use crate::metrics::Health;
use crate::model::{PusherInfoRef, RoomKey, RoomRecord, SnapshotItem};
use crate::store::{Store, StoreResult};
use actix::prelude::*;
use handover::{apply_pending, Pending};
pub use handover::{Handover, RoomChanged};
// foldhash with a per-process seed: cheaper than SipHash on every member change.
use hashbrown::HashMap;
pub use list::{ListEntry, ListIndex, ListPage, SharedList};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub struct SupervisorConfig {
    pub persist: bool,
    /// How often room hand-overs are taken from the queue into the index and the pending
    /// snapshot (rooms hand over at most once per `list.index_tick_ms` each).
    pub handover_interval: Duration,
    pub snapshot_interval: Duration,
    pub max_backoff: Duration,
}

pub struct Supervisor {
    cfg: SupervisorConfig,
    store: Arc<dyn Store>,
    health: Arc<Health>,
    list: SharedList,
    pending: HashMap<RoomKey, Pending>,
    /// The batch being written now: still the newest state of its rooms until it commits.
    inflight: Arc<Vec<SnapshotItem>>,
    inflight_index: HashMap<RoomKey, usize>,
    /// When the snapshot being written now began; `None` while none is.
    writing_since: Option<Instant>,
    failures: u32,
    next_try: Instant,
    flush_waiters: Vec<oneshot::Sender<bool>>,
    inbox: std::sync::mpsc::Receiver<RoomChanged>,
    handover: Handover,
    /// Rooms being read from the store to be activated (see `LoadRoom`).
    loading: HashMap<RoomKey, Loading>,
    fenced_tx: Option<tokio::sync::mpsc::Sender<(RoomKey, i64)>>,
    /// In a cluster: list changes of this node's rooms, published once per tick.
    feed: Option<feed::Publisher>,
    outbox: Vec<feed::FeedItem>,
}

/// Reads of one room in progress, and what snapshots committed for it since the first
/// began: a read may or may not have seen a commit that landed while it ran, and once
/// committed a change is neither pending nor in flight, so it is kept here for them.
#[derive(Default)]
struct Loading {
    reads: usize,
    committed: Option<Pending>,
}

impl Supervisor {
    pub fn new(
        cfg: SupervisorConfig,
        store: Arc<dyn Store>,
        health: Arc<Health>,
        list: SharedList,
    ) -> Self {
        let (tx, inbox) = std::sync::mpsc::channel();
        Supervisor {
            cfg,
            store,
            health,
            list,
            pending: HashMap::new(),
            inflight: Arc::new(Vec::new()),
            inflight_index: HashMap::new(),
            writing_since: None,
            failures: 0,
            next_try: Instant::now(),
            flush_waiters: Vec::new(),
            inbox,
            handover: Handover::new(tx),
            loading: HashMap::new(),
            fenced_tx: None,
            feed: None,
            outbox: Vec::new(),
        }
    }

    /// The queue rooms hand their changes to.
    pub fn handover(&self) -> Handover {
        self.handover.clone()
    }

    /// Takes every hand-over queued so far, in order.
    fn take_handovers(&mut self) {
        let mut any = false;
        while let Ok(change) = self.inbox.try_recv() {
            self.room_changed(change);
            any = true;
        }
        if any {
            self.health
                .pending_rooms
                .store(self.pending.len(), Ordering::Relaxed);
        }
        if let (Some(feed), false) = (&self.feed, self.outbox.is_empty()) {
            feed.publish(std::mem::take(&mut self.outbox));
        }
    }

    /// Publishes this node's list changes to the other nodes (a cluster).
    pub fn set_feed(&mut self, publisher: feed::Publisher) {
        self.feed = Some(publisher);
    }

    fn room_changed(&mut self, msg: RoomChanged) {
        let current_epoch = self.pending.get(&msg.key).map(|p| p.item.counters.epoch);
        // An older broadcast's late change must not touch the index of a newer one.
        if current_epoch.is_none_or(|e| msg.snapshot.counters.epoch >= e) {
            if self.feed.is_some() {
                self.outbox.push(feed::FeedItem {
                    key: msg.key.clone(),
                    fence: msg.snapshot.fence,
                    entry: msg.entry.as_ref().map(feed::WireEntry::of),
                    // Staleness counts from here: the change, not its write to Redis.
                    at_ms: feed::now_ms(),
                });
            }
            self.set_entry(&msg.key, msg.entry);
        }
        let newer = Pending::from_item(msg.snapshot);
        match self.pending.get_mut(&msg.key) {
            Some(p) => p.merge_newer(newer),
            None => {
                self.pending.insert(msg.key, newer);
            }
        }
    }

    /// Fills the index from rows loaded at start-up.
    pub fn seed(&mut self, live: Vec<RoomRecord>, recordings: Vec<RoomRecord>) {
        for r in live.into_iter().chain(recordings) {
            let viewers = if r.key.is_live() {
                r.member_count
            } else {
                r.counters.views
            };
            let info = PusherInfoRef::of(&r.key, &r.info, &r.counters, viewers);
            self.set_entry(&r.key, Some(ListEntry::new(&info, r.counters.seen_at)));
        }
    }

    fn set_entry(&mut self, key: &RoomKey, entry: Option<ListEntry>) {
        self.list
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .set_entry(key, entry);
    }

    /// A snapshot write begins (`Some`) or ends, here and in the health gauge.
    fn set_writing(&mut self, since: Option<Instant>) {
        self.writing_since = since;
        self.health
            .snapshot_writing
            .store(since.is_some(), Ordering::Relaxed);
    }

    fn try_write(&mut self, ctx: &mut Context<Self>) {
        self.take_handovers();
        if let Some(since) = self.writing_since {
            if since.elapsed() > self.cfg.snapshot_interval * 2 {
                tracing::warn!(
                    elapsed_ms = since.elapsed().as_millis() as u64,
                    "snapshot still in flight"
                );
            }
            return;
        }
        if Instant::now() < self.next_try {
            return;
        }
        if !self.cfg.persist {
            self.pending.clear();
        }
        if self.pending.is_empty() {
            for w in self.flush_waiters.drain(..) {
                let _ = w.send(true);
            }
            return;
        }
        let batch: Vec<(RoomKey, Pending)> = self.pending.drain().collect();
        self.health.pending_rooms.store(0, Ordering::Relaxed);
        let items: Vec<SnapshotItem> = batch.into_iter().map(|(_, p)| p.into_item()).collect();
        let rows = items
            .iter()
            .map(|i| 1 + i.upserts.len() + i.deletes.len())
            .sum::<usize>();
        // Shared with the write, not copied: LoadRoom reads it while it is in flight.
        let items = Arc::new(items);
        self.inflight_index = items
            .iter()
            .enumerate()
            .map(|(n, i)| (i.key.clone(), n))
            .collect();
        self.inflight = items.clone();
        let store = self.store.clone();
        let started = Instant::now();
        self.set_writing(Some(started));
        ctx.spawn(
            async move {
                let r = store.write_snapshot(&items).await;
                (r, items)
            }
            .into_actor(self)
            .map(move |(r, items), act, ctx| {
                if let Ok(fenced) = &r {
                    // A fenced item was not written: it is no one's commit to keep.
                    for key in fenced {
                        act.inflight_index.remove(key);
                    }
                    act.keep_committed_for_loads();
                }
                act.set_writing(None);
                act.inflight = Arc::new(Vec::new());
                act.inflight_index.clear();
                // The only holder now: taking the items back copies nothing.
                let items = Arc::try_unwrap(items).unwrap_or_else(|shared| (*shared).clone());
                match r {
                    Ok(fenced) => {
                        act.fenced_out(fenced, &items);
                        act.failures = 0;
                        act.health.degraded.store(false, Ordering::Relaxed);
                        act.health.snapshots_ok.fetch_add(1, Ordering::Relaxed);
                        act.health.rows_written.fetch_add(rows as u64, Ordering::Relaxed);
                        act.health.snapshot_seconds.observe(started.elapsed());
                        tracing::debug!(rooms = items.len(), rows, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot written");
                    }
                    Err(e) => {
                        act.failures = act.failures.saturating_add(1);
                        act.health.degraded.store(true, Ordering::Relaxed);
                        act.health.snapshot_failures.fetch_add(1, Ordering::Relaxed);
                        let backoff = Duration::from_millis(100u64 << act.failures.min(10))
                            .min(act.cfg.max_backoff);
                        act.next_try = Instant::now() + backoff;
                        tracing::warn!(error = %e, rooms = items.len(), retry_in_ms = backoff.as_millis() as u64,
                            "snapshot failed; keeping dirty rooms for retry");
                        // Put the batch back under anything newer that arrived meanwhile.
                        for item in items {
                            let key = item.key.clone();
                            let mut old = Pending::from_item(item);
                            if let Some(newer) = act.pending.remove(&key) {
                                old.merge_newer(newer);
                            }
                            act.pending.insert(key, old);
                        }
                        act.health.pending_rooms.store(act.pending.len(), Ordering::Relaxed);
                    }
                }
                if act.failures == 0 && !act.pending.is_empty() && started.elapsed() >= act.cfg.snapshot_interval {
                    // The write overran its tick: changes waiting since are already due.
                    ctx.run_later(Duration::ZERO, |act, ctx| act.try_write(ctx));
                } else if !act.flush_waiters.is_empty() {
                    // Shutting down: keep writing without waiting for the next tick.
                    let delay = act.next_try.saturating_duration_since(Instant::now());
                    ctx.run_later(delay, |act, ctx| act.try_write(ctx));
                }
            }),
        );
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Only activations (LoadRoom) and shutdown (FlushAll) come through the mailbox.
        ctx.set_mailbox_capacity(4096);
        ctx.run_interval(self.cfg.handover_interval, |act, _| act.take_handovers());
        ctx.run_interval(self.cfg.snapshot_interval, |act, ctx| act.try_write(ctx));
        ctx.run_interval(Duration::from_secs(60), |act, _| {
            act.list
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .prune_recordings()
        });
    }
}

/// A room's latest state, to activate it: its row in the store with every change the
/// store does not hold yet (pending, being written, or committed while the row was read)
/// laid over it. `None` when the store does not know the room.
///
/// The read goes through the supervisor because it is the one place that sees every
/// commit: read in the caller and then merged with what is pending, a snapshot that
/// committed in between would be in neither.
#[derive(Message)]
#[rtype(result = "StoreResult<Option<RoomRecord>>")]
pub struct LoadRoom {
    pub key: RoomKey,
}

impl Handler<LoadRoom> for Supervisor {
    type Result = ResponseActFuture<Self, StoreResult<Option<RoomRecord>>>;
    fn handle(&mut self, msg: LoadRoom, _: &mut Context<Self>) -> Self::Result {
        // A room this server still has changes of is still this server's, under the fence
        // those changes carry (never the database's, which may be another server's); any
        // other is claimed by the read.
        self.take_handovers();
        let held = self.held_fence(&msg.key);
        let claim = held.is_none();
        // From here on, every commit for this room is kept until the read is merged.
        self.loading.entry(msg.key.clone()).or_default().reads += 1;
        let store = self.store.clone();
        let key = msg.key;
        Box::pin(
            async move {
                let r = store.load_room(&key, claim).await;
                (key, r)
            }
            .into_actor(self)
            .map(move |(key, r), act, _| {
                let committed = act.end_load(&key);
                let Some(mut record) = r? else {
                    return Ok(None);
                };
                if let Some(item) = act.unwritten(&key, committed) {
                    apply_pending(&mut record, item);
                }
                if let Some(fence) = held {
                    record.fence = fence;
                }
                Ok(Some(record))
            }),
        )
    }
}

/// Many VJs' live rooms at once, each as `LoadRoom` would answer it with a claim: taking
/// over a dead node's rooms. Rooms this server still has changes of are left out (their
/// fence is this server's already), as are rooms the store does not know.
#[derive(Message)]
#[rtype(result = "StoreResult<Vec<RoomRecord>>")]
pub struct LoadLiveRooms {
    pub vjs: Vec<String>,
}

impl Handler<LoadLiveRooms> for Supervisor {
    type Result = ResponseActFuture<Self, StoreResult<Vec<RoomRecord>>>;
    fn handle(&mut self, msg: LoadLiveRooms, _: &mut Context<Self>) -> Self::Result {
        self.take_handovers();
        let vjs: Vec<String> = msg
            .vjs
            .into_iter()
            .filter(|vj| self.held_fence(&RoomKey::Live(vj.clone())).is_none())
            .collect();
        for vj in &vjs {
            self.loading
                .entry(RoomKey::Live(vj.clone()))
                .or_default()
                .reads += 1;
        }
        let store = self.store.clone();
        Box::pin(
            async move {
                let r = store.load_live_rooms(&vjs).await;
                (vjs, r)
            }
            .into_actor(self)
            .map(move |(vjs, r), act, _| {
                let mut committed: HashMap<RoomKey, Option<Pending>> = vjs
                    .into_iter()
                    .map(|vj| {
                        let key = RoomKey::Live(vj);
                        let c = act.end_load(&key);
                        (key, c)
                    })
                    .collect();
                let mut records = r?;
                for record in &mut records {
                    let c = committed.remove(&record.key).flatten();
                    if let Some(item) = act.unwritten(&record.key, c) {
                        apply_pending(record, item);
                    }
                }
                Ok(records)
            }),
        )
    }
}

impl Supervisor {
    /// The fence of this server's changes of the room not yet in the database, if any.
    fn held_fence(&self, key: &RoomKey) -> Option<i64> {
        let inflight = self
            .inflight_index
            .get(key)
            .and_then(|&n| self.inflight.get(n))
            .map(|i| i.fence);
        let pending = self.pending.get(key).map(|p| p.item.fence);
        pending.into_iter().chain(inflight).max()
    }

    /// The rooms whose snapshot lost the fence: their changes are dropped (the database
    /// holds another server's), they leave this server's list, and their rooms are told.
    fn fenced_out(&mut self, keys: Vec<RoomKey>, written: &[SnapshotItem]) {
        for key in keys {
            self.health.fenced_writes.fetch_add(1, Ordering::Relaxed);
            let lost = written.iter().find(|i| i.key == key).map_or(0, |i| i.fence);
            // Newer changes (a later claim) are kept, and so is their list entry.
            let newer = self.pending.get(&key).is_some_and(|p| p.item.fence > lost);
            if !newer {
                self.pending.remove(&key);
                self.set_entry(&key, None);
            }
            tracing::warn!(room = ?key, fence = lost, "snapshot fenced: another server holds the room");
            if let Some(tx) = &self.fenced_tx {
                // Full only if thousands were fenced at once: those rooms' next write is
                // fenced again and tells them then.
                let _ = tx.try_send((key, lost));
            }
        }
    }

    /// Where rooms that lost their fence are announced (taken once, by the rooms).
    /// Each comes with the fence that lost: a room activated again since holds a newer one.
    pub fn fenced_rooms(&mut self) -> tokio::sync::mpsc::Receiver<(RoomKey, i64)> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        self.fenced_tx = Some(tx);
        rx
    }

    /// A snapshot committed: rooms being read keep what it wrote for them (the write is
    /// still `inflight` here).
    fn keep_committed_for_loads(&mut self) {
        for (key, loading) in self.loading.iter_mut() {
            let Some(item) = self
                .inflight_index
                .get(key)
                .and_then(|&n| self.inflight.get(n))
            else {
                continue;
            };
            let newer = Pending::from_item(item.clone());
            match loading.committed.as_mut() {
                Some(c) => c.merge_newer(newer),
                None => loading.committed = Some(newer),
            }
        }
    }

    /// One read of `key` is done: what was committed for the room while it ran.
    fn end_load(&mut self, key: &RoomKey) -> Option<Pending> {
        let loading = self.loading.get_mut(key)?;
        loading.reads -= 1;
        if loading.reads > 0 {
            // Others still read: they may need the same commits.
            return loading.committed.clone();
        }
        self.loading.remove(key).and_then(|l| l.committed)
    }

    /// What the store may not hold for a room, oldest first merged under newer: committed
    /// during a read, being written, pending (hand-overs taken first).
    fn unwritten(&mut self, key: &RoomKey, committed: Option<Pending>) -> Option<SnapshotItem> {
        self.take_handovers();
        let mut merged = committed;
        let inflight = self
            .inflight_index
            .get(key)
            .and_then(|&n| self.inflight.get(n))
            .cloned()
            .map(Pending::from_item);
        for newer in [inflight, self.pending.get(key).cloned()]
            .into_iter()
            .flatten()
        {
            match merged.as_mut() {
                Some(m) => m.merge_newer(newer),
                None => merged = Some(newer),
            }
        }
        merged.map(Pending::into_item)
    }
}

/// Takes the hand-overs queued so far into the index now: a room's listing change (online,
/// offline, a new broadcast) is on the list before its request is answered.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TakeHandovers;

impl Handler<TakeHandovers> for Supervisor {
    type Result = ();
    fn handle(&mut self, _: TakeHandovers, _: &mut Context<Self>) {
        self.take_handovers();
    }
}

/// Writes every pending change now; answers true when all is in the database, false when
/// the deadline passed first.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct FlushAll {
    pub deadline: Duration,
}

impl Handler<FlushAll> for Supervisor {
    type Result = ResponseFuture<bool>;
    fn handle(&mut self, msg: FlushAll, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.flush_waiters.push(tx);
        self.next_try = Instant::now();
        self.try_write(ctx);
        Box::pin(async move {
            tokio::time::timeout(msg.deadline, rx)
                .await
                .is_ok_and(|r| r.unwrap_or(false))
        })
    }
}
