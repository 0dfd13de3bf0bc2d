//! 3-2-1 backups with rustic_core (being written).

use serde::{Deserialize, Serialize};

use crate::config::validate::Ctx;

/// `[backup]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawBackup {}

/// The validated backup configuration.
#[derive(Debug, Clone, Serialize)]
pub struct BackupConfig {}

pub(crate) fn validate(cx: &mut Ctx, raw: Option<RawBackup>) -> Option<BackupConfig> {
    raw.map(|_| {
        cx.error("backup", "backups are being written");
        BackupConfig {}
    })
}
