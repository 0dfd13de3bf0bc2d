//! `[backup]`: the validated repositories, sets and schedules (raw keys in `raw`, their checks in `validate`, `repo`, `set`).

mod raw;
mod repo;
mod set;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use serde::{Serialize, Serializer};

use crate::config::{Schedule, Secret};

pub use raw::{RawBackup, RawRepository, RawSet};
pub(crate) use validate::validate;

/// The validated `[backup]` section. Values first, arrays of tables last (TOML order).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BackupConfig {
    #[serde(serialize_with = "tz_name")]
    pub timezone: Tz,
    /// Locks, cache and drill scratch space; `None`: `<daemon.state-dir>/backup`.
    pub work_dir: Option<PathBuf>,
    #[serde(serialize_with = "human")]
    pub lock_wait: Duration,
    #[serde(serialize_with = "human")]
    pub compliance_interval: Duration,
    pub check: Option<Schedule>,
    pub read_data: Option<Schedule>,
    pub read_data_subset: String,
    pub repositories: Vec<RepoSpec>,
    pub sets: Vec<SetSpec>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RepoSpec {
    pub name: String,
    /// rustic's repository string: an absolute path, `rest:URL` or `rclone:REMOTE:PATH`.
    pub repository: String,
    /// rustic's hot part of a hot/cold repository: metadata only (snapshots,
    /// index, trees) on fast storage, so listing, backups and `check` never
    /// read the cold part, which holds the data (an archive-class bucket).
    pub repository_hot: Option<String>,
    pub password: Secret,
    pub medium: String,
    pub offsite: bool,
    pub offline: bool,
    pub options: BTreeMap<String, String>,
}

impl RepoSpec {
    /// The directory of a local repository (an offline one is present when it exists).
    pub fn local_path(&self) -> Option<PathBuf> {
        let r = self
            .repository
            .strip_prefix("local:")
            .unwrap_or(&self.repository);
        r.starts_with('/').then(|| PathBuf::from(r))
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SetSpec {
    pub name: String,
    /// The primary repository: snapshots go here, copies start from here.
    pub repository: String,
    pub copy_to: Vec<String>,
    pub paths: Vec<PathBuf>,
    pub exclude: Vec<String>,
    pub command: Option<Vec<String>>,
    pub command_file: String,
    /// How long `command` may run (default 1h); on expiry it is stopped and
    /// the run fails, leaving no snapshot. Jobs run one at a time, so a dump
    /// hung on a lock or a dead mount would otherwise stall every set's backups.
    #[serde(serialize_with = "human")]
    pub command_timeout: Duration,
    pub before: Option<Vec<String>>,
    pub after: Option<Vec<String>>,
    /// How long `before` and `after` may each run (default 10m): hooks flush,
    /// freeze or notify, and one that is still running after minutes is stuck.
    #[serde(serialize_with = "human")]
    pub hook_timeout: Duration,
    /// Where the live data sits, for the "two media" rule.
    pub medium: String,
    #[serde(serialize_with = "human")]
    pub rpo: Duration,
    pub keep: Keep,
    pub snapshot: Option<Schedule>,
    pub copy: Option<Schedule>,
    pub forget: Option<Schedule>,
    pub drill: Option<Schedule>,
    pub drill_verify: Option<Vec<String>>,
    /// How long `drill-verify` may run (default 10m): it reads the restored
    /// tree (e.g. `pg_restore --list`), and a hung one fails the drill rather
    /// than keeping the queue and the scratch copy forever.
    #[serde(serialize_with = "human")]
    pub drill_verify_timeout: Duration,
}

impl SetSpec {
    /// Every repository holding this set: the primary first.
    pub fn repositories(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.repository.as_str()).chain(self.copy_to.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Keep {
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

fn human<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn tz_name<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}
