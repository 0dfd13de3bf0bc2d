//! 3-2-1 backups with rustic_core: sets snapshotted, copied, pruned, checked and proven by restore drills.
//!
//! `config` validates `[backup]`; `adaptor` is the only caller of rustic_core;
//! `jobs` composes adaptor calls into recorded, measured jobs; `compliance`
//! judges 3-2-1 per set; `schedule` is the daemon's task; `store` keeps runs.

pub mod adaptor;
mod child;
pub mod compliance;
pub mod config;
pub mod jobs;
pub mod metrics;
pub mod schedule;
pub mod store;

pub use config::{BackupConfig, RawBackup, RepoSpec, SetSpec};
pub use schedule::run;

pub(crate) fn validate(
    cx: &mut crate::config::validate::Ctx,
    raw: Option<RawBackup>,
) -> Option<BackupConfig> {
    config::validate(cx, raw)
}
