//! `Rooms`: the one door to the rooms. Actions, callbacks and the WebSocket layer reach a
//! room, and write anything of a room's, only through these typed methods; actor messages
//! and mailboxes stay behind it. Today every room lives in this process (the registry and
//! its actors); this is where a call for a room owned by another node will be forwarded.

use super::fanout::Queued;
use super::registry::Registry;
use super::relay::{self, Relays};
use super::remote::{Answer, Call, Reply, WireError};
use super::*;
use crate::cluster::{Cluster, Owner, Peer};
use crate::model::{Counters, MemberInfo, PusherInfo, RoomInfo, RoomKey};
use crate::store::NewRecording;
use crate::supervisor::{FlushAll, SharedList, TakeHandovers};
use std::time::Duration;

/// What rooms are allowed and how they behave.
pub struct RoomsConfig {
    pub index_tick: Duration,
    pub max_members: usize,
    pub max_rooms: usize,
    /// Realtime events are coalesced over this window.
    pub ws_coalesce: Duration,
    pub max_subscribers: usize,
    /// An idle room (offline, no members, no subscribers) stops after this long.
    pub idle_stop: Duration,
    /// Threads of their own for the rooms; 0 runs them on the HTTP workers (each worker
    /// calls `run_here` as it starts).
    pub threads: usize,
}

/// A viewer entering a room, as the member list shows them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Viewer {
    pub userid: String,
    pub nickname: String,
    pub headpic: String,
}

/// A realtime subscription to a room's events; it ends when dropped.
pub struct Subscription {
    frames: mpsc::Receiver<Queued>,
    /// Tells the room this subscriber left.
    leave: Option<Box<dyn FnOnce() + Send>>,
}

impl Subscription {
    /// The next frame; `None` once the room let this subscriber go: its queue was full, or
    /// the room stopped. (A new broadcast sends a `closed` event first.)
    pub async fn recv(&mut self) -> Option<Queued> {
        self.frames.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(leave) = self.leave.take() {
            leave();
        }
    }
}

#[derive(Clone)]
pub struct Rooms {
    registry: Arc<Registry>,
    supervisor: Addr<Supervisor>,
    /// The rooms' own threads, when configured (stopped after the final flush).
    threads: Arc<Vec<Arbiter>>,
    /// Set when this node is one of several: rooms owned elsewhere are forwarded.
    cluster: Option<Arc<Cluster>>,
    health: Arc<crate::metrics::Health>,
    /// Realtime sockets here on rooms owned elsewhere (a cluster).
    relays: Option<Arc<Relays>>,
    /// Rooms of this node whose frames go to their Redis channel: the stream id, and when a
    /// node last asked for it.
    publishers: Arc<DashMap<RoomKey, (u64, Arc<std::sync::atomic::AtomicU64>)>>,
    /// Recorded files merged into another file's recording (one broadcast, two formats):
    /// (vj, file id) → the recording's file id. A cache of the store's `recording_files`.
    aliases: Arc<DashMap<(String, String), String>>,
}

/// Aliases remembered at most; past it the cache starts again (the store has them all).
const MAX_ALIASES: usize = 100_000;

fn next_subscriber_id() -> u64 {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Where a call runs.
enum Route {
    Here,
    Peer(Peer),
}

/// Lookups of a room's owner per forwarded call, at most.
const FORWARD_ATTEMPTS: u32 = 3;
/// Rooms read from the database per batch when taking over a dead node's rooms.
const TAKEOVER_BATCH: usize = 500;

impl Rooms {
    /// Must run inside an actix `System`.
    pub fn new(
        cfg: RoomsConfig,
        store: Arc<dyn Store>,
        supervisor: Addr<Supervisor>,
        handover: Handover,
        health: Arc<crate::metrics::Health>,
        mut fenced: mpsc::Receiver<(RoomKey, i64)>,
        cluster: Option<Arc<Cluster>>,
    ) -> Rooms {
        let threads: Vec<Arbiter> = (0..cfg.threads).map(|_| Arbiter::new()).collect();
        let env = Arc::new(RoomEnv {
            store,
            supervisor: supervisor.clone(),
            handover,
            rooms: Directory::new(),
            cfg,
            health: health.clone(),
            alive: Default::default(),
            cluster: cluster.clone(),
        });
        let registry = Arc::new(Registry::new(
            threads.iter().map(|a| a.handle()).collect(),
            env,
        ));
        // A room whose snapshot lost its fence lets go (if it still runs here).
        let lost = registry.clone();
        actix::spawn(async move {
            while let Some((key, fence)) = fenced.recv().await {
                if let Some(room) = lost.running(&key) {
                    room.do_send(Fenced { fence });
                }
            }
        });
        let mut rooms = Rooms {
            registry,
            supervisor,
            threads: Arc::new(threads),
            cluster,
            health,
            relays: None,
            publishers: Default::default(),
            aliases: Default::default(),
        };
        if let Some(c) = rooms.cluster.clone() {
            rooms.spawn_lease(c.clone());
            let asker = rooms.clone();
            let resync: relay::Resync = Arc::new(move |key: RoomKey| {
                let rooms = asker.clone();
                Box::pin(async move {
                    rooms
                        .run(Call::Relay { key })
                        .await
                        .and_then(Reply::relay)
                        .ok()
                        .map(|(snapshot, stream)| (snapshot.into(), stream))
                })
            });
            rooms.relays = Some(Relays::start(c, resync));
        }
        rooms
    }

    /// This node's place in the cluster, if it is in one.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Keeps this node's lease. After a lapse (a pause, Redis away) the rooms that moved
    /// meanwhile are dropped here before the node acknowledges anything again.
    fn spawn_lease(&self, cluster: Arc<Cluster>) {
        let registry = self.registry.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(cluster.renew_every());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut touched = std::time::Instant::now();
            loop {
                tick.tick().await;
                if cluster.has_left() {
                    return;
                }
                let start = std::time::Instant::now();
                match cluster.renew().await {
                    Ok(true) | Err(_) => {}
                    Ok(false) => {
                        let keys = registry.keys();
                        tracing::warn!(node = %cluster.node_id, rooms = keys.len(), "lease lapsed: checking owned rooms");
                        match cluster.still_mine(&keys).await {
                            Ok(mine) => {
                                let mut lost = 0;
                                for (key, mine) in keys.iter().zip(mine) {
                                    if !mine {
                                        if let Some(room) = registry.running(key) {
                                            room.do_send(Fenced { fence: i64::MAX });
                                        }
                                        lost += 1;
                                    }
                                }
                                tracing::warn!(lost, "lease back: rooms that moved dropped");
                                cluster.confirm(start);
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot check owned rooms"),
                        }
                    }
                }
                if touched.elapsed() >= Duration::from_secs(60) && cluster.lease_valid() {
                    touched = std::time::Instant::now();
                    if let Err(e) = cluster.touch(&registry.keys()).await {
                        tracing::warn!(error = %e, "cannot refresh room owners");
                    }
                }
            }
        });
    }

    /// Re-homes the online rooms of nodes that died: every node checks the census six times a
    /// lease and takes its share of a dead node's online rooms (by a hash all nodes agree
    /// on), activating them from the database; rooms still unclaimed a lease later go to
    /// whoever gets there first. Offline rooms move on their next request.
    pub fn spawn_failover(&self, list: SharedList) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let rooms = self.clone();
        actix::spawn(async move {
            let lease = cluster.renew_every() * 3;
            let mut tick = tokio::time::interval(lease / 6);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen_dead: HashMap<String, std::time::Instant> = HashMap::new();
            loop {
                tick.tick().await;
                if cluster.has_left() {
                    return;
                }
                if !cluster.lease_valid() {
                    continue;
                }
                let Ok((alive, dead)) = cluster.census().await else {
                    continue;
                };
                seen_dead.retain(|n, _| dead.contains(n));
                let rank = alive
                    .iter()
                    .position(|n| *n == cluster.node_id)
                    .unwrap_or(0);
                for node in dead {
                    let since = *seen_dead
                        .entry(node.clone())
                        .or_insert_with(std::time::Instant::now);
                    let anyone = since.elapsed() >= lease;
                    let Ok(keys) = cluster.owned_by(&node).await else {
                        continue;
                    };
                    let online: Vec<RoomKey> = {
                        let index = list.read().unwrap_or_else(|e| e.into_inner());
                        keys.into_iter()
                            .filter(|k| k.is_live() && index.is_live(k.vj()))
                            .collect()
                    };
                    let mine = online.into_iter().filter(|k| {
                        anyone
                            || crate::cluster::room_hash(k) % alive.len().max(1) as u64
                                == rank as u64
                    });
                    // Claims go to Redis many at once; the rooms claimed are then read from
                    // the database in batches (a few statements and one commit each).
                    let claimed: Vec<String> =
                        futures_util::StreamExt::collect(futures_util::StreamExt::filter_map(
                            futures_util::StreamExt::buffer_unordered(
                                futures_util::StreamExt::map(
                                    futures_util::stream::iter(mine),
                                    |key| {
                                        let (rooms, cluster) = (&rooms, &cluster);
                                        async move {
                                            if rooms.registry.running(&key).is_some() {
                                                return None;
                                            }
                                            match rooms.route(cluster, &key, true).await {
                                                Ok(Route::Here) => Some(key.vj().to_string()),
                                                _ => None,
                                            }
                                        }
                                    },
                                ),
                                64,
                            ),
                            std::future::ready,
                        ))
                        .await;
                    let adopted = std::sync::atomic::AtomicUsize::new(0);
                    for batch in claimed.chunks(TAKEOVER_BATCH) {
                        let unread = match rooms.registry.adopt_live(batch.to_vec()).await {
                            Ok((n, unread)) => {
                                adopted.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                                unread
                            }
                            Err(e) => {
                                tracing::warn!(rooms = batch.len(), error = %e, "cannot take over rooms");
                                continue;
                            }
                        };
                        // Not in the batch read (no state row yet, say): one by one.
                        for vj in unread {
                            let key = RoomKey::Live(vj);
                            match rooms.registry.get(&key).await {
                                Ok(Some(_)) => {
                                    adopted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                                Ok(None) => {}
                                Err(e) => {
                                    tracing::warn!(room = ?key, error = %e, "cannot take over a room")
                                }
                            }
                        }
                    }
                    let adopted = adopted.into_inner();
                    if adopted > 0 {
                        tracing::info!(node = %node, rooms = adopted, "took over online rooms of a dead node");
                    }
                    if since.elapsed() >= lease * 3 && cluster.forget_node(&node).await.is_ok() {
                        seen_dead.remove(&node);
                    }
                }
            }
        });
    }

    /// A graceful stop, after the final flush: this node's rooms are given up at once.
    pub async fn leave_cluster(&self) {
        if let Some(c) = &self.cluster {
            c.leave().await;
        }
    }

    /// Whether rooms run on the HTTP workers (see `RoomsConfig::threads`).
    pub fn on_workers(&self) -> bool {
        self.threads.is_empty()
    }

    /// Lets rooms run on the calling thread's event loop (an HTTP worker, as it starts).
    pub fn run_here(&self) {
        self.registry.add_arbiter(Arbiter::current());
    }

    /// Rooms in memory.
    pub fn active(&self) -> usize {
        self.registry.len()
    }

    /// A viewer enters a live room (`groupid` must be its current broadcast's) or a
    /// recording (`groupid` None).
    pub async fn enter(
        &self,
        key: &RoomKey,
        groupid: Option<String>,
        viewer: Viewer,
    ) -> Result<(), RoomError> {
        let key = key.clone();
        self.run(Call::Enter {
            key,
            groupid,
            viewer,
        })
        .await?
        .done()
    }

    /// A viewer leaves. Leaving a room that does not exist, another broadcast's group, or a
    /// room one is not in changes nothing and is not an error.
    pub async fn quit(
        &self,
        key: &RoomKey,
        userid: String,
        groupid: Option<String>,
    ) -> Result<(), RoomError> {
        let key = key.clone();
        self.run(Call::Quit {
            key,
            userid,
            groupid,
        })
        .await?
        .done()
    }

    pub async fn like(&self, key: &RoomKey, increase: bool) -> Result<(), RoomError> {
        let key = key.clone();
        self.run(Call::Like { key, increase }).await?.done()
    }

    /// The room's description and counters.
    pub async fn state(&self, key: &RoomKey) -> Result<(RoomInfo, Counters), RoomError> {
        let key = key.clone();
        self.run(Call::State { key }).await?.state()
    }

    /// The room's list item.
    pub async fn info(&self, key: &RoomKey) -> Result<PusherInfo, RoomError> {
        let key = key.clone();
        self.run(Call::Info { key }).await?.info()
    }

    /// The VJ whose current broadcast uses this stream name.
    pub async fn owner_of_stream(&self, stream: &str) -> Result<Option<String>, RoomError> {
        Ok(self.registry.store().room_by_stream(stream).await?)
    }

    /// A page of members, newest first, and how many there are.
    pub async fn members(
        &self,
        key: &RoomKey,
        groupid: Option<String>,
        offset: usize,
        limit: usize,
    ) -> Result<(usize, Vec<MemberInfo>), RoomError> {
        let key = key.clone();
        self.run(Call::Members {
            key,
            groupid,
            offset,
            limit,
        })
        .await?
        .members()
    }

    /// The VJ says the broadcast is online or offline (ChangeStatus).
    pub async fn set_status(&self, vj: &str, online: bool) -> Result<(), RoomError> {
        let key = live(vj);
        self.run(Call::SetStatus { key, online }).await?.done()
    }

    /// Starts a new broadcast of the VJ's live room, creating the room on first use. It is
    /// in the database before this returns.
    pub async fn new_broadcast(&self, vj: &str, info: RoomInfo) -> Result<(), RoomError> {
        let key = live(vj);
        self.run(Call::NewBroadcast { key, info }).await?.done()
    }

    /// The media server reports the stream started or stopped (at `event_time` when it
    /// says). Answers whether it applied: a report older than the broadcast does not.
    pub async fn media_status(
        &self,
        vj: &str,
        online: bool,
        event_time: Option<i64>,
    ) -> Result<bool, RoomError> {
        let key = live(vj);
        self.run(Call::MediaStatus {
            key,
            online,
            event_time,
        })
        .await?
        .applied()
    }

    /// The media server says the stream is alive.
    pub async fn sign_of_life(&self, vj: &str) -> Result<(), RoomError> {
        let key = live(vj);
        self.run(Call::SignOfLife { key }).await?.done()
    }

    /// Stores a recording (or merges another format's URL into it) before answering, then
    /// lets its room publish it to the lists. Returns the stored record.
    pub async fn add_recording(&self, rec: NewRecording) -> Result<RoomRecord, RoomError> {
        let record = self.registry.store().put_recording(&rec).await?;
        let entry = record.key.fileid();
        if entry != rec.fileid {
            self.remember_alias(&rec.vj, &rec.fileid, entry);
        }
        let key = record.key.clone();
        let info = record.info.clone();
        self.run(Call::SetInfo { key, info }).await?.done()?;
        Ok(record)
    }

    /// The media server took a screenshot of the VJ's stream: stored, then shown.
    pub async fn set_snapshot(&self, vj: &str, url: String) -> Result<(), RoomError> {
        let key = live(vj);
        self.registry.store().set_snapshot_url(&key, &url).await?;
        self.run(Call::SetSnapshot { key, url }).await?.done()
    }

    fn remember_alias(&self, vj: &str, fileid: &str, recording: &str) {
        if self.aliases.len() >= MAX_ALIASES {
            self.aliases.clear();
        }
        self.aliases
            .insert((vj.to_string(), fileid.to_string()), recording.to_string());
    }

    /// Runs a call where its room lives. A recording is reached by any of its files' ids:
    /// one merged into another's recording is sent there.
    async fn run(&self, call: Call) -> Result<Reply, RoomError> {
        // The slower paths are boxed: an async fn's future is as large as its largest
        // state, and a request's future is moved whole; with the cluster and recording
        // paths inline, every EnterGroup's future was 9 KB.
        match call.key() {
            RoomKey::Live(_) => self.run_keyed(call).await,
            RoomKey::Recording { .. } => Box::pin(self.run_recording(call)).await,
        }
    }

    /// A recording's call: its fileid may be an alias (a recording merged into another).
    async fn run_recording(&self, mut call: Call) -> Result<Reply, RoomError> {
        let RoomKey::Recording { vj, fileid } = call.key().clone() else {
            return self.run_keyed(call).await;
        };
        let cached = self
            .aliases
            .get(&(vj.clone(), fileid.clone()))
            .map(|e| e.clone());
        if let Some(recording) = cached {
            call.set_fileid(recording);
            return self.run_keyed(call).await;
        }
        match self.run_keyed(call.clone()).await {
            Err(RoomError::NoRoom(k)) => {
                match self.registry.store().recording_alias(&vj, &fileid).await? {
                    Some(recording) => {
                        self.remember_alias(&vj, &fileid, &recording);
                        call.set_fileid(recording);
                        self.run_keyed(call).await
                    }
                    None => Err(RoomError::NoRoom(k)),
                }
            }
            r => r,
        }
    }

    /// Runs a call where its room lives: here, or (in a cluster) on the room's owner.
    async fn run_keyed(&self, call: Call) -> Result<Reply, RoomError> {
        match &self.cluster {
            None => self.here(call).await,
            Some(cluster) => Box::pin(self.run_clustered(cluster, call)).await,
        }
    }

    async fn run_clustered(&self, cluster: &Cluster, call: Call) -> Result<Reply, RoomError> {
        match self.route(cluster, call.key(), false).await? {
            Route::Here => match self.here_owned(cluster, call.clone()).await {
                // Moved between the lookup and the call: where is it now? (Once.)
                Err(RoomError::NotOwner) => match self.route(cluster, call.key(), true).await? {
                    Route::Peer(peer) => self.forward(cluster, call, peer).await,
                    Route::Here => Err(RoomError::NoOwner("the room moved back and forth".into())),
                },
                r => r,
            },
            Route::Peer(peer) => self.forward(cluster, call, peer).await,
        }
    }

    /// Runs a call here, in a cluster: a claim made for a room that turns out not to exist
    /// (or not to fit) is given up, and an answer is given only if this node still had its
    /// lease when the room answered (a node that paused mid-call says "retry" instead).
    async fn here_owned(&self, cluster: &Cluster, call: Call) -> Result<Reply, RoomError> {
        let key = call.key().clone();
        let r = self.here(call).await;
        if matches!(r, Err(RoomError::NoRoom(_) | RoomError::AtCapacity { .. }))
            && self.registry.running(&key).is_none()
        {
            cluster.release_room(&key).await;
        }
        if r.is_ok() && !self.may_serve(cluster) {
            return Err(RoomError::NoOwner(
                "this node's lease lapsed during the call".into(),
            ));
        }
        r
    }

    /// Whether rooms running here may acknowledge: while the lease is valid, or while Redis
    /// is unreachable (degraded) and the database still takes this node's snapshots, which
    /// would be refused (fenced) if another node had claimed a room.
    fn may_serve(&self, cluster: &Cluster) -> bool {
        cluster.lease_valid()
            || (cluster.degraded()
                && !cluster.has_left()
                && !self
                    .health
                    .degraded
                    .load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A call another node forwarded: served only if this node owns the room (never
    /// forwarded again, so a stale owner cache cannot send a call round in a loop).
    pub async fn serve_forwarded(&self, body: &[u8]) -> Vec<u8> {
        let answer = match serde_json::from_slice::<Call>(body) {
            Err(e) => Answer::Err(WireError::Peer(format!("bad call: {e}"))),
            Ok(call) => {
                let result = match &self.cluster {
                    None => Err(RoomError::NotOwner),
                    Some(cluster) => match self.route(cluster, call.key(), true).await {
                        Ok(Route::Here) => self.here_owned(cluster, call).await,
                        Ok(Route::Peer(_)) => Err(RoomError::NotOwner),
                        Err(e) => Err(e),
                    },
                };
                match result {
                    Ok(r) => Answer::Ok(r),
                    Err(e) => Answer::Err(e.into()),
                }
            }
        };
        // Always JSON: an answer that cannot be written says so, in its place in a batch.
        serde_json::to_vec(&answer).unwrap_or_else(|e| {
            serde_json::to_vec(&Answer::Err(WireError::Peer(format!(
                "unwritable answer: {e}"
            ))))
            .unwrap_or_else(|_| br#"{"err":{"peer":"unwritable answer"}}"#.to_vec())
        })
    }

    /// Where a room's calls go. A room running here is this node's while its lease is
    /// valid (rooms that moved were dropped when it lapsed); any other is looked up, and
    /// claimed when it has no live owner. `fresh` skips the cache of other nodes' rooms.
    async fn route(
        &self,
        cluster: &Cluster,
        key: &RoomKey,
        fresh: bool,
    ) -> Result<Route, RoomError> {
        if self.registry.running(key).is_some() {
            return if self.may_serve(cluster) {
                Ok(Route::Here)
            } else {
                Err(RoomError::NoOwner("this node's lease lapsed".into()))
            };
        }
        if fresh {
            cluster.forget(key);
        }
        match cluster.owner(key).await {
            Ok(Owner::Me) => Ok(Route::Here),
            Ok(Owner::Peer(p)) => Ok(Route::Peer(p)),
            Err(e) => Err(RoomError::NoOwner(e.to_string())),
        }
    }

    /// Sends a call to the room's owner. A node that answers "not mine", or cannot be
    /// connected to (so the call was not applied), makes it look the owner up again, a few
    /// times; a call that was sent and got no answer is not retried (it may have applied).
    async fn forward(
        &self,
        cluster: &Cluster,
        call: Call,
        mut peer: Peer,
    ) -> Result<Reply, RoomError> {
        let body = serde_json::to_vec(&call).map_err(|e| RoomError::Peer(e.to_string()))?;
        let key = call.key().clone();
        self.health
            .forwarded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for attempt in 0..FORWARD_ATTEMPTS {
            let sent = crate::cluster::peer::call(
                cluster.secret().expose(),
                &peer,
                body.clone(),
                cluster.call_timeout(),
                call.quick(),
            )
            .await;
            match sent {
                Ok(bytes) => match serde_json::from_slice::<Answer>(&bytes) {
                    Ok(Answer::Ok(r)) => return Ok(r),
                    Ok(Answer::Err(WireError::NotOwner)) => {
                        tracing::debug!(node = %peer.node, room = ?key, "peer does not own the room");
                        cluster.forget(&key);
                    }
                    Ok(Answer::Err(e)) => return Err(e.into()),
                    Err(e) => return Err(RoomError::Peer(format!("bad answer: {e}"))),
                },
                Err(crate::cluster::peer::PeerError::Connect(e)) => {
                    tracing::debug!(node = %peer.node, error = %e, "peer unreachable");
                    cluster.forget(&key);
                    // A node that just died holds its lease a little longer.
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                Err(e) => {
                    // Maybe paused, maybe gone: the next call looks the owner up again.
                    cluster.forget(&key);
                    return Err(RoomError::Peer(e.to_string()));
                }
            }
            match self.route(cluster, &key, true).await? {
                Route::Here => return self.here_owned(cluster, call).await,
                Route::Peer(p) => peer = p,
            }
        }
        Err(RoomError::NoOwner(format!(
            "no owner answered for {key:?} after {FORWARD_ATTEMPTS} attempts"
        )))
    }

    /// Runs a call on this node's room.
    async fn here(&self, call: Call) -> Result<Reply, RoomError> {
        Ok(match call {
            Call::Enter {
                key,
                groupid,
                viewer,
            } => {
                let msg = Enter {
                    userid: viewer.userid,
                    nickname: viewer.nickname,
                    headpic: viewer.headpic,
                    groupid,
                };
                self.existing(&key, msg).await??;
                Reply::Done
            }
            Call::Quit {
                key,
                userid,
                groupid,
            } => {
                self.registry.ask(&key, Quit { userid, groupid }).await?;
                Reply::Done
            }
            Call::Like { key, increase } => {
                self.existing(&key, Like { increase }).await??;
                Reply::Done
            }
            Call::State { key } => {
                let (info, counters) = self
                    .existing(&key, GetState)
                    .await?
                    .ok_or_else(|| RoomError::NoBroadcast(key.vj().to_string()))?;
                Reply::State(info, counters)
            }
            Call::Info { key } => Reply::Info(
                self.existing(&key, GetInfo)
                    .await?
                    .ok_or_else(|| RoomError::NoBroadcast(key.vj().to_string()))?,
            ),
            Call::Members {
                key,
                groupid,
                offset,
                limit,
            } => {
                let msg = MemberPage {
                    groupid,
                    offset,
                    limit,
                };
                let (n, page) = self.existing(&key, msg).await??;
                Reply::Members(n, page)
            }
            // The calls below are boxed, as in `run`: inline, they made every member call's
            // future larger.
            Call::SetStatus { key, online } => {
                Box::pin(async move {
                    self.existing(&key, SetStatus { online }).await??;
                    self.listed_now().await;
                    Ok::<_, RoomError>(Reply::Done)
                })
                .await?
            }
            Call::NewBroadcast { key, info } => {
                Box::pin(async move {
                    self.registry
                        .ask_live_or_new(key.vj(), NewBroadcast { info })
                        .await??;
                    self.listed_now().await;
                    Ok::<_, RoomError>(Reply::Done)
                })
                .await?
            }
            Call::MediaStatus {
                key,
                online,
                event_time,
            } => {
                Box::pin(async move {
                    let applied = self
                        .existing(&key, MediaStatus { online, event_time })
                        .await?;
                    if applied {
                        self.listed_now().await;
                    }
                    Ok::<_, RoomError>(Reply::Applied(applied))
                })
                .await?
            }
            Call::SignOfLife { key } => {
                Box::pin(self.existing(&key, SignOfLife)).await?;
                Reply::Done
            }
            Call::SetInfo { key, info } => {
                Box::pin(async move {
                    match self.existing(&key, SetInfo { info }).await {
                        Ok(()) => {
                            self.listed_now().await;
                            Ok(Reply::Done)
                        }
                        // Stored, so it can only have been missing before the write: nothing
                        // to tell.
                        Err(RoomError::NoRoom(_)) => Ok(Reply::Done),
                        Err(e) => Err(e),
                    }
                })
                .await?
            }
            Call::SetSnapshot { key, url } => {
                Box::pin(self.existing(&key, SetSnapshot { url })).await?;
                Reply::Done
            }
            Call::Relay { key } => return Box::pin(self.relay_here(key)).await,
        })
    }

    /// The room just handed a listing change over: the supervisor takes it into the index
    /// before the call is answered, so a FetchList sent right after shows it. (Counts stay
    /// coalesced per tick.) In a cluster the other nodes' lists follow through the feed.
    async fn listed_now(&self) {
        // Fails only once the supervisor is gone (shutdown): the change is queued anyway.
        let _ = self.supervisor.send(TakeHandovers).await;
    }

    /// Subscribes to a live room's realtime events: a snapshot first, then coalesced events,
    /// through a queue of `queue` frames (a subscriber that lets it fill is let go).
    pub async fn subscribe(&self, vj: &str, queue: usize) -> Result<Subscription, RoomError> {
        let key = live(vj);
        if let (Some(cluster), Some(relays)) = (&self.cluster, &self.relays) {
            if let Route::Peer(_) = self.route(cluster, &key, false).await? {
                return self.subscribe_relayed(relays, key, queue).await;
            }
        }
        self.subscribe_here(key, queue).await
    }

    async fn subscribe_here(&self, key: RoomKey, queue: usize) -> Result<Subscription, RoomError> {
        let (tx, frames) = mpsc::channel(queue.max(2));
        let id = next_subscriber_id();
        // Retried like `ask` (a room that stopped idle is reactivated); the subscription
        // keeps the address that accepted it.
        for _ in 0..3 {
            let Some(room) = self.registry.get(&key).await? else {
                return Err(RoomError::NoRoom(key));
            };
            let msg = Subscribe { id, tx: tx.clone() };
            match room.send(msg).await {
                Ok(r) => {
                    r?;
                    let leave = Box::new(move || room.do_send(Unsubscribe { id }));
                    return Ok(Subscription {
                        frames,
                        leave: Some(leave),
                    });
                }
                Err(MailboxError::Closed) => self.registry.forget(&key, &room),
                Err(_) => return Err(RoomError::Unavailable),
            }
        }
        Err(RoomError::Unavailable)
    }

    /// A socket here on a room owned by another node: relayed from the room's channel,
    /// after a snapshot from the owner. (The subscriber bound applies per node.)
    async fn subscribe_relayed(
        &self,
        relays: &Arc<Relays>,
        key: RoomKey,
        queue: usize,
    ) -> Result<Subscription, RoomError> {
        let id = next_subscriber_id();
        let Some(hub) = relays.hub(&key).await else {
            relays.leave(&key, id);
            return Err(RoomError::NoOwner(
                "redis unreachable for realtime relay".into(),
            ));
        };
        let max = self.registry.max_subscribers();
        if hub.len() >= max {
            relays.leave(&key, id);
            return Err(RoomError::TooManySubscribers {
                vj: key.vj().to_string(),
                max,
            });
        }
        let (snapshot, stream) = match self.run(Call::Relay { key: key.clone() }).await {
            Ok(r) => r.relay()?,
            Err(e) => {
                relays.leave(&key, id);
                return Err(e);
            }
        };
        let (tx, frames) = mpsc::channel(queue.max(2));
        hub.add(id, tx, snapshot.into(), stream);
        let relays = relays.clone();
        Ok(Subscription {
            frames,
            leave: Some(Box::new(move || relays.leave(&key, id))),
        })
    }

    /// The owner's side of a relay: the room's frames go to its channel (one publisher per
    /// room, while some node asks for it), and the caller gets a snapshot.
    async fn relay_here(&self, key: RoomKey) -> Result<Reply, RoomError> {
        let cluster = self.cluster.as_ref().ok_or(RoomError::NotOwner)?;
        let stream = match self.publishers.get(&key).map(|p| p.clone()) {
            Some((stream, asked)) => {
                asked.store(cluster.now_ms(), std::sync::atomic::Ordering::Relaxed);
                stream
            }
            None => self.start_publisher(cluster.clone(), key.clone()).await?,
        };
        let mut first = self.subscribe_here(key, 2).await?;
        let snapshot = first.recv().await.ok_or(RoomError::Unavailable)?;
        Ok(Reply::Relay(snapshot.frame.to_string(), stream))
    }

    async fn start_publisher(&self, cluster: Arc<Cluster>, key: RoomKey) -> Result<u64, RoomError> {
        let mut sub = self.subscribe_here(key.clone(), 1024).await?;
        // Its snapshot is this subscription's own; the relays ask for theirs.
        let _ = sub.recv().await;
        let stream: u64 = rand::random::<u64>() | 1;
        let asked = Arc::new(std::sync::atomic::AtomicU64::new(cluster.now_ms()));
        let inserted = match self.publishers.entry(key.clone()) {
            dashmap::Entry::Occupied(e) => return Ok(e.get().0),
            dashmap::Entry::Vacant(v) => {
                v.insert((stream, asked.clone()));
                true
            }
        };
        debug_assert!(inserted);
        let publishers = self.publishers.clone();
        let channel = Relays::channel(&cluster, &key);
        actix::spawn(async move {
            let mut seq = 0u64;
            let quiet = cluster.call_timeout() * 3;
            let mut check = tokio::time::interval(cluster.call_timeout());
            loop {
                tokio::select! {
                    q = sub.recv() => {
                        let Some(q) = q else { break };
                        seq += 1;
                        let payload = relay::encode(stream, seq, &q.frame);
                        let _ = redis::cmd("PUBLISH")
                            .arg(&channel)
                            .arg(payload)
                            .query_async::<i64>(&mut cluster.redis())
                            .await;
                    }
                    _ = check.tick() => {
                        // No node has asked for a while: nobody relays this room now.
                        let last = asked.load(std::sync::atomic::Ordering::Relaxed);
                        if cluster.now_ms().saturating_sub(last) > quiet.as_millis() as u64 {
                            break;
                        }
                    }
                }
            }
            publishers.remove_if(&key, |_, p| p.0 == stream);
        });
        Ok(stream)
    }

    /// Applies the stale-stream rule every few seconds: rooms the list shows online with no
    /// sign of life for `stale_after` seconds check themselves (they decide in their mailbox).
    pub fn spawn_stale_sweep(&self, list: SharedList, stale_after: i64) {
        if stale_after <= 0 {
            return;
        }
        let period = Duration::from_secs((stale_after as u64 / 4).clamp(1, 30));
        let rooms = self.clone();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let before = crate::model::now_unix() - stale_after;
                let ids = list
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .stale_live(before, 10_000);
                // On a shared database another server may hold a listed room: only rooms
                // running here are checked (activating one would claim it from its owner).
                let shared = rooms.registry.store().fences();
                for vj in ids {
                    let check = CheckStale { stale_after };
                    let key = live(&vj);
                    if shared {
                        if let Some(room) = rooms.registry.running(&key) {
                            let _ = room.send(check).await;
                        }
                    } else if let Err(e) = rooms.existing(&key, check).await {
                        tracing::warn!(vj, error = %e, "stale-stream check failed");
                    }
                }
            }
        });
    }

    /// Rooms hand their pending changes to the supervisor, which writes them all. Rooms on
    /// stopped HTTP workers hand theirs over as their threads drop them; this waits for
    /// that. True when everything is in the database before `deadline`.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let until = std::time::Instant::now() + deadline;
        let mut all_handed_over = true;
        loop {
            let rooms = self.registry.all();
            let mut answered = 0;
            for r in &rooms {
                if r.send(FlushNow).await.is_ok() {
                    answered += 1;
                }
            }
            let alive = self.registry.alive();
            if alive <= answered {
                tracing::info!(rooms = answered, "rooms flushed");
                break;
            }
            if std::time::Instant::now() >= until {
                tracing::warn!(
                    waiting = alive - answered,
                    "rooms on stopped workers did not hand over in time"
                );
                all_handed_over = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        let written = self
            .supervisor
            .send(FlushAll {
                deadline: left.max(Duration::from_secs(1)),
            })
            .await
            .unwrap_or(false);
        written && all_handed_over
    }

    /// Stops the rooms' own threads (after the final flush).
    pub fn stop_threads(&self) {
        for a in self.threads.iter() {
            a.stop();
        }
    }

    /// Sends to an existing room, activating it if needed; `NoRoom` when it is unknown.
    async fn existing<M>(&self, key: &RoomKey, msg: M) -> Result<M::Result, RoomError>
    where
        M: Message + Send + Clone + 'static,
        M::Result: Send,
        Room: Handler<M>,
    {
        self.registry
            .ask(key, msg)
            .await?
            .ok_or_else(|| RoomError::NoRoom(key.clone()))
    }
}

fn live(vj: &str) -> RoomKey {
    RoomKey::Live(vj.to_string())
}
