//! The config file as written: serde structs that reject unknown keys, with no validation.

use serde::Deserialize;

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
