//! Stage two: raw serde values into typed [`Config`], collecting every error with its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, ConfigErrors};
use super::raw::{RawConfig, RawHealth, RawStatus};
use super::{
    Config, DaemonConfig, GlobalWindow, HealthConfig, LogConfig, LogFormat, MetricsConfig,
    ServerConfig, StatusConfig, StatusMessages, defaults, locate, secret,
};

/// Collects errors and knows how to point at a key in the source text.
pub(crate) struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    /// The config file's directory: relative paths are resolved against it.
    pub base: PathBuf,
    errors: Vec<ConfigError>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        let base = file
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        Ctx {
            file,
            text,
            base,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: locate::line_of_key_or_table(self.text, key),
            key: Some(key.to_string()),
            message: message.into(),
        });
    }

    /// Parses a humantime duration ("90s", "5m", "1h 30m") within `[min, max]`.
    pub fn duration(
        &mut self,
        key: &str,
        raw: Option<&str>,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw) {
            Ok(d) if d < min || d > max => {
                self.error(
                    key,
                    format!(
                        "{raw} is out of range ({} to {})",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(
                    key,
                    format!("`{raw}` is not a duration ({e}); write e.g. \"30s\" or \"5m\""),
                );
                default
            }
        }
    }

    /// Resolves a secret given inline or by `-file` key; `key` is the inline key's path.
    pub fn secret(
        &mut self,
        key: &str,
        inline: Option<&str>,
        file: Option<&str>,
    ) -> Option<super::Secret> {
        match secret::resolve(inline, file, &self.base.clone()) {
            Ok(s) => s,
            Err((which, msg)) => {
                let k = match which {
                    secret::Which::Inline => key.to_string(),
                    secret::Which::File => format!("{key}-file"),
                };
                self.error(&k, msg);
                None
            }
        }
    }

    pub fn path(&self, raw: &str) -> PathBuf {
        normalize(&self.base.join(raw))
    }
}

pub(super) fn validate(file: &Path, text: &str, raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut cx = Ctx::new(file, text);
    let server = server(&mut cx, raw.server);
    let daemon = daemon(&mut cx, raw.daemon);
    let metrics = metrics(&mut cx, raw.metrics);
    let log = log(&mut cx, raw.log);
    let channels = crate::page::channel::validate_channels(&mut cx, raw.channels);
    let channel_names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
    let paging = crate::page::config::validate(
        &mut cx,
        raw.paging,
        raw.escalation,
        raw.handover,
        raw.promises,
        &channel_names,
    );
    let checks = super::checks::validate_checks(&mut cx, raw.checks, paging.as_ref());
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    let maintenance =
        super::maintenance::validate_windows(&mut cx, "maintenance", &raw.maintenance, true)
            .into_iter()
            .map(|(window, checks)| GlobalWindow { window, checks })
            .collect::<Vec<_>>();
    for (i, w) in maintenance.iter().enumerate() {
        for c in &w.checks {
            if !names.contains(&c.as_str()) {
                cx.error(
                    &format!("maintenance[{i}].checks"),
                    format!("no check is named `{c}`"),
                );
            }
        }
    }
    let health = health(&mut cx, raw.health, &names);
    let status = status(&mut cx, raw.status, &names);
    let oncall = crate::oncall::validate(&mut cx, raw.oncall);
    let backup = crate::backup::validate(&mut cx, raw.backup);
    cross_check_paging(&mut cx, paging.as_ref(), oncall.as_ref(), &channels);
    if !cx.errors.is_empty() {
        return Err(ConfigErrors(cx.errors));
    }
    let source = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    Ok(Config {
        source,
        server,
        daemon,
        metrics,
        log,
        health,
        status,
        checks,
        maintenance,
        channels,
        oncall,
        backup,
        paging,
    })
}

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);

fn server(cx: &mut Ctx, raw: super::raw::RawServer) -> ServerConfig {
    let listen_raw = raw.listen.as_deref().unwrap_or(defaults::LISTEN);
    let listen = match listen_raw.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            cx.error(
                "server.listen",
                format!("`{listen_raw}` is not an address:port such as \"127.0.0.1:9847\""),
            );
            defaults::LISTEN
                .parse()
                .expect("default listen address parses")
        }
    };
    let api_token = match secret::resolve(
        raw.api_token.as_deref(),
        raw.api_token_file.as_deref(),
        &cx.base,
    ) {
        Ok(t) => t,
        Err((which, msg)) => {
            let key = match which {
                secret::Which::Inline => "server.api-token",
                secret::Which::File => "server.api-token-file",
            };
            cx.error(key, msg);
            None
        }
    };
    if let Some(t) = &api_token {
        // A short token is guessable; 16 characters is what `openssl rand -hex 8` gives.
        if t.expose().len() < 16 {
            let key = if raw.api_token.is_some() {
                "server.api-token"
            } else {
                "server.api-token-file"
            };
            cx.error(key, "the API token must be at least 16 characters");
        }
    }
    let max_body_bytes = match raw.max_body_bytes {
        None => 1 << 20,
        Some(n) if (1024..=64 << 20).contains(&n) => n as usize,
        Some(n) => {
            cx.error(
                "server.max-body-bytes",
                format!("{n} is out of range (1024 to 67108864)"),
            );
            1 << 20
        }
    };
    let request_timeout = cx.duration(
        "server.request-timeout",
        raw.request_timeout.as_deref(),
        Duration::from_secs(30),
        SECOND,
        Duration::from_secs(600),
    );
    ServerConfig {
        listen,
        api_token,
        max_body_bytes,
        request_timeout,
    }
}

fn daemon(cx: &mut Ctx, raw: super::raw::RawDaemon) -> DaemonConfig {
    let state_dir = match raw.state_dir.as_deref() {
        Some("") => {
            cx.error("daemon.state-dir", "must not be empty");
            PathBuf::from(defaults::STATE_DIR)
        }
        Some(p) => match secret::expand_env(p, secret::process_env) {
            Ok(p) => cx.path(&p),
            Err(e) => {
                cx.error("daemon.state-dir", e);
                PathBuf::from(defaults::STATE_DIR)
            }
        },
        // systemd's StateDirectory= exports the directory it made for us.
        None => std::env::var_os("STATE_DIRECTORY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(defaults::STATE_DIR)),
    };
    let grace_period = cx.duration(
        "daemon.grace-period",
        raw.grace_period.as_deref(),
        Duration::from_secs(10),
        Duration::from_millis(100),
        Duration::from_secs(300),
    );
    let tick_interval = cx.duration(
        "daemon.tick-interval",
        raw.tick_interval.as_deref(),
        SECOND,
        Duration::from_millis(50),
        Duration::from_secs(60),
    );
    DaemonConfig {
        state_dir,
        grace_period,
        tick_interval,
    }
}

fn metrics(cx: &mut Ctx, raw: super::raw::RawMetrics) -> MetricsConfig {
    let host_interval = cx.duration(
        "metrics.host-interval",
        raw.host_interval.as_deref(),
        Duration::from_secs(15),
        SECOND,
        HOUR,
    );
    let strings = |v: Option<Vec<String>>, d: &[&str]| {
        v.unwrap_or_else(|| d.iter().map(|s| s.to_string()).collect())
    };
    let filesystem_exclude_types = strings(
        raw.filesystem_exclude_types,
        &["autofs", "devtmpfs", "nsfs", "proc", "squashfs", "sysfs"],
    );
    let filesystem_exclude_mounts = strings(
        raw.filesystem_exclude_mounts,
        &["/proc/*", "/sys/*", "/run/credentials/*"],
    );
    let network_exclude_devices = strings(raw.network_exclude_devices, &["lo"]);
    for (key, list) in [
        (
            "metrics.filesystem-exclude-types",
            &filesystem_exclude_types,
        ),
        (
            "metrics.filesystem-exclude-mounts",
            &filesystem_exclude_mounts,
        ),
        ("metrics.network-exclude-devices", &network_exclude_devices),
    ] {
        if let Some(bad) = list
            .iter()
            .find(|p| p.is_empty() || p[..p.len() - 1].contains('*'))
        {
            cx.error(
                key,
                format!("`{bad}`: a pattern is a name, optionally ending in `*`"),
            );
        }
    }
    MetricsConfig {
        host_interval,
        filesystem_exclude_types,
        filesystem_exclude_mounts,
        network_exclude_devices,
    }
}

fn log(cx: &mut Ctx, raw: super::raw::RawLog) -> LogConfig {
    let level = raw.level.unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        cx.error(
            "log.level",
            format!(
                "`{level}` is not a level or filter such as \"info\" or \"lantern=debug,info\""
            ),
        );
    }
    let format = match raw.format.as_deref().unwrap_or("auto").parse::<LogFormat>() {
        Ok(f) => f,
        Err(e) => {
            cx.error("log.format", e);
            LogFormat::Auto
        }
    };
    LogConfig { level, format }
}

fn health(cx: &mut Ctx, raw: RawHealth, names: &[&str]) -> HealthConfig {
    let flap_window = cx.duration(
        "health.flap-window",
        raw.flap_window.as_deref(),
        Duration::from_secs(15 * 60),
        Duration::ZERO,
        Duration::from_secs(7 * 86400),
    );
    let connectivity_checks = raw.connectivity_checks.unwrap_or_default();
    for c in &connectivity_checks {
        if !names.contains(&c.as_str()) {
            cx.error(
                "health.connectivity-checks",
                format!("no check is named `{c}`"),
            );
        }
    }
    HealthConfig {
        flap_window,
        connectivity_checks,
    }
}

fn status(cx: &mut Ctx, raw: RawStatus, names: &[&str]) -> StatusConfig {
    let checks = raw.checks.unwrap_or_default();
    for c in &checks {
        if !names.contains(&c.as_str()) {
            cx.error("status.checks", format!("no check is named `{c}`"));
        }
    }
    let or = |v: Option<String>, d: &str| v.unwrap_or_else(|| d.to_string());
    StatusConfig {
        title_en: or(raw.title_en, "Order service status"),
        title_zh: or(raw.title_zh, "订单服务状态"),
        checks,
        messages: StatusMessages {
            normal_en: or(raw.normal_en, "We are taking orders as usual."),
            normal_zh: or(raw.normal_zh, "我们正常接单。"),
            degraded_en: or(
                raw.degraded_en,
                "Ordering is slower than usual; your order will still be handled.",
            ),
            degraded_zh: or(raw.degraded_zh, "下单比平时慢,您的订单仍会被处理。"),
            manual_intake_en: or(
                raw.manual_intake_en,
                "Online ordering is briefly unavailable. Please use the order form: every order is recorded and confirmed.",
            ),
            manual_intake_zh: or(
                raw.manual_intake_zh,
                "在线下单暂时不可用,请使用订单表格:每一笔订单都会被记录并确认。",
            ),
            maintenance_en: or(
                raw.maintenance_en,
                "We are doing planned maintenance; orders are still being taken.",
            ),
            maintenance_zh: or(raw.maintenance_zh, "我们正在进行计划维护,仍在接单。"),
        },
    }
}

pub(crate) use super::maintenance::time_zone;

/// Expands `${ENV}` references in a value that is not itself a secret key.
pub(crate) fn expand(value: &str) -> Result<String, String> {
    secret::expand_env(value, secret::process_env)
}

/// Removes `.` and folds `..` without touching the file system, so paths read
/// well in logs and `check-config` (`/etc/lantern/../x` becomes `/etc/x`).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether `name` matches `pattern`: equal, or a prefix when the pattern ends in `*`.
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// People named by policies must be in the rota, and people's channels must exist.
fn cross_check_paging(
    cx: &mut Ctx,
    paging: Option<&crate::page::config::PagingConfig>,
    rota: Option<&crate::oncall::Rota>,
    channels: &[crate::page::channel::ChannelSpec],
) {
    use crate::page::config::Target;
    if let Some(rota) = rota {
        for (i, p) in rota.people.iter().enumerate() {
            for c in &p.channels {
                if !channels.iter().any(|k| &k.name == c) {
                    cx.error(
                        &format!("oncall.people[{i}].channels"),
                        format!("no channel is named `{c}`"),
                    );
                }
            }
        }
    }
    let Some(paging) = paging else { return };
    let person_known = |id: &str| rota.is_some_and(|r| r.person(id).is_some());
    for (i, policy) in paging.policies.iter().enumerate() {
        for (j, step) in policy.steps.iter().enumerate() {
            for t in &step.targets {
                match t {
                    Target::Person(id) if !person_known(id) => cx.error(
                        &format!("escalation[{i}].steps[{j}].targets"),
                        format!("no person `{id}` in the [oncall] rota"),
                    ),
                    _ => {}
                }
            }
        }
    }
    if let Some(h) = &paging.handover {
        for t in &h.escalate_to {
            if let Target::Person(id) = t
                && !person_known(id)
            {
                cx.error(
                    "handover.escalate-to",
                    format!("no person `{id}` in the [oncall] rota"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(Path::new("/etc/lantern/t.toml"), text)
    }

    #[test]
    fn an_empty_file_gives_loopback_defaults() {
        let c = parse("").unwrap();
        assert!(c.server.listen.ip().is_loopback());
        assert_eq!(c.daemon.grace_period, Duration::from_secs(10));
        assert!(c.server.api_token.is_none());
    }

    #[test]
    fn every_bad_key_is_reported_with_its_line() {
        let e = parse("[server]\nlisten = \"nope\"\n\n[daemon]\ngrace-period = \"forever\"\n")
            .unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        assert_eq!(e.0[0].key.as_deref(), Some("server.listen"));
        assert_eq!(e.0[0].line, Some(2));
        assert_eq!(e.0[1].key.as_deref(), Some("daemon.grace-period"));
        assert_eq!(e.0[1].line, Some(5));
        assert!(
            e.to_string()
                .starts_with("/etc/lantern/t.toml:2: key `server.listen`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let e = parse("[server]\n\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap_err();
        assert_eq!(e.0[0].line, Some(4), "{e}");
        assert_eq!(e.0[0].key.as_deref(), Some("server.lisen"), "{e}");
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let c = parse("[daemon]\nstate-dir = \"state\"\n").unwrap();
        assert_eq!(c.daemon.state_dir, PathBuf::from("/etc/lantern/state"));
        let c = parse("[daemon]\nstate-dir = \"../var/./lantern\"\n").unwrap();
        assert_eq!(c.daemon.state_dir, PathBuf::from("/etc/var/lantern"));
    }

    #[test]
    fn the_effective_config_masks_the_token() {
        let c = parse("[server]\napi-token = \"0123456789abcdef-secret\"\n").unwrap();
        let shown = c.to_effective_toml();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains(super::super::MASK), "{shown}");
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        assert!(matches_pattern("lo", "lo"));
        assert!(!matches_pattern("lo", "lo0"));
        assert!(matches_pattern("veth*", "veth12"));
    }
}
