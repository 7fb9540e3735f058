//! Storage behind one trait: SQLite (the zero-setup default) and MySQL/MariaDB, both via sqlx.

mod accounts;
mod content;
mod exact_keys;
mod progress;
mod sql;

use crate::model::{RoomInfo, RoomKey, RoomRecord, SnapshotItem};
pub use accounts::{AccountStore, NewToken, TokenKind, TokenRecord, TokenState};
use async_trait::async_trait;
pub use content::{Block, ContentStore, Reported, Video};
pub use sql::SqlStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url scheme (expected sqlite: or mysql:)")]
    Scheme,
    /// Two userids map to the same stream name (characters outside [A-Za-z0-9_] become '_').
    #[error("stream name already used by another user")]
    StreamTaken,
    /// The database cannot keep keys byte-exact (see `exact_keys`).
    #[error("keys would not compare byte for byte: {0}")]
    InexactKeys(String),
    /// A transaction met another server's concurrent write and is run again whole (never
    /// seen outside the store unless it keeps happening).
    #[error("a concurrent write got in the way; retry")]
    Retry,
    /// Another server held the migration lock for two minutes.
    #[error("another server has been migrating the database for 120 s; not waiting longer")]
    MigrationLock,
    /// Another server activated the room since this one did: its write changed nothing.
    #[error("the room is fenced: another server holds it now")]
    Fenced,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A recording delivered by a media server; `playurl`/`hls_play_url` may be empty when
/// this delivery carries the other format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    pub vj: String,
    pub fileid: String,
    pub info: RoomInfo,
    /// Likes and viewers copied from the broadcast.
    pub likes: u64,
    pub views: u64,
    /// When the recorded file starts (Unix seconds; 0: unknown). `info.timestamp` is when
    /// it ends. Files of one broadcast in other formats merge by this overlap.
    pub start_time: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    async fn ping(&self) -> StoreResult<()>;
    /// Migration versions applied to the database, and those this binary knows.
    async fn migration_status(&self) -> StoreResult<(Vec<i64>, Vec<i64>)>;
    /// Whether writes are fenced: with a database that several servers can share (MySQL,
    /// MariaDB), activating a room claims it (see `load_room`), and writes of a server that
    /// lost the claim change nothing. An embedded database has one server and no fence.
    fn fences(&self) -> bool;
    /// A room with its members of the current epoch. Its key is the stored row's, and a row
    /// whose key is not byte-equal to `key` counts as not found. With `claim` (and fences),
    /// the room's fence is bumped in the same transaction, before it is read, and the record
    /// carries the new value: from then on only writes under it count.
    async fn load_room(&self, key: &RoomKey, claim: bool) -> StoreResult<Option<RoomRecord>>;
    /// Many VJs' live rooms at once (taking over a dead node's rooms), each as `load_room`
    /// with `claim` would load it, in one transaction. Rooms the store does not know, or
    /// that have no state row yet, are left out (load those one by one).
    async fn load_live_rooms(&self, vjs: &[String]) -> StoreResult<Vec<RoomRecord>>;
    /// Live rooms that are online, without member lists (counts only).
    async fn online_rooms(&self) -> StoreResult<Vec<RoomRecord>>;
    /// Recordings that ended at or after `since` and have a play URL, without members.
    async fn recent_recordings(&self, since: i64) -> StoreResult<Vec<RoomRecord>>;
    /// Starts broadcast `epoch` of a VJ's room: description replaced, counters zeroed,
    /// members emptied, in one transaction, under `fence` (0: a room new to this server,
    /// claimed by this write). Returns the fence the room now holds; `Fenced` when another
    /// server holds it.
    async fn begin_broadcast(
        &self,
        userid: &str,
        epoch: i64,
        info: &RoomInfo,
        fence: i64,
    ) -> StoreResult<i64>;
    /// Writes dirty rooms' counters and member changes in one transaction. Counters of an
    /// older epoch never overwrite a newer one, and items whose fence is not current are
    /// left out. Returns those items' keys.
    async fn write_snapshot(&self, items: &[SnapshotItem]) -> StoreResult<Vec<RoomKey>>;
    /// The VJ whose current broadcast uses this stream name.
    async fn room_by_stream(&self, stream: &str) -> StoreResult<Option<String>>;
    /// Creates a recording, or merges another format's URL into it. Returns the stored record.
    async fn put_recording(&self, rec: &NewRecording) -> StoreResult<RoomRecord>;
    /// The recording a file id was merged into (another format of the same broadcast).
    async fn recording_alias(&self, vj: &str, fileid: &str) -> StoreResult<Option<String>>;
    async fn set_snapshot_url(&self, key: &RoomKey, url: &str) -> StoreResult<()>;
}

/// Opens the store named by a database URL.
pub async fn open(cfg: &crate::config::DatabaseConfig) -> StoreResult<std::sync::Arc<dyn Store>> {
    Ok(std::sync::Arc::new(SqlStore::connect(cfg).await?))
}
