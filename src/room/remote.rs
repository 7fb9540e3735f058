//! A room call as data: what `Rooms` runs here or forwards to the room's owner, and the
//! answer that comes back. The JSON of these is the body of node-to-node calls.

use super::{RoomError, Viewer};
use crate::model::{Counters, MemberInfo, PusherInfo, RoomInfo, RoomKey};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Call {
    Enter {
        key: RoomKey,
        groupid: Option<String>,
        viewer: Viewer,
    },
    Quit {
        key: RoomKey,
        userid: String,
        groupid: Option<String>,
    },
    Like {
        key: RoomKey,
        increase: bool,
    },
    State {
        key: RoomKey,
    },
    Info {
        key: RoomKey,
    },
    Members {
        key: RoomKey,
        groupid: Option<String>,
        offset: usize,
        limit: usize,
    },
    SetStatus {
        key: RoomKey,
        online: bool,
    },
    NewBroadcast {
        key: RoomKey,
        info: RoomInfo,
    },
    MediaStatus {
        key: RoomKey,
        online: bool,
        event_time: Option<i64>,
    },
    SignOfLife {
        key: RoomKey,
    },
    /// A stored recording's description (NoRoom is not an error for it).
    SetInfo {
        key: RoomKey,
        info: RoomInfo,
    },
    /// A stored screenshot URL.
    SetSnapshot {
        key: RoomKey,
        url: String,
    },
    /// Another node relays the room's realtime frames: publish them, and send a snapshot.
    Relay {
        key: RoomKey,
    },
}

impl Call {
    pub fn key(&self) -> &RoomKey {
        match self {
            Call::Enter { key, .. }
            | Call::Quit { key, .. }
            | Call::Like { key, .. }
            | Call::State { key }
            | Call::Info { key }
            | Call::Members { key, .. }
            | Call::SetStatus { key, .. }
            | Call::NewBroadcast { key, .. }
            | Call::MediaStatus { key, .. }
            | Call::SignOfLife { key }
            | Call::SetInfo { key, .. }
            | Call::SetSnapshot { key, .. }
            | Call::Relay { key } => key,
        }
    }
}

impl Call {
    /// Points a recording's call at another file id (the recording it was merged into).
    pub fn set_fileid(&mut self, to: String) {
        let key = match self {
            Call::Enter { key, .. }
            | Call::Quit { key, .. }
            | Call::Like { key, .. }
            | Call::State { key }
            | Call::Info { key }
            | Call::Members { key, .. }
            | Call::SetStatus { key, .. }
            | Call::NewBroadcast { key, .. }
            | Call::MediaStatus { key, .. }
            | Call::SignOfLife { key }
            | Call::SetInfo { key, .. }
            | Call::SetSnapshot { key, .. }
            | Call::Relay { key } => key,
        };
        if let RoomKey::Recording { fileid, .. } = key {
            *fileid = to;
        }
    }

    /// A call the owner answers from memory, at once: it may share a request with others
    /// (see `cluster::peer`). The others wait for the database, or are rare.
    pub fn quick(&self) -> bool {
        matches!(
            self,
            Call::Enter { .. }
                | Call::Quit { .. }
                | Call::Like { .. }
                | Call::State { .. }
                | Call::Info { .. }
                | Call::Members { .. }
                | Call::SignOfLife { .. }
        )
    }
}

/// A call's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Reply {
    Done,
    Applied(bool),
    State(RoomInfo, Counters),
    Info(PusherInfo),
    Members(usize, Vec<MemberInfo>),
    /// A snapshot frame, and the stream id of the room's publisher.
    Relay(String, u64),
}

impl Reply {
    fn unexpected(self) -> RoomError {
        RoomError::Peer(format!("unexpected answer {self:?}"))
    }
    pub fn done(self) -> Result<(), RoomError> {
        match self {
            Reply::Done => Ok(()),
            r => Err(r.unexpected()),
        }
    }
    pub fn applied(self) -> Result<bool, RoomError> {
        match self {
            Reply::Applied(b) => Ok(b),
            r => Err(r.unexpected()),
        }
    }
    pub fn state(self) -> Result<(RoomInfo, Counters), RoomError> {
        match self {
            Reply::State(i, c) => Ok((i, c)),
            r => Err(r.unexpected()),
        }
    }
    pub fn info(self) -> Result<PusherInfo, RoomError> {
        match self {
            Reply::Info(i) => Ok(i),
            r => Err(r.unexpected()),
        }
    }
    pub fn relay(self) -> Result<(String, u64), RoomError> {
        match self {
            Reply::Relay(s, n) => Ok((s, n)),
            r => Err(r.unexpected()),
        }
    }
    pub fn members(self) -> Result<(usize, Vec<MemberInfo>), RoomError> {
        match self {
            Reply::Members(n, m) => Ok((n, m)),
            r => Err(r.unexpected()),
        }
    }
}

/// A `RoomError` on the wire (a store error travels as its text).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum WireError {
    NoRoom(RoomKey),
    NoBroadcast(String),
    NoGroup { vj: String, groupid: String },
    Full { vj: String, max: usize },
    StreamTaken { vj: String, stream: String },
    TooManySubscribers { vj: String, max: usize },
    AtCapacity { max: usize },
    Moved(RoomKey),
    Unavailable,
    NotOwner,
    NoOwner(String),
    Store(String),
    Peer(String),
}

impl From<RoomError> for WireError {
    fn from(e: RoomError) -> Self {
        use RoomError as R;
        match e {
            R::NoRoom(k) => WireError::NoRoom(k),
            R::NoBroadcast(vj) => WireError::NoBroadcast(vj),
            R::NoGroup { vj, groupid } => WireError::NoGroup { vj, groupid },
            R::Full { vj, max } => WireError::Full { vj, max },
            R::StreamTaken { vj, stream } => WireError::StreamTaken { vj, stream },
            R::TooManySubscribers { vj, max } => WireError::TooManySubscribers { vj, max },
            R::AtCapacity { max } => WireError::AtCapacity { max },
            R::Moved(k) => WireError::Moved(k),
            R::Unavailable => WireError::Unavailable,
            R::NotOwner => WireError::NotOwner,
            R::Store(e) => WireError::Store(e.to_string()),
            R::RemoteStore(s) => WireError::Store(s),
            R::Peer(s) => WireError::Peer(s),
            R::NoOwner(s) => WireError::NoOwner(s),
        }
    }
}

impl From<WireError> for RoomError {
    fn from(e: WireError) -> Self {
        use RoomError as R;
        match e {
            WireError::NoRoom(k) => R::NoRoom(k),
            WireError::NoBroadcast(vj) => R::NoBroadcast(vj),
            WireError::NoGroup { vj, groupid } => R::NoGroup { vj, groupid },
            WireError::Full { vj, max } => R::Full { vj, max },
            WireError::StreamTaken { vj, stream } => R::StreamTaken { vj, stream },
            WireError::TooManySubscribers { vj, max } => R::TooManySubscribers { vj, max },
            WireError::AtCapacity { max } => R::AtCapacity { max },
            WireError::Moved(k) => R::Moved(k),
            WireError::Unavailable => R::Unavailable,
            WireError::NotOwner => R::NotOwner,
            WireError::Store(s) => R::RemoteStore(s),
            WireError::Peer(s) => R::Peer(s),
            WireError::NoOwner(s) => R::NoOwner(s),
        }
    }
}

/// The body a node answers a forwarded call with.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // built once per forwarded call, never stored
pub(super) enum Answer {
    Ok(Reply),
    Err(WireError),
}
