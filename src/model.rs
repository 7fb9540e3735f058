//! The room model shared by the actors, the supervisor and the store. The parts that
//! clients see (list items, members, user info) carry the wire protocol's field names.

use serde::{Deserialize, Serialize};

/// One room: a VJ's live room, or one of the VJ's recordings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The fencing token this server holds for the room (0 where the store does not fence:
    /// see `Store::fences`).
    pub fence: i64,
}

/// One dirty room's changes since its last snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotItem {
    pub key: RoomKey,
    /// The fence the room was written under: the write changes nothing if it is not current.
    pub fence: i64,
    pub counters: Counters,
    pub upserts: Vec<Member>,
    pub deletes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserInfo {
    pub nickname: String,
    pub headpic: String,
    pub frontcover: String,
    pub location: String,
}

/// One item of every room list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PusherInfo {
    pub userid: String,
    pub groupid: String,
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub kind: i64,
    pub viewercount: u64,
    pub likecount: u64,
    pub title: String,
    pub playurl: String,
    pub hls_play_url: String,
    pub fileid: String,
    pub status: String,
    pub userinfo: UserInfo,
}

/// A `PusherInfo` over borrowed fields. The list encodes every changed room on every tick;
/// this spares copying the room's strings to do it. Serializes exactly as `PusherInfo`.
#[derive(Debug, Serialize)]
pub struct PusherInfoRef<'a> {
    pub userid: &'a str,
    pub groupid: &'a str,
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub kind: i64,
    pub viewercount: u64,
    pub likecount: u64,
    pub title: &'a str,
    pub playurl: &'a str,
    pub hls_play_url: &'a str,
    pub fileid: &'a str,
    pub status: &'a str,
    pub userinfo: &'a UserInfo,
}

impl PusherInfoRef<'_> {
    pub fn to_owned(&self) -> PusherInfo {
        PusherInfo {
            userid: self.userid.into(),
            groupid: self.groupid.into(),
            timestamp: self.timestamp,
            kind: self.kind,
            viewercount: self.viewercount,
            likecount: self.likecount,
            title: self.title.into(),
            playurl: self.playurl.into(),
            hls_play_url: self.hls_play_url.into(),
            fileid: self.fileid.into(),
            status: self.status.into(),
            userinfo: self.userinfo.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberInfo {
    pub userid: String,
    pub nickname: String,
    pub headpic: String,
}

impl<'a> PusherInfoRef<'a> {
    /// The list item of a room, from its parts.
    pub fn of(key: &'a RoomKey, info: &'a RoomInfo, counters: &Counters, viewers: u64) -> Self {
        // A recording in one format fills both fields with it: the 2017 Android app plays
        // `playurl`, the newer apps `hls_play_url` (an http(s) URL with .flv, .m3u8 or .mp4).
        let (mut playurl, mut hls_play_url) = (info.playurl.as_str(), info.hls_play_url.as_str());
        if !key.is_live() {
            if playurl.is_empty() {
                playurl = hls_play_url;
            } else if hls_play_url.is_empty() {
                hls_play_url = playurl;
            }
        }
        PusherInfoRef {
            userid: key.vj(),
            groupid: if key.is_live() { &info.groupid } else { "" },
            timestamp: info.timestamp,
            kind: if key.is_live() { 0 } else { 1 },
            viewercount: viewers,
            likecount: counters.likes,
            title: &info.title,
            playurl,
            hls_play_url,
            fileid: key.fileid(),
            status: if counters.online { "1" } else { "0" },
            userinfo: &info.userinfo,
        }
    }
}

/// Which list FetchList pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFlag {
    Live = 1,
    Recordings = 2,
    Both = 3,
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_pusher_info_encodes_like_the_owned_one() {
        let userinfo = UserInfo {
            nickname: "主播 \"one\"".into(),
            headpic: "http://img/a.png".into(),
            frontcover: String::new(),
            location: "深圳".into(),
        };
        let r = PusherInfoRef {
            userid: "vj",
            groupid: "g_vj",
            timestamp: 1_700_000_000,
            kind: 0,
            viewercount: 12,
            likecount: 34,
            title: "title\n",
            playurl: "http://play/vj.flv",
            hls_play_url: "http://play/vj.m3u8",
            fileid: "",
            status: "1",
            userinfo: &userinfo,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            serde_json::to_string(&r.to_owned()).unwrap()
        );
    }
}
