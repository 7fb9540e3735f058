//! The sqlx implementation for SQLite and MySQL/MariaDB. Both speak `?` placeholders; the
//! few statements whose syntax differs (upserts) are chosen by `Dialect`.

use super::progress::Progress;
use super::{NewRecording, Store, StoreError, StoreResult};
use crate::config::DatabaseConfig;
use crate::model::UserInfo;
use crate::model::{Counters, Member, RoomInfo, RoomKey, RoomRecord, SnapshotItem};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Row};
use std::borrow::Cow;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Mysql,
}

/// Migrations are compiled in so the binary needs no files beside it.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "rooms",
        include_str!("../../migrations/sqlite/0001_rooms.sql"),
    ),
    (
        2,
        "accounts",
        include_str!("../../migrations/sqlite/0002_accounts.sql"),
    ),
    (
        3,
        "members without rowid",
        include_str!("../../migrations/sqlite/0003_members_without_rowid.sql"),
    ),
    (
        4,
        "fence",
        include_str!("../../migrations/sqlite/0004_fence.sql"),
    ),
    (
        5,
        "app parity",
        include_str!("../../migrations/sqlite/0005_app_parity.sql"),
    ),
    (
        6,
        "app actions",
        include_str!("../../migrations/sqlite/0006_app_actions.sql"),
    ),
];
const MYSQL_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "rooms",
        include_str!("../../migrations/mysql/0001_rooms.sql"),
    ),
    (
        2,
        "accounts",
        include_str!("../../migrations/mysql/0002_accounts.sql"),
    ),
    (
        3,
        "exact keys",
        include_str!("../../migrations/mysql/0003_exact_keys.sql"),
    ),
    (
        4,
        "fence",
        include_str!("../../migrations/mysql/0004_fence.sql"),
    ),
    (
        5,
        "app parity",
        include_str!("../../migrations/mysql/0005_app_parity.sql"),
    ),
    (
        6,
        "app actions",
        include_str!("../../migrations/mysql/0006_app_actions.sql"),
    ),
];

/// Rows per multi-row statement: well under both backends' placeholder limits.
const ROWS_PER_STATEMENT: usize = 200;

/// A multi-row statement of `rows` rows. Only the full size is kept prepared: each other
/// size is different text, and the statement cache would keep one large prepared
/// statement per size and connection (tens of megabytes, seen as memory per member).
fn chunk_query(sql: &str, rows: usize) -> sqlx::query::Query<'_, sqlx::Any, AnyArguments<'_>> {
    sqlx::query(sql).persistent(rows == ROWS_PER_STATEMENT)
}

pub struct SqlStore {
    pub(crate) pool: AnyPool,
    dialect: Dialect,
    /// Bound on any one operation, so a dead connection answers 500 instead of hanging.
    op_timeout: Duration,
}

impl SqlStore {
    pub async fn connect(cfg: &DatabaseConfig) -> StoreResult<SqlStore> {
        sqlx::any::install_default_drivers();
        let mut url = cfg.url.expose().to_string();
        let dialect = if url.starts_with("sqlite:") {
            // Create the file on first run: zero setup.
            if !url.contains("mode=") && !url.contains(":memory:") {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str("mode=rwc");
            }
            Dialect::Sqlite
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            if let Some(rest) = url.strip_prefix("mariadb:") {
                url = format!("mysql:{rest}");
            }
            Dialect::Mysql
        } else {
            return Err(StoreError::Scheme);
        };
        let acquire = Duration::from_secs(cfg.acquire_timeout_secs.max(1));
        let mut opts = AnyPoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(acquire);
        if dialect == Dialect::Sqlite {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers run beside the snapshot writer; NORMAL is durable
                    // across process crashes, which is what the snapshot bound promises.
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        } else {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    // Read committed: locking reads of rows that do not exist take no gap
                    // locks, so rooms created or claimed at once do not deadlock each other.
                    // Claims are compare-and-set on the state row instead (see
                    // `begin_broadcast_once`), which needs no phantom protection.
                    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = tokio::time::timeout(acquire * 2, opts.connect(&url))
            .await
            .map_err(|_| StoreError::Db(sqlx::Error::PoolTimedOut))??;
        Ok(SqlStore {
            pool,
            dialect,
            op_timeout: acquire * 2,
        })
    }

    /// SQLite: take the write lock up front. A deferred transaction that reads first and
    /// then writes cannot wait for the lock (SQLITE_BUSY), so every writer starts IMMEDIATE.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Mysql => self.pool.begin().await,
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    async fn begin_broadcast_once(
        &self,
        userid: &str,
        epoch: i64,
        info: &RoomInfo,
        fence: i64,
    ) -> StoreResult<i64> {
        self.timed(async {
            let mut tx = self.begin_write().await?;
            let key = RoomKey::Live(userid.to_string());
            let fence = if self.fences() {
                let current = Self::fence_of(&mut tx, &key).await?;
                if fence == 0 {
                    // A room new to this server: this write claims it, unless another
                    // server made it meanwhile (a state row left without a room does not count).
                    let exists = sqlx::query("SELECT 1 FROM rooms WHERE userid = ? FOR UPDATE")
                        .bind(userid)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                    if exists {
                        return Err(StoreError::Fenced);
                    }
                    // The claim is a compare-and-set on the state row: of two servers
                    // creating the room at once, the second finds the first's row (its
                    // insert waits for the first to commit, then fails as a duplicate)
                    // or a fence that moved, and changes nothing.
                    let claimed = match current {
                        None => {
                            sqlx::query(
                                "INSERT INTO room_state (vj, fileid, epoch, online, likes, views, seen_at, fence) \
                                 VALUES (?, '', 0, 0, 0, 0, 0, 1)",
                            )
                            .bind(userid)
                            .execute(&mut *tx)
                            .await
                            .map(|r| r.rows_affected() == 1)
                            .map_err(|e| {
                                // Another server's row appeared meanwhile (its claim, or a
                                // state row without a room, which does not count): the whole
                                // transaction runs again and reads it.
                                if is_unique_violation(&e) {
                                    StoreError::Retry
                                } else {
                                    StoreError::Db(e)
                                }
                            })?
                        }
                        Some(c) => {
                            sqlx::query(
                                "UPDATE room_state SET fence = ? WHERE vj = ? AND fileid = '' AND fence = ?",
                            )
                            .bind(c + 1)
                            .bind(userid)
                            .bind(c)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                                == 1
                        }
                    };
                    if !claimed {
                        return Err(StoreError::Fenced);
                    }
                    current.unwrap_or(0) + 1
                } else if current == Some(fence) {
                    fence
                } else {
                    return Err(StoreError::Fenced);
                }
            } else {
                0
            };
            // MySQL's upsert fires on any unique key, so a stream name owned by another
            // user must be refused before it, not left to the index.
            let owner = sqlx::query("SELECT userid FROM rooms WHERE stream = ? AND userid <> ?")
                .bind(&info.stream)
                .bind(userid)
                .fetch_optional(&mut *tx)
                .await?;
            if owner.is_some() {
                return Err(StoreError::StreamTaken);
            }
            let mut cols = vec!["userid", "epoch"];
            cols.extend(INFO_INSERT_COLS);
            let update = std::iter::once("epoch")
                .chain(INFO_INSERT_COLS)
                .map(|c| format!("{c}={}", self.new_col(c)))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = self.upsert("rooms", &cols, &["userid"], 1, &update);
            let q = sqlx::query(&sql).bind(userid).bind(epoch);
            bind_info(q, info).execute(&mut *tx).await?;
            // The check above reads without a lock: a user with the same stream name may have
            // committed since, and the upsert then updated that user's row instead (it fires
            // on the stream's unique key too). Read it back: the stream must be this user's.
            let mine = sqlx::query("SELECT userid FROM rooms WHERE stream = ?")
                .bind(&info.stream)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<String, _>("userid"))
                .transpose()?;
            if mine.as_deref() != Some(userid) {
                return Err(StoreError::StreamTaken);
            }
            let now = crate::model::now_unix();
            sqlx::query(&self.state_upsert_sql(1))
                .bind(userid)
                .bind("")
                .bind(epoch)
                .bind(0i64)
                .bind(0i64)
                .bind(0i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM members WHERE vj = ? AND fileid = ''")
                .bind(userid)
                .execute(&mut *tx)
                .await?;
            if fence > 0 {
                sqlx::query("UPDATE room_state SET fence = ? WHERE vj = ? AND fileid = ''")
                    .bind(fence)
                    .bind(userid)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(fence)
        })
        .await
        .map_err(|e| match e {
            StoreError::Db(ref d) if is_unique_violation(d) => StoreError::StreamTaken,
            other => other,
        })
    }

    async fn load_room_once(&self, key: &RoomKey, claim: bool) -> StoreResult<Option<RoomRecord>> {
        self.timed(async {
            if !(claim && self.fences()) {
                let mut conn = self.pool.acquire().await?;
                return Self::read_room(&mut conn, key).await;
            }
            let mut tx = self.begin_write().await?;
            // The bump comes first: it waits for a write in progress under the old fence,
            // and the reads after it see every write that fence made (and none can follow).
            if !self.bump_fence(&mut tx, key).await? {
                return Ok(None);
            }
            // The read sees the transaction's own bump. An unknown room leaves nothing
            // behind: the transaction is rolled back as it drops.
            let Some(record) = Self::read_room(&mut tx, key).await? else {
                return Ok(None);
            };
            tx.commit().await?;
            Ok(Some(record))
        })
        .await
    }

    /// Set-based, so that a takeover of thousands of rooms costs a few statements and one
    /// commit per batch rather than several of each per room.
    async fn load_live_rooms_once(&self, vjs: &[String]) -> StoreResult<Vec<RoomRecord>> {
        self.timed(async {
            let marks = vec!["?"; vjs.len()].join(",");
            let mut tx = self.begin_write().await?;
            if self.fences() {
                // In key order, as one statement: batches that overlap lock in one order.
                let sql = format!(
                    "UPDATE room_state SET fence = fence + 1 WHERE fileid = '' AND vj IN ({marks})"
                );
                let mut q = sqlx::query(&sql);
                for vj in vjs {
                    q = q.bind(vj);
                }
                q.execute(&mut *tx).await?;
            }
            let sql = format!(
                "SELECT r.userid AS k_vj, r.epoch, {INFO_COLS}, {STATE_COLS} \
                 FROM rooms r JOIN room_state s ON s.vj = r.userid AND s.fileid = '' \
                 WHERE r.userid IN ({marks})"
            );
            let mut q = sqlx::query(&sql);
            for vj in vjs {
                q = q.bind(vj);
            }
            let rows = q.fetch_all(&mut *tx).await?;
            let asked: std::collections::HashSet<&str> = vjs.iter().map(|v| v.as_str()).collect();
            let mut records = Vec::with_capacity(rows.len());
            let mut at: std::collections::HashMap<String, usize> = Default::default();
            for row in &rows {
                let vj: String = row.try_get("k_vj")?;
                // As in `read_room`: only a byte-equal key is the room asked for.
                if !asked.contains(vj.as_str()) || at.contains_key(&vj) {
                    continue;
                }
                let epoch: i64 = row.try_get("epoch")?;
                at.insert(vj.clone(), records.len());
                records.push(RoomRecord {
                    key: RoomKey::Live(vj),
                    info: info_from(row)?,
                    counters: counters_from(row, epoch)?,
                    member_count: 0,
                    members: Vec::new(),
                    fence: row.try_get::<Option<i64>, _>("s_fence")?.unwrap_or(0),
                });
            }
            let sql = format!(
                "SELECT m.vj, m.userid, m.nickname, m.headpic, m.seq FROM members m \
                 JOIN rooms r ON r.userid = m.vj AND r.epoch = m.epoch \
                 WHERE m.fileid = '' AND m.vj IN ({marks}) ORDER BY m.vj, m.seq"
            );
            let mut q = sqlx::query(&sql);
            for vj in vjs {
                q = q.bind(vj);
            }
            for row in q.fetch_all(&mut *tx).await? {
                let vj: String = row.try_get("vj")?;
                let Some(&i) = at.get(&vj) else { continue };
                records[i].members.push(Member {
                    userid: row.try_get("userid")?,
                    nickname: row.try_get("nickname")?,
                    headpic: row.try_get("headpic")?,
                    seq: row.try_get("seq")?,
                });
            }
            for r in &mut records {
                r.member_count = r.members.len() as u64;
            }
            tx.commit().await?;
            Ok(records)
        })
        .await
    }

    pub(crate) async fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        match tokio::time::timeout(self.op_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Db(sqlx::Error::PoolTimedOut)),
        }
    }

    /// The recording a recorded file belongs to: the one it was merged into before, its
    /// own, or (Tencent sends one event per format, each with its own file id) the entry of
    /// the same broadcast that lacks this format: same VJ and stream, the most overlapping
    /// time. A file merged into another is remembered, so its id reaches that entry.
    async fn recording_of_file(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        rec: &NewRecording,
    ) -> Result<String, StoreError> {
        let alias =
            sqlx::query("SELECT recording FROM recording_files WHERE vj = ? AND fileid = ?")
                .bind(&rec.vj)
                .bind(&rec.fileid)
                .fetch_optional(&mut **tx)
                .await?;
        if let Some(row) = alias {
            return Ok(row.try_get("recording")?);
        }
        let own = sqlx::query("SELECT 1 AS one FROM recordings WHERE vj = ? AND fileid = ?")
            .bind(&rec.vj)
            .bind(&rec.fileid)
            .fetch_optional(&mut **tx)
            .await?;
        let end = rec.info.timestamp;
        if own.is_some() || rec.start_time <= 0 || end <= rec.start_time {
            return Ok(rec.fileid.clone());
        }
        let missing = if rec.info.playurl.is_empty() {
            "hls_play_url"
        } else {
            "playurl"
        };
        let rows = sqlx::query(&format!(
            "SELECT fileid, start_time, timestamp FROM recordings \
             WHERE vj = ? AND stream = ? AND {missing} = '' AND start_time > 0 \
             AND start_time < ? AND timestamp > ?"
        ))
        .bind(&rec.vj)
        .bind(&rec.info.stream)
        .bind(end)
        .bind(rec.start_time)
        .fetch_all(&mut **tx)
        .await?;
        let mut best: Option<(i64, i64, String)> = None;
        for r in rows {
            let (start, stop): (i64, i64) = (r.try_get("start_time")?, r.try_get("timestamp")?);
            let overlap = stop.min(end) - start.max(rec.start_time);
            let candidate = (overlap, stop, r.try_get::<String, _>("fileid")?);
            if best
                .as_ref()
                .is_none_or(|b| (candidate.0, candidate.1) > (b.0, b.1))
            {
                best = Some(candidate);
            }
        }
        let Some((_, _, target)) = best else {
            return Ok(rec.fileid.clone());
        };
        let (ins, tail) = self.insert_ignore();
        sqlx::query(&format!(
            "{ins} INTO recording_files (vj, fileid, recording) VALUES (?, ?, ?){tail}"
        ))
        .bind(&rec.vj)
        .bind(&rec.fileid)
        .bind(&target)
        .execute(&mut **tx)
        .await?;
        Ok(target)
    }

    pub(super) fn upsert(
        &self,
        table: &str,
        cols: &[&str],
        keys: &[&str],
        rows: usize,
        update: &str,
    ) -> String {
        let one = format!("({})", vec!["?"; cols.len()].join(","));
        let values = vec![one; rows].join(",");
        let head = format!("INSERT INTO {table} ({}) VALUES {values}", cols.join(","));
        match self.dialect {
            Dialect::Sqlite => {
                format!(
                    "{head} ON CONFLICT({}) DO UPDATE SET {update}",
                    keys.join(",")
                )
            }
            Dialect::Mysql => format!("{head} ON DUPLICATE KEY UPDATE {update}"),
        }
    }

    /// `new` is the incoming row's column, `old` the stored one, in this dialect.
    pub(super) fn new_col(&self, c: &str) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("excluded.{c}"),
            Dialect::Mysql => format!("VALUES({c})"),
        }
    }

    pub(super) fn insert_ignore(&self) -> (&'static str, &'static str) {
        match self.dialect {
            Dialect::Sqlite => ("INSERT", " ON CONFLICT DO NOTHING"),
            Dialect::Mysql => ("INSERT IGNORE", ""),
        }
    }

    /// Counters upsert guarded by epoch: an older broadcast's snapshot is a no-op.
    fn state_upsert_sql(&self, rows: usize) -> String {
        let cols = [
            "vj", "fileid", "epoch", "online", "likes", "views", "seen_at",
        ];
        let update = match self.dialect {
            Dialect::Sqlite => "online=excluded.online, likes=excluded.likes, views=excluded.views, \
                 seen_at=excluded.seen_at, epoch=excluded.epoch WHERE excluded.epoch >= room_state.epoch"
                .to_string(),
            // MySQL assigns left to right: epoch must change last.
            Dialect::Mysql => ["online", "likes", "views", "seen_at"]
                .iter()
                .map(|c| format!("{c}=IF(VALUES(epoch) >= epoch, VALUES({c}), {c})"))
                .chain(std::iter::once("epoch=GREATEST(epoch, VALUES(epoch))".to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        };
        self.upsert("room_state", &cols, &["vj", "fileid"], rows, &update)
    }

    fn member_upsert_sql(&self, rows: usize) -> String {
        let cols = [
            "vj", "fileid", "userid", "epoch", "seq", "nickname", "headpic",
        ];
        let update = match self.dialect {
            Dialect::Sqlite => {
                "seq=excluded.seq, nickname=excluded.nickname, headpic=excluded.headpic, \
                 epoch=excluded.epoch WHERE excluded.epoch >= members.epoch"
                    .to_string()
            }
            Dialect::Mysql => ["seq", "nickname", "headpic"]
                .iter()
                .map(|c| format!("{c}=IF(VALUES(epoch) >= epoch, VALUES({c}), {c})"))
                .chain(std::iter::once(
                    "epoch=GREATEST(epoch, VALUES(epoch))".to_string(),
                ))
                .collect::<Vec<_>>()
                .join(", "),
        };
        self.upsert("members", &cols, &["vj", "fileid", "userid"], rows, &update)
    }

    async fn members(
        conn: &mut AnyConnection,
        key: &RoomKey,
        epoch: i64,
    ) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT userid, nickname, headpic, seq FROM members \
             WHERE vj = ? AND fileid = ? AND epoch = ? ORDER BY seq",
        )
        .bind(key.vj())
        .bind(key.fileid())
        .bind(epoch)
        .fetch_all(conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    userid: r.try_get("userid")?,
                    nickname: r.try_get("nickname")?,
                    headpic: r.try_get("headpic")?,
                    seq: r.try_get("seq")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// A room and its current members, as stored; `None` when unknown.
    async fn read_room(conn: &mut AnyConnection, key: &RoomKey) -> StoreResult<Option<RoomRecord>> {
        let row = match key {
            RoomKey::Live(vj) => {
                sqlx::query(&format!(
                    "SELECT r.userid AS k_vj, '' AS k_fileid, r.epoch, {INFO_COLS}, {STATE_COLS} \
                     FROM rooms r \
                     LEFT JOIN room_state s ON s.vj = r.userid AND s.fileid = '' WHERE r.userid = ?"
                ))
                .bind(vj)
                .fetch_optional(&mut *conn)
                .await?
            }
            RoomKey::Recording { vj, fileid } => {
                sqlx::query(&format!(
                "SELECT r.vj AS k_vj, r.fileid AS k_fileid, 0 AS epoch, {INFO_COLS}, {STATE_COLS} \
                     FROM recordings r \
                     LEFT JOIN room_state s ON s.vj = r.vj AND s.fileid = r.fileid \
                     WHERE r.vj = ? AND r.fileid = ?"
            ))
                .bind(vj)
                .bind(fileid)
                .fetch_optional(&mut *conn)
                .await?
            }
        };
        let Some(row) = row else { return Ok(None) };
        // The room is named by what is stored, never by the request: a database that
        // matched another spelling (a padding or folding collation) finds nothing.
        let stored = RoomKey::from_parts(row.try_get("k_vj")?, row.try_get("k_fileid")?);
        if stored != *key {
            tracing::warn!(
                requested = ?key,
                stored = ?stored,
                "the database matched a different key; treated as not found"
            );
            return Ok(None);
        }
        let epoch: i64 = row.try_get("epoch")?;
        let info = info_from(&row)?;
        let counters = counters_from(&row, epoch)?;
        let fence = row.try_get::<Option<i64>, _>("s_fence")?.unwrap_or(0);
        let members = Self::members(conn, &stored, epoch).await?;
        Ok(Some(RoomRecord {
            key: stored,
            info,
            counters,
            member_count: members.len() as u64,
            members,
            fence,
        }))
    }

    /// Claims a room: its fence goes up by one (a state row is made for a room that has
    /// none). False when the room is unknown.
    async fn bump_fence(&self, conn: &mut AnyConnection, key: &RoomKey) -> StoreResult<bool> {
        let bumped =
            sqlx::query("UPDATE room_state SET fence = fence + 1 WHERE vj = ? AND fileid = ?")
                .bind(key.vj())
                .bind(key.fileid())
                .execute(&mut *conn)
                .await?
                .rows_affected();
        if bumped == 0 {
            let (table, cols, cond) = match key {
                RoomKey::Live(_) => ("rooms", "userid, '', epoch", "userid = ? AND '' = ?"),
                RoomKey::Recording { .. } => {
                    ("recordings", "vj, fileid, 0", "vj = ? AND fileid = ?")
                }
            };
            let (ins, tail) = self.insert_ignore();
            let made = sqlx::query(&format!(
                "{ins} INTO room_state (vj, fileid, epoch, online, likes, views, seen_at, fence) \
                 SELECT {cols}, 0, 0, 0, 0, 1 FROM {table} WHERE {cond}{tail}"
            ))
            .bind(key.vj())
            .bind(key.fileid())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            return Ok(made > 0);
        }
        Ok(true)
    }

    /// The room's current fence, its state row locked until the transaction ends; `None`
    /// when it has no state row. (Fences are MySQL's only, which has `FOR UPDATE`.)
    async fn fence_of(conn: &mut AnyConnection, key: &RoomKey) -> StoreResult<Option<i64>> {
        let sql = "SELECT fence FROM room_state WHERE vj = ? AND fileid = ? FOR UPDATE";
        let row = sqlx::query(sql)
            .bind(key.vj())
            .bind(key.fileid())
            .fetch_optional(conn)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("fence")?),
            None => None,
        })
    }

    /// Splits a snapshot into the items written under their room's current fence and the
    /// keys of the others, locking the rooms' state rows for the rest of the transaction.
    async fn current_items<'a>(
        &self,
        conn: &mut AnyConnection,
        items: &'a [SnapshotItem],
    ) -> StoreResult<(Vec<&'a SnapshotItem>, Vec<RoomKey>)> {
        let mut current = std::collections::HashMap::with_capacity(items.len());
        // Rows are locked in key order, whatever order the batch has: two servers' snapshots
        // over the same rooms then wait for each other instead of deadlocking.
        let mut sorted: Vec<&SnapshotItem> = items.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        for chunk in sorted.chunks(ROWS_PER_STATEMENT) {
            let tuples = vec!["(?,?)"; chunk.len()].join(",");
            let sql = format!(
                "SELECT vj, fileid, fence FROM room_state WHERE (vj, fileid) IN ({tuples}) FOR UPDATE"
            );
            let mut q = chunk_query(&sql, chunk.len());
            for it in chunk {
                q = q.bind(it.key.vj()).bind(it.key.fileid());
            }
            for r in q.fetch_all(&mut *conn).await? {
                let key = RoomKey::from_parts(r.try_get("vj")?, r.try_get("fileid")?);
                current.insert(key, r.try_get::<i64, _>("fence")?);
            }
        }
        let (kept, fenced): (Vec<_>, Vec<_>) = items
            .iter()
            // A room with no state row yet has never been claimed: only fence 0 matches.
            .partition(|it| current.get(&it.key).copied().unwrap_or(0) == it.fence);
        Ok((kept, fenced.into_iter().map(|it| it.key.clone()).collect()))
    }
}

const INFO_COLS: &str = "r.groupid, r.title, r.nickname, r.headpic, r.frontcover, r.location, \
    r.stream, r.timestamp, r.playurl, r.hls_play_url, r.snapshot_url";
const STATE_COLS: &str = "s.epoch AS s_epoch, s.online AS s_online, s.likes AS s_likes, \
    s.views AS s_views, s.seen_at AS s_seen, s.fence AS s_fence";

fn info_from(r: &AnyRow) -> Result<RoomInfo, sqlx::Error> {
    Ok(RoomInfo {
        groupid: r.try_get("groupid")?,
        title: r.try_get("title")?,
        userinfo: UserInfo {
            nickname: r.try_get("nickname")?,
            headpic: r.try_get("headpic")?,
            frontcover: r.try_get("frontcover")?,
            location: r.try_get("location")?,
        },
        stream: r.try_get("stream")?,
        timestamp: r.try_get("timestamp")?,
        playurl: r.try_get("playurl")?,
        hls_play_url: r.try_get("hls_play_url")?,
        snapshot_url: r.try_get("snapshot_url")?,
    })
}

/// Counters of the row's own epoch; a state row of another epoch means "nothing yet".
fn counters_from(r: &AnyRow, epoch: i64) -> Result<Counters, sqlx::Error> {
    let s_epoch: Option<i64> = r.try_get("s_epoch")?;
    if s_epoch != Some(epoch) {
        return Ok(Counters {
            epoch,
            online: false,
            likes: 0,
            views: 0,
            seen_at: 0,
        });
    }
    let get =
        |c: &str| -> Result<i64, sqlx::Error> { Ok(r.try_get::<Option<i64>, _>(c)?.unwrap_or(0)) };
    Ok(Counters {
        epoch,
        online: get("s_online")? != 0,
        likes: get("s_likes")?.max(0) as u64,
        views: get("s_views")?.max(0) as u64,
        seen_at: get("s_seen")?,
    })
}

fn bind_info<'q>(
    q: Query<'q, Any, AnyArguments<'q>>,
    info: &'q RoomInfo,
) -> Query<'q, Any, AnyArguments<'q>> {
    q.bind(&info.groupid)
        .bind(&info.title)
        .bind(&info.userinfo.nickname)
        .bind(&info.userinfo.headpic)
        .bind(&info.userinfo.frontcover)
        .bind(&info.userinfo.location)
        .bind(&info.stream)
        .bind(info.timestamp)
        .bind(&info.playurl)
        .bind(&info.hls_play_url)
        .bind(&info.snapshot_url)
}

const INFO_INSERT_COLS: [&str; 11] = [
    "groupid",
    "title",
    "nickname",
    "headpic",
    "frontcover",
    "location",
    "stream",
    "timestamp",
    "playurl",
    "hls_play_url",
    "snapshot_url",
];

/// The database chose this transaction as a deadlock's victim (SQLSTATE 40001): it was
/// rolled back whole.
fn is_deadlock(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("40001"))
}

/// Runs a write transaction again when it was a deadlock's victim. Rooms created or
/// claimed at once take gap locks on the same index ranges, and MySQL/MariaDB then rolls
/// one back whole: it changed nothing, so running it again is safe.
async fn retry_deadlocks<T, F, Fut>(run: F) -> StoreResult<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut attempt = 0;
    loop {
        match run().await {
            Err(StoreError::Retry) if attempt < 8 => attempt += 1,
            Err(StoreError::Db(ref e)) if is_deadlock(e) && attempt < 8 => {
                attempt += 1;
                tracing::debug!(attempt, "deadlock victim: running the transaction again");
                let pause = 1 + rand::random::<u64>() % (2 << attempt.min(6));
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            r => return r,
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

#[async_trait]
impl Store for SqlStore {
    async fn migrate(&self) -> StoreResult<()> {
        let list = match self.dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS,
            Dialect::Mysql => {
                super::exact_keys::check_server(&self.pool).await?;
                MYSQL_MIGRATIONS
            }
        };
        let migrations: Vec<Migration> = list
            .iter()
            .map(|(v, d, sql)| {
                Migration::new(
                    *v,
                    Cow::Borrowed(*d),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    false,
                )
            })
            .collect();
        let (applied, _) = self.migration_status().await?;
        let pending: Vec<usize> = (0..migrations.len())
            .filter(|&i| !applied.contains(&migrations[i].version))
            .collect();
        if !pending.is_empty() {
            tracing::info!(
                pending = pending.len(),
                applied = applied.len(),
                "migrating the database"
            );
        }
        // One migration at a time (the list up to it), so that the log shows each one and
        // how long it took; the last run, over the whole list, checks what is applied.
        let mut steps: Vec<Migrator> = pending
            .iter()
            .map(|&i| Migrator {
                migrations: Cow::Owned(migrations[..=i].to_vec()),
                ignore_missing: true,
                locking: true,
                no_tx: false,
            })
            .collect();
        steps.push(Migrator {
            migrations: Cow::Owned(migrations.clone()),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        });
        let describe = |m: &Migrator| {
            m.migrations
                .last()
                .map(|l| (l.version, l.description.to_string()))
                .unwrap_or_default()
        };
        let last = steps.len() - 1;
        if self.dialect == Dialect::Sqlite {
            for (n, m) in steps.iter().enumerate() {
                let started = std::time::Instant::now();
                m.run(&self.pool).await?;
                if n < last {
                    let (version, description) = describe(m);
                    tracing::info!(
                        version,
                        description,
                        secs = format!("{:.2}", started.elapsed().as_secs_f64()),
                        "migration applied"
                    );
                }
            }
            return Ok(());
        }
        // Several servers may start at once on one database. sqlx's own lock asks MySQL to
        // wait forever with a timeout of -1, which MariaDB takes as "do not wait", and it
        // ignores the answer: the servers would apply a migration together, and all but
        // one fail on a half-applied one. This lock waits, and is checked.
        for m in &mut steps {
            m.locking = false;
        }
        let mut conn = self.pool.acquire().await?;
        let got: Option<i64> =
            sqlx::query_scalar("SELECT GET_LOCK(CONCAT('minilvb_migrate:', DATABASE()), 120)")
                .fetch_one(&mut *conn)
                .await?;
        if got != Some(1) {
            return Err(StoreError::MigrationLock);
        }
        let mut applied = Ok(());
        for (n, m) in steps.iter().enumerate() {
            let started = std::time::Instant::now();
            applied = m.run_direct(&mut *conn).await;
            if applied.is_err() {
                break;
            }
            if n < last {
                let (version, description) = describe(m);
                tracing::info!(
                    version,
                    description,
                    secs = format!("{:.2}", started.elapsed().as_secs_f64()),
                    "migration applied"
                );
            }
        }
        let _ = sqlx::query("SELECT RELEASE_LOCK(CONCAT('minilvb_migrate:', DATABASE()))")
            .execute(&mut *conn)
            .await;
        applied?;
        super::exact_keys::check_tables(&self.pool).await?;
        Ok(())
    }

    async fn migration_status(&self) -> StoreResult<(Vec<i64>, Vec<i64>)> {
        let known: Vec<i64> = match self.dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS.iter().map(|m| m.0).collect(),
            Dialect::Mysql => MYSQL_MIGRATIONS.iter().map(|m| m.0).collect(),
        };
        // A database never migrated has no bookkeeping table: nothing applied.
        let applied = match sqlx::query(
            "SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(rows) => rows
                .iter()
                .map(|r| r.try_get::<i64, _>("version"))
                .collect::<Result<Vec<_>, _>>()?,
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok((applied, known))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.timed(async {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
        .await
    }

    fn fences(&self) -> bool {
        self.dialect == Dialect::Mysql
    }

    async fn load_room(&self, key: &RoomKey, claim: bool) -> StoreResult<Option<RoomRecord>> {
        retry_deadlocks(|| self.load_room_once(key, claim)).await
    }

    async fn load_live_rooms(&self, vjs: &[String]) -> StoreResult<Vec<RoomRecord>> {
        if vjs.is_empty() {
            return Ok(Vec::new());
        }
        retry_deadlocks(|| self.load_live_rooms_once(vjs)).await
    }

    async fn online_rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        let text = format!(
            "SELECT r.userid, r.epoch, {INFO_COLS}, {STATE_COLS}, \
               (SELECT COUNT(*) FROM members m WHERE m.vj = r.userid AND m.fileid = '' \
                AND m.epoch = r.epoch) AS n \
             FROM rooms r JOIN room_state s ON s.vj = r.userid AND s.fileid = '' AND s.epoch = r.epoch \
             WHERE s.online = 1"
        );
        let sql = sqlx::query(&text);
        // Row by row, with progress in the log: a large database takes a while.
        let mut rows = sql.fetch(&self.pool);
        let (mut out, mut progress) = (Vec::new(), Progress::new("online rooms"));
        while let Some(r) = rows.try_next().await? {
            let epoch: i64 = r.try_get("epoch")?;
            out.push(RoomRecord {
                key: RoomKey::Live(r.try_get("userid")?),
                info: info_from(&r)?,
                counters: counters_from(&r, epoch)?,
                members: Vec::new(),
                member_count: r.try_get::<i64, _>("n")?.max(0) as u64,
                fence: 0,
            });
            progress.row();
        }
        progress.done();
        Ok(out)
    }

    async fn recent_recordings(&self, since: i64) -> StoreResult<Vec<RoomRecord>> {
        let text = format!(
            "SELECT r.vj, r.fileid, {INFO_COLS}, {STATE_COLS} FROM recordings r \
             LEFT JOIN room_state s ON s.vj = r.vj AND s.fileid = r.fileid \
             WHERE r.timestamp >= ? AND (r.playurl <> '' OR r.hls_play_url <> '')"
        );
        let mut rows = sqlx::query(&text).bind(since).fetch(&self.pool);
        let (mut out, mut progress) = (Vec::new(), Progress::new("recordings"));
        while let Some(r) = rows.try_next().await? {
            out.push(RoomRecord {
                key: RoomKey::Recording {
                    vj: r.try_get("vj")?,
                    fileid: r.try_get("fileid")?,
                },
                info: info_from(&r)?,
                counters: counters_from(&r, 0)?,
                members: Vec::new(),
                member_count: 0,
                fence: 0,
            });
            progress.row();
        }
        progress.done();
        Ok(out)
    }

    async fn begin_broadcast(
        &self,
        userid: &str,
        epoch: i64,
        info: &RoomInfo,
        fence: i64,
    ) -> StoreResult<i64> {
        retry_deadlocks(|| self.begin_broadcast_once(userid, epoch, info, fence)).await
    }

    async fn write_snapshot(&self, items: &[SnapshotItem]) -> StoreResult<Vec<RoomKey>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.timed(async {
            let mut tx = self.begin_write().await?;
            let (kept, fenced) = if self.fences() {
                self.current_items(&mut tx, items).await?
            } else {
                (items.iter().collect(), Vec::new())
            };
            // Rows go in key order: consecutive rows then land on the same B-tree pages.
            // In a random order (a room's change map) each row of a large room's snapshot
            // reads and dirties a page of its own: about 3.5 times the cost on SQLite.
            let mut items = kept;
            items.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            for chunk in items.chunks(ROWS_PER_STATEMENT) {
                let sql = self.state_upsert_sql(chunk.len());
                let mut q = chunk_query(&sql, chunk.len());
                for it in chunk {
                    let c = &it.counters;
                    q = q
                        .bind(it.key.vj())
                        .bind(it.key.fileid())
                        .bind(c.epoch)
                        .bind(c.online as i64)
                        .bind(c.likes.min(i64::MAX as u64) as i64)
                        .bind(c.views.min(i64::MAX as u64) as i64)
                        .bind(c.seen_at);
                }
                q.execute(&mut *tx).await?;
            }
            let mut upserts: Vec<(&SnapshotItem, &Member)> = items
                .iter()
                .flat_map(|it| it.upserts.iter().map(move |m| (*it, m)))
                .collect();
            upserts.sort_unstable_by(|a, b| (&a.0.key, &a.1.userid).cmp(&(&b.0.key, &b.1.userid)));
            for chunk in upserts.chunks(ROWS_PER_STATEMENT) {
                let sql = self.member_upsert_sql(chunk.len());
                let mut q = chunk_query(&sql, chunk.len());
                for (it, m) in chunk {
                    q = q
                        .bind(it.key.vj())
                        .bind(it.key.fileid())
                        .bind(&m.userid)
                        .bind(it.counters.epoch)
                        .bind(m.seq)
                        .bind(&m.nickname)
                        .bind(&m.headpic);
                }
                q.execute(&mut *tx).await?;
            }
            let mut deletes: Vec<(&SnapshotItem, &String)> = items
                .iter()
                .flat_map(|it| it.deletes.iter().map(move |u| (*it, u)))
                .collect();
            deletes.sort_unstable_by(|a, b| (&a.0.key, a.1).cmp(&(&b.0.key, b.1)));
            for chunk in deletes.chunks(ROWS_PER_STATEMENT) {
                let tuples = vec!["(?,?,?,?)"; chunk.len()].join(",");
                let sql =
                    format!("DELETE FROM members WHERE (vj, fileid, userid, epoch) IN ({tuples})");
                let mut q = chunk_query(&sql, chunk.len());
                for (it, u) in chunk {
                    q = q
                        .bind(it.key.vj())
                        .bind(it.key.fileid())
                        .bind(u.as_str())
                        .bind(it.counters.epoch);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(fenced)
        })
        .await
    }

    async fn room_by_stream(&self, stream: &str) -> StoreResult<Option<String>> {
        self.timed(async {
            let row = sqlx::query("SELECT userid FROM rooms WHERE stream = ?")
                .bind(stream)
                .fetch_optional(&self.pool)
                .await?;
            Ok(match row {
                Some(r) => Some(r.try_get("userid")?),
                None => None,
            })
        })
        .await
    }

    async fn put_recording(&self, rec: &NewRecording) -> StoreResult<RoomRecord> {
        let fileid = self
            .timed(async {
                let mut tx = self.begin_write().await?;
                let target = self.recording_of_file(&mut tx, rec).await?;
                let mut cols = vec!["vj", "fileid"];
                cols.extend(INFO_INSERT_COLS);
                cols.push("start_time");
                // A retried or second-format delivery only fills in a URL that was empty.
                let update = ["playurl", "hls_play_url"]
                    .iter()
                    .map(|c| {
                        let new = self.new_col(c);
                        match self.dialect {
                            Dialect::Sqlite => format!(
                                "{c}=CASE WHEN {new} <> '' THEN {new} ELSE recordings.{c} END"
                            ),
                            Dialect::Mysql => format!("{c}=IF({new} <> '', {new}, {c})"),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = self.upsert("recordings", &cols, &["vj", "fileid"], 1, &update);
                let q = sqlx::query(&sql).bind(&rec.vj).bind(&target);
                bind_info(q, &rec.info)
                    .bind(rec.start_time)
                    .execute(&mut *tx)
                    .await?;
                let (ins, tail) = self.insert_ignore();
                sqlx::query(&format!(
                    "{ins} INTO room_state (vj, fileid, epoch, online, likes, views, seen_at) \
                     VALUES (?, ?, 0, 0, ?, ?, 0){tail}"
                ))
                .bind(&rec.vj)
                .bind(&target)
                .bind(rec.likes.min(i64::MAX as u64) as i64)
                .bind(rec.views.min(i64::MAX as u64) as i64)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(target)
            })
            .await?;
        let key = RoomKey::Recording {
            vj: rec.vj.clone(),
            fileid,
        };
        self.load_room(&key, false)
            .await?
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }

    async fn recording_alias(&self, vj: &str, fileid: &str) -> StoreResult<Option<String>> {
        self.timed(async {
            let row =
                sqlx::query("SELECT recording FROM recording_files WHERE vj = ? AND fileid = ?")
                    .bind(vj)
                    .bind(fileid)
                    .fetch_optional(&self.pool)
                    .await?;
            Ok(row
                .map(|r| r.try_get::<String, _>("recording"))
                .transpose()?)
        })
        .await
    }

    async fn set_snapshot_url(&self, key: &RoomKey, url: &str) -> StoreResult<()> {
        self.timed(async {
            match key {
                RoomKey::Live(vj) => {
                    sqlx::query("UPDATE rooms SET snapshot_url = ? WHERE userid = ?")
                        .bind(url)
                        .bind(vj)
                        .execute(&self.pool)
                        .await?
                }
                RoomKey::Recording { vj, fileid } => {
                    sqlx::query(
                        "UPDATE recordings SET snapshot_url = ? WHERE vj = ? AND fileid = ?",
                    )
                    .bind(url)
                    .bind(vj)
                    .bind(fileid)
                    .execute(&self.pool)
                    .await?
                }
            };
            Ok(())
        })
        .await
    }
}
