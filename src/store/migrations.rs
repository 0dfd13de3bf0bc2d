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
    // 3: paging. Every timer is a row with a due time read by the pager's
    // tick, so a restart neither loses nor doubles an escalation.
    "CREATE TABLE escalations (
        incident_id       INTEGER PRIMARY KEY REFERENCES incidents (id),
        policy            TEXT    NOT NULL,
        step              INTEGER NOT NULL,
        round             INTEGER NOT NULL,
        next_ms           INTEGER,
        state             TEXT    NOT NULL CHECK (state IN ('active', 'acked', 'resolved', 'exhausted')),
        acked_ms          INTEGER,
        acked_by          TEXT,
        ack_timeout_ms    INTEGER,
        reminder_ms       INTEGER,
        drill             INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX escalations_due ON escalations (state, next_ms);
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY,
        channel     TEXT    NOT NULL,
        incident_id INTEGER,
        dedup_key   TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        message     TEXT    NOT NULL,
        status      TEXT    NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'bundled')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_ms     INTEGER NOT NULL,
        deadline_ms INTEGER,
        last_error  TEXT,
        permanent   INTEGER NOT NULL DEFAULT 0,
        provider_id TEXT,
        bundle_id   INTEGER,
        fallback_of INTEGER,
        created_ms  INTEGER NOT NULL,
        sent_ms     INTEGER
    );
    CREATE INDEX outbox_due ON outbox (status, next_ms);
    CREATE TABLE acks (
        id          INTEGER PRIMARY KEY,
        incident_id INTEGER NOT NULL REFERENCES incidents (id),
        person      TEXT,
        via         TEXT    NOT NULL,
        at_ms       INTEGER NOT NULL,
        nonce       TEXT UNIQUE
    );
    CREATE TABLE handovers (
        id           INTEGER PRIMARY KEY,
        shift        TEXT    NOT NULL,
        boundary_ms  INTEGER NOT NULL,
        outgoing     TEXT    NOT NULL,
        incoming     TEXT    NOT NULL,
        checklist    TEXT    NOT NULL,
        due_ms       INTEGER NOT NULL,
        signed_ms    INTEGER,
        signed_by    TEXT,
        escalated_ms INTEGER,
        UNIQUE (shift, boundary_ms)
    );
    CREATE TABLE handover_notes (
        id        INTEGER PRIMARY KEY,
        at_ms     INTEGER NOT NULL,
        author    TEXT    NOT NULL,
        text      TEXT    NOT NULL,
        handover  INTEGER REFERENCES handovers (id)
    );
    CREATE TABLE promises (
        id          INTEGER PRIMARY KEY,
        promise     TEXT    NOT NULL,
        subject     TEXT    NOT NULL,
        started_ms  INTEGER NOT NULL,
        deadline_ms INTEGER NOT NULL,
        warned_ms   INTEGER,
        paged_ms    INTEGER,
        escalated_ms INTEGER,
        done_ms     INTEGER,
        drill       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX promises_open ON promises (done_ms, deadline_ms);",
    // Backups: every job run (who, when, result, bytes, files, duration) and
    // run requests from the API, picked up by the daemon's backup task.
    "CREATE TABLE backup_runs (
        id           INTEGER PRIMARY KEY,
        set_name     TEXT    NOT NULL,
        job          TEXT    NOT NULL,
        repository   TEXT    NOT NULL,
        who          TEXT    NOT NULL,
        run_tag      TEXT    NOT NULL,
        started_ms   INTEGER NOT NULL,
        finished_ms  INTEGER NOT NULL,
        result       TEXT    NOT NULL,
        files        INTEGER NOT NULL DEFAULT 0,
        bytes        INTEGER NOT NULL DEFAULT 0,
        bytes_added  INTEGER NOT NULL DEFAULT 0,
        message      TEXT    NOT NULL DEFAULT ''
    );
    CREATE INDEX backup_runs_by_set ON backup_runs (set_name, started_ms);
    CREATE TABLE backup_requests (
        id           INTEGER PRIMARY KEY,
        set_name     TEXT    NOT NULL,
        job          TEXT    NOT NULL,
        who          TEXT    NOT NULL,
        requested_ms INTEGER NOT NULL,
        taken_ms     INTEGER
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
