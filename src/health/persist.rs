//! What health keeps in the store so a restart remembers it: heartbeat pings and API-set maintenance windows.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::ApiWindow;
use crate::probe::heartbeat::Pings;
use crate::store::{Store, StoreError, from_ms, to_ms};

pub async fn load_heartbeats(store: &Store) -> Result<Vec<(String, Pings)>, StoreError> {
    store
        .call(|c| {
            let mut stmt = c.prepare(
                "SELECT check_name, expecting_ms, last_success_ms, last_start_ms, last_failure_ms,
                        last_failure_code, last_exit_code FROM heartbeats",
            )?;
            stmt.query_map([], |r| {
                let failure: Option<i64> = r.get(4)?;
                Ok((
                    r.get::<_, String>(0)?,
                    Pings {
                        expecting_since: from_ms(r.get(1)?),
                        last_success: r.get::<_, Option<i64>>(2)?.map(from_ms),
                        last_start: r.get::<_, Option<i64>>(3)?.map(from_ms),
                        last_failure: failure.map(|f| (from_ms(f), r.get(5).ok().flatten())),
                        last_exit_code: r.get(6)?,
                    },
                ))
            })?
            .collect()
        })
        .await
}

/// Stores a check's pings (before the API answers, so an acknowledged ping survives a crash).
pub async fn save_heartbeat(store: &Store, check: String, p: Pings) -> Result<(), StoreError> {
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO heartbeats (check_name, expecting_ms, last_success_ms, last_start_ms,
                     last_failure_ms, last_failure_code, last_exit_code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (check_name) DO UPDATE SET expecting_ms = ?2, last_success_ms = ?3,
                     last_start_ms = ?4, last_failure_ms = ?5, last_failure_code = ?6, last_exit_code = ?7",
                params![
                    check,
                    to_ms(p.expecting_since),
                    p.last_success.map(to_ms),
                    p.last_start.map(to_ms),
                    p.last_failure.map(|(t, _)| to_ms(t)),
                    p.last_failure.and_then(|(_, code)| code),
                    p.last_exit_code,
                ],
            )?;
            Ok(())
        })
        .await
}

fn utc(ms: i64) -> DateTime<Utc> {
    from_ms(ms).into()
}

/// Windows that have not ended yet.
pub async fn load_windows(store: &Store) -> Result<Vec<ApiWindow>, StoreError> {
    let now = to_ms(std::time::SystemTime::now());
    store
        .call(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, start_ms, end_ms, checks, reason FROM maintenance_windows
                 WHERE end_ms > ?1 ORDER BY start_ms",
            )?;
            stmt.query_map([now], |r| {
                let checks: String = r.get(3)?;
                Ok(ApiWindow {
                    id: r.get(0)?,
                    start: utc(r.get(1)?),
                    end: utc(r.get(2)?),
                    checks: serde_json::from_str(&checks).unwrap_or_default(),
                    reason: r.get(4)?,
                })
            })?
            .collect()
        })
        .await
}

pub async fn add_window(
    store: &Store,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    checks: Vec<String>,
    reason: String,
) -> Result<i64, StoreError> {
    let checks = serde_json::to_string(&checks).unwrap_or_else(|_| "[]".into());
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO maintenance_windows (start_ms, end_ms, checks, reason, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    start.timestamp_millis(),
                    end.timestamp_millis(),
                    checks,
                    reason,
                    to_ms(std::time::SystemTime::now())
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
}

/// Ends a window early; false when there was none with that id.
pub async fn delete_window(store: &Store, id: i64) -> Result<bool, StoreError> {
    store
        .call(move |c| Ok(c.execute("DELETE FROM maintenance_windows WHERE id = ?1", [id])? > 0))
        .await
}
