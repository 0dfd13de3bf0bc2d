//! Health: turns observations into check states and state flips, with maintenance, dependencies and the connectivity guard.
//!
//! The scheduler hands every observation to [`Health::record`]; health keeps
//! each check's [`Tracker`] and last observation, overlays MAINTENANCE while
//! a window is active, and emits a [`Flip`] when the reported state changes.
//! A flip carries why it must not page (`suppressed`): a maintenance window,
//! a dependency that is itself down, lantern's own host being offline, or
//! `page = false`. Health never opens incidents or pages: flips flow one way
//! to `incident`.

pub mod metrics;
pub mod persist;
pub mod scheduler;
pub mod tracker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{CheckSpec, Config};
use crate::probe::runner::Observation;
pub use metrics::CheckMetrics;
pub use tracker::{Rules, State, Tracker};

/// A change of a check's reported state.
#[derive(Debug, Clone, Serialize)]
pub struct Flip {
    pub check: String,
    pub from: State,
    pub to: State,
    #[serde(with = "crate::store::time_ms")]
    pub at: SystemTime,
    /// The failing observation's reason, for DOWN and PENDING.
    pub reason: Option<String>,
    /// Why this flip must not page, if it must not.
    pub suppressed: Option<String>,
}

/// A maintenance window set through the API (config windows live in the config).
#[derive(Debug, Clone, Serialize)]
pub struct ApiWindow {
    pub id: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Empty: every check.
    pub checks: Vec<String>,
    pub reason: String,
}

/// What `/api/v1/checks` shows of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckView {
    pub name: String,
    pub kind: &'static str,
    pub state: State,
    /// The state underneath a maintenance window.
    pub health: State,
    #[serde(with = "crate::store::time_ms")]
    pub since: SystemTime,
    pub consecutive_failures: u32,
    pub labels: std::collections::BTreeMap<String, String>,
    pub depends_on: Vec<String>,
    pub maintenance: Option<String>,
    pub last: Option<Observation>,
}

struct Entry {
    tracker: Tracker,
    reported: State,
    since: SystemTime,
    last: Option<Observation>,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            tracker: Tracker::default(),
            reported: State::Pending,
            since: SystemTime::now(),
            last: None,
        }
    }
}

#[derive(Default)]
struct Inner {
    checks: HashMap<String, Entry>,
    windows: Vec<ApiWindow>,
}

/// The live state of every check, shared by the scheduler, the API and the status page.
#[derive(Clone)]
pub struct Health {
    // std Mutex: every section is a few map operations, never held across an await.
    inner: Arc<Mutex<Inner>>,
    flips: mpsc::Sender<Flip>,
    metrics: Arc<CheckMetrics>,
}

impl Health {
    /// `flips` receives every state change, in order.
    pub fn new(flips: mpsc::Sender<Flip>, metrics: Arc<CheckMetrics>) -> Health {
        Health {
            inner: Arc::default(),
            flips,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn metrics(&self) -> &CheckMetrics {
        &self.metrics
    }

    /// Records one observation of `spec`. Returns whether the check is now
    /// suspect (failed, not yet DOWN), so the scheduler confirms it soon.
    pub async fn record(&self, spec: &CheckSpec, config: &Config, obs: Observation) -> bool {
        let (flip, suspect) = self.apply(spec, config, obs, Utc::now());
        if let Some(flip) = flip {
            tracing::info!(
                check = %flip.check, from = flip.from.as_str(), to = flip.to.as_str(),
                reason = flip.reason.as_deref().unwrap_or(""),
                suppressed = flip.suppressed.as_deref().unwrap_or(""),
                "check state changed"
            );
            // The receiver lives as long as the daemon; a send error means
            // shutdown, when losing a flip is the lesser evil to hanging.
            let _ = self.flips.send(flip).await;
        }
        suspect
    }

    /// The synchronous core of [`Health::record`], at a given wall time.
    fn apply(
        &self,
        spec: &CheckSpec,
        config: &Config,
        obs: Observation,
        now: DateTime<Utc>,
    ) -> (Option<Flip>, bool) {
        let rules = Rules {
            failure: spec.failure_threshold,
            success: spec.success_threshold,
        };
        let slow = obs.ok
            && spec
                .degraded_above
                .is_some_and(|limit| obs.duration > limit);
        let mut inner = self.lock();
        let window = maintenance_reason(spec, config, &inner.windows, now);
        let entry = inner
            .checks
            .entry(spec.name.clone())
            .or_insert_with(Entry::new);
        let health = entry.tracker.observe(&rules, obs.ok, slow);
        let reported = if window.is_some() {
            State::Maintenance
        } else {
            health
        };
        self.metrics.observe(spec, &obs, reported, &entry.tracker);
        let suspect = entry.tracker.suspect();
        let from = entry.reported;
        let reason = obs.reason.clone();
        entry.last = Some(obs);
        if from == reported {
            return (None, suspect);
        }
        entry.reported = reported;
        entry.since = now.into();
        let suppressed = if reported == State::Down {
            suppression(spec, config, &inner)
        } else {
            None
        };
        let flip = Flip {
            check: spec.name.clone(),
            from,
            to: reported,
            at: now.into(),
            reason: if reported.is_serving() { None } else { reason },
            suppressed,
        };
        (Some(flip), suspect)
    }

    /// Drops checks that are no longer configured (after a reload).
    pub fn retain(&self, config: &Config) {
        let mut inner = self.lock();
        let keep: std::collections::HashSet<&str> =
            config.checks.iter().map(|c| c.name.as_str()).collect();
        let gone: Vec<String> = inner
            .checks
            .keys()
            .filter(|k| !keep.contains(k.as_str()))
            .cloned()
            .collect();
        for name in gone {
            inner.checks.remove(&name);
            self.metrics.forget(&name);
        }
    }

    /// Every configured check with its state; unobserved checks are PENDING.
    pub fn views(&self, config: &Config) -> Vec<CheckView> {
        let inner = self.lock();
        let now = Utc::now();
        config
            .checks
            .iter()
            .map(|spec| {
                let entry = inner.checks.get(&spec.name);
                let window = maintenance_reason(spec, config, &inner.windows, now);
                let health = entry.map_or(State::Pending, |e| e.tracker.state());
                CheckView {
                    name: spec.name.clone(),
                    kind: spec.kind.name().as_str(),
                    state: if window.is_some() {
                        State::Maintenance
                    } else {
                        health
                    },
                    health,
                    since: entry.map_or_else(SystemTime::now, |e| e.since),
                    consecutive_failures: entry.map_or(0, |e| e.tracker.consecutive_failures()),
                    labels: spec.labels.clone(),
                    depends_on: spec.depends_on.clone(),
                    maintenance: window,
                    last: entry.and_then(|e| e.last.clone()),
                }
            })
            .collect()
    }

    /// Replaces the API-set maintenance windows (the store is their source of truth).
    pub fn set_windows(&self, windows: Vec<ApiWindow>) {
        self.lock().windows = windows;
    }

    pub fn windows(&self) -> Vec<ApiWindow> {
        self.lock().windows.clone()
    }

    /// Whether a window covering every check is active: the whole platform is in maintenance.
    pub fn global_maintenance(&self, config: &Config) -> Option<String> {
        let now = Utc::now();
        if let Some(w) = config
            .maintenance
            .iter()
            .find(|g| g.checks.is_empty() && g.window.is_active(now))
        {
            return Some(w.window.reason().to_string());
        }
        self.lock()
            .windows
            .iter()
            .find(|w| w.checks.is_empty() && w.start <= now && now < w.end)
            .map(|w| w.reason.clone())
    }
}

/// The reason of the first maintenance window covering `spec` at `now`.
fn maintenance_reason(
    spec: &CheckSpec,
    config: &Config,
    api: &[ApiWindow],
    now: DateTime<Utc>,
) -> Option<String> {
    let covers = |checks: &[String]| checks.is_empty() || checks.iter().any(|c| c == &spec.name);
    spec.maintenance
        .iter()
        .find(|w| w.is_active(now))
        .map(|w| w.reason().to_string())
        .or_else(|| {
            config
                .maintenance
                .iter()
                .find(|g| covers(&g.checks) && g.window.is_active(now))
                .map(|g| g.window.reason().to_string())
        })
        .or_else(|| {
            api.iter()
                .find(|w| covers(&w.checks) && w.start <= now && now < w.end)
                .map(|w| w.reason.clone())
        })
}

/// Why a DOWN flip of `spec` must not page, if it must not.
fn suppression(spec: &CheckSpec, config: &Config, inner: &Inner) -> Option<String> {
    if !spec.page {
        return Some("paging is off for this check (`page = false`)".into());
    }
    let state_of = |name: &str| inner.checks.get(name).map(|e| e.reported);
    for dep in &spec.depends_on {
        match state_of(dep) {
            Some(State::Down) => return Some(format!("its dependency `{dep}` is down")),
            Some(State::Maintenance) => {
                return Some(format!("its dependency `{dep}` is in maintenance"));
            }
            _ => {}
        }
    }
    let guards = &config.health.connectivity_checks;
    if !guards.is_empty()
        && !guards.contains(&spec.name)
        && guards.iter().all(|g| {
            inner
                .checks
                .get(g)
                .is_some_and(|e| e.tracker.state() == State::Down)
        })
    {
        return Some(
            "lantern's own host has lost the network (every connectivity check is down)".into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(text: &str) -> Config {
        Config::parse(std::path::Path::new("t.toml"), text).unwrap()
    }

    fn obs(ok: bool) -> Observation {
        Observation {
            at: SystemTime::now(),
            ok,
            duration: Duration::from_millis(5),
            attempts: 1,
            reason: (!ok).then(|| "connection refused".to_string()),
            cert_expiry: None,
            chain_expiry: None,
            heartbeat_age: None,
        }
    }

    fn health() -> (Health, mpsc::Receiver<Flip>) {
        let (tx, rx) = mpsc::channel(16);
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(CheckMetrics::new(&registry).unwrap());
        (Health::new(tx, metrics), rx)
    }

    const TWO: &str = r#"
[[checks]]
name = "db"
kind = "tcp"
address = "127.0.0.1:1"
failure-threshold = 1

[[checks]]
name = "api"
kind = "tcp"
address = "127.0.0.1:1"
failure-threshold = 1
depends-on = ["db"]
"#;

    #[test]
    fn a_check_whose_dependency_is_down_flips_without_paging() {
        let cfg = config(TWO);
        let (h, _rx) = health();
        let now = Utc::now();
        let (db, _) = h.apply(&cfg.checks[0], &cfg, obs(false), now);
        assert_eq!(db.unwrap().suppressed, None, "the root cause pages");
        let (api, _) = h.apply(&cfg.checks[1], &cfg, obs(false), now);
        let api = api.unwrap();
        assert_eq!(api.to, State::Down, "the flip is recorded");
        assert!(api.suppressed.unwrap().contains("`db` is down"));
    }

    #[test]
    fn every_connectivity_check_down_means_lantern_is_offline_and_pages_nobody() {
        let text = format!(
            "[health]\nconnectivity-checks = [\"db\"]\n{}",
            TWO.replace("depends-on = [\"db\"]", "")
        );
        let cfg = config(&text);
        let (h, _rx) = health();
        let now = Utc::now();
        h.apply(&cfg.checks[0], &cfg, obs(false), now);
        let (api, _) = h.apply(&cfg.checks[1], &cfg, obs(false), now);
        assert!(
            api.unwrap()
                .suppressed
                .unwrap()
                .contains("lost the network")
        );
    }

    #[test]
    fn a_maintenance_window_reports_maintenance_and_the_truth_afterwards() {
        let cfg = config(TWO);
        let (h, _rx) = health();
        let now = Utc::now();
        h.set_windows(vec![ApiWindow {
            id: 1,
            start: now - chrono::Duration::minutes(1),
            end: now + chrono::Duration::minutes(1),
            checks: vec!["db".into()],
            reason: "database upgrade".into(),
        }]);
        let (flip, _) = h.apply(&cfg.checks[0], &cfg, obs(false), now);
        assert_eq!(flip.unwrap().to, State::Maintenance);
        let view = &h.views(&cfg)[0];
        assert_eq!(
            view.health,
            State::Down,
            "still probed and judged underneath"
        );
        assert_eq!(view.maintenance.as_deref(), Some("database upgrade"));
        let later = now + chrono::Duration::minutes(2);
        let (flip, _) = h.apply(&cfg.checks[0], &cfg, obs(false), later);
        let flip = flip.unwrap();
        assert_eq!((flip.from, flip.to), (State::Maintenance, State::Down));
        assert_eq!(flip.suppressed, None, "still down after the window: page");
    }
}
