//! The one module that calls rustic_core: every call on a blocking thread, repositories reopened per run, errors wrapped once.
//!
//! rustic_core is blocking throughout (and its REST backend owns a runtime
//! that panics when created or dropped on an async worker), so each public
//! function here is `async` and moves its whole body, backend construction
//! included, onto `spawn_blocking`. A repository is opened afresh for every
//! operation: a long-lived open repository does not see the blobs it wrote and
//! would re-upload everything on the next backup.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rustic_backend::BackendOptions;
use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    BackupOptions, CheckOptions, CommandInput, ConfigOptions, Credentials, Excludes, Grouped, Id,
    KeepOptions, KeyOptions, OpenStatus, PathList, PruneOptions, ReadSubsetOption, Repository,
    RepositoryOptions, RusticError, SnapshotGroupCriterion, SnapshotOptions,
};
use serde::Serialize;

use super::config::{Keep, RepoSpec, SetSpec};

mod progress;
mod restore;

pub use progress::Bars;

/// Why a repository operation did not happen or failed. Callers branch on
/// `Absent` (an offline medium not attached: reported, not an error) and `Busy`.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("repository {repo} is not attached ({detail})")]
    Absent { repo: String, detail: String },
    #[error("repository {repo} is busy with another job (waited {waited:?})")]
    Busy { repo: String, waited: Duration },
    #[error("repository {repo}: {op} failed: {message}")]
    Rustic {
        repo: String,
        op: &'static str,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

impl BackupError {
    fn other(e: impl std::fmt::Display) -> Self {
        BackupError::Other(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, BackupError>;

/// Wraps a rustic error, the only place one is turned into ours.
fn rustic(repo: &RepoSpec, op: &'static str) -> impl FnOnce(Box<RusticError>) -> BackupError {
    let repo = repo.name.clone();
    move |e| BackupError::Rustic {
        repo,
        op,
        message: first_line(&e),
    }
}
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::Other(format!("backup task failed: {e}")))?
}

/// Where an adaptor call keeps its cache and locks; one per lantern state directory.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub dir: PathBuf,
    pub lock_wait: Duration,
    /// Progress lines: drawn by a CLI on a terminal, hidden in the daemon.
    pub bars: Bars,
    /// Master keys of repositories opened before, so later opens skip the key derivation.
    pub keys: KeyCache,
}

/// Master keys by repository location, for one config generation (a reload
/// starts empty, so a changed password is used). Opening with the password
/// costs a scrypt derivation (N = 2^17: ~0.3 s and 128 MiB) on every open; a
/// job opens a repository two or three times. Holding the key is no more
/// than holding the password, which the config already does. Never printed.
#[derive(Clone, Default)]
pub struct KeyCache(
    std::sync::Arc<std::sync::Mutex<BTreeMap<String, rustic_core::repofile::MasterKey>>>,
);

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |m| m.len());
        write!(f, "KeyCache({n} keys)")
    }
}

impl KeyCache {
    fn get(&self, repo: &RepoSpec) -> Option<rustic_core::repofile::MasterKey> {
        self.0.lock().ok()?.get(&repo.repository).cloned()
    }
    fn put(&self, repo: &RepoSpec, r: &Repository<OpenStatus>) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(repo.repository.clone(), r.key());
        }
    }
    fn forget(&self, repo: &RepoSpec) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&repo.repository);
        }
    }
}

/// A snapshot as lantern shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Snap {
    pub id: String,
    pub time: DateTime<Utc>,
    pub label: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub files: u64,
    pub bytes: u64,
}

impl Snap {
    fn from_file(s: &SnapshotFile) -> Snap {
        let summary = s.summary.as_ref();
        Snap {
            id: s.id.to_hex().as_str().to_string(),
            time: DateTime::<Utc>::from_timestamp(s.time.timestamp().as_second(), 0)
                .unwrap_or_default(),
            label: s.label.clone(),
            paths: s.paths.iter().cloned().collect(),
            tags: s.tags.iter().cloned().collect(),
            files: summary.map_or(0, |x| x.total_files_processed),
            bytes: summary.map_or(0, |x| x.total_bytes_processed),
        }
    }
}

/// What a backup did, summed over the set's snapshots of one run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupOutcome {
    pub snapshots: Vec<Snap>,
    pub files_processed: u64,
    pub files_new: u64,
    pub bytes_processed: u64,
    pub bytes_added: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckOutcome {
    pub errors: usize,
    pub warnings: usize,
    pub findings: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreOutcome {
    pub snapshots: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    /// Files whose content did not hash to the snapshot's blobs.
    pub mismatches: Vec<String>,
}

/// A per-repository lock file: two jobs on one repository never run at once,
/// even from two processes (the daemon and the CLI). rustic itself writes no locks.
struct RepoLock(#[allow(dead_code)] File);

fn lock(ws: &Workspace, repo: &RepoSpec) -> Result<RepoLock> {
    use rustix::fs::{FlockOperation, flock};
    let dir = ws.dir.join("locks");
    std::fs::create_dir_all(&dir)
        .map_err(|e| BackupError::Other(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(format!("{}.lock", repo.name));
    let file = File::create(&path)
        .map_err(|e| BackupError::Other(format!("cannot open {}: {e}", path.display())))?;
    let start = Instant::now();
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(RepoLock(file)),
            Err(_) if start.elapsed() < ws.lock_wait => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(_) => {
                return Err(BackupError::Busy {
                    repo: repo.name.clone(),
                    waited: ws.lock_wait,
                });
            }
        }
    }
}

/// Whether the repository can be reached. Only offline local repositories
/// are judged by their directory: an absent removable disk is not an error.
pub fn presence(repo: &RepoSpec) -> std::result::Result<(), String> {
    if repo.offline
        && let Some(p) = repo.local_path()
        && !p.exists()
    {
        return Err(format!("{} does not exist", p.display()));
    }
    Ok(())
}

fn absent(repo: &RepoSpec) -> Result<()> {
    presence(repo).map_err(|detail| BackupError::Absent {
        repo: repo.name.clone(),
        detail,
    })
}

fn unopened(ws: &Workspace, repo: &RepoSpec) -> Result<Repository<()>> {
    let mut options: BTreeMap<String, String> = repo.options.clone();
    if repo.repository.starts_with("rest:") {
        // Five retries with backoff would turn "server down" into minutes of waiting.
        options.entry("retry".into()).or_insert_with(|| "2".into());
    }
    let mut backends = BackendOptions::default()
        .repository(repo.repository.clone())
        .options(options);
    backends.repo_hot = repo.repository_hot.clone();
    let backends = backends.to_backends().map_err(rustic(repo, "connect"))?;
    let ropts = RepositoryOptions::default().cache_dir(ws.dir.join("cache"));
    Repository::new_with_progress(&ropts, &backends, ws.bars).map_err(rustic(repo, "connect"))
}

fn credentials(repo: &RepoSpec) -> Credentials {
    Credentials::password(repo.password.expose())
}

/// Opens the repository, creating it first when `init` allows and none exists.
/// `template` (a source repository's config) makes a copy target share its chunker.
fn open(
    ws: &Workspace,
    repo: &RepoSpec,
    init: bool,
    template: Option<&rustic_core::repofile::ConfigFile>,
) -> Result<Repository<OpenStatus>> {
    absent(repo)?;
    let r = unopened(ws, repo)?;
    let exists = r.config_id().map_err(rustic(repo, "open"))?.is_some();
    if exists {
        if let Some(key) = ws.keys.get(repo) {
            match r.open(&Credentials::Masterkey(key)) {
                Ok(r) => return Ok(r),
                // Re-created under the same location: derive afresh.
                Err(e) => {
                    tracing::debug!(repository = %repo.name, error = %first_line(&e), "cached key no longer opens it");
                    ws.keys.forget(repo);
                }
            }
            let r = unopened(ws, repo)?;
            let opened = r.open(&credentials(repo)).map_err(rustic(repo, "open"))?;
            ws.keys.put(repo, &opened);
            return Ok(opened);
        }
        let opened = r.open(&credentials(repo)).map_err(rustic(repo, "open"))?;
        ws.keys.put(repo, &opened);
        return Ok(opened);
    }
    if !init {
        return Err(BackupError::Rustic {
            repo: repo.name.clone(),
            op: "open",
            message: "no repository has been initialised there yet (run a backup first)".into(),
        });
    }
    let hot = repo
        .repository_hot
        .as_deref()
        .filter(|h| h.starts_with('/'))
        .map(PathBuf::from);
    for p in repo.local_path().into_iter().chain(hot) {
        std::fs::create_dir_all(&p)
            .map_err(|e| BackupError::Other(format!("cannot create {}: {e}", p.display())))?;
    }
    tracing::info!(repository = %repo.name, "initialising repository");
    let created = match template {
        Some(cfg) => {
            let mut cfg = cfg.clone();
            cfg.id = Id::random().into();
            r.init_with_config(&credentials(repo), &KeyOptions::default(), cfg)
                .map_err(rustic(repo, "init"))
        }
        None => r
            .init(
                &credentials(repo),
                &KeyOptions::default(),
                &ConfigOptions::default(),
            )
            .map_err(rustic(repo, "init")),
    }?;
    ws.keys.put(repo, &created);
    Ok(created)
}

fn set_snapshots(
    repo: &Repository<OpenStatus>,
    spec: &RepoSpec,
    label: Option<&str>,
) -> Result<Vec<SnapshotFile>> {
    let mut snaps = repo
        .get_matching_snapshots(|s| label.is_none_or(|l| s.label == l))
        .map_err(rustic(spec, "list snapshots"))?;
    snaps.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(snaps)
}

/// Shell-quotes argv for rustic's `CommandInput`, which splits with shell words
/// again: the command still runs without a shell. rustic_core reads its stdout
/// itself and offers no deadline, so coreutils `timeout` bounds it: TERM to
/// its process group at `limit`, KILL 10 s later, exit 124 (a failed command,
/// whose run's snapshot is deleted like any other).
fn command_input(argv: &[String], limit: Duration) -> Result<CommandInput> {
    // Rounded up: `timeout` takes whole seconds here, and never "0s" (no bound).
    let secs = limit.as_secs() + u64::from(limit.subsec_nanos() > 0);
    let secs = format!("{}s", secs.max(1));
    let bounded = ["timeout", "--kill-after=10s", &secs]
        .into_iter()
        .chain(argv.iter().map(String::as_str));
    shell_words::join(bounded)
        .parse::<CommandInput>()
        .map_err(BackupError::other)
}

/// Whether a failed stdin command was stopped by its `timeout` wrapper (exit 124).
fn timed_out(e: &RusticError) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(rustic_core::CommandInputErrorKind::CommandErrorStatus { status, .. }) =
            s.downcast_ref()
        {
            return status.code() == Some(124);
        }
        source = s.source();
    }
    false
}

/// Backs up a set to its primary repository under the tag `run_tag`. A failed
/// source command leaves no snapshot: rustic saves one before reporting the
/// failure, so every snapshot carrying the run's tag is deleted again.
pub async fn backup(
    ws: Workspace,
    repo: RepoSpec,
    set: SetSpec,
    run_tag: String,
) -> Result<BackupOutcome> {
    blocking(move || {
        let _lock = lock(&ws, &repo)?;
        let r = open(&ws, &repo, true, None)?
            .to_indexed_ids()
            .map_err(rustic(&repo, "index"))?;
        let snap_opts = || -> Result<SnapshotFile> {
            SnapshotOptions::default()
                .label(set.name.clone())
                .add_tags(&format!("lantern,{run_tag}"))
                .and_then(|o| o.to_snapshot())
                .map_err(rustic(&repo, "backup"))
        };
        let mut outcome = BackupOutcome::default();
        let mut result: Result<()> = Ok(());
        let add = |outcome: &mut BackupOutcome, s: &SnapshotFile| {
            if let Some(sum) = &s.summary {
                outcome.files_processed += sum.total_files_processed;
                outcome.files_new += sum.files_new;
                outcome.bytes_processed += sum.total_bytes_processed;
                outcome.bytes_added += sum.data_added_packed;
            }
            outcome.snapshots.push(Snap::from_file(s));
        };
        if !set.paths.is_empty() {
            let list = PathList::from_iter(set.paths.iter().cloned())
                .sanitize()
                .map_err(|e| BackupError::Other(format!("bad path list: {e}")))?;
            let excludes = Excludes::default()
                .globs(set.exclude.iter().map(|g| format!("!{g}")).collect::<Vec<_>>());
            let opts = BackupOptions::default().excludes(excludes);
            match r.backup(&opts, &list, snap_opts()?) {
                Ok(s) => add(&mut outcome, &s),
                Err(e) => result = Err(rustic(&repo, "backup")(e)),
            }
        }
        if let (Ok(()), Some(argv)) = (&result, &set.command) {
            let list = PathList::from_string("-").map_err(rustic(&repo, "backup"))?;
            let opts = BackupOptions::default()
                .stdin_filename(set.command_file.clone())
                .stdin_command(command_input(argv, set.command_timeout)?);
            match r.backup(&opts, &list, snap_opts()?) {
                Ok(s) => add(&mut outcome, &s),
                Err(e) => {
                    result = Err(BackupError::Rustic {
                        repo: repo.name.clone(),
                        op: "backup",
                        message: if timed_out(&e) {
                            format!(
                                "the command `{}` timed out after {} (command-timeout) and was stopped",
                                argv[0],
                                humantime::format_duration(set.command_timeout)
                            )
                        } else {
                            format!("the command `{}` failed: {}", argv[0], first_line(&e))
                        },
                    })
                }
            }
        }
        if let Err(e) = result {
            let tagged: Vec<_> = r
                .get_matching_snapshots(|s| s.tags.contains(&run_tag))
                .map_err(rustic(&repo, "list snapshots"))?
                .into_iter()
                .map(|s| s.id)
                .collect();
            if !tagged.is_empty() {
                tracing::warn!(repository = %repo.name, set = %set.name, count = tagged.len(), "deleting the failed run's snapshots");
                r.delete_snapshots(&tagged).map_err(rustic(&repo, "delete failed snapshot"))?;
            }
            return Err(e);
        }
        Ok(outcome)
    })
    .await
}

/// rustic's headline ("… an error related to `input/output operations`")
/// and, when it adds something, the innermost cause ("No space left on
/// device"), which is what an operator needs to act on.
fn first_line(e: &RusticError) -> String {
    let head = e
        .to_string()
        .lines()
        .next()
        .unwrap_or("unknown error")
        .trim()
        .to_string();
    let mut cause = None;
    let mut next = std::error::Error::source(e);
    while let Some(s) = next {
        cause = Some(s.to_string());
        next = s.source();
    }
    match cause {
        Some(c) if !c.is_empty() && !head.contains(&c) => {
            format!("{}: {c}", head.trim_end_matches('.'))
        }
        _ => head,
    }
}
/// Snapshots of `label` (all with `None`), oldest first.
pub async fn snapshots(ws: Workspace, repo: RepoSpec, label: Option<String>) -> Result<Vec<Snap>> {
    blocking(move || {
        let r = open(&ws, &repo, false, None)?;
        Ok(set_snapshots(&r, &repo, label.as_deref())?
            .iter()
            .map(Snap::from_file)
            .collect())
    })
    .await
}

/// Copies the set's snapshots that `dst` lacks, creating `dst` with `src`'s
/// chunker when it does not exist yet. Returns how many were copied.
pub async fn copy(ws: Workspace, src: RepoSpec, dst: RepoSpec, label: String) -> Result<usize> {
    blocking(move || {
        absent(&dst)?;
        // Always in name order, so copies A→B and B→A cannot deadlock.
        let (first, second) = if src.name <= dst.name {
            (&src, &dst)
        } else {
            (&dst, &src)
        };
        let _l1 = lock(&ws, first)?;
        let _l2 = lock(&ws, second)?;
        let s = open(&ws, &src, false, None)?;
        let snaps = set_snapshots(&s, &src, Some(&label))?;
        let d = open(&ws, &dst, true, Some(s.config()))?;
        if !s.config().has_same_chunker(d.config()) {
            return Err(BackupError::Rustic {
                repo: dst.name.clone(),
                op: "copy",
                message: format!(
                    "its chunker parameters differ from {}'s; create it afresh",
                    src.name
                ),
            });
        }
        let d = d.to_indexed_ids().map_err(rustic(&dst, "index"))?;
        let relevant = d
            .relevant_copy_snapshots(|_| true, &snaps)
            .map_err(rustic(&dst, "copy"))?;
        let todo: Vec<&SnapshotFile> = relevant
            .iter()
            .filter(|c| c.relevant)
            .map(|c| &c.sn)
            .collect();
        if todo.is_empty() {
            return Ok(0);
        }
        let s = s.to_indexed().map_err(rustic(&src, "index"))?;
        s.copy(&d, todo.iter().copied())
            .map_err(rustic(&dst, "copy"))?;
        Ok(todo.len())
    })
    .await
}

/// Applies retention to the set's snapshots, then prunes. Returns how many were forgotten.
pub async fn forget_prune(
    ws: Workspace,
    repo: RepoSpec,
    label: String,
    keep: Keep,
) -> Result<usize> {
    blocking(move || {
        absent(&repo)?;
        let _lock = lock(&ws, &repo)?;
        let r = open(&ws, &repo, false, None)?;
        let snaps = set_snapshots(&r, &repo, Some(&label))?;
        let n = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        let keep = KeepOptions::default()
            .keep_hourly(n(keep.hourly))
            .keep_daily(n(keep.daily))
            .keep_weekly(n(keep.weekly))
            .keep_monthly(n(keep.monthly));
        let grouped = Grouped::from_items(snaps, SnapshotGroupCriterion::default());
        let groups = rustic_core::ForgetGroups::from_grouped_snapshots_with_retention(
            grouped,
            &keep,
            &rustic_core::jiff::Zoned::now(),
        )
        .map_err(rustic(&repo, "forget"))?;
        let ids = groups.into_forget_ids();
        if !ids.is_empty() {
            r.delete_snapshots(&ids).map_err(rustic(&repo, "forget"))?;
        }
        let popts = PruneOptions::default();
        let plan = r.prune_plan(&popts).map_err(rustic(&repo, "prune"))?;
        r.prune(&popts, plan).map_err(rustic(&repo, "prune"))?;
        Ok(ids.len())
    })
    .await
}

/// Checks a repository; with `read_data` also reads (a subset of) the packs,
/// which is the only way to find corrupted data.
pub async fn check(
    ws: Workspace,
    repo: RepoSpec,
    read_data: Option<String>,
) -> Result<CheckOutcome> {
    blocking(move || {
        let _lock = lock(&ws, &repo)?;
        let r = open(&ws, &repo, false, None)?;
        let mut opts = CheckOptions::default();
        if let Some(subset) = read_data {
            let subset: ReadSubsetOption = subset.parse().map_err(BackupError::other)?;
            opts = opts.read_data(true).read_data_subset(subset);
        }
        let results = r.check(opts).map_err(rustic(&repo, "check"))?;
        let mut out = CheckOutcome::default();
        for (level, finding) in &results.0 {
            // CheckErrorLevel is not exported; its Debug is `Error` or `Warn`.
            if format!("{level:?}") == "Error" {
                out.errors += 1;
            } else {
                out.warnings += 1;
            }
            out.findings.push(format!("{level:?}: {finding}"));
        }
        Ok(out)
    })
    .await
}

/// The set's snapshots (oldest first) and the repository's total size, from one open.
pub async fn survey(ws: Workspace, repo: RepoSpec, label: String) -> Result<(Vec<Snap>, u64)> {
    blocking(move || {
        let r = open(&ws, &repo, false, None)?;
        let snaps = set_snapshots(&r, &repo, Some(&label))?
            .iter()
            .map(Snap::from_file)
            .collect();
        let infos = r.infos_files().map_err(rustic(&repo, "info"))?;
        Ok((snaps, infos.repo.iter().map(|i| i.size).sum()))
    })
    .await
}

/// The repository's total size in bytes.
pub async fn size(ws: Workspace, repo: RepoSpec) -> Result<u64> {
    blocking(move || {
        let r = open(&ws, &repo, false, None)?;
        let infos = r.infos_files().map_err(rustic(&repo, "info"))?;
        Ok(infos.repo.iter().map(|i| i.size).sum())
    })
    .await
}

/// Restores into `target`: one snapshot by id, or with `"latest"` every
/// snapshot of the set's newest run (its files and its command output). Then
/// every restored file is read back and each chunk hashed against the blob id
/// the snapshot records, so a drill proves the bytes, not just that restore ran.
pub async fn restore(
    ws: Workspace,
    repo: RepoSpec,
    label: String,
    snapshot: String,
    target: PathBuf,
) -> Result<RestoreOutcome> {
    blocking(move || {
        let _lock = lock(&ws, &repo)?;
        let r = open(&ws, &repo, false, None)?;
        let snaps = set_snapshots(&r, &repo, Some(&label))?;
        let chosen: Vec<SnapshotFile> = if snapshot == "latest" {
            let Some(newest) = snaps.last() else {
                return Err(BackupError::Other(format!(
                    "set {label} has no snapshot in {}",
                    repo.name
                )));
            };
            let run = newest.tags.iter().find(|t| t.starts_with("run-")).cloned();
            match run {
                Some(run) => snaps
                    .iter()
                    .filter(|s| s.tags.contains(&run))
                    .cloned()
                    .collect(),
                None => vec![newest.clone()],
            }
        } else {
            let found: Vec<_> = snaps
                .iter()
                .filter(|s| s.id.to_hex().starts_with(&snapshot))
                .cloned()
                .collect();
            if found.len() != 1 {
                return Err(BackupError::Other(format!(
                    "{} snapshots of set {label} in {} match `{snapshot}`",
                    found.len(),
                    repo.name
                )));
            }
            found
        };
        let r = r.to_indexed().map_err(rustic(&repo, "index"))?;
        std::fs::create_dir_all(&target)
            .map_err(|e| BackupError::Other(format!("cannot create {}: {e}", target.display())))?;
        let mut out = RestoreOutcome::default();
        for snap in &chosen {
            let done = restore::snapshot(&r, snap, &target, ws.bars).map_err(|message| {
                BackupError::Rustic {
                    repo: repo.name.clone(),
                    op: "restore",
                    message,
                }
            })?;
            out.files += done.files;
            out.bytes += done.bytes;
            out.mismatches.extend(done.mismatches);
            out.snapshots.push(snap.id.to_hex().as_str().to_string());
        }
        Ok(out)
    })
    .await
}
