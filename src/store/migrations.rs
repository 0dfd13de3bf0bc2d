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
    // 2: checks and incidents. Times are Unix milliseconds (`*_ms`): time to
    // detect is measured in fractions of a second.
    "CREATE TABLE incidents (
        id           INTEGER PRIMARY KEY,
        dedup_key    TEXT    NOT NULL,
        check_name   TEXT    NOT NULL,
        title        TEXT    NOT NULL,
        status       TEXT    NOT NULL CHECK (status IN ('open', 'resolved')),
        opened_ms    INTEGER NOT NULL,
        resolved_ms  INTEGER,
        reopened     INTEGER NOT NULL DEFAULT 0,
        suppressed   TEXT,
        last_reason  TEXT
    );
    -- At most one open incident per dedup key: a second DOWN joins the first.
    CREATE UNIQUE INDEX incidents_one_open ON incidents (dedup_key) WHERE status = 'open';
    CREATE INDEX incidents_by_key ON incidents (dedup_key, id);
    CREATE TABLE incident_events (
        id          INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        at_ms       INTEGER NOT NULL,
        kind        TEXT    NOT NULL,
        message     TEXT    NOT NULL
    );
    CREATE INDEX incident_events_by_incident ON incident_events (incident_id, id);
    CREATE TABLE check_flips (
        id          INTEGER PRIMARY KEY,
        check_name  TEXT    NOT NULL,
        at_ms       INTEGER NOT NULL,
        from_state  TEXT    NOT NULL,
        to_state    TEXT    NOT NULL,
        reason      TEXT,
        suppressed  TEXT
    );
    CREATE INDEX check_flips_by_check ON check_flips (check_name, id);
    CREATE TABLE heartbeats (
        check_name        TEXT PRIMARY KEY,
        expecting_ms      INTEGER NOT NULL,
        last_success_ms   INTEGER,
        last_start_ms     INTEGER,
        last_failure_ms   INTEGER,
        last_failure_code INTEGER,
        last_exit_code    INTEGER
    );
    CREATE TABLE maintenance_windows (
        id         INTEGER PRIMARY KEY,
        start_ms   INTEGER NOT NULL,
        end_ms     INTEGER NOT NULL,
        checks     TEXT    NOT NULL,
        reason     TEXT    NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE status_mode (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        mode       TEXT    NOT NULL,
        message_en TEXT,
        message_zh TEXT,
        set_ms     INTEGER NOT NULL,
        set_by     TEXT    NOT NULL
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
