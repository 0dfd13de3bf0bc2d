//! The daemon's backup task: cron schedules (the config's own `Schedule`, in the backup time zone), catch-up of missed fires, API requests, compliance timer.
//!
//! Why not tokio-cron-scheduler: the config already parses cron in a time
//! zone (croner, for maintenance windows), and one loop that owns its jobs
//! follows config reloads and the shutdown token with no second scheduler
//! whose tasks have no owner. Jobs run one after another on purpose:
//! rustic needs ~150 MB per open repository and much more to restore, so
//! running a set's snapshot beside another set's drill would only add memory
//! pressure, and the per-repository lock would serialise most of them anyway.
//! A fire missed while lantern was down is run once soon after start, as
//! anacron would, rather than waiting for the next one (a daily copy missed
//! by a reboot at 02:29 would otherwise wait a day, and so breach the RPO).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::adaptor;
use super::compliance::Alerts;
use super::jobs::{self, Env};
use super::metrics::BackupMetrics;
use crate::config::{Config, Schedule};
use crate::incident::Raiser;
use crate::metrics::Metrics;
use crate::store::Store;

/// One kind of scheduled or requested work.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Job {
    Snapshot(String),
    /// Snapshot then copy: what `backup run` and the API's default do.
    Run(String),
    Copy(String),
    Forget(String),
    Drill(String),
    Check,
    ReadData,
}

impl Job {
    /// Parses an API/CLI job name for `set`.
    pub fn parse(job: &str, set: &str) -> Option<Job> {
        Some(match job {
            "run" => Job::Run(set.into()),
            "snapshot" => Job::Snapshot(set.into()),
            "copy" => Job::Copy(set.into()),
            "forget" => Job::Forget(set.into()),
            "drill" => Job::Drill(set.into()),
            "check" => Job::Check,
            "read-data" => Job::ReadData,
            _ => return None,
        })
    }

    /// The (set, job) its runs are recorded under; `None` for `Run`, which
    /// records a snapshot and a copy and is never scheduled.
    fn recorded_as(&self) -> Option<(&str, &'static str)> {
        Some(match self {
            Job::Snapshot(s) => (s, "snapshot"),
            Job::Copy(s) => (s, "copy"),
            Job::Forget(s) => (s, "forget"),
            Job::Drill(s) => (s, "drill"),
            Job::Check => ("*", "check"),
            Job::ReadData => ("*", "read-data"),
            Job::Run(_) => return None,
        })
    }
}

/// Which offline repositories were attached at the last look (a stat each, every tick).
struct Attached(HashMap<String, bool>);

impl Attached {
    fn now(env: &Env) -> Attached {
        Attached(
            env.cfg
                .repositories
                .iter()
                .filter(|r| r.offline)
                .map(|r| (r.name.clone(), adaptor::presence(r).is_ok()))
                .collect(),
        )
    }

    /// The offline repositories that were absent at the last look and are here now.
    fn newly_attached(&mut self, env: &Env) -> Vec<String> {
        let seen = Attached::now(env);
        let out = seen
            .0
            .iter()
            .filter(|(name, here)| **here && self.0.get(*name) == Some(&false))
            .map(|(name, _)| name.clone())
            .collect();
        *self = seen;
        out
    }
}

fn schedules(env: &Env) -> Vec<(Job, Schedule)> {
    let mut out = Vec::new();
    for s in &env.cfg.sets {
        let mut add = |job: Job, sch: &Option<Schedule>| {
            if let Some(sch) = sch {
                out.push((job, sch.clone()));
            }
        };
        add(Job::Snapshot(s.name.clone()), &s.snapshot);
        add(Job::Copy(s.name.clone()), &s.copy);
        add(Job::Forget(s.name.clone()), &s.forget);
        add(Job::Drill(s.name.clone()), &s.drill);
    }
    if let Some(c) = &env.cfg.check {
        out.push((Job::Check, c.clone()));
    }
    if let Some(c) = &env.cfg.read_data {
        out.push((Job::ReadData, c.clone()));
    }
    out
}

/// Runs one job to its end; failures are logged, recorded and counted inside.
pub async fn perform(env: &Env, job: &Job) {
    match job {
        Job::Snapshot(s) => {
            let _ = jobs::snapshot(env, s).await;
        }
        Job::Run(s) => {
            if jobs::snapshot(env, s).await.is_ok() {
                jobs::copy(env, s).await;
            }
        }
        Job::Copy(s) => {
            jobs::copy(env, s).await;
        }
        Job::Forget(s) => {
            jobs::forget(env, s).await;
        }
        Job::Drill(s) => {
            let _ = jobs::drill(env, s).await;
        }
        Job::Check => {
            jobs::check(env, None).await;
        }
        Job::ReadData => {
            jobs::check(env, Some(env.cfg.read_data_subset.clone())).await;
        }
    }
}

/// The backup task: started by the daemon, stops at `shutdown`, follows reloads.
/// `raiser` opens and resolves the sets' compliance incidents.
pub async fn run(
    store: Store,
    metrics: Arc<Metrics>,
    mut config: watch::Receiver<Arc<Config>>,
    raiser: Raiser,
    shutdown: CancellationToken,
) {
    let m = match BackupMetrics::new(&metrics.registry) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::error!(error = %e, "cannot register backup metrics; backups do not run");
            return;
        }
    };
    loop {
        let current = config.borrow_and_update().clone();
        // Backup incidents page by the policy a check naming none uses.
        let policy = current.paging.as_ref().map(|p| p.default_policy.clone());
        let mut alerts = Alerts::new(raiser.clone(), policy, current.health.flap_window);
        if let Some(cfg) = current.backup.clone() {
            let mut env = Env::new(Arc::new(cfg), &current.daemon.state_dir, "schedule");
            env.store = Some(store.clone());
            env.metrics = Some(m.clone());
            // A reload takes effect between jobs: `serve` returns when it
            // sees one while idle, so a running backup is never dropped
            // half-way (its blocking thread would run on, unrecorded).
            tokio::select! {
                _ = serve(&env, &store, &mut alerts, config.clone()) => {}
                _ = shutdown.cancelled() => return,
            }
        } else {
            // No sets at all: resolve what the removed ones left open.
            tokio::select! {
                _ = alerts.follow(&[]) => {}
                _ = shutdown.cancelled() => return,
            }
            tokio::select! {
                r = config.changed() => if r.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
        }
        // A dropped sender: the daemon is going away.
        if shutdown.is_cancelled() || config.has_changed().is_err() {
            return;
        }
    }
}

/// A scheduled job and when it fires next.
type Due = (Job, Schedule, Option<DateTime<Utc>>);

/// Serves one config generation until the caller drops it.
async fn serve(
    env: &Env,
    store: &Store,
    alerts: &mut Alerts,
    mut reload: watch::Receiver<Arc<Config>>,
) {
    env.refresh_all().await;
    let mut verdicts = HashMap::new();
    // Metrics at once; incidents only after the first pass below has run
    // what was missed, so a fresh install is not paged for having no
    // snapshot yet a second before its first one.
    env.evaluate(&mut verdicts);
    let mut first_pass = true;
    let now = Utc::now();
    let mut due: Vec<Due> = schedules(env)
        .into_iter()
        .map(|(j, s)| {
            let next = s.next(now);
            (j, s, next)
        })
        .collect();
    catch_up(store, &mut due, now).await;
    let mut media = Attached::now(env);
    let mut last_verdict = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = reload.changed() => {
                if r.is_ok() {
                    tracing::info!("backup schedule follows the reloaded config");
                }
                return;
            }
        }
        let mut ran = false;
        match super::store::take_requests(store).await {
            Ok(reqs) => {
                for (set, job, who) in reqs {
                    let Some(job) = Job::parse(&job, &set) else {
                        continue;
                    };
                    let env = Env { who, ..env.clone() };
                    perform(&env, &job).await;
                    ran = true;
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read backup requests"),
        }
        let now = Utc::now();
        for (job, sch, next) in &mut due {
            if next.is_some_and(|t| t <= now) {
                perform(env, job).await;
                *next = sch.next(Utc::now());
                ran = true;
            }
        }
        // An offline medium is copied to when it is plugged in, not only
        // when the daily copy happens to find it attached.
        for repo in media.newly_attached(env) {
            for set in env.cfg.sets.iter().filter(|s| s.copy_to.contains(&repo)) {
                tracing::info!(repository = %repo, set = %set.name, "offline repository attached: copying");
                jobs::copy_to(env, &set.name, Some(&repo)).await;
                ran = true;
            }
        }
        if ran || first_pass || last_verdict.elapsed() >= env.cfg.compliance_interval {
            first_pass = false;
            alerts.follow(&env.evaluate(&mut verdicts)).await;
            last_verdict = Instant::now();
        }
    }
}

/// Brings forward to `now` every job that missed its latest fire: once per
/// start (or reload), since after it runs the job waits for its next fire.
async fn catch_up(store: &Store, due: &mut [Due], now: DateTime<Utc>) {
    let last = match super::store::last_starts(store).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the last backup runs; no missed job is caught up");
            return;
        }
    };
    for (job, sch, next) in due {
        let Some((set, name)) = job.recorded_as() else {
            continue;
        };
        let started = last
            .get(&(set.to_string(), name.to_string()))
            .and_then(|ms| DateTime::from_timestamp_millis(*ms));
        if let Some(fire) = missed(sch, now, started) {
            tracing::info!(set, job = name, schedule = %sch.expr, missed = %fire,
                last_run = %started.map_or("never".to_string(), |t| t.to_rfc3339()),
                "catching up missed {name} of {set}");
            *next = Some(now);
        }
    }
}

/// The latest fire at or before `now` when no run started at or after it.
/// croner walks back field by field, so this costs what `next` costs.
fn missed(
    sch: &Schedule,
    now: DateTime<Utc>,
    last_start: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let fire = sch.previous(now)?;
    match last_start {
        Some(t) if t >= fire => None,
        _ => Some(fire),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_fire_with_no_run_since_is_missed_and_one_with_a_run_is_not() {
        let daily = Schedule::parse("0 0 * * *", chrono_tz::Tz::UTC).unwrap();
        let now = at("2026-03-10T09:30:00Z");
        let fire = at("2026-03-10T00:00:00Z");
        assert_eq!(missed(&daily, now, None), Some(fire), "never ran");
        assert_eq!(
            missed(&daily, now, Some(at("2026-03-09T00:00:01Z"))),
            Some(fire),
            "the last run was yesterday's"
        );
        assert_eq!(
            missed(&daily, now, Some(at("2026-03-10T00:00:00.004Z"))),
            None
        );
        assert_eq!(missed(&daily, now, Some(at("2026-03-10T08:00:00Z"))), None);
    }

    #[test]
    fn the_previous_fire_is_found_in_the_schedules_time_zone() {
        let shanghai = Schedule::parse("30 2 * * *", chrono_tz::Asia::Shanghai).unwrap();
        // 02:30 in Shanghai is 18:30 UTC the day before.
        assert_eq!(
            missed(&shanghai, at("2026-03-10T17:00:00Z"), None),
            Some(at("2026-03-09T18:30:00Z"))
        );
    }

    #[test]
    fn every_scheduled_job_names_the_record_its_runs_leave() {
        assert_eq!(
            Job::Copy("files".into()).recorded_as(),
            Some(("files", "copy"))
        );
        assert_eq!(Job::ReadData.recorded_as(), Some(("*", "read-data")));
        assert_eq!(Job::Run("files".into()).recorded_as(), None);
    }
}
