//! `[paging]`, `[[escalation]]` policies, `[handover]` and `[[promises]]`: raw keys and their validation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::validate::Ctx;
use crate::config::{Secret, valid_name};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPaging {
    pub public_url: Option<String>,
    pub ack_secret: Option<String>,
    pub ack_secret_file: Option<String>,
    pub ack_link_ttl: Option<String>,
    pub default_policy: Option<String>,
    pub fallback_channel: Option<String>,
    pub fallback_after: Option<u32>,
    pub max_attempts: Option<u32>,
    pub tick: Option<String>,
    pub heartbeat_url: Option<String>,
    pub heartbeat_url_file: Option<String>,
    pub heartbeat_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPolicy {
    pub name: Option<String>,
    pub repeat: Option<u32>,
    pub ack_timeout: Option<String>,
    pub reminder_interval: Option<String>,
    pub resolve_notice: Option<bool>,
    #[serde(default)]
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawStep {
    pub delay: Option<String>,
    #[serde(default)]
    pub targets: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHandover {
    pub sign_within: Option<String>,
    #[serde(default)]
    pub escalate_to: Vec<String>,
    pub shifts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPromise {
    pub name: Option<String>,
    pub within: Option<String>,
    pub warn_at: Option<f64>,
    pub page_at: Option<f64>,
    pub policy: Option<String>,
    pub description: Option<String>,
}

/// Who a step pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "name")]
pub enum Target {
    /// Whoever is primary on duty now.
    Primary,
    /// Whoever is assistant on duty now.
    Assistant,
    /// One person of the rota, by id.
    Person(String),
    /// A channel (a team chat room), mentioning whoever is primary.
    Channel(String),
}

impl Target {
    fn parse(s: &str) -> Result<Target, String> {
        match s.split_once(':') {
            None if s == "primary" => Ok(Target::Primary),
            None if s == "assistant" => Ok(Target::Assistant),
            Some(("person", id)) if !id.is_empty() => Ok(Target::Person(id.to_string())),
            Some(("channel", c)) if !c.is_empty() => Ok(Target::Channel(c.to_string())),
            _ => Err(format!(
                "`{s}`: a target is primary, assistant, person:ID or channel:NAME"
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Step {
    #[serde(serialize_with = "human")]
    pub delay: Duration,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Policy {
    pub name: String,
    /// Further rounds through the steps after the first.
    pub repeat: u32,
    /// An acknowledged incident that is not resolved this long after its ack pages again.
    #[serde(serialize_with = "human")]
    pub ack_timeout: Duration,
    /// While still down after the last step, remind this often.
    #[serde(serialize_with = "human")]
    pub reminder_interval: Duration,
    pub resolve_notice: bool,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HandoverConfig {
    #[serde(serialize_with = "human")]
    pub sign_within: Duration,
    pub escalate_to: Vec<Target>,
    /// Shifts whose boundaries hand over (empty: every shift).
    pub shifts: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Promise {
    pub name: String,
    pub description: String,
    #[serde(serialize_with = "human")]
    pub within: Duration,
    pub warn_at: f64,
    pub page_at: f64,
    pub policy: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PagingConfig {
    /// Base of acknowledgement links; `None`: lantern's own listen address.
    pub public_url: Option<String>,
    /// HMAC key of acknowledgement links; `None`: generated into the state directory.
    pub ack_secret: Option<Secret>,
    #[serde(serialize_with = "human")]
    pub ack_link_ttl: Duration,
    pub default_policy: String,
    pub fallback_channel: Option<String>,
    pub fallback_after: u32,
    pub max_attempts: u32,
    #[serde(serialize_with = "human")]
    pub tick: Duration,
    pub heartbeat_url: Option<Secret>,
    #[serde(serialize_with = "human")]
    pub heartbeat_interval: Duration,
    pub handover: Option<HandoverConfig>,
    pub policies: Vec<Policy>,
    pub promises: Vec<Promise>,
}

impl PagingConfig {
    pub fn policy(&self, name: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.name == name)
    }

    pub fn promise(&self, name: &str) -> Option<&Promise> {
        self.promises.iter().find(|p| p.name == name)
    }
}

fn human<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86400);

/// Validates the paging sections. With no policies configured, paging is off
/// (`None`) unless `[paging]` is given, which then gets a default policy
/// paging the primary at once and the assistant after 5 minutes.
pub(crate) fn validate(
    cx: &mut Ctx,
    raw: Option<RawPaging>,
    policies: Vec<RawPolicy>,
    handover: Option<RawHandover>,
    promises: Vec<RawPromise>,
    channels: &[&str],
) -> Option<PagingConfig> {
    if raw.is_none() && policies.is_empty() && handover.is_none() && promises.is_empty() {
        return None;
    }
    let raw = raw.unwrap_or_default();
    let public_url = raw.public_url.map(|u| u.trim_end_matches('/').to_string());
    if let Some(u) = &public_url
        && reqwest::Url::parse(u).map_or(true, |p| !matches!(p.scheme(), "http" | "https"))
    {
        cx.error("paging.public-url", format!("`{u}` is not an http(s) URL"));
    }
    let ack_secret = cx.secret(
        "paging.ack-secret",
        raw.ack_secret.as_deref(),
        raw.ack_secret_file.as_deref(),
    );
    if ack_secret.as_ref().is_some_and(|s| s.expose().len() < 16) {
        cx.error("paging.ack-secret", "at least 16 characters");
    }
    let ack_link_ttl = cx.duration(
        "paging.ack-link-ttl",
        raw.ack_link_ttl.as_deref(),
        DAY,
        MINUTE,
        30 * DAY,
    );
    let tick = cx.duration(
        "paging.tick",
        raw.tick.as_deref(),
        Duration::from_millis(500),
        Duration::from_millis(10),
        MINUTE,
    );
    let heartbeat_url = cx.secret(
        "paging.heartbeat-url",
        raw.heartbeat_url.as_deref(),
        raw.heartbeat_url_file.as_deref(),
    );
    let heartbeat_interval = cx.duration(
        "paging.heartbeat-interval",
        raw.heartbeat_interval.as_deref(),
        MINUTE,
        Duration::from_secs(5),
        Duration::from_secs(3600),
    );
    let fallback_after = raw.fallback_after.unwrap_or(3);
    let max_attempts = raw.max_attempts.unwrap_or(10);
    if !(1..=100).contains(&max_attempts) {
        cx.error("paging.max-attempts", "between 1 and 100");
    }
    if let Some(f) = &raw.fallback_channel
        && !channels.contains(&f.as_str())
    {
        cx.error(
            "paging.fallback-channel",
            format!("no channel is named `{f}`"),
        );
    }
    let mut out = Vec::new();
    for (i, p) in policies.into_iter().enumerate() {
        let k = |f: &str| format!("escalation[{i}].{f}");
        let Some(name) = p.name.clone().filter(|n| valid_name(n)) else {
            cx.error(
                &k("name"),
                "every policy needs a name (letters, digits, - and _)",
            );
            continue;
        };
        if out.iter().any(|q: &Policy| q.name == name) {
            cx.error(&k("name"), format!("`{name}` is used by an earlier policy"));
        }
        let mut steps = Vec::new();
        for (j, s) in p.steps.iter().enumerate() {
            let sk = |f: &str| format!("escalation[{i}].steps[{j}].{f}");
            let delay = cx.duration(
                &sk("delay"),
                s.delay.as_deref(),
                Duration::ZERO,
                Duration::ZERO,
                7 * DAY,
            );
            let targets = targets(cx, &sk("targets"), &s.targets, channels);
            if targets.is_empty() {
                cx.error(&sk("targets"), "a step needs at least one target");
            }
            steps.push(Step { delay, targets });
        }
        if steps.is_empty() {
            cx.error(&k("steps"), "a policy needs at least one step");
        }
        if steps.windows(2).any(|w| w[1].delay < w[0].delay) {
            cx.error(
                &k("steps"),
                "step delays count from the incident's start and must not decrease",
            );
        }
        out.push(Policy {
            name,
            repeat: p.repeat.unwrap_or(0).min(10),
            ack_timeout: cx.duration(
                &k("ack-timeout"),
                p.ack_timeout.as_deref(),
                30 * MINUTE,
                MINUTE,
                7 * DAY,
            ),
            reminder_interval: cx.duration(
                &k("reminder-interval"),
                p.reminder_interval.as_deref(),
                60 * MINUTE,
                MINUTE,
                7 * DAY,
            ),
            resolve_notice: p.resolve_notice.unwrap_or(true),
            steps,
        });
    }
    if out.is_empty() {
        out.push(Policy {
            name: "default".into(),
            repeat: 1,
            ack_timeout: 30 * MINUTE,
            reminder_interval: 60 * MINUTE,
            resolve_notice: true,
            steps: vec![
                Step {
                    delay: Duration::ZERO,
                    targets: vec![Target::Primary],
                },
                Step {
                    delay: 5 * MINUTE,
                    targets: vec![Target::Primary, Target::Assistant],
                },
            ],
        });
    }
    let default_policy = raw.default_policy.unwrap_or_else(|| out[0].name.clone());
    if !out.iter().any(|p| p.name == default_policy) {
        cx.error(
            "paging.default-policy",
            format!("no escalation policy is named `{default_policy}`"),
        );
    }
    let handover = handover.map(|h| HandoverConfig {
        sign_within: cx.duration(
            "handover.sign-within",
            h.sign_within.as_deref(),
            30 * MINUTE,
            Duration::from_secs(1),
            DAY,
        ),
        escalate_to: {
            let t = targets(cx, "handover.escalate-to", &h.escalate_to, channels);
            if t.is_empty() {
                vec![Target::Assistant]
            } else {
                t
            }
        },
        shifts: h.shifts.unwrap_or_default(),
    });
    let mut promises_out: Vec<Promise> = Vec::new();
    for (i, p) in promises.into_iter().enumerate() {
        let k = |f: &str| format!("promises[{i}].{f}");
        let Some(name) = p.name.clone().filter(|n| valid_name(n)) else {
            cx.error(
                &k("name"),
                "every promise needs a name (letters, digits, - and _)",
            );
            continue;
        };
        let Some(w) = p.within.as_deref() else {
            cx.error(&k("within"), "a promise needs `within`, e.g. \"2h\"");
            continue;
        };
        let within = cx.duration(
            &k("within"),
            Some(w),
            2 * 3600 * Duration::from_secs(1),
            Duration::from_secs(1),
            30 * DAY,
        );
        let warn_at = p.warn_at.unwrap_or(0.6);
        let page_at = p.page_at.unwrap_or(0.9);
        if !(0.0 < warn_at && warn_at < page_at && page_at < 1.0) {
            cx.error(
                &k("page-at"),
                "0 < warn-at < page-at < 1 (shares of `within`)",
            );
        }
        let policy = p.policy.unwrap_or_else(|| default_policy.clone());
        if !out.iter().any(|q| q.name == policy) {
            cx.error(
                &k("policy"),
                format!("no escalation policy is named `{policy}`"),
            );
        }
        if promises_out.iter().any(|q| q.name == name) {
            cx.error(
                &k("name"),
                format!("`{name}` is used by an earlier promise"),
            );
        }
        promises_out.push(Promise {
            name,
            description: p.description.unwrap_or_default(),
            within,
            warn_at,
            page_at,
            policy,
        });
    }
    Some(PagingConfig {
        public_url,
        ack_secret,
        ack_link_ttl,
        default_policy,
        fallback_channel: raw.fallback_channel,
        fallback_after,
        max_attempts,
        tick,
        heartbeat_url,
        heartbeat_interval,
        handover,
        policies: out,
        promises: promises_out,
    })
}

fn targets(cx: &mut Ctx, key: &str, raw: &[String], channels: &[&str]) -> Vec<Target> {
    let mut out = Vec::new();
    for t in raw {
        match Target::parse(t) {
            Ok(Target::Channel(c)) if !channels.contains(&c.as_str()) => {
                cx.error(key, format!("no channel is named `{c}`"))
            }
            Ok(t) => out.push(t),
            Err(e) => cx.error(key, e),
        }
    }
    out
}
