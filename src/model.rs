//! The room model shared by the actors and the store.

use crate::protocol::types::UserInfo;

/// One room: a VJ's live room, or one of the VJ's recordings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomKey {
    Live(String),
    Recording { vj: String, fileid: String },
}

impl RoomKey {
    pub fn vj(&self) -> &str {
        match self {
            RoomKey::Live(vj) | RoomKey::Recording { vj, .. } => vj,
        }
    }
    /// `""` for a live room, as stored.
    pub fn fileid(&self) -> &str {
        match self {
            RoomKey::Live(_) => "",
            RoomKey::Recording { fileid, .. } => fileid,
        }
    }
    pub fn is_live(&self) -> bool {
        matches!(self, RoomKey::Live(_))
    }
    pub fn from_parts(vj: String, fileid: String) -> Self {
        if fileid.is_empty() {
            RoomKey::Live(vj)
        } else {
            RoomKey::Recording { vj, fileid }
        }
    }
}

/// The descriptive part of a room: set by RequestLVBAddr or a recording callback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomInfo {
    pub groupid: String,
    pub title: String,
    pub userinfo: UserInfo,
    /// Stream name `{bizid}_{userid}` (live) or the recorded stream.
    pub stream: String,
    /// Broadcast start (live) or recording end (recording), Unix seconds.
    pub timestamp: i64,
    pub playurl: String,
    pub hls_play_url: String,
    /// Latest screenshot from the media server.
    pub snapshot_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub userid: String,
    pub nickname: String,
    pub headpic: String,
    /// Join order within the room; higher is newer.
    pub seq: i64,
}

/// The fast-changing part of a room, persisted by snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Broadcast number of a live room; a new broadcast increments it, and snapshots of an
    /// older broadcast never overwrite a newer one's state.
    pub epoch: i64,
    pub online: bool,
    pub likes: u64,
    /// Total views of a recording; for a live room the member count (informational).
    pub views: u64,
    /// Unix seconds of the last status change or media-server sign of life.
    pub seen_at: i64,
}

/// Everything needed to rebuild a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    pub key: RoomKey,
    pub info: RoomInfo,
    pub counters: Counters,
    /// Oldest first.
    pub members: Vec<Member>,
    /// Member count (equals `members.len()` when members were loaded).
    pub member_count: u64,
}

/// One dirty room's changes since its last snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotItem {
    pub key: RoomKey,
    pub counters: Counters,
    pub upserts: Vec<Member>,
    pub deletes: Vec<String>,
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
