//! Incidents: a DOWN flip opens one (dedup key per check), recovery resolves it, a flap within the window reopens it; all in SQLite.
//!
//! The recorder is the only writer of incidents. It receives flips in order
//! from `health` and writes each in one transaction (the flip, the incident
//! change and its timeline event), so a restart finds exactly what happened.
//! Reads for the API go through the same store. Incidents raised outside
//! the checks (a backup set failing 3-2-1) are written by `external`, by key.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus::{IntCounter, IntGauge, Registry};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::health::{Flip, State};
use crate::store::{Store, StoreError, from_ms, to_ms};

mod external;

pub use external::{Raised, Raiser, clear, open_keys, raise};

/// The dedup key of a check's incidents: one open incident per check.
pub fn dedup_key(check: &str) -> String {
    format!("check:{check}")
}

/// What a flip did to the incidents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Opened(i64),
    Reopened(i64),
    Resolved(i64),
    Updated(i64),
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: i64,
    pub dedup_key: String,
    /// The check's name; for an incident raised outside the checks, its key
    /// (`backup:nightly`), which no check's name can equal.
    pub check: String,
    pub title: String,
    pub status: String,
    #[serde(with = "crate::store::time_ms")]
    pub opened_at: SystemTime,
    #[serde(serialize_with = "time_opt")]
    pub resolved_at: Option<SystemTime>,
    /// How often a flap brought it back within the flap window.
    pub reopened: i64,
    /// Why it pages nobody, if it does not.
    pub suppressed: Option<String>,
    pub last_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(with = "crate::store::time_ms")]
    pub at: SystemTime,
    pub kind: String,
    pub message: String,
}

fn time_opt<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => crate::store::time_ms::serialize(t, s),
        None => s.serialize_none(),
    }
}

pub struct IncidentMetrics {
    pub open: IntGauge,
    pub opened: IntCounter,
}

impl IncidentMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<IncidentMetrics> {
        let open = IntGauge::new("lantern_incidents_open", "Incidents open now.")?;
        let opened = IntCounter::new(
            "lantern_incidents_opened_total",
            "Incidents opened or reopened since lantern started.",
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(opened.clone()))?;
        Ok(IncidentMetrics { open, opened })
    }
}

/// Applies flips to the store until `shutdown`, then drains what is queued.
pub async fn run(
    mut flips: mpsc::Receiver<Flip>,
    store: Store,
    config: watch::Receiver<Arc<Config>>,
    metrics: Arc<IncidentMetrics>,
    wake_pager: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    if let Ok(n) = count_open(&store).await {
        metrics.open.set(n);
    }
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            f = flips.recv() => match f { Some(f) => f, None => return },
        };
        // Whatever else is queued goes in the same transaction: at start
        // thousands of checks flip PENDING → UP at once, and one fsync per
        // flip would hold their schedulers back.
        let mut batch = vec![first];
        while batch.len() < 512 {
            match flips.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        apply(&store, &config, &metrics, &wake_pager, batch).await;
    }
    let mut rest = Vec::new();
    while let Ok(flip) = flips.try_recv() {
        rest.push(flip);
    }
    if !rest.is_empty() {
        apply(&store, &config, &metrics, &wake_pager, rest).await;
    }
}

async fn apply(
    store: &Store,
    config: &watch::Receiver<Arc<Config>>,
    metrics: &IncidentMetrics,
    wake_pager: &tokio::sync::Notify,
    flips: Vec<Flip>,
) {
    let (flap, batch) = {
        let c = config.borrow();
        // With paging configured, every check's incidents escalate by its
        // policy (or the default one).
        let batch: Vec<(Flip, Option<String>)> = flips
            .into_iter()
            .map(|flip| {
                let policy = c.paging.as_ref().map(|p| {
                    c.checks
                        .iter()
                        .find(|k| k.name == flip.check)
                        .and_then(|k| k.escalation.clone())
                        .unwrap_or_else(|| p.default_policy.clone())
                });
                (flip, policy)
            })
            .collect();
        (c.health.flap_window, batch)
    };
    let checks: Vec<Flip> = batch.iter().map(|(f, _)| f.clone()).collect();
    let changes = match record_many(store, batch, flap).await {
        Ok(c) => c,
        // The flips are lost to the store but not to the log; the next flip
        // of each check repairs its incident's state.
        Err(e) => {
            tracing::error!(error = %e, flips = checks.len(), "cannot record check flips");
            return;
        }
    };
    let mut any = false;
    for (flip, change) in checks.iter().zip(changes) {
        {
            if !matches!(change, Change::None | Change::Updated(_)) {
                any = true;
            }
            match change {
                Change::Opened(id) | Change::Reopened(id) => {
                    metrics.opened.inc();
                    tracing::warn!(incident = id, check = %flip.check, reopened = matches!(change, Change::Reopened(_)),
                        suppressed = flip.suppressed.as_deref().unwrap_or(""), "incident open");
                }
                Change::Resolved(id) => {
                    tracing::info!(incident = id, check = %flip.check, "incident resolved")
                }
                _ => {}
            }
        }
    }
    if any {
        wake_pager.notify_one();
        if let Ok(n) = count_open(store).await {
            metrics.open.set(n);
        }
    }
}

/// Writes several flips in one transaction, in order.
pub async fn record_many(
    store: &Store,
    flips: Vec<(Flip, Option<String>)>,
    flap_window: Duration,
) -> Result<Vec<Change>, StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(flips.len());
            for (flip, policy) in &flips {
                out.push(apply_flip(&tx, flip, flap_window, policy.as_deref())?);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
}

/// Writes one flip and its effect on the check's incident, in one transaction.
/// `policy`: the escalation policy to start when the incident (re)opens and
/// may page; `None` when paging is not configured.
pub async fn record(
    store: &Store,
    flip: Flip,
    flap_window: Duration,
    policy: Option<String>,
) -> Result<Change, StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let change = apply_flip(&tx, &flip, flap_window, policy.as_deref())?;
            tx.commit()?;
            Ok(change)
        })
        .await
}

/// One flip's effect inside the caller's transaction.
fn apply_flip(
    tx: &rusqlite::Transaction,
    flip: &Flip,
    flap_window: Duration,
    policy: Option<&str>,
) -> rusqlite::Result<Change> {
    let at = to_ms(flip.at);
    tx.execute(
        "INSERT INTO check_flips (check_name, at_ms, from_state, to_state, reason, suppressed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            flip.check,
            at,
            flip.from.as_str(),
            flip.to.as_str(),
            flip.reason,
            flip.suppressed
        ],
    )?;
    let key = dedup_key(&flip.check);
    let open: Option<i64> = tx
        .query_row(
            "SELECT id FROM incidents WHERE dedup_key = ?1 AND status = 'open'",
            [&key],
            |r| r.get(0),
        )
        .optional()?;
    let event = |tx: &rusqlite::Transaction, id: i64, kind: &str, msg: &str| {
        tx.execute(
            "INSERT INTO incident_events (incident_id, at_ms, kind, message) VALUES (?1, ?2, ?3, ?4)",
            params![id, at, kind, msg],
        )
    };
    let what = describe(flip);
    let change = match (flip.to, open) {
        (State::Down, Some(id)) => {
            tx.execute(
                "UPDATE incidents SET last_reason = ?2 WHERE id = ?1",
                params![id, flip.reason],
            )?;
            event(tx, id, "flip", &what)?;
            Change::Updated(id)
        }
        (State::Down, None) => {
            let since = at - flap_window.as_millis() as i64;
            let recent: Option<i64> = tx
                .query_row(
                    "SELECT id FROM incidents WHERE dedup_key = ?1 AND status = 'resolved'
                     AND resolved_ms >= ?2 ORDER BY id DESC LIMIT 1",
                    params![key, since],
                    |r| r.get(0),
                )
                .optional()?;
            match recent {
                Some(id) => {
                    tx.execute(
                        "UPDATE incidents SET status = 'open', resolved_ms = NULL,
                         reopened = reopened + 1, last_reason = ?2, suppressed = ?3 WHERE id = ?1",
                        params![id, flip.reason, flip.suppressed],
                    )?;
                    event(tx, id, "reopened", &what)?;
                    Change::Reopened(id)
                }
                None => {
                    let title = format!("{} is down", flip.check);
                    tx.execute(
                        "INSERT INTO incidents (dedup_key, check_name, title, status, opened_ms, suppressed, last_reason)
                         VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6)",
                        params![key, flip.check, title, at, flip.suppressed, flip.reason],
                    )?;
                    let id = tx.last_insert_rowid();
                    event(tx, id, "opened", &what)?;
                    Change::Opened(id)
                }
            }
        }
        (State::Up | State::Degraded, Some(id)) => {
            tx.execute(
                "UPDATE incidents SET status = 'resolved', resolved_ms = ?2 WHERE id = ?1",
                params![id, at],
            )?;
            event(tx, id, "resolved", &what)?;
            Change::Resolved(id)
        }
        (_, Some(id)) => {
            event(tx, id, "flip", &what)?;
            Change::Updated(id)
        }
        (_, None) => Change::None,
    };
    // The escalation lives and dies with the incident, in this same transaction.
    match (change.clone(), &policy) {
        (Change::Opened(id) | Change::Reopened(id), Some(p)) if flip.suppressed.is_none() => {
            crate::page::escalation::start(tx, id, p, at, false)?
        }
        (Change::Resolved(id), _) => crate::page::escalation::resolve(tx, id, at)?,
        _ => {}
    }
    Ok(change)
}

fn describe(flip: &Flip) -> String {
    let mut s = format!("{} → {}", flip.from.as_str(), flip.to.as_str());
    if let Some(r) = &flip.reason {
        s.push_str(": ");
        s.push_str(r);
    }
    if let Some(why) = &flip.suppressed {
        s.push_str(&format!(" (not paged: {why})"));
    }
    s
}

pub async fn count_open(store: &Store) -> Result<i64, StoreError> {
    store
        .call(|c| {
            c.query_row(
                "SELECT count(*) FROM incidents WHERE status = 'open'",
                [],
                |r| r.get(0),
            )
        })
        .await
}

const COLUMNS: &str = "id, dedup_key, check_name, title, status, opened_ms, resolved_ms, reopened, suppressed, last_reason";

fn row(r: &rusqlite::Row) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        dedup_key: r.get(1)?,
        check: r.get(2)?,
        title: r.get(3)?,
        status: r.get(4)?,
        opened_at: from_ms(r.get(5)?),
        resolved_at: r.get::<_, Option<i64>>(6)?.map(from_ms),
        reopened: r.get(7)?,
        suppressed: r.get(8)?,
        last_reason: r.get(9)?,
    })
}

/// Which incidents to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Open,
    Resolved,
    All,
}

/// Newest first, at most `limit`.
pub async fn list(store: &Store, filter: Filter, limit: u32) -> Result<Vec<Incident>, StoreError> {
    store
        .call(move |c| {
            let cond = match filter {
                Filter::Open => "WHERE status = 'open'",
                Filter::Resolved => "WHERE status = 'resolved'",
                Filter::All => "",
            };
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM incidents {cond} ORDER BY id DESC LIMIT ?1"
            ))?;
            stmt.query_map([limit], row)?.collect()
        })
        .await
}

/// One incident and its whole timeline, oldest event first.
pub async fn get(store: &Store, id: i64) -> Result<Option<(Incident, Vec<Event>)>, StoreError> {
    store
        .call(move |c| {
            let Some(incident) = c
                .query_row(&format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"), [id], row)
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = c.prepare(
                "SELECT at_ms, kind, message FROM incident_events WHERE incident_id = ?1 ORDER BY id",
            )?;
            let events = stmt
                .query_map([id], |r| {
                    Ok(Event {
                        at: from_ms(r.get(0)?),
                        kind: r.get(1)?,
                        message: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((incident, events)))
        })
        .await
}

/// Adds a note to an incident's timeline; false when there is no such incident.
pub async fn add_note(store: &Store, id: i64, text: String) -> Result<bool, StoreError> {
    store
        .call(move |c| {
            let exists: bool =
                c.query_row("SELECT count(*) FROM incidents WHERE id = ?1", [id], |r| r.get::<_, i64>(0))? > 0;
            if exists {
                c.execute(
                    "INSERT INTO incident_events (incident_id, at_ms, kind, message) VALUES (?1, ?2, 'note', ?3)",
                    params![id, to_ms(SystemTime::now()), text],
                )?;
            }
            Ok(exists)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flip(to: State, at_s: u64) -> Flip {
        Flip {
            check: "shop".into(),
            from: State::Up,
            to,
            at: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + at_s),
            reason: (to == State::Down).then(|| "HTTP 502".into()),
            suppressed: None,
        }
    }

    #[tokio::test]
    async fn a_flap_within_the_window_reopens_the_same_incident_and_a_later_one_opens_anew() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let window = Duration::from_secs(600);
        let first = record(&store, flip(State::Down, 0), window, None)
            .await
            .unwrap();
        let Change::Opened(id) = first else {
            panic!("{first:?}")
        };
        assert_eq!(
            record(&store, flip(State::Down, 5), window, None)
                .await
                .unwrap(),
            Change::Updated(id)
        );
        assert_eq!(
            record(&store, flip(State::Up, 60), window, None)
                .await
                .unwrap(),
            Change::Resolved(id)
        );
        assert_eq!(
            record(&store, flip(State::Down, 120), window, None)
                .await
                .unwrap(),
            Change::Reopened(id)
        );
        assert_eq!(
            record(&store, flip(State::Up, 180), window, None)
                .await
                .unwrap(),
            Change::Resolved(id)
        );
        let later = record(&store, flip(State::Down, 180 + 601), window, None)
            .await
            .unwrap();
        assert!(matches!(later, Change::Opened(n) if n != id), "{later:?}");
        let (incident, events) = get(&store, id).await.unwrap().unwrap();
        assert_eq!(incident.reopened, 1);
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["opened", "flip", "resolved", "reopened", "resolved"]
        );
        assert!(
            add_note(&store, id, "restarted php-fpm".into())
                .await
                .unwrap()
        );
        assert!(!add_note(&store, 999, "nobody".into()).await.unwrap());
    }
}
