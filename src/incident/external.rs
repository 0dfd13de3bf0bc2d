//! Incidents raised outside the checks (a backup set failing 3-2-1): raised and cleared by key, each change one transaction with its timeline event and escalation.
//!
//! A check's incidents follow its flips; these follow a condition that a
//! part of lantern re-evaluates from scratch after every start. So `raise`
//! and `clear` are idempotent: raising what is already open writes nothing
//! (or only a changed reason), clearing what is not open writes nothing, and
//! a restart that finds the same condition neither duplicates nor resolves
//! and reopens the incident. The subject of such an incident is its key
//! (`backup:nightly`), stored in the `check_name` column: no check can have
//! that name, since check names hold no `:`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::{OptionalExtension, params};
use tokio::sync::Notify;

use super::{Change, IncidentMetrics};
use crate::store::{Store, StoreError, to_ms};

/// A condition that holds now and wants an open incident.
#[derive(Debug, Clone)]
pub struct Raised {
    /// One open incident per key, e.g. `backup:nightly`; never `check:…`.
    pub key: String,
    /// Used when the incident opens; a reopened one keeps its first title.
    pub title: String,
    /// Why, in a sentence: the incident's `last_reason` and its timeline.
    pub reason: String,
    /// The escalation policy started when it (re)opens; `None` when paging is not configured.
    pub policy: Option<String>,
    pub at: SystemTime,
}

/// Opens the incident of `r.key`, reopens it if it was resolved within
/// `flap_window`, or updates its reason if it is open. Raising an open
/// incident with an unchanged reason writes nothing and is `Change::None`.
pub async fn raise(store: &Store, r: Raised, flap_window: Duration) -> Result<Change, StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let change = apply_raise(&tx, &r, flap_window)?;
            tx.commit()?;
            Ok(change)
        })
        .await
}

fn apply_raise(
    tx: &rusqlite::Transaction,
    r: &Raised,
    flap_window: Duration,
) -> rusqlite::Result<Change> {
    let at = to_ms(r.at);
    let open: Option<(i64, Option<String>)> = tx
        .query_row(
            "SELECT id, last_reason FROM incidents WHERE dedup_key = ?1 AND status = 'open'",
            [&r.key],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let change = match open {
        Some((_, last)) if last.as_deref() == Some(r.reason.as_str()) => Change::None,
        Some((id, _)) => {
            tx.execute(
                "UPDATE incidents SET last_reason = ?2 WHERE id = ?1",
                params![id, r.reason],
            )?;
            event(tx, id, at, "updated", &r.reason)?;
            Change::Updated(id)
        }
        None => {
            let recent: Option<i64> = tx
                .query_row(
                    "SELECT id FROM incidents WHERE dedup_key = ?1 AND status = 'resolved'
                     AND resolved_ms >= ?2 ORDER BY id DESC LIMIT 1",
                    params![r.key, at - flap_window.as_millis() as i64],
                    |row| row.get(0),
                )
                .optional()?;
            match recent {
                Some(id) => {
                    tx.execute(
                        "UPDATE incidents SET status = 'open', resolved_ms = NULL,
                         reopened = reopened + 1, last_reason = ?2 WHERE id = ?1",
                        params![id, r.reason],
                    )?;
                    event(tx, id, at, "reopened", &r.reason)?;
                    Change::Reopened(id)
                }
                None => {
                    tx.execute(
                        "INSERT INTO incidents (dedup_key, check_name, title, status, opened_ms, last_reason)
                         VALUES (?1, ?1, ?2, 'open', ?3, ?4)",
                        params![r.key, r.title, at, r.reason],
                    )?;
                    let id = tx.last_insert_rowid();
                    event(tx, id, at, "opened", &r.reason)?;
                    Change::Opened(id)
                }
            }
        }
    };
    // As for a check: the escalation starts in the transaction that opens.
    if let (Change::Opened(id) | Change::Reopened(id), Some(p)) = (&change, &r.policy) {
        crate::page::escalation::start(tx, *id, p, at, false)?;
    }
    Ok(change)
}

/// Resolves the open incident of `key`, if there is one; `reason` says why
/// it is over. Anything else is `Change::None`.
pub async fn clear(
    store: &Store,
    key: String,
    reason: String,
    at: SystemTime,
) -> Result<Change, StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let at = to_ms(at);
            let open: Option<i64> = tx
                .query_row(
                    "SELECT id FROM incidents WHERE dedup_key = ?1 AND status = 'open'",
                    [&key],
                    |row| row.get(0),
                )
                .optional()?;
            let change = match open {
                Some(id) => {
                    tx.execute(
                        "UPDATE incidents SET status = 'resolved', resolved_ms = ?2 WHERE id = ?1",
                        params![id, at],
                    )?;
                    event(&tx, id, at, "resolved", &reason)?;
                    crate::page::escalation::resolve(&tx, id, at)?;
                    Change::Resolved(id)
                }
                None => Change::None,
            };
            tx.commit()?;
            Ok(change)
        })
        .await
}

/// The keys of the open incidents whose key starts with `prefix`.
pub async fn open_keys(store: &Store, prefix: &str) -> Result<Vec<String>, StoreError> {
    let prefix = prefix.to_string();
    store
        .call(move |c| {
            // Not LIKE: a `_` in the prefix would match any character.
            let mut st = c.prepare(
                "SELECT dedup_key FROM incidents WHERE status = 'open'
                 AND substr(dedup_key, 1, length(?1)) = ?1 ORDER BY id",
            )?;
            let keys = st.query_map([prefix], |row| row.get(0))?;
            keys.collect()
        })
        .await
}

fn event(
    tx: &rusqlite::Transaction,
    id: i64,
    at: i64,
    kind: &str,
    message: &str,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO incident_events (incident_id, at_ms, kind, message) VALUES (?1, ?2, ?3, ?4)",
        params![id, at, kind, message],
    )
}

/// What a writer of incidents outside the recorder needs: the store, and
/// the pager to wake and the gauges to keep true, as the recorder does.
#[derive(Clone)]
pub struct Raiser {
    store: Store,
    metrics: Arc<IncidentMetrics>,
    wake_pager: Arc<Notify>,
}

impl Raiser {
    pub fn new(store: Store, metrics: Arc<IncidentMetrics>, wake_pager: Arc<Notify>) -> Raiser {
        Raiser {
            store,
            metrics,
            wake_pager,
        }
    }

    pub async fn raise(&self, r: Raised, flap_window: Duration) -> Result<Change, StoreError> {
        let key = r.key.clone();
        let change = raise(&self.store, r, flap_window).await?;
        if let Change::Opened(id) | Change::Reopened(id) = change {
            self.metrics.opened.inc();
            tracing::warn!(incident = id, key = %key, reopened = matches!(change, Change::Reopened(_)), "incident open");
        }
        self.after(&change).await;
        Ok(change)
    }

    pub async fn clear(&self, key: &str, reason: String) -> Result<Change, StoreError> {
        let change = clear(&self.store, key.to_string(), reason, SystemTime::now()).await?;
        if let Change::Resolved(id) = change {
            tracing::info!(incident = id, key, "incident resolved");
        }
        self.after(&change).await;
        Ok(change)
    }

    pub async fn open_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        open_keys(&self.store, prefix).await
    }

    async fn after(&self, change: &Change) {
        if matches!(
            change,
            Change::Opened(_) | Change::Reopened(_) | Change::Resolved(_)
        ) {
            // The first page (or the resolve notice) should not wait a tick.
            self.wake_pager.notify_one();
            if let Ok(n) = super::count_open(&self.store).await {
                self.metrics.open.set(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{Filter, get, list};

    fn raised(reason: &str, at_s: u64, policy: Option<&str>) -> Raised {
        Raised {
            key: "backup:nightly".into(),
            title: "backup set nightly: 3-2-1 not met".into(),
            reason: reason.into(),
            policy: policy.map(str::to_string),
            at: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + at_s),
        }
    }

    fn at(s: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    #[tokio::test]
    async fn raising_twice_keeps_one_incident_and_a_new_reason_only_updates_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let window = Duration::from_secs(600);
        let Change::Opened(id) = raise(&store, raised("no copy", 0, None), window)
            .await
            .unwrap()
        else {
            panic!("the first raise opens")
        };
        // A restart re-evaluates and raises the same condition again.
        assert_eq!(
            raise(&store, raised("no copy", 5, None), window)
                .await
                .unwrap(),
            Change::None
        );
        assert_eq!(
            raise(&store, raised("stale copy", 10, None), window)
                .await
                .unwrap(),
            Change::Updated(id)
        );
        assert_eq!(list(&store, Filter::All, 10).await.unwrap().len(), 1);
        assert_eq!(
            open_keys(&store, "backup:").await.unwrap(),
            ["backup:nightly"]
        );
        assert!(open_keys(&store, "check:").await.unwrap().is_empty());
        let (incident, events) = get(&store, id).await.unwrap().unwrap();
        assert_eq!(incident.check, "backup:nightly");
        assert_eq!(incident.last_reason.as_deref(), Some("stale copy"));
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["opened", "updated"]);
    }

    #[tokio::test]
    async fn clearing_resolves_once_and_a_raise_within_the_flap_window_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let window = Duration::from_secs(600);
        let key = || "backup:nightly".to_string();
        assert_eq!(
            clear(&store, key(), "fine".into(), at(0)).await.unwrap(),
            Change::None,
            "nothing open, nothing to clear"
        );
        let Change::Opened(id) = raise(&store, raised("no copy", 0, Some("default")), window)
            .await
            .unwrap()
        else {
            panic!("the first raise opens")
        };
        let escalation = |store: &Store| {
            let store = store.clone();
            async move {
                store
                    .call(move |c| {
                        c.query_row(
                            "SELECT state FROM escalations WHERE incident_id = ?1",
                            [id],
                            |r| r.get::<_, String>(0),
                        )
                    })
                    .await
                    .unwrap()
            }
        };
        assert_eq!(escalation(&store).await, "active");
        assert_eq!(
            clear(&store, key(), "compliant".into(), at(60))
                .await
                .unwrap(),
            Change::Resolved(id)
        );
        assert_eq!(escalation(&store).await, "resolved");
        assert_eq!(
            clear(&store, key(), "compliant".into(), at(61))
                .await
                .unwrap(),
            Change::None
        );
        assert_eq!(
            raise(&store, raised("no copy", 120, Some("default")), window)
                .await
                .unwrap(),
            Change::Reopened(id)
        );
        assert_eq!(escalation(&store).await, "active");
        clear(&store, key(), "compliant".into(), at(180))
            .await
            .unwrap();
        let later = raise(&store, raised("no copy", 180 + 601, None), window)
            .await
            .unwrap();
        assert!(matches!(later, Change::Opened(n) if n != id), "{later:?}");
    }
}
