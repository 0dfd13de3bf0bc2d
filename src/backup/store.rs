//! Backup run records and API run requests in SQLite.

use std::collections::HashMap;

use chrono::Utc;
use rusqlite::params;
use serde::Serialize;

use crate::store::{Store, StoreError};

/// One job run as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub set: String,
    pub job: String,
    pub repository: String,
    pub who: String,
    pub run_tag: String,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub duration_ms: i64,
    pub result: String,
    pub files: i64,
    pub bytes: i64,
    pub bytes_added: i64,
    pub message: String,
}

pub async fn record(store: &Store, r: RunRecord) -> Result<i64, StoreError> {
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO backup_runs (set_name, job, repository, who, run_tag, started_ms,
                 finished_ms, result, files, bytes, bytes_added, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    r.set,
                    r.job,
                    r.repository,
                    r.who,
                    r.run_tag,
                    r.started_ms,
                    r.finished_ms,
                    r.result,
                    r.files,
                    r.bytes,
                    r.bytes_added,
                    r.message
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
}

/// The newest runs first, optionally of one set.
pub async fn list(
    store: &Store,
    set: Option<String>,
    limit: u32,
) -> Result<Vec<RunRecord>, StoreError> {
    store
        .call(move |c| {
            let mut st = c.prepare(
                "SELECT id, set_name, job, repository, who, run_tag, started_ms, finished_ms,
                        result, files, bytes, bytes_added, message
                 FROM backup_runs WHERE ?1 IS NULL OR set_name = ?1
                 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = st.query_map(params![set, limit], |r| {
                let started_ms: i64 = r.get(6)?;
                let finished_ms: i64 = r.get(7)?;
                Ok(RunRecord {
                    id: r.get(0)?,
                    set: r.get(1)?,
                    job: r.get(2)?,
                    repository: r.get(3)?,
                    who: r.get(4)?,
                    run_tag: r.get(5)?,
                    started_ms,
                    finished_ms,
                    duration_ms: finished_ms - started_ms,
                    result: r.get(8)?,
                    files: r.get(9)?,
                    bytes: r.get(10)?,
                    bytes_added: r.get(11)?,
                    message: r.get(12)?,
                })
            })?;
            rows.collect()
        })
        .await
}

/// Queues a run of `job` for `set`; the daemon's backup task takes it.
pub async fn request(
    store: &Store,
    set: String,
    job: String,
    who: String,
) -> Result<i64, StoreError> {
    let now = Utc::now().timestamp_millis();
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO backup_requests (set_name, job, who, requested_ms) VALUES (?1, ?2, ?3, ?4)",
                params![set, job, who, now],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
}

/// Takes every pending request, oldest first: (set, job, who).
pub async fn take_requests(store: &Store) -> Result<Vec<(String, String, String)>, StoreError> {
    let now = Utc::now().timestamp_millis();
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let out = {
                let mut st = tx.prepare(
                    "SELECT set_name, job, who FROM backup_requests WHERE taken_ms IS NULL ORDER BY id",
                )?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.execute(
                "UPDATE backup_requests SET taken_ms = ?1 WHERE taken_ms IS NULL",
                params![now],
            )?;
            tx.commit()?;
            Ok(out)
        })
        .await
}

/// When each (set, job) last started, in Unix milliseconds, whatever its
/// result: what the catch-up at start compares the schedules with.
pub async fn last_starts(store: &Store) -> Result<HashMap<(String, String), i64>, StoreError> {
    store
        .call(|c| {
            let mut st = c.prepare(
                "SELECT set_name, job, max(started_ms) FROM backup_runs GROUP BY set_name, job",
            )?;
            let rows = st.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
            rows.collect()
        })
        .await
}
