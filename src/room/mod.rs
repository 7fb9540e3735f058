//! The Room actor: one per live room and per recording. It owns members, counters and
//! status, so every operation on a room is serialized by its mailbox, without locks.
//! Changes reach the supervisor (list index, snapshots) at most once per index tick.

mod error;
pub mod fanout;
mod handle;
mod members;
mod registry;
mod relay;
mod remote;

use crate::model::{
    Counters, Member, MemberInfo, PusherInfo, PusherInfoRef, RoomInfo, RoomKey, RoomRecord,
    SnapshotItem,
};
use crate::store::{Store, StoreError};
use crate::supervisor::{Handover, ListEntry, RoomChanged, Supervisor};
use actix::prelude::*;
use dashmap::DashMap;
pub use error::RoomError;
use fanout::{Fanout, Frame, Queued};
pub use handle::{Rooms, RoomsConfig, Subscription, Viewer};
pub use members::Members;
// foldhash with a per-process seed: cheaper than SipHash on every member change.
use hashbrown::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Running rooms by key: the registry finds them here, and an idle room takes itself out.
type Directory = DashMap<RoomKey, Addr<Room>>;

/// Settings every room shares.
struct RoomEnv {
    pub store: Arc<dyn Store>,
    pub supervisor: Addr<Supervisor>,
    /// Where a room hands its changes to the supervisor.
    pub handover: Handover,
    pub rooms: Directory,
    /// Limits, ticks and windows, as configured.
    pub cfg: RoomsConfig,
    pub health: Arc<crate::metrics::Health>,
    /// Room values in memory: a shutdown waits for this to fall before the final flush.
    pub alive: std::sync::atomic::AtomicUsize,
    /// In a cluster, a room is activated only while Redis names this node its owner.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

struct Room {
    key: RoomKey,
    info: RoomInfo,
    counters: Counters,
    members: Members,
    env: Arc<RoomEnv>,
    /// Member changes since the last hand-over to the supervisor: Some = upsert, None = delete.
    /// A row's userid is its key, moved into it at the hand-over.
    member_changes: HashMap<String, Option<Member>>,
    flush_scheduled: bool,
    fanout: Fanout,
    idle_check_scheduled: bool,
    /// The fencing token this server holds for the room (see `Store::fences`).
    fence: i64,
    /// Another server holds the room now: nothing of this one's is handed over any more.
    fenced: bool,
}

impl Actor for Room {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Rooms queue at most this many requests; senders wait (backpressure) beyond it.
        ctx.set_mailbox_capacity(256);
        self.maybe_idle(ctx);
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        // Hand over before leaving the map: the next activation reads the supervisor as
        // soon as the room is out of it.
        self.flush_if_pending();
        let me = ctx.address();
        self.env.rooms.remove_if(&self.key, |_, a| *a == me);
    }
}

/// Whatever a room still holds when it is dropped goes to the supervisor. (A room whose
/// thread ends, an HTTP worker stopping at shutdown, is stopped as it is dropped, so
/// `stopped` has handed over already.)
impl Drop for Room {
    fn drop(&mut self) {
        self.flush_if_pending();
        self.add_members(-(self.members.len() as i64));
        self.env
            .alive
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Room {
    fn new(record: RoomRecord, env: Arc<RoomEnv>) -> Self {
        env.alive.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let room = Room {
            key: record.key,
            info: record.info,
            counters: record.counters,
            members: Members::from_rows(record.members),
            env,
            member_changes: HashMap::new(),
            flush_scheduled: false,
            fanout: Fanout::default(),
            idle_check_scheduled: false,
            fence: record.fence,
            fenced: false,
        };
        room.add_members(room.members.len() as i64);
        room
    }

    /// A live room that has never begun a broadcast.
    fn empty_live(userid: String, env: Arc<RoomEnv>) -> Self {
        Room::new(
            RoomRecord {
                key: RoomKey::Live(userid),
                info: RoomInfo::default(),
                counters: Counters {
                    epoch: 0,
                    online: false,
                    likes: 0,
                    views: 0,
                    seen_at: 0,
                },
                members: Vec::new(),
                member_count: 0,
                fence: 0,
            },
            env,
        )
    }

    fn exists(&self) -> bool {
        !self.key.is_live() || self.counters.epoch > 0
    }

    fn viewercount(&self) -> u64 {
        if self.key.is_live() {
            self.members.len() as u64
        } else {
            self.counters.views
        }
    }

    fn pusher_info(&self) -> PusherInfoRef<'_> {
        PusherInfoRef::of(&self.key, &self.info, &self.counters, self.viewercount())
    }

    /// Whether this room belongs in a FetchList list right now.
    fn listed(&self) -> bool {
        if self.key.is_live() {
            self.exists() && self.counters.online
        } else {
            !self.info.playurl.is_empty() || !self.info.hls_play_url.is_empty()
        }
    }

    /// Something changed: hand the room's state to the supervisor once per tick.
    fn changed(&mut self, ctx: &mut Context<Self>) {
        if !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.run_later(self.env.cfg.index_tick, |act, _| {
                // Already handed over by a listing change in between: nothing is due.
                if act.flush_scheduled {
                    act.flush()
                }
            });
        }
        if self.fanout.pending() && !self.fanout.scheduled {
            // Leading edge: the first change after a quiet spell goes out at once; later
            // ones wait for the end of the window that this opens.
            self.flush_realtime();
            self.open_window(ctx);
        }
        self.maybe_idle(ctx);
    }

    /// A change the list must show before the answer (online/offline, a new broadcast, a
    /// recording's URLs): handed over now, not at the end of the tick. The caller then has
    /// the supervisor take it (`Rooms::listed_now`).
    fn changed_listing(&mut self, ctx: &mut Context<Self>) {
        self.changed(ctx);
        self.flush();
    }

    /// A sign of life from a media server that sends them (nginx-rtmp `on_update`, SRS
    /// `on_hls`, screenshots): from now on, this broadcast goes offline when they stop.
    fn heard(&mut self) {
        self.counters.seen_at = crate::model::now_unix();
    }

    /// A status change renews the deadline of a broadcast whose media server sends signs
    /// of life; one whose media server never did (Tencent without screenshots, ChangeStatus
    /// alone) keeps no deadline: it stays listed until it ends.
    fn renew_heard(&mut self) {
        if self.counters.seen_at > 0 {
            self.heard();
        }
    }

    fn open_window(&mut self, ctx: &mut Context<Self>) {
        self.fanout.scheduled = true;
        ctx.run_later(self.env.cfg.ws_coalesce, |act, ctx| {
            act.fanout.scheduled = false;
            if act.fanout.pending() {
                act.flush_realtime();
                act.open_window(ctx);
            }
        });
    }

    /// Sends the window's coalesced events: member batches, then the latest counts.
    fn flush_realtime(&mut self) {
        let viewers = self.viewercount();
        for frame in self.fanout.take_events(viewers, self.counters.likes) {
            self.send_frame(&frame);
        }
    }

    fn send_frame(&mut self, frame: &Frame) {
        for d in self.fanout.send(frame) {
            if let fanout::Dropped::Slow(id) = d {
                tracing::info!(
                    room = self.key.vj(),
                    subscriber = id,
                    "slow subscriber dropped"
                );
            }
        }
    }

    fn add_members(&self, n: i64) {
        self.env
            .health
            .members
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn set_online(&mut self, online: bool) {
        if self.counters.online != online {
            self.counters.online = online;
            self.send_frame(&fanout::status_frame(online));
        }
    }

    fn idle(&mut self) -> bool {
        self.fanout.forget_closed();
        !self.counters.online && self.members.is_empty() && self.fanout.is_empty()
    }

    /// An idle room frees its memory after a grace period; its state stays in the store,
    /// and changes not yet written wait in the supervisor, which a reactivation consults.
    fn maybe_idle(&mut self, ctx: &mut Context<Self>) {
        if self.idle_check_scheduled || !self.idle() {
            return;
        }
        self.idle_check_scheduled = true;
        ctx.run_later(self.env.cfg.idle_stop, |act, ctx| {
            act.idle_check_scheduled = false;
            if act.idle() {
                act.flush_if_pending();
                let me = ctx.address();
                act.env.rooms.remove_if(&act.key, |_, a| *a == me);
                ctx.stop();
            }
        });
    }

    /// Hands over now if anything changed since the last hand-over (idle stop, shutdown).
    fn flush_if_pending(&mut self) {
        if self.flush_scheduled || !self.member_changes.is_empty() {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.flush_scheduled = false;
        if self.fenced {
            return;
        }
        let entry = self
            .listed()
            .then(|| ListEntry::new(&self.pusher_info(), self.counters.seen_at));
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        // Taken, not drained: a drained map keeps its capacity, and ten thousand small
        // rooms would each hold their busiest tick's worth of empty buckets.
        for (id, change) in std::mem::take(&mut self.member_changes) {
            match change {
                Some(mut m) => {
                    m.userid = id;
                    upserts.push(m);
                }
                None => deletes.push(id),
            }
        }
        let counters = self.counters.clone();
        self.env.handover.send(RoomChanged {
            key: self.key.clone(),
            entry,
            snapshot: SnapshotItem {
                key: self.key.clone(),
                fence: self.fence,
                counters,
                upserts,
                deletes,
            },
        });
    }

    /// Only a live room can exist without existing: it was created for a broadcast that
    /// has not begun (or failed to).
    fn missing(&self) -> RoomError {
        RoomError::NoBroadcast(self.key.vj().to_string())
    }

    fn no_group(&self, groupid: &str) -> RoomError {
        RoomError::NoGroup {
            vj: self.key.vj().to_string(),
            groupid: groupid.to_string(),
        }
    }
}

/// A viewer enters. `groupid` must name the current broadcast's group (live rooms).
#[derive(Message, Clone)]
#[rtype(result = "Result<(), RoomError>")]
struct Enter {
    pub userid: String,
    pub nickname: String,
    pub headpic: String,
    pub groupid: Option<String>,
}

impl Handler<Enter> for Room {
    type Result = Result<(), RoomError>;
    fn handle(&mut self, msg: Enter, ctx: &mut Context<Self>) -> Self::Result {
        if !self.exists() {
            return Err(self.missing());
        }
        if let Some(g) = &msg.groupid {
            if *g != self.info.groupid {
                return Err(self.no_group(g));
            }
        }
        if !self.members.contains(&msg.userid) && self.members.len() >= self.env.cfg.max_members {
            return Err(RoomError::Full {
                vj: self.key.vj().to_string(),
                max: self.env.cfg.max_members,
            });
        }
        // The message's own strings become the row to persist (its userid the change's key,
        // moved into the row at the hand-over), not a copy taken back out of the member set.
        let userid = members::clip_owned(msg.userid);
        let nickname = members::clip_owned(msg.nickname);
        let headpic = members::clip_owned(msg.headpic);
        match self.members.enter(&userid, &nickname, &headpic) {
            Some(seq) => {
                self.add_members(1);
                self.fanout.note_enter(&userid, &nickname, &headpic);
                // Views count entries of distinct viewers over the broadcast (a live room's
                // figure passes to its recording); a live room shows its current members.
                self.counters.views += 1;
                let row = Member {
                    userid: String::new(),
                    nickname,
                    headpic,
                    seq,
                };
                self.member_changes.insert(userid, Some(row));
            }
            None => {
                // Already a member: the row is written again, with the profile as it is now.
                if let Some(m) = self.members.get(&userid) {
                    self.member_changes.insert(userid, Some(m));
                }
            }
        }
        self.changed(ctx);
        Ok(())
    }
}

#[derive(Message, Clone)]
#[rtype(result = "()")]
struct Quit {
    pub userid: String,
    pub groupid: Option<String>,
}

impl Handler<Quit> for Room {
    type Result = ();
    fn handle(&mut self, msg: Quit, ctx: &mut Context<Self>) {
        // Leaving another broadcast's group, or when not a member, changes nothing.
        if msg.groupid.is_some_and(|g| g != self.info.groupid) {
            return;
        }
        if self.members.quit(&msg.userid) {
            self.add_members(-1);
            self.fanout.note_quit(&msg.userid);
            self.member_changes.insert(msg.userid, None);
            self.changed(ctx);
        }
    }
}

#[derive(Message, Clone)]
#[rtype(result = "Result<(), RoomError>")]
struct Like {
    pub increase: bool,
}

impl Handler<Like> for Room {
    type Result = Result<(), RoomError>;
    fn handle(&mut self, msg: Like, ctx: &mut Context<Self>) -> Self::Result {
        if !self.exists() {
            return Err(self.missing());
        }
        let before = self.counters.likes;
        self.counters.likes = if msg.increase {
            before.saturating_add(1)
        } else {
            before.saturating_sub(1)
        };
        if self.counters.likes != before {
            self.fanout.note_count();
            self.changed(ctx);
        }
        Ok(())
    }
}

#[derive(Message, Clone)]
#[rtype(result = "Result<(), RoomError>")]
struct SetStatus {
    pub online: bool,
}

impl Handler<SetStatus> for Room {
    type Result = Result<(), RoomError>;
    fn handle(&mut self, msg: SetStatus, ctx: &mut Context<Self>) -> Self::Result {
        if !self.exists() {
            return Err(self.missing());
        }
        self.renew_heard();
        self.set_online(msg.online);
        self.changed_listing(ctx);
        Ok(())
    }
}

/// The media server reports the stream started or stopped at `event_time`. A report older
/// than the current broadcast (a late retry) changes nothing. Answers whether it applied.
#[derive(Message, Clone)]
#[rtype(result = "bool")]
struct MediaStatus {
    pub online: bool,
    pub event_time: Option<i64>,
}

impl Handler<MediaStatus> for Room {
    type Result = bool;
    fn handle(&mut self, msg: MediaStatus, ctx: &mut Context<Self>) -> bool {
        if !self.exists() || msg.event_time.is_some_and(|t| t < self.info.timestamp) {
            return false;
        }
        self.set_online(msg.online);
        self.renew_heard();
        self.changed_listing(ctx);
        true
    }
}

/// The media server says the stream is alive (nginx-rtmp on_update, SRS on_hls, a
/// screenshot): it keeps an online room from being declared stale.
#[derive(Message, Clone)]
#[rtype(result = "()")]
struct SignOfLife;

impl Handler<SignOfLife> for Room {
    type Result = ();
    fn handle(&mut self, _: SignOfLife, ctx: &mut Context<Self>) {
        self.heard();
        self.changed(ctx);
    }
}

/// Rule for streams that die without a stop event: an online live room whose media server
/// sends signs of life, and sent none for `stale_after` seconds, goes offline. (One that
/// never sent any, Tencent without screenshots, stays listed until its stop event.)
#[derive(Message, Clone)]
#[rtype(result = "bool")]
struct CheckStale {
    pub stale_after: i64,
}

impl Handler<CheckStale> for Room {
    type Result = bool;
    fn handle(&mut self, msg: CheckStale, ctx: &mut Context<Self>) -> bool {
        let now = crate::model::now_unix();
        if self.key.is_live()
            && self.counters.online
            && self.counters.seen_at > 0
            && self.counters.seen_at + msg.stale_after <= now
        {
            tracing::info!(vj = self.key.vj(), "no sign of life: room goes offline");
            self.set_online(false);
            self.changed_listing(ctx);
            return true;
        }
        false
    }
}

/// The room's current description and counters (a recording copies them).
#[derive(Message, Clone)]
#[rtype(result = "Option<(RoomInfo, Counters)>")]
struct GetState;

impl Handler<GetState> for Room {
    type Result = Option<(RoomInfo, Counters)>;
    fn handle(&mut self, _: GetState, _: &mut Context<Self>) -> Self::Result {
        self.exists()
            .then(|| (self.info.clone(), self.counters.clone()))
    }
}

/// Starts a new broadcast: written to the database before it takes effect, then counters,
/// members and status are reset. The mailbox holds other messages until it is done.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), RoomError>")]
struct NewBroadcast {
    pub info: RoomInfo,
}

impl Handler<NewBroadcast> for Room {
    type Result = AtomicResponse<Self, Result<(), RoomError>>;
    fn handle(&mut self, msg: NewBroadcast, _: &mut Context<Self>) -> Self::Result {
        let epoch = self.counters.epoch + 1;
        let store = self.env.store.clone();
        let userid = self.key.vj().to_string();
        let info = msg.info;
        let fence = self.fence;
        AtomicResponse::new(Box::pin(
            async move {
                let r = store.begin_broadcast(&userid, epoch, &info, fence).await;
                (r, info)
            }
            .into_actor(self)
            .map(move |(r, info), act, ctx| {
                match r {
                    Ok(fence) => act.fence = fence,
                    Err(StoreError::Fenced) => {
                        act.lose(ctx);
                        return Err(RoomError::Moved(act.key.clone()));
                    }
                    Err(StoreError::StreamTaken) => {
                        return Err(RoomError::StreamTaken {
                            vj: act.key.vj().to_string(),
                            stream: info.stream,
                        })
                    }
                    Err(e) => return Err(RoomError::from(e)),
                }
                act.info = info;
                act.counters = Counters {
                    epoch,
                    online: false,
                    likes: 0,
                    views: 0,
                    // Unknown yet whether this broadcast's media server sends signs of life.
                    seen_at: 0,
                };
                act.add_members(-(act.members.len() as i64));
                act.members.clear();
                // The database already holds the empty state of this epoch.
                act.member_changes.clear();
                act.fanout
                    .close_all(&fanout::closed_frame("a new broadcast replaced this one"));
                act.changed_listing(ctx);
                Ok(())
            }),
        ))
    }
}

#[derive(Message, Clone)]
#[rtype(result = "Option<PusherInfo>")]
struct GetInfo;

impl Handler<GetInfo> for Room {
    type Result = Option<PusherInfo>;
    fn handle(&mut self, _: GetInfo, _: &mut Context<Self>) -> Self::Result {
        self.exists().then(|| self.pusher_info().to_owned())
    }
}

/// A page of members, newest first; `groupid` must match for live rooms.
#[derive(Message, Clone)]
#[rtype(result = "Result<(usize, Vec<MemberInfo>), RoomError>")]
struct MemberPage {
    pub groupid: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

impl Handler<MemberPage> for Room {
    type Result = Result<(usize, Vec<MemberInfo>), RoomError>;
    fn handle(&mut self, msg: MemberPage, _: &mut Context<Self>) -> Self::Result {
        if !self.exists() {
            return Err(self.missing());
        }
        if let Some(g) = msg.groupid.filter(|g| *g != self.info.groupid) {
            return Err(self.no_group(&g));
        }
        Ok((self.members.len(), self.members.page(msg.offset, msg.limit)))
    }
}

/// Replaces the descriptive part (a recording's URLs arrived, a screenshot was taken).
#[derive(Message, Clone)]
#[rtype(result = "()")]
struct SetInfo {
    pub info: RoomInfo,
}

impl Handler<SetInfo> for Room {
    type Result = ();
    fn handle(&mut self, msg: SetInfo, ctx: &mut Context<Self>) {
        // Always re-announce: a freshly activated room has not been indexed yet.
        self.info = msg.info;
        self.changed_listing(ctx);
    }
}

/// The latest screenshot of a live room (already stored).
#[derive(Message, Clone)]
#[rtype(result = "()")]
struct SetSnapshot {
    pub url: String,
}

impl Handler<SetSnapshot> for Room {
    type Result = ();
    fn handle(&mut self, msg: SetSnapshot, ctx: &mut Context<Self>) {
        self.info.snapshot_url = msg.url;
        self.heard();
        self.changed(ctx);
    }
}

/// A realtime subscriber joins: it is sent a snapshot, then the room's events.
#[derive(Message, Clone)]
#[rtype(result = "Result<(), RoomError>")]
struct Subscribe {
    pub id: u64,
    pub tx: mpsc::Sender<Queued>,
}

impl Handler<Subscribe> for Room {
    type Result = Result<(), RoomError>;
    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        if !self.exists() {
            return Err(self.missing());
        }
        if self.fanout.len() >= self.env.cfg.max_subscribers {
            return Err(RoomError::TooManySubscribers {
                vj: self.key.vj().to_string(),
                max: self.env.cfg.max_subscribers,
            });
        }
        let snapshot = serde_json::json!({
            "event": "snapshot",
            "userid": self.key.vj(),
            "groupid": self.info.groupid,
            "fileid": self.key.fileid(),
            "title": self.info.title,
            "status": if self.counters.online { "1" } else { "0" },
            "viewercount": self.viewercount(),
            "likecount": self.counters.likes,
            "members": self.members.page(0, 20),
        });
        self.fanout
            .subscribe(msg.id, msg.tx, snapshot.to_string().into());
        Ok(())
    }
}

#[derive(Message, Clone)]
#[rtype(result = "()")]
struct Unsubscribe {
    pub id: u64,
}

impl Handler<Unsubscribe> for Room {
    type Result = ();
    fn handle(&mut self, msg: Unsubscribe, ctx: &mut Context<Self>) {
        self.fanout.unsubscribe(msg.id);
        self.maybe_idle(ctx);
    }
}

/// Another server claimed the room (a write under this one's fence changed nothing): the
/// room lets go of everything it holds, unsaved changes included, and stops. The next
/// request here reads the room back from the database.
#[derive(Message, Clone)]
#[rtype(result = "()")]
struct Fenced {
    /// The fence that lost. A room activated again since (a newer claim) is not affected.
    fence: i64,
}

impl Handler<Fenced> for Room {
    type Result = ();
    fn handle(&mut self, msg: Fenced, ctx: &mut Context<Self>) {
        if self.fence <= msg.fence {
            self.lose(ctx);
        }
    }
}

impl Room {
    fn lose(&mut self, ctx: &mut Context<Self>) {
        if self.fenced {
            return;
        }
        tracing::warn!(room = ?self.key, "another server holds this room now: dropped here");
        self.fenced = true;
        self.member_changes.clear();
        self.fanout.close_all(&fanout::closed_frame(
            "the room moved to another server; reconnect",
        ));
        let me = ctx.address();
        self.env.rooms.remove_if(&self.key, |_, a| *a == me);
        ctx.stop();
    }
}

/// Hand pending changes to the supervisor now (shutdown).
#[derive(Message, Clone)]
#[rtype(result = "()")]
struct FlushNow;

impl Handler<FlushNow> for Room {
    type Result = ();
    fn handle(&mut self, _: FlushNow, _: &mut Context<Self>) {
        self.flush_if_pending();
    }
}
