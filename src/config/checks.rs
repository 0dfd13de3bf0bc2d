//! `[[checks]]`: the raw union of every kind's keys, and validation into [`CheckSpec`].
//!
//! One raw struct holds every key any kind accepts, so serde's
//! `deny_unknown_fields` still catches typos; validation then refuses keys
//! that do not apply to the check's kind, naming both.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::validate::Ctx;
use crate::probe::condition::Condition;
use crate::probe::{Kind, KindName};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawCheck {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub retry_backoff: Option<String>,
    pub confirm_interval: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub depends_on: Option<Vec<String>>,
    pub conditions: Option<Vec<String>>,
    pub failure_threshold: Option<RawThreshold>,
    pub success_threshold: Option<u32>,
    pub degraded_above: Option<String>,
    pub page: Option<bool>,
    pub escalation: Option<String>,
    pub maintenance: Option<Vec<RawWindow>>,
    // http, flow, promql
    pub url: Option<String>,
    pub method: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub body: Option<String>,
    pub ca_file: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub skip_verify: Option<bool>,
    pub follow_redirects: Option<bool>,
    pub reuse_connections: Option<bool>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    // tcp, tls, databases
    pub address: Option<String>,
    pub send: Option<String>,
    pub expect: Option<String>,
    pub server_name: Option<String>,
    // dns
    pub server: Option<String>,
    pub query_name: Option<String>,
    pub record_type: Option<String>,
    // postgres, mysql, redis
    pub user: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub database: Option<String>,
    pub query: Option<String>,
    pub info_section: Option<String>,
    // command
    pub argv: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, String>>,
    pub working_dir: Option<String>,
    // heartbeat
    pub period: Option<String>,
    pub grace: Option<String>,
    pub schedule: Option<String>,
    pub time_zone: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<String>,
    // promql
    pub prometheus_url: Option<String>,
    pub empty_result: Option<String>,
    // flow
    pub steps: Option<Vec<RawFlowStep>>,
}

impl RawCheck {
    /// The kind-specific keys that are set, by their config names.
    fn kind_keys_set(&self) -> Vec<&'static str> {
        let mut set = Vec::new();
        macro_rules! key {
            ($($field:ident => $name:literal),* $(,)?) => {
                $( if self.$field.is_some() { set.push($name); } )*
            };
        }
        key!(
            url => "url", method => "method", headers => "headers", body => "body", ca_file => "ca-file",
            client_cert => "client-cert", client_key => "client-key", skip_verify => "skip-verify",
            follow_redirects => "follow-redirects", reuse_connections => "reuse-connections",
            bearer_token => "bearer-token", bearer_token_file => "bearer-token-file", address => "address",
            send => "send", expect => "expect", server_name => "server-name", server => "server",
            query_name => "query-name", record_type => "record-type", user => "user", username => "username",
            password => "password", password_file => "password-file", database => "database", query => "query",
            info_section => "info-section", argv => "argv", env => "env", working_dir => "working-dir",
            period => "period", grace => "grace", schedule => "schedule", time_zone => "time-zone",
            token => "token", token_file => "token-file", prometheus_url => "prometheus-url",
            empty_result => "empty-result", steps => "steps",
        );
        set
    }
}

/// `failure-threshold = 3` (consecutive) or `failure-threshold = "3 of 5"` (window).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawThreshold {
    Count(u32),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawWindow {
    /// Cron expression (5 fields, minute first) for recurring windows.
    pub schedule: Option<String>,
    pub duration: Option<String>,
    pub time_zone: Option<String>,
    /// RFC 3339 start and end for a one-off window.
    pub start: Option<String>,
    pub end: Option<String>,
    pub reason: Option<String>,
    /// For top-level `[[maintenance]]`: the checks it covers (default: all).
    pub checks: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawFlowStep {
    pub name: Option<String>,
    pub method: Option<String>,
    pub url: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub body: Option<String>,
    pub capture: Option<BTreeMap<String, String>>,
    pub conditions: Option<Vec<String>>,
    pub poll_every: Option<String>,
    pub poll_within: Option<String>,
    pub always_run: Option<bool>,
}

/// A validated check: what to probe, how often, and how results become state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckSpec {
    pub name: String,
    pub kind: Kind,
    #[serde(serialize_with = "super::human")]
    pub interval: Duration,
    #[serde(serialize_with = "super::human")]
    pub timeout: Duration,
    pub retries: u32,
    #[serde(serialize_with = "super::human")]
    pub retry_backoff: Duration,
    /// After a failed observation below the threshold, the next one comes this
    /// soon, so an outage is confirmed fast and a blip is cleared fast.
    #[serde(serialize_with = "super::human")]
    pub confirm_interval: Duration,
    pub labels: BTreeMap<String, String>,
    pub depends_on: Vec<String>,
    pub conditions: Vec<Condition>,
    pub failure_threshold: FailureThreshold,
    pub success_threshold: u32,
    #[serde(serialize_with = "super::human_opt")]
    pub degraded_above: Option<Duration>,
    pub page: bool,
    /// The escalation policy of its incidents (`None`: the default policy).
    pub escalation: Option<String>,
    pub maintenance: Vec<super::maintenance::Window>,
}

/// When failures turn a check DOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureThreshold {
    /// N failed observations in a row.
    Consecutive(u32),
    /// N failed among the last M observations: load-balanced targets where one
    /// bad node of three fails every third probe never trip a consecutive count.
    Window { failures: u32, of: u32 },
}

const NAME_HINT: &str = "letters, digits, `-` and `_`, starting with a letter";

pub(super) fn validate_checks(
    cx: &mut Ctx,
    raw: Vec<RawCheck>,
    paging: Option<&crate::page::config::PagingConfig>,
) -> Vec<CheckSpec> {
    let mut out: Vec<CheckSpec> = Vec::new();
    // Each valid check's position in the file, so later errors name the right `checks[i]`.
    let mut positions: Vec<usize> = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("checks[{i}].{k}");
        let Some(name) = r.name.clone() else {
            cx.error(&format!("checks[{i}]"), "every check needs a `name`");
            continue;
        };
        if !valid_name(&name) {
            cx.error(&key("name"), format!("`{name}`: a name is {NAME_HINT}"));
            continue;
        }
        if !names.insert(name.clone()) {
            cx.error(
                &key("name"),
                format!("`{name}` is used by an earlier check"),
            );
            continue;
        }
        let Some(kind_raw) = r.kind.clone() else {
            cx.error(
                &format!("checks[{i}]"),
                format!("check `{name}` needs a `kind`"),
            );
            continue;
        };
        let Ok(kind_name) = kind_raw.parse::<KindName>() else {
            cx.error(
                &key("kind"),
                format!("unknown kind `{kind_raw}` (one of {})", KindName::ALL_TEXT),
            );
            continue;
        };
        for k in r.kind_keys_set() {
            if !kind_name.keys().contains(&k) {
                cx.error(
                    &key(k),
                    format!("`{k}` does not apply to {kind_raw} checks"),
                );
            }
        }
        let interval = cx.duration(
            &key("interval"),
            r.interval.as_deref(),
            kind_name.default_interval(),
            Duration::from_millis(100),
            Duration::from_secs(86400),
        );
        let timeout = cx.duration(
            &key("timeout"),
            r.timeout.as_deref(),
            Duration::from_secs(10).min(interval),
            Duration::from_millis(10),
            Duration::from_secs(3600),
        );
        if timeout > interval && kind_name != KindName::Heartbeat {
            cx.error(&key("timeout"), "must not be longer than `interval`");
        }
        let retries = r.retries.unwrap_or(0);
        if retries > 10 {
            cx.error(&key("retries"), "at most 10 retries");
        }
        let retry_backoff = cx.duration(
            &key("retry-backoff"),
            r.retry_backoff.as_deref(),
            Duration::from_millis(200),
            Duration::ZERO,
            Duration::from_secs(60),
        );
        let confirm_interval = cx.duration(
            &key("confirm-interval"),
            r.confirm_interval.as_deref(),
            (interval / 4).max(Duration::from_millis(50)),
            Duration::from_millis(10),
            Duration::from_secs(86400),
        );
        let failure_threshold = match &r.failure_threshold {
            None => FailureThreshold::Consecutive(2),
            Some(t) => match parse_threshold(t) {
                Ok(t) => t,
                Err(e) => {
                    cx.error(&key("failure-threshold"), e);
                    FailureThreshold::Consecutive(2)
                }
            },
        };
        let success_threshold = r.success_threshold.unwrap_or(1);
        if !(1..=100).contains(&success_threshold) {
            cx.error(&key("success-threshold"), "between 1 and 100");
        }
        let degraded_above = r.degraded_above.as_deref().map(|d| {
            cx.duration(
                &key("degraded-above"),
                Some(d),
                Duration::ZERO,
                Duration::from_millis(1),
                Duration::from_secs(3600),
            )
        });
        let mut conditions = Vec::new();
        for (j, text) in r.conditions.clone().unwrap_or_default().iter().enumerate() {
            match Condition::parse(text) {
                Ok(c) if !kind_name.subjects().contains(&c.subject.name()) => cx.error(
                    &key(&format!("conditions[{j}]")),
                    format!(
                        "`{}` does not apply to {kind_raw} checks (they offer: {})",
                        c.subject.name(),
                        kind_name.subjects().join(", ")
                    ),
                ),
                // INFO is only asked for with a section, so the condition could never hold.
                Ok(c)
                    if kind_name == KindName::Redis
                        && c.subject.name() == "info"
                        && r.info_section.is_none() =>
                {
                    cx.error(
                        &key(&format!("conditions[{j}]")),
                        format!(
                            "`{text}` needs `info-section` (e.g. \"replication\" or \"memory\")"
                        ),
                    )
                }
                Ok(c) => conditions.push(c),
                Err(e) => cx.error(&key(&format!("conditions[{j}]")), format!("`{text}`: {e}")),
            }
        }
        if conditions.is_empty() {
            conditions = kind_name.default_conditions();
        }
        let labels = r.labels.clone().unwrap_or_default();
        for l in labels.keys() {
            if !valid_name(l) {
                cx.error(
                    &key("labels"),
                    format!("label `{l}`: a label name is {NAME_HINT}"),
                );
            }
        }
        let maintenance = super::maintenance::validate_windows(
            cx,
            &key("maintenance"),
            r.maintenance.as_deref().unwrap_or(&[]),
            false,
        );
        if let Some(p) = &r.escalation {
            match paging {
                None => cx.error(
                    &key("escalation"),
                    format!("policy `{p}` named, but no [[escalation]] or [paging] is configured"),
                ),
                Some(cfg) if cfg.policy(p).is_none() => cx.error(
                    &key("escalation"),
                    format!("no escalation policy is named `{p}`"),
                ),
                _ => {}
            }
        }
        let Some(kind) = Kind::from_raw(kind_name, cx, &format!("checks[{i}]"), &r) else {
            continue;
        };
        positions.push(i);
        out.push(CheckSpec {
            name,
            kind,
            interval,
            timeout,
            retries,
            retry_backoff,
            confirm_interval,
            labels,
            depends_on: r.depends_on.clone().unwrap_or_default(),
            conditions,
            failure_threshold,
            success_threshold,
            degraded_above,
            page: r.page.unwrap_or(true),
            escalation: r.escalation.clone(),
            maintenance: maintenance.into_iter().map(|(w, _)| w).collect(),
        });
    }
    // Dependencies must name checks, and must not loop. A dependency on a
    // check that failed validation has that check's own error already.
    for (c, &i) in out.iter().zip(&positions) {
        for d in &c.depends_on {
            if !names.contains(d) {
                cx.error(
                    &format!("checks[{i}].depends-on"),
                    format!("no check is named `{d}`"),
                );
            } else if d == &c.name {
                cx.error(
                    &format!("checks[{i}].depends-on"),
                    "a check cannot depend on itself",
                );
            }
        }
    }
    if let Some(cycle) = find_cycle(&out) {
        let i = out
            .iter()
            .position(|c| c.name == cycle[0])
            .map_or(0, |j| positions[j]);
        cx.error(
            &format!("checks[{i}].depends-on"),
            format!("dependencies form a loop: {}", cycle.join(" → ")),
        );
    }
    out
}

pub fn valid_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn parse_threshold(t: &RawThreshold) -> Result<FailureThreshold, String> {
    let t = match t {
        RawThreshold::Count(n) if (1..=100).contains(n) => {
            return Ok(FailureThreshold::Consecutive(*n));
        }
        RawThreshold::Count(_) => return Err("between 1 and 100".into()),
        RawThreshold::Text(t) => t,
    };
    let parts: Vec<&str> = t.split_whitespace().collect();
    match parts.as_slice() {
        [n, "of", m] => {
            let (n, m) = (n.parse::<u32>(), m.parse::<u32>());
            match (n, m) {
                (Ok(n), Ok(m)) if n >= 1 && n <= m && m <= 100 => {
                    Ok(FailureThreshold::Window { failures: n, of: m })
                }
                _ => Err(format!("`{t}`: write \"N of M\" with 1 ≤ N ≤ M ≤ 100")),
            }
        }
        [n] => n
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .map(FailureThreshold::Consecutive)
            .ok_or_else(|| format!("`{t}`: a number (consecutive) or \"N of M\"")),
        _ => Err(format!("`{t}`: a number (consecutive) or \"N of M\"")),
    }
}

fn find_cycle(checks: &[CheckSpec]) -> Option<Vec<String>> {
    let deps: BTreeMap<&str, &[String]> = checks
        .iter()
        .map(|c| (c.name.as_str(), c.depends_on.as_slice()))
        .collect();
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, &'a [String]>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| *s == n) {
            let mut cycle: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if !done.insert(n) {
            return None;
        }
        stack.push(n);
        for d in deps.get(n).copied().unwrap_or_default() {
            if d != n
                && let Some(c) = visit(d, deps, stack, done)
            {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for c in checks {
        if let Some(cycle) = visit(&c.name, &deps, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn errors(text: &str) -> String {
        Config::parse(std::path::Path::new("t.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_dependency_error_names_the_check_by_its_place_in_the_file() {
        let e = errors(
            r#"
[[checks]]
name = "a"
kind = "ping"

[[checks]]
name = "b"
kind = "tcp"
address = "127.0.0.1:1"
depends-on = ["a", "nope"]
"#,
        );
        assert!(e.contains("checks[0].kind"), "{e}");
        assert!(e.contains("checks[1].depends-on"), "{e}");
        assert!(e.contains("`nope`"), "{e}");
        assert!(!e.contains("named `a`"), "a has its own error: {e}");
    }

    #[test]
    fn a_redis_info_condition_without_a_section_is_refused() {
        let e = errors(
            r#"
[[checks]]
name = "cache"
kind = "redis"
address = "127.0.0.1:6379"
conditions = ["info(role) == master"]
"#,
        );
        assert!(e.contains("checks[0].conditions[0]"), "{e}");
        assert!(e.contains("info-section"), "{e}");
    }
}
