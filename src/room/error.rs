//! Why a room operation failed, in the room's own terms. `protocol::error` turns these into
//! protocol codes and client messages; nothing below it chooses a code. (The texts here are
//! for logs.)

use crate::model::RoomKey;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// No such room.
    #[error("no room {0:?}")]
    NoRoom(RoomKey),
    /// The VJ's live room has no broadcast yet (RequestLVBAddr never succeeded).
    #[error("the room of '{0}' has no broadcast")]
    NoBroadcast(String),
    /// The room exists, but its current broadcast's group is another.
    #[error("the room of '{vj}' has no group '{groupid}'")]
    NoGroup { vj: String, groupid: String },
    #[error("the room of '{vj}' is full ({max} members)")]
    Full { vj: String, max: usize },
    /// Two userids map to one stream name (characters outside [A-Za-z0-9_] become '_').
    #[error("the stream name '{stream}' of '{vj}' is another user's")]
    StreamTaken { vj: String, stream: String },
    #[error("the room of '{vj}' has its maximum of {max} subscribers")]
    TooManySubscribers { vj: String, max: usize },
    /// This server holds as many rooms as it may (`limits.max_rooms`).
    #[error("at the maximum of {max} active rooms")]
    AtCapacity { max: usize },
    /// Another server claimed the room since this one loaded it; nothing was changed.
    #[error("room {0:?} moved to another server")]
    Moved(RoomKey),
    /// The room's actor stopped while the call waited on it.
    #[error("the room is unavailable")]
    Unavailable,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The owner node's store failed (its error, as text).
    #[error("database error on the owning node: {0}")]
    RemoteStore(String),
    /// The owner node could not be reached, or its answer was lost: the call may or may
    /// not have been applied.
    #[error("the owning node failed: {0}")]
    Peer(String),
    /// A forwarded call reached a node that does not own the room (the sender looks the
    /// owner up again). Never reaches a client.
    #[error("this node does not own the room")]
    NotOwner,
    /// Redis cannot say who owns a room that does not run here, or this node's lease has
    /// lapsed: it neither claims nor forwards.
    #[error("the room's owner is unknown: {0}")]
    NoOwner(String),
}
