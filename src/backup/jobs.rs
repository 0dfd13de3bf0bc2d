//! The jobs: snapshot, copy, forget + prune, check, restore and drill; each recorded, measured and followed by a 3-2-1 verdict.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::adaptor::{self, BackupError, BackupOutcome, RestoreOutcome, Workspace};
use super::child;
use super::compliance::{self, Freshness, Verdict};
use super::config::{BackupConfig, RepoSpec, SetSpec};
use super::metrics::BackupMetrics;
use super::store::{self, RunRecord};
use crate::store::Store;

/// Newest snapshot time per (set, repository).
pub type Seen = HashMap<(String, String), Option<DateTime<Utc>>>;

/// What every job needs: the config, where to work, and where to report.
#[derive(Clone)]
pub struct Env {
    pub cfg: Arc<BackupConfig>,
    pub ws: Workspace,
    pub store: Option<Store>,
    pub metrics: Option<Arc<BackupMetrics>>,
    /// Who started the job: `schedule`, `api`, or `cli:USER`.
    pub who: String,
    /// Newest snapshot per (set, repository), as last seen; compliance reads it.
    pub seen: Arc<Mutex<Seen>>,
}

impl Env {
    pub fn new(cfg: Arc<BackupConfig>, state_dir: &std::path::Path, who: &str) -> Env {
        let dir = cfg
            .work_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("backup"));
        Env {
            ws: Workspace {
                dir,
                lock_wait: cfg.lock_wait,
                bars: adaptor::Bars { draw: false },
                keys: adaptor::KeyCache::default(),
            },
            cfg,
            store: None,
            metrics: None,
            who: who.to_string(),
            seen: Arc::default(),
        }
    }

    pub fn set(&self, name: &str) -> Result<&SetSpec, BackupError> {
        self.cfg
            .sets
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| BackupError::Other(format!("no backup set is named `{name}`")))
    }

    pub fn repo(&self, name: &str) -> Result<&RepoSpec, BackupError> {
        self.cfg
            .repositories
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| BackupError::Other(format!("no repository is named `{name}`")))
    }

    fn metrics(&self) -> Option<&BackupMetrics> {
        self.metrics.as_deref()
    }

    async fn record(
        &self,
        set: &str,
        job: &str,
        repo: &str,
        tag: &str,
        start: DateTime<Utc>,
        result: &Result<(i64, i64, i64), BackupError>,
    ) {
        let finished = Utc::now();
        let (label, files, bytes, added, message) = match result {
            Ok((f, b, a)) => ("success", *f, *b, *a, String::new()),
            Err(BackupError::Absent { .. }) => ("absent", 0, 0, 0, result_message(result)),
            Err(_) => ("failure", 0, 0, 0, result_message(result)),
        };
        let secs = (finished - start).num_milliseconds() as f64 / 1000.0;
        if let Some(m) = self.metrics() {
            m.runs.with_label_values(&[set, job, label]).inc();
            m.last_duration
                .with_label_values(&[set, job, repo])
                .set(secs);
            if label == "success" {
                m.last_success
                    .with_label_values(&[set, job, repo])
                    .set(finished.timestamp() as f64);
            }
            m.repository_present
                .with_label_values(&[repo])
                .set(i64::from(label != "absent"));
        }
        match label {
            "success" => tracing::info!(
                set,
                job,
                repository = repo,
                seconds = secs,
                files,
                bytes,
                "backup job succeeded"
            ),
            "absent" => tracing::info!(set, job, repository = repo, "{message}: skipped"),
            _ => tracing::error!(set, job, repository = repo, "backup job failed: {message}"),
        }
        if let Some(store) = &self.store {
            let rec = RunRecord {
                id: 0,
                set: set.to_string(),
                job: job.to_string(),
                repository: repo.to_string(),
                who: self.who.clone(),
                run_tag: tag.to_string(),
                started_ms: start.timestamp_millis(),
                finished_ms: finished.timestamp_millis(),
                duration_ms: 0,
                result: label.to_string(),
                files,
                bytes,
                bytes_added: added,
                message,
            };
            if let Err(e) = store::record(store, rec).await {
                tracing::error!(error = %e, "cannot record the backup run");
            }
        }
    }

    /// Lists the set's snapshots in `repo` and remembers the newest.
    pub async fn refresh(&self, set: &str, repo: &RepoSpec) -> Result<usize, BackupError> {
        let (snaps, size) = adaptor::survey(self.ws.clone(), repo.clone(), set.to_string()).await?;
        let newest = snaps.iter().map(|s| s.time).max();
        if let Some(m) = self.metrics() {
            m.repository_size
                .with_label_values(&[&repo.name])
                .set(size as f64);
            m.snapshots
                .with_label_values(&[set, &repo.name])
                .set(snaps.len() as i64);
            if let Some(t) = newest {
                m.newest_snapshot
                    .with_label_values(&[set, &repo.name])
                    .set(t.timestamp() as f64);
            }
        }
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((set.to_string(), repo.name.clone()), newest);
        Ok(snaps.len())
    }

    /// Refreshes every set in every repository (at start: a verdict needs facts).
    pub async fn refresh_all(&self) {
        for set in &self.cfg.sets {
            for name in set.repositories() {
                let Ok(repo) = self.repo(name) else { continue };
                if let Err(e) = self.refresh(&set.name, repo).await {
                    tracing::debug!(set = %set.name, repository = name, error = %e, "cannot list snapshots");
                }
            }
        }
    }

    /// Judges every set from what was last seen; logs each verdict that changed.
    pub fn evaluate(&self, previous: &mut HashMap<String, bool>) -> Vec<Verdict> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let now = Utc::now();
        let mut out = Vec::new();
        for set in &self.cfg.sets {
            let fresh: Vec<Freshness> = set
                .repositories()
                .map(|r| Freshness {
                    repository: r.to_string(),
                    newest: seen
                        .get(&(set.name.clone(), r.to_string()))
                        .copied()
                        .flatten(),
                })
                .collect();
            let v = compliance::evaluate(&self.cfg, set, &fresh, now);
            if let Some(m) = self.metrics() {
                m.record_verdict(&v);
            }
            if previous.insert(set.name.clone(), v.compliant) != Some(v.compliant) {
                if v.compliant {
                    tracing::info!(set = %v.set, "3-2-1 compliant: {}", v.detail);
                } else {
                    tracing::warn!(set = %v.set, reason = v.reason.as_str(), "3-2-1 not met: {}", v.detail);
                }
            }
            out.push(v);
        }
        out
    }
}

fn result_message<T>(r: &Result<T, BackupError>) -> String {
    match r {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

/// A tag unique to one run, so a failed run's snapshot can be found and deleted.
pub fn run_tag() -> String {
    let now = Utc::now();
    format!(
        "run-{}-{}",
        now.format("%Y%m%dT%H%M%S%3f"),
        std::process::id()
    )
}

/// Runs a `before` or `after` hook for at most the set's `hook-timeout`.
async fn hook(argv: &[String], what: &str, set: &SetSpec) -> Result<(), BackupError> {
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env("LANTERN_BACKUP_SET", &set.name);
    let label = format!("{what} hook `{}`", argv[0]);
    let out = child::run(cmd, &label, "hook-timeout", set.hook_timeout).await?;
    if !out.status.success() {
        return Err(BackupError::Other(format!(
            "{label} failed ({}): {}",
            out.status,
            out.stderr.trim().lines().last().unwrap_or("")
        )));
    }
    Ok(())
}

/// Snapshots the set to its primary repository: before hook, paths and
/// command output, after hook. A failure anywhere leaves no snapshot.
pub async fn snapshot(env: &Env, set_name: &str) -> Result<BackupOutcome, BackupError> {
    let set = env.set(set_name)?.clone();
    let repo = env.repo(&set.repository)?.clone();
    let tag = run_tag();
    let start = Utc::now();
    let result = async {
        if let Some(b) = &set.before {
            hook(b, "before", &set).await?;
        }
        let r = adaptor::backup(env.ws.clone(), repo.clone(), set.clone(), tag.clone()).await;
        if let Some(a) = &set.after {
            hook(a, "after", &set).await?;
        }
        r
    }
    .await;
    let summary = result
        .as_ref()
        .map(|o| {
            (
                o.files_processed as i64,
                o.bytes_processed as i64,
                o.bytes_added as i64,
            )
        })
        .map_err(|e| BackupError::Other(e.to_string()));
    env.record(&set.name, "snapshot", &repo.name, &tag, start, &summary)
        .await;
    if let (Ok(o), Some(m)) = (&result, env.metrics()) {
        m.processed_bytes
            .with_label_values(&[&set.name])
            .set(o.bytes_processed as f64);
        m.processed_files
            .with_label_values(&[&set.name])
            .set(o.files_processed as f64);
        m.added_bytes
            .with_label_values(&[&set.name])
            .set(o.bytes_added as f64);
        m.added_files
            .with_label_values(&[&set.name])
            .set(o.files_new as f64);
    }
    let _ = env.refresh(&set.name, &repo).await;
    result
}

/// Copies the set's new snapshots to every other repository. An absent
/// offline repository is reported as absent, once per run, not as an error.
pub async fn copy(env: &Env, set_name: &str) -> Vec<(String, Result<usize, BackupError>)> {
    copy_to(env, set_name, None).await
}

/// Copies the set's new snapshots to `only` (one of its copy targets), or to all of them.
pub async fn copy_to(
    env: &Env,
    set_name: &str,
    only: Option<&str>,
) -> Vec<(String, Result<usize, BackupError>)> {
    let Ok(set) = env.set(set_name).cloned() else {
        return vec![(
            set_name.into(),
            Err(BackupError::Other(format!(
                "no backup set is named `{set_name}`"
            ))),
        )];
    };
    let Ok(src) = env.repo(&set.repository).cloned() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in set
        .copy_to
        .iter()
        .filter(|n| only.is_none_or(|o| o == n.as_str()))
    {
        let Ok(dst) = env.repo(name).cloned() else {
            continue;
        };
        let start = Utc::now();
        let r = adaptor::copy(env.ws.clone(), src.clone(), dst.clone(), set.name.clone()).await;
        let summary = match &r {
            Ok(n) => Ok((*n as i64, 0, 0)),
            Err(BackupError::Absent { repo, detail }) => Err(BackupError::Absent {
                repo: repo.clone(),
                detail: detail.clone(),
            }),
            Err(e) => Err(BackupError::Other(e.to_string())),
        };
        env.record(&set.name, "copy", name, "", start, &summary)
            .await;
        if r.is_ok() {
            let _ = env.refresh(&set.name, &dst).await;
        }
        out.push((name.clone(), r));
    }
    out
}

/// Retention then prune in every present repository of the set.
pub async fn forget(env: &Env, set_name: &str) -> Vec<(String, Result<usize, BackupError>)> {
    let Ok(set) = env.set(set_name).cloned() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in set.repositories() {
        let Ok(repo) = env.repo(name).cloned() else {
            continue;
        };
        let start = Utc::now();
        let r =
            adaptor::forget_prune(env.ws.clone(), repo.clone(), set.name.clone(), set.keep).await;
        let summary = r.as_ref().map(|n| (*n as i64, 0, 0)).map_err(clone_err);
        env.record(&set.name, "forget", name, "", start, &summary)
            .await;
        if r.is_ok() {
            let _ = env.refresh(&set.name, &repo).await;
        }
        out.push((name.to_string(), r));
    }
    out
}

fn clone_err(e: &BackupError) -> BackupError {
    match e {
        BackupError::Absent { repo, detail } => BackupError::Absent {
            repo: repo.clone(),
            detail: detail.clone(),
        },
        e => BackupError::Other(e.to_string()),
    }
}

/// Checks every repository (`read_data`: with the configured subset, or `all`).
pub async fn check(
    env: &Env,
    read_data: Option<String>,
) -> Vec<(String, Result<adaptor::CheckOutcome, BackupError>)> {
    let mode = if read_data.is_some() {
        "read-data"
    } else {
        "structure"
    };
    let mut out = Vec::new();
    for repo in env.cfg.repositories.clone() {
        let start = Utc::now();
        let mut r = adaptor::check(env.ws.clone(), repo.clone(), read_data.clone()).await;
        if let Ok(o) = &r {
            if let Some(m) = env.metrics() {
                m.check_success
                    .with_label_values(&[&repo.name, mode])
                    .set(i64::from(o.errors == 0));
                m.check_timestamp
                    .with_label_values(&[&repo.name, mode])
                    .set(Utc::now().timestamp() as f64);
                m.check_findings
                    .with_label_values(&[&repo.name, "error"])
                    .set(o.errors as i64);
                m.check_findings
                    .with_label_values(&[&repo.name, "warning"])
                    .set(o.warnings as i64);
            }
            if o.errors > 0 {
                r = Err(BackupError::Rustic {
                    repo: repo.name.clone(),
                    op: "check",
                    message: format!("{} error(s): {}", o.errors, o.findings.join("; ")),
                });
            }
        } else if let (Err(e), Some(m)) = (&r, env.metrics())
            && !matches!(e, BackupError::Absent { .. })
        {
            m.check_success
                .with_label_values(&[&repo.name, mode])
                .set(0);
        }
        let summary = r.as_ref().map(|_| (0, 0, 0)).map_err(clone_err);
        env.record(
            "*",
            if read_data.is_some() {
                "read-data"
            } else {
                "check"
            },
            &repo.name,
            "",
            start,
            &summary,
        )
        .await;
        out.push((repo.name.clone(), r));
    }
    out
}

/// Restores a set (latest run or one snapshot) from `repo` (default: the
/// first present repository of the set) into `target`, verifying every file.
pub async fn restore(
    env: &Env,
    set_name: &str,
    repo: Option<&str>,
    snapshot: &str,
    target: PathBuf,
) -> Result<RestoreOutcome, BackupError> {
    let set = env.set(set_name)?.clone();
    let repo = match repo {
        Some(r) => env.repo(r)?.clone(),
        None => set
            .repositories()
            .filter_map(|r| env.repo(r).ok())
            .find(|r| adaptor::presence(r).is_ok())
            .cloned()
            .ok_or_else(|| BackupError::Other("no repository of the set is present".into()))?,
    };
    let out = adaptor::restore(
        env.ws.clone(),
        repo,
        set.name.clone(),
        snapshot.to_string(),
        target,
    )
    .await?;
    if !out.mismatches.is_empty() {
        return Err(BackupError::Other(format!(
            "{} of {} restored files differ from the snapshot: {}",
            out.mismatches.len(),
            out.files,
            out.mismatches.join("; ")
        )));
    }
    Ok(out)
}

/// The restore drill: restore the latest run into scratch space, verify every
/// file, run the verify command there, record the recovery time, clean up.
pub async fn drill(env: &Env, set_name: &str) -> Result<RestoreOutcome, BackupError> {
    let set = env.set(set_name)?.clone();
    let tag = run_tag();
    let scratch = env.ws.dir.join("drill").join(format!("{}-{tag}", set.name));
    let start = Utc::now();
    let clock = Instant::now();
    let result = async {
        let out = restore(env, &set.name, None, "latest", scratch.clone()).await?;
        if let Some(argv) = &set.drill_verify {
            let mut cmd = tokio::process::Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .current_dir(&scratch)
                .env("LANTERN_DRILL_DIR", &scratch);
            let label = format!("drill-verify `{}`", argv[0]);
            let o = child::run(
                cmd,
                &label,
                "drill-verify-timeout",
                set.drill_verify_timeout,
            )
            .await?;
            if !o.status.success() {
                return Err(BackupError::Other(format!(
                    "{label} failed ({}): {}",
                    o.status,
                    o.stderr.trim()
                )));
            }
        }
        Ok(out)
    }
    .await;
    let secs = clock.elapsed().as_secs_f64();
    if let Err(e) = tokio::fs::remove_dir_all(&scratch).await {
        tracing::warn!(dir = %scratch.display(), error = %e, "cannot remove the drill's scratch directory");
    }
    if let Some(m) = env.metrics() {
        m.drill_duration.with_label_values(&[&set.name]).set(secs);
        m.drill_success
            .with_label_values(&[&set.name])
            .set(i64::from(result.is_ok()));
    }
    let summary = result
        .as_ref()
        .map(|o| (o.files as i64, o.bytes as i64, 0))
        .map_err(clone_err);
    env.record(&set.name, "drill", &set.repository, &tag, start, &summary)
        .await;
    result
}
