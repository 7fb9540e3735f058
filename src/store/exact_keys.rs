//! MySQL/MariaDB: every key must compare byte for byte. Their `utf8mb4_bin` is PAD SPACE
//! (`'a ' = 'a'`), so migration 3 moves every table to a NO PAD binary collation; these
//! checks make a server that cannot do that, or tables that still fold, fail loudly at
//! migration time instead of quietly merging distinct keys. SQLite compares TEXT with
//! memcmp and needs neither.

use super::{StoreError, StoreResult};
use sqlx::{AnyPool, Row};

/// The NO PAD binary utf8mb4 collations: MariaDB 10.2+ and MySQL 8.0.17+ respectively.
const NOPAD_COLLATIONS: &str = "'utf8mb4_nopad_bin', 'utf8mb4_0900_bin'";

const TABLES: &str = "'rooms', 'recordings', 'room_state', 'members', 'users', 'tokens', \
     'recording_files', 'ugc_videos', 'reports', 'bans', 'linkmic_streams', 'stops'";

fn unsupported(why: String) -> StoreError {
    StoreError::InexactKeys(why)
}

/// Before migrating: the server must have a NO PAD binary collation for migration 3.
pub(super) async fn check_server(pool: &AnyPool) -> StoreResult<()> {
    let row = sqlx::query(&format!(
        "SELECT COUNT(*) AS n FROM information_schema.COLLATIONS \
         WHERE COLLATION_NAME IN ({NOPAD_COLLATIONS})"
    ))
    .fetch_one(pool)
    .await?;
    if row.try_get::<i64, _>("n")? == 0 {
        return Err(unsupported(
            "this server has no NO PAD binary utf8mb4 collation (utf8mb4_nopad_bin on \
             MariaDB 10.2+, utf8mb4_0900_bin on MySQL 8.0.17+)"
                .into(),
        ));
    }
    Ok(())
}

/// After migrating: every text column of the tables compares byte for byte. Probed by
/// behaviour rather than by name, so an alias that still pads is caught too.
pub(super) async fn check_tables(pool: &AnyPool) -> StoreResult<()> {
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT COLLATION_NAME AS c FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({TABLES}) \
         AND COLLATION_NAME IS NOT NULL"
    ))
    .fetch_all(pool)
    .await?;
    for row in rows {
        let collation: String = row.try_get("c")?;
        if !collation
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(unsupported(format!(
                "unexpected collation name {collation:?}"
            )));
        }
        // Trailing space, case, and NFC "é" against NFD "e" + U+0301.
        let probe = format!(
            "SELECT CAST((_utf8mb4'a' = _utf8mb4'a ' COLLATE {collation}) \
               OR (_utf8mb4'a' = _utf8mb4'A' COLLATE {collation}) \
               OR (_utf8mb4 X'C3A9' = _utf8mb4 X'65CC81' COLLATE {collation}) AS SIGNED) AS folds"
        );
        let folds = sqlx::query(&probe)
            .fetch_one(pool)
            .await
            .map_err(|e| unsupported(format!("collation {collation} cannot be probed: {e}")))?
            .try_get::<i64, _>("folds")?;
        if folds != 0 {
            return Err(unsupported(format!(
                "collation {collation} treats different keys as equal (trailing spaces, \
                 case or Unicode normalization)"
            )));
        }
    }
    Ok(())
}
