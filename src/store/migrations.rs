//! Versioned schema migrations, applied in order at open; `PRAGMA user_version` is the version.
//!
//! A migration is never edited once released: add a new one. Each runs in its
//! own transaction together with the version bump, so a crash mid-migration
//! leaves the previous version intact.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the daemon's own lifecycle, so a start can tell that the last run crashed.
    "CREATE TABLE daemon_runs (
        id         INTEGER PRIMARY KEY,
        started_at INTEGER NOT NULL,
        stopped_at INTEGER,
        version    TEXT    NOT NULL,
        pid        INTEGER NOT NULL
    );
    CREATE TABLE config_reloads (
        id    INTEGER PRIMARY KEY,
        at    INTEGER NOT NULL,
        ok    INTEGER NOT NULL,
        error TEXT
    );",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(super) fn apply(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.into(),
        source,
    };
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.into(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction().map_err(sqlite)?;
        tx.execute_batch(sql).map_err(sqlite)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
    }
    Ok(())
}
