//! Account storage: users (argon2id PHC strings) and session tokens (SHA-256 hashes only).
//! A trait of its own so that the room store and the account store can change separately.

use super::sql::SqlStore;
use super::{StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::Row;

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }

    fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            _ => None,
        }
    }
}

/// Life-cycle of a stored token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Active = 0,
    /// A refresh token that was exchanged: presenting it again is reuse.
    Used = 1,
    Revoked = 2,
}

impl TokenState {
    fn from_i64(v: i64) -> TokenState {
        match v {
            0 => TokenState::Active,
            1 => TokenState::Used,
            // Anything unknown is treated as the safest state.
            _ => TokenState::Revoked,
        }
    }
}

/// A token to store. `hash` is the lowercase hex SHA-256 of the token; the token itself is
/// never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub hash: String,
    pub userid: String,
    pub kind: TokenKind,
    /// All tokens descending from one Login share a family, so that reuse of a rotated
    /// refresh token can revoke every one of them.
    pub family: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub hash: String,
    pub userid: String,
    pub kind: TokenKind,
    pub family: String,
    pub expires_at: i64,
    pub state: TokenState,
}

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates a user. `Ok(false)` when the userid is taken.
    async fn create_user(&self, userid: &str, password_hash: &str, now: i64) -> StoreResult<bool>;
    async fn user_exists(&self, userid: &str) -> StoreResult<bool>;
    /// The stored PHC string of a user's password.
    async fn password_hash(&self, userid: &str) -> StoreResult<Option<String>>;
    /// Stores tokens (an access and a refresh token of one login) in one transaction.
    async fn insert_tokens(&self, tokens: &[NewToken], now: i64) -> StoreResult<()>;
    async fn find_token(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;
    /// Marks an active refresh token used and stores its successors, atomically. `Ok(false)`
    /// (and nothing stored) when the token was no longer active: someone else used it first.
    async fn rotate(&self, used_hash: &str, next: &[NewToken], now: i64) -> StoreResult<bool>;
    /// Revokes every token of a family. Returns how many were revoked.
    async fn revoke_family(&self, family: &str) -> StoreResult<u64>;
    /// Deletes tokens that expired before `before`. Returns how many.
    async fn purge_expired(&self, before: i64) -> StoreResult<u64>;
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

const INSERT_TOKEN: &str =
    "INSERT INTO tokens (hash, userid, kind, family, expires_at, state, created_at) \
     VALUES (?, ?, ?, ?, ?, 0, ?)";

async fn insert_all(
    conn: &mut sqlx::AnyConnection,
    tokens: &[NewToken],
    now: i64,
) -> Result<(), sqlx::Error> {
    for t in tokens {
        sqlx::query(INSERT_TOKEN)
            .bind(&t.hash)
            .bind(&t.userid)
            .bind(t.kind.as_str())
            .bind(&t.family)
            .bind(t.expires_at)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn create_user(&self, userid: &str, password_hash: &str, now: i64) -> StoreResult<bool> {
        self.timed(async {
            // A plain INSERT rather than INSERT IGNORE: MySQL's IGNORE would also swallow
            // truncation and other errors.
            let r = sqlx::query(
                "INSERT INTO users (userid, password_hash, created_at) VALUES (?, ?, ?)",
            )
            .bind(userid)
            .bind(password_hash)
            .bind(now)
            .execute(&self.pool)
            .await;
            match r {
                Ok(_) => Ok(true),
                Err(e) if is_unique_violation(&e) => Ok(false),
                Err(e) => Err(StoreError::Db(e)),
            }
        })
        .await
    }

    async fn user_exists(&self, userid: &str) -> StoreResult<bool> {
        self.timed(async {
            let row = sqlx::query("SELECT 1 AS one FROM users WHERE userid = ?")
                .bind(userid)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.is_some())
        })
        .await
    }

    async fn password_hash(&self, userid: &str) -> StoreResult<Option<String>> {
        self.timed(async {
            let row = sqlx::query("SELECT userid, password_hash FROM users WHERE userid = ?")
                .bind(userid)
                .fetch_optional(&self.pool)
                .await?;
            let Some(r) = row else { return Ok(None) };
            // Only the account of exactly this userid, whatever the collation matched.
            if r.try_get::<String, _>("userid")? != userid {
                return Ok(None);
            }
            Ok(Some(r.try_get("password_hash")?))
        })
        .await
    }

    async fn insert_tokens(&self, tokens: &[NewToken], now: i64) -> StoreResult<()> {
        self.timed(async {
            let mut tx = self.begin_write().await?;
            insert_all(&mut tx, tokens, now).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn find_token(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        self.timed(async {
            let row = sqlx::query(
                "SELECT hash, userid, kind, family, expires_at, state FROM tokens WHERE hash = ?",
            )
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            let kind: String = r.try_get("kind")?;
            let Some(kind) = TokenKind::parse(&kind) else {
                return Ok(None);
            };
            Ok(Some(TokenRecord {
                hash: r.try_get("hash")?,
                userid: r.try_get("userid")?,
                kind,
                family: r.try_get("family")?,
                expires_at: r.try_get("expires_at")?,
                state: TokenState::from_i64(r.try_get("state")?),
            }))
        })
        .await
    }

    async fn rotate(&self, used_hash: &str, next: &[NewToken], now: i64) -> StoreResult<bool> {
        self.timed(async {
            let mut tx = self.begin_write().await?;
            // The guarded UPDATE is the race arbiter: of two concurrent refreshes of one
            // token, only one sees a row change.
            let changed = sqlx::query(
                "UPDATE tokens SET state = 1 WHERE hash = ? AND kind = 'refresh' AND state = 0",
            )
            .bind(used_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_all(&mut tx, next, now).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn revoke_family(&self, family: &str) -> StoreResult<u64> {
        self.timed(async {
            // Repeated until nothing is left: under read committed (MySQL/MariaDB) a
            // rotation committing while the update scans may add tokens behind it, and the
            // next pass sees them. A rotation cannot start after the first pass has marked
            // its refresh token revoked, so this ends.
            let mut total = 0;
            for _ in 0..10 {
                let r = sqlx::query("UPDATE tokens SET state = 2 WHERE family = ? AND state <> 2")
                    .bind(family)
                    .execute(&self.pool)
                    .await?;
                if r.rows_affected() == 0 {
                    break;
                }
                total += r.rows_affected();
            }
            Ok(total)
        })
        .await
    }

    async fn purge_expired(&self, before: i64) -> StoreResult<u64> {
        self.timed(async {
            let r = sqlx::query("DELETE FROM tokens WHERE expires_at < ?")
                .bind(before)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected())
        })
        .await
    }
}
