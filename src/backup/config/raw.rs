//! The raw `[backup]` keys as serde reads them: every key optional, unknown keys refused.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawBackup {
    pub timezone: Option<String>,
    pub work_dir: Option<String>,
    pub lock_wait: Option<String>,
    pub compliance_interval: Option<String>,
    pub check: Option<String>,
    pub read_data: Option<String>,
    pub read_data_subset: Option<String>,
    #[serde(default)]
    pub repositories: Vec<RawRepository>,
    #[serde(default)]
    pub sets: Vec<RawSet>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRepository {
    pub name: Option<String>,
    pub repository: Option<String>,
    pub repository_hot: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub password_credential: Option<String>,
    pub medium: Option<String>,
    pub offsite: Option<bool>,
    pub offline: Option<bool>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSet {
    pub name: Option<String>,
    pub repository: Option<String>,
    pub copy_to: Option<Vec<String>>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub command: Option<Vec<String>>,
    pub command_file: Option<String>,
    pub command_timeout: Option<String>,
    pub before: Option<Vec<String>>,
    pub after: Option<Vec<String>>,
    pub hook_timeout: Option<String>,
    pub medium: Option<String>,
    pub rpo: Option<String>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub snapshot: Option<String>,
    pub copy: Option<String>,
    pub forget: Option<String>,
    pub drill: Option<String>,
    pub drill_verify: Option<Vec<String>>,
    pub drill_verify_timeout: Option<String>,
}
