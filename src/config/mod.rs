//! Configuration: read a TOML file, validate it once into typed values, print it masked.
//!
//! Two stages, as in ripgrep: [`raw`] mirrors the file with serde and rejects
//! unknown keys; [`validate`] turns it into [`Config`], whose fields are real
//! types (socket addresses, durations, absolute paths, secrets). Nothing
//! downstream re-validates or parses strings. Every error names the file, the
//! line and the key ([`locate`]) and maps to exit code 78.

mod checks;
mod error;
mod locate;
mod maintenance;
mod raw;
mod secret;
pub(crate) mod validate;

pub use validate::matches_pattern;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Serialize, Serializer};

pub use checks::{CheckSpec, FailureThreshold, RawCheck, RawFlowStep, valid_name};
pub use error::{ConfigError, ConfigErrors, EXIT_CONFIG};
pub use maintenance::{Schedule, Window};
pub use secret::{MASK, Secret};

/// The validated configuration. Cheap to clone behind an `Arc`; a reload builds
/// a new one and swaps it in whole.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    /// The file this was read from; reloads read it again.
    #[serde(skip)]
    pub source: PathBuf,
    pub server: ServerConfig,
    pub daemon: DaemonConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub health: HealthConfig,
    pub status: StatusConfig,
    pub checks: Vec<CheckSpec>,
    /// Top-level windows and the checks each covers (empty: all).
    pub maintenance: Vec<GlobalWindow>,
    pub channels: Vec<crate::page::channel::ChannelSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oncall: Option<crate::oncall::Rota>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::backup::BackupConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paging: Option<crate::page::config::PagingConfig>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GlobalWindow {
    #[serde(flatten)]
    pub window: Window,
    pub checks: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HealthConfig {
    /// A check that goes DOWN again this soon after recovering reopens its
    /// incident instead of opening a new one.
    #[serde(serialize_with = "human")]
    pub flap_window: Duration,
    /// Checks that prove lantern's own host can reach the network; when all of
    /// them are DOWN, other flips are recorded but page nobody.
    pub connectivity_checks: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct StatusConfig {
    pub title_en: String,
    pub title_zh: String,
    /// Checks whose state the public status follows (empty: every paging check).
    pub checks: Vec<String>,
    pub messages: StatusMessages,
}

/// What customers read in each mode, in English and Chinese.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct StatusMessages {
    pub normal_en: String,
    pub normal_zh: String,
    pub degraded_en: String,
    pub degraded_zh: String,
    pub manual_intake_en: String,
    pub manual_intake_zh: String,
    pub maintenance_en: String,
    pub maintenance_zh: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Bearer token for every state-changing `/api/v1` call; without one those
    /// calls are refused, never open.
    pub api_token: Option<Secret>,
    pub max_body_bytes: usize,
    #[serde(serialize_with = "human")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DaemonConfig {
    pub state_dir: PathBuf,
    #[serde(serialize_with = "human")]
    pub grace_period: Duration,
    #[serde(serialize_with = "human")]
    pub tick_interval: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MetricsConfig {
    #[serde(serialize_with = "human")]
    pub host_interval: Duration,
    pub filesystem_exclude_types: Vec<String>,
    pub filesystem_exclude_mounts: Vec<String>,
    pub network_exclude_devices: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Text; coloured only when stderr is a terminal.
    Auto,
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LogFormat::Auto),
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format `{other}` (auto, text or json)")),
        }
    }
}

/// Defaults that more than one place needs to agree on.
pub mod defaults {
    pub const LISTEN: &str = "127.0.0.1:9847";
    pub const STATE_DIR: &str = "/var/lib/lantern";
    pub const CONFIG_FILE: &str = "/etc/lantern/lantern.toml";
}

fn human<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn human_opt<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => human(d, s),
        None => s.serialize_none(),
    }
}

impl Config {
    /// Reads and validates `path`. Relative paths inside the file are taken
    /// relative to the file's directory, so a config means the same thing
    /// whatever directory lantern is started from.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors::single(path, format!("cannot read: {e}")))?;
        Self::parse(path, &text)
    }

    /// Validates `text` as if it had been read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => (
                    Some(locate::line_of_offset(text, span.start)),
                    locate::key_at(text, span.start),
                ),
                None => (None, None),
            };
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line,
                key,
                message: e.message().trim().to_string(),
            }])
        })?;
        validate::validate(path, text, raw)
    }

    /// The effective configuration as TOML, secrets masked: what
    /// `check-config` prints.
    pub fn to_effective_toml(&self) -> String {
        // Serializing our own plain structs to TOML cannot fail; should it ever,
        // say so in the output rather than panic.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}
