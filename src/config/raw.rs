//! The config file as written: serde structs that reject unknown keys, with no validation.

use serde::Deserialize;

use super::checks::{RawCheck, RawWindow};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub status: RawStatus,
    #[serde(default)]
    pub checks: Vec<RawCheck>,
    #[serde(default)]
    pub maintenance: Vec<RawWindow>,
    pub oncall: Option<crate::oncall::RawOncall>,
    #[serde(default)]
    pub channels: Vec<crate::page::channel::RawChannel>,
    pub backup: Option<crate::backup::RawBackup>,
    pub paging: Option<crate::page::config::RawPaging>,
    #[serde(default)]
    pub escalation: Vec<crate::page::config::RawPolicy>,
    pub handover: Option<crate::page::config::RawHandover>,
    #[serde(default)]
    pub promises: Vec<crate::page::config::RawPromise>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHealth {
    pub flap_window: Option<String>,
    pub connectivity_checks: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawStatus {
    pub title_en: Option<String>,
    pub title_zh: Option<String>,
    pub checks: Option<Vec<String>>,
    pub normal_en: Option<String>,
    pub normal_zh: Option<String>,
    pub degraded_en: Option<String>,
    pub degraded_zh: Option<String>,
    pub manual_intake_en: Option<String>,
    pub manual_intake_zh: Option<String>,
    pub maintenance_en: Option<String>,
    pub maintenance_zh: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawServer {
    pub listen: Option<String>,
    pub api_token: Option<String>,
    pub api_token_file: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub request_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDaemon {
    pub state_dir: Option<String>,
    pub grace_period: Option<String>,
    pub tick_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawMetrics {
    pub host_interval: Option<String>,
    pub filesystem_exclude_types: Option<Vec<String>>,
    pub filesystem_exclude_mounts: Option<Vec<String>>,
    pub network_exclude_devices: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}
