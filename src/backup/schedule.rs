//! The daemon's backup task: cron schedules (the config's own `Schedule`, in the backup time zone), API requests, compliance timer.
//!
//! Why not tokio-cron-scheduler: the config already parses cron in a time
//! zone (croner, for maintenance windows), and one loop that owns its jobs
//! follows config reloads and the shutdown token with no second scheduler
//! whose tasks have no owner. Jobs run one after another on purpose:
//! rustic needs ~150 MB per open repository and much more to restore, so
//! running a set's snapshot beside another set's drill would only add memory
//! pressure, and the per-repository lock would serialise most of them anyway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::jobs::{self, Env};
use super::metrics::BackupMetrics;
use crate::config::{Config, Schedule};
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
pub async fn run(
    store: Store,
    metrics: Arc<Metrics>,
    mut config: watch::Receiver<Arc<Config>>,
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
        if let Some(cfg) = current.backup.clone() {
            let mut env = Env::new(Arc::new(cfg), &current.daemon.state_dir, "schedule");
            env.store = Some(store.clone());
            env.metrics = Some(m.clone());
            tokio::select! {
                _ = serve(&env, &store, &shutdown) => {}
                _ = config.changed() => {}
                _ = shutdown.cancelled() => return,
            }
        } else {
            tokio::select! {
                r = config.changed() => if r.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// Serves one config generation until the caller drops it.
async fn serve(env: &Env, store: &Store, _shutdown: &CancellationToken) {
    env.refresh_all().await;
    let mut verdicts = HashMap::new();
    env.evaluate(&mut verdicts);
    let now = Utc::now();
    let mut due: Vec<(Job, Schedule, Option<DateTime<Utc>>)> = schedules(env)
        .into_iter()
        .map(|(j, s)| {
            let next = s.next(now);
            (j, s, next)
        })
        .collect();
    let mut last_verdict = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
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
        if ran || last_verdict.elapsed() >= env.cfg.compliance_interval {
            env.evaluate(&mut verdicts);
            last_verdict = Instant::now();
        }
    }
}
