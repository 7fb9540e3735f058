//! What users and operators add beside the rooms: short videos (UploadUGCVideo), reports
//! (ReportUser) and bans (ForbidLive). A trait of its own, like accounts, over the same
//! database.

use super::sql::{Dialect, SqlStore};
use super::{StoreError, StoreResult};
use crate::model::{now_unix, UserInfo};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

/// One short video, as uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Video {
    pub userid: String,
    pub file_id: String,
    pub title: String,
    pub play_url: String,
    pub userinfo: UserInfo,
    /// Unix seconds of the upload.
    pub created_at: i64,
}

/// The reports against one VJ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub vj: String,
    /// Distinct users who reported the VJ.
    pub reporters: u64,
    /// Reports in all, repeats included.
    pub times: u64,
    pub last_at: i64,
}

#[async_trait]
pub trait ContentStore: Send + Sync + 'static {
    /// Stores a video; the same user and file id again replaces it. `Ok(false)` (nothing
    /// stored) when the video is new and the user already has `max_per_user`.
    async fn put_video(&self, v: &Video, max_per_user: u64) -> StoreResult<bool>;
    /// A page of all videos, newest first, and how many there are.
    async fn videos(&self, offset: usize, limit: usize) -> StoreResult<(u64, Vec<Video>)>;
    /// One user's video by file id, or the user's newest.
    async fn video(&self, userid: &str, file_id: Option<&str>) -> StoreResult<Option<Video>>;
    /// Counts a report. `Ok(false)` (nothing stored) when it names a VJ the reporter has
    /// not reported before and the reporter already reported `max_per_reporter` VJs.
    async fn add_report(
        &self,
        reporter: &str,
        vj: &str,
        now: i64,
        max_per_reporter: u64,
    ) -> StoreResult<bool>;
    /// The most reported VJs, most reporters first.
    async fn reported(&self, limit: usize) -> StoreResult<Vec<Reported>>;
    async fn set_banned(&self, userid: &str, banned: bool, now: i64) -> StoreResult<()>;
    /// Marks a VJ's current broadcast as ended by an operator (`stopped`), or clears the
    /// mark (a new broadcast).
    async fn set_stopped(&self, userid: &str, stopped: bool, now: i64) -> StoreResult<()>;
    /// Why a VJ may not be live now, if at all: a ban outranks a stopped broadcast.
    async fn block(&self, userid: &str) -> StoreResult<Option<Block>>;
    /// Banned VJs and since when, newest first.
    async fn bans(&self, limit: usize) -> StoreResult<Vec<(String, i64)>>;
    /// Records a user's co-host stream (replacing the user's previous one).
    async fn put_linkmic(&self, userid: &str, stream: &str, expires_at: i64) -> StoreResult<()>;
    /// Whose co-host stream this is, and until when its push URL is valid.
    async fn linkmic_owner(&self, stream: &str) -> StoreResult<Option<(String, i64)>>;
    /// Forgets a user's co-host stream; returns its name.
    async fn remove_linkmic(&self, userid: &str) -> StoreResult<Option<String>>;
}

/// Why a VJ may not be live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Banned,
    /// An operator ended the current broadcast (StopLVB): a new RequestLVBAddr clears it.
    Stopped,
}

const VIDEO_COLS: &str =
    "userid, file_id, title, play_url, nickname, headpic, frontcover, location, created_at";

fn video_from(r: &AnyRow) -> Result<Video, sqlx::Error> {
    Ok(Video {
        userid: r.try_get("userid")?,
        file_id: r.try_get("file_id")?,
        title: r.try_get("title")?,
        play_url: r.try_get("play_url")?,
        userinfo: UserInfo {
            nickname: r.try_get("nickname")?,
            headpic: r.try_get("headpic")?,
            frontcover: r.try_get("frontcover")?,
            location: r.try_get("location")?,
        },
        created_at: r.try_get("created_at")?,
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SqlStore {
    /// Marks a user in a table of marks (`userid`, `at`), keeping the time of the first
    /// mark, or removes the mark.
    async fn mark(
        &self,
        table: &str,
        at: &str,
        userid: &str,
        on: bool,
        now: i64,
    ) -> StoreResult<()> {
        self.timed(async {
            if on {
                let (insert, tail) = self.insert_ignore();
                sqlx::query(&format!(
                    "{insert} INTO {table} (userid, {at}) VALUES (?, ?){tail}"
                ))
                .bind(userid)
                .bind(now)
                .execute(&self.pool)
                .await?;
            } else {
                sqlx::query(&format!("DELETE FROM {table} WHERE userid = ?"))
                    .bind(userid)
                    .execute(&self.pool)
                    .await?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl ContentStore for SqlStore {
    async fn put_video(&self, v: &Video, max_per_user: u64) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.begin_write().await?;
            let exists =
                sqlx::query("SELECT 1 AS one FROM ugc_videos WHERE userid = ? AND file_id = ?")
                    .bind(&v.userid)
                    .bind(&v.file_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
            if !exists {
                let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM ugc_videos WHERE userid = ?")
                    .bind(&v.userid)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if count(n) >= max_per_user {
                    return Ok(false);
                }
            }
            let seq: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS s FROM ugc_videos")
                .fetch_one(&mut *tx)
                .await?
                .try_get("s")?;
            let mut cols: Vec<&str> = VIDEO_COLS.split(", ").collect();
            cols.push("seq");
            let update = [
                "title",
                "play_url",
                "nickname",
                "headpic",
                "frontcover",
                "location",
                "created_at",
                "seq",
            ]
            .iter()
            .map(|c| format!("{c}={}", self.new_col(c)))
            .collect::<Vec<_>>()
            .join(", ");
            let sql = self.upsert("ugc_videos", &cols, &["userid", "file_id"], 1, &update);
            sqlx::query(&sql)
                .bind(&v.userid)
                .bind(&v.file_id)
                .bind(&v.title)
                .bind(&v.play_url)
                .bind(&v.userinfo.nickname)
                .bind(&v.userinfo.headpic)
                .bind(&v.userinfo.frontcover)
                .bind(&v.userinfo.location)
                .bind(v.created_at)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn videos(&self, offset: usize, limit: usize) -> StoreResult<(u64, Vec<Video>)> {
        self.timed(async {
            let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM ugc_videos")
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?;
            let rows = sqlx::query(&format!(
                "SELECT {VIDEO_COLS} FROM ugc_videos \
                 ORDER BY seq DESC, userid, file_id LIMIT ? OFFSET ?"
            ))
            .bind(limit as i64)
            .bind(offset as i64)
            .fetch_all(&self.pool)
            .await?;
            let videos = rows.iter().map(video_from).collect::<Result<_, _>>()?;
            Ok((count(total), videos))
        })
        .await
    }

    async fn video(&self, userid: &str, file_id: Option<&str>) -> StoreResult<Option<Video>> {
        self.timed(async {
            let sql = match file_id {
                Some(_) => {
                    format!("SELECT {VIDEO_COLS} FROM ugc_videos WHERE userid = ? AND file_id = ?")
                }
                None => format!(
                    "SELECT {VIDEO_COLS} FROM ugc_videos WHERE userid = ? \
                     ORDER BY seq DESC, file_id LIMIT 1"
                ),
            };
            let mut q = sqlx::query(&sql).bind(userid);
            if let Some(f) = file_id {
                q = q.bind(f);
            }
            let row = q.fetch_optional(&self.pool).await?;
            Ok(row.as_ref().map(video_from).transpose()?)
        })
        .await
    }

    async fn add_report(
        &self,
        reporter: &str,
        vj: &str,
        now: i64,
        max_per_reporter: u64,
    ) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.begin_write().await?;
            let updated = sqlx::query(
                "UPDATE reports SET times = times + 1, last_at = ? WHERE reporter = ? AND vj = ?",
            )
            .bind(now)
            .bind(reporter)
            .bind(vj)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM reports WHERE reporter = ?")
                    .bind(reporter)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if count(n) >= max_per_reporter {
                    return Ok(false);
                }
                // An upsert: a concurrent first report of the same pair counts, not fails.
                let cols = ["reporter", "vj", "times", "last_at"];
                let update = format!("times=times+1, last_at={}", self.new_col("last_at"));
                sqlx::query(&self.upsert("reports", &cols, &["reporter", "vj"], 1, &update))
                    .bind(reporter)
                    .bind(vj)
                    .bind(1i64)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn reported(&self, limit: usize) -> StoreResult<Vec<Reported>> {
        self.timed(async {
            // SUM is DECIMAL on MySQL, which the driver does not read as an integer.
            let int = match self.dialect() {
                Dialect::Sqlite => "INTEGER",
                Dialect::Mysql => "SIGNED",
            };
            let rows = sqlx::query(&format!(
                "SELECT vj, COUNT(*) AS reporters, CAST(SUM(times) AS {int}) AS times, \
                 MAX(last_at) AS last_at FROM reports GROUP BY vj \
                 ORDER BY reporters DESC, last_at DESC, vj LIMIT ?"
            ))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Reported {
                        vj: r.try_get("vj")?,
                        reporters: count(r.try_get("reporters")?),
                        times: count(r.try_get("times")?),
                        last_at: r.try_get("last_at")?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(Into::into)
        })
        .await
    }

    async fn set_banned(&self, userid: &str, banned: bool, now: i64) -> StoreResult<()> {
        self.mark("bans", "banned_at", userid, banned, now).await
    }

    async fn set_stopped(&self, userid: &str, stopped: bool, now: i64) -> StoreResult<()> {
        self.mark("stops", "stopped_at", userid, stopped, now).await
    }

    async fn block(&self, userid: &str) -> StoreResult<Option<Block>> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM bans WHERE userid = ?) AS banned, \
                 (SELECT COUNT(*) FROM stops WHERE userid = ?) AS stopped",
            )
            .bind(userid)
            .bind(userid)
            .fetch_one(&self.pool)
            .await?;
            let (banned, stopped): (i64, i64) = (row.try_get("banned")?, row.try_get("stopped")?);
            Ok(if banned > 0 {
                Some(Block::Banned)
            } else if stopped > 0 {
                Some(Block::Stopped)
            } else {
                None
            })
        })
        .await
    }

    async fn bans(&self, limit: usize) -> StoreResult<Vec<(String, i64)>> {
        self.timed(async {
            let rows = sqlx::query(
                "SELECT userid, banned_at FROM bans ORDER BY banned_at DESC, userid LIMIT ?",
            )
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("userid")?, r.try_get("banned_at")?)))
                .collect::<Result<_, sqlx::Error>>()
                .map_err(Into::into)
        })
        .await
    }
    async fn put_linkmic(&self, userid: &str, stream: &str, expires_at: i64) -> StoreResult<()> {
        self.timed(async {
            let mut tx = self.begin_write().await?;
            // A stream name is unique: a user whose name maps to another's stream takes
            // it over only once that user's push URL has expired.
            sqlx::query(
                "DELETE FROM linkmic_streams WHERE userid = ? OR (stream = ? AND expires_at < ?)",
            )
            .bind(userid)
            .bind(stream)
            .bind(now_unix())
            .execute(&mut *tx)
            .await?;
            let r = sqlx::query(
                "INSERT INTO linkmic_streams (userid, stream, expires_at) VALUES (?, ?, ?)",
            )
            .bind(userid)
            .bind(stream)
            .bind(expires_at)
            .execute(&mut *tx)
            .await;
            match r {
                Err(e)
                    if e.as_database_error()
                        .is_some_and(|d| d.is_unique_violation()) =>
                {
                    return Err(StoreError::StreamTaken)
                }
                r => r?,
            };
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn remove_linkmic(&self, userid: &str) -> StoreResult<Option<String>> {
        self.timed(async {
            let mut tx = self.begin_write().await?;
            let stream: Option<String> =
                sqlx::query("SELECT stream FROM linkmic_streams WHERE userid = ?")
                    .bind(userid)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get("stream"))
                    .transpose()?;
            sqlx::query("DELETE FROM linkmic_streams WHERE userid = ?")
                .bind(userid)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(stream)
        })
        .await
    }

    async fn linkmic_owner(&self, stream: &str) -> StoreResult<Option<(String, i64)>> {
        self.timed(async {
            let row =
                sqlx::query("SELECT userid, expires_at FROM linkmic_streams WHERE stream = ?")
                    .bind(stream)
                    .fetch_optional(&self.pool)
                    .await?;
            row.map(|r| Ok((r.try_get("userid")?, r.try_get("expires_at")?)))
                .transpose()
                .map_err(|e: sqlx::Error| e.into())
        })
        .await
    }
}
