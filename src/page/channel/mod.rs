//! Channels: `[[channels]]` as written, its validation into [`ChannelSpec`], and dispatch to one file per kind.
//!
//! Every kind renders the same [`Message`] into its receiver's format and reads
//! the receiver's answer into an [`Outcome`]: delivered, worth retrying, or
//! not. The chat robots answer HTTP 200 even when they refuse a message, so
//! each kind reads its own error codes (see `shared/reference/paging.md` §4).
//! Every URL, key and signing secret is a [`Secret`]: webhook URLs carry their
//! credential in the URL, so they are never logged, and network errors are
//! reported without the URL.

mod alertmanager;
mod dingtalk;
mod email;
mod feishu;
mod file;
mod http;
mod pagerduty;
mod slack;
mod webhook;
mod wecom;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::{Message, Outcome};
use crate::config::validate::Ctx;
use crate::config::{Secret, valid_name};

/// `[[channels]]` as written: the union of every kind's keys, so typos are
/// caught by serde; validation refuses keys that do not apply to the kind.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawChannel {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub timeout: Option<String>,
    pub rate_limit: Option<u32>,
    pub rate_limit_period: Option<String>,
    // webhook, slack, dingtalk, feishu, wecom, alertmanager, pagerduty (endpoint)
    pub url: Option<String>,
    pub url_file: Option<String>,
    // webhook (HMAC), dingtalk and feishu (signing)
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    // webhook
    pub headers: Option<BTreeMap<String, String>>,
    // feishu
    pub msg_type: Option<String>,
    // pagerduty
    pub routing_key: Option<String>,
    pub routing_key_file: Option<String>,
    // alertmanager
    pub generator_url: Option<String>,
    // email
    pub host: Option<String>,
    pub port: Option<u16>,
    pub starttls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub ca_file: Option<String>,
    // file
    pub path: Option<String>,
}

impl RawChannel {
    /// The kind-specific keys that are set, as written in the file.
    fn present(&self) -> Vec<&'static str> {
        let keys: [(&'static str, bool); 19] = [
            ("url", self.url.is_some()),
            ("url-file", self.url_file.is_some()),
            ("secret", self.secret.is_some()),
            ("secret-file", self.secret_file.is_some()),
            ("headers", self.headers.is_some()),
            ("msg-type", self.msg_type.is_some()),
            ("routing-key", self.routing_key.is_some()),
            ("routing-key-file", self.routing_key_file.is_some()),
            ("generator-url", self.generator_url.is_some()),
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("starttls", self.starttls.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("password-file", self.password_file.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("ca-file", self.ca_file.is_some()),
            ("path", self.path.is_some()),
        ];
        keys.into_iter()
            .filter(|(_, set)| *set)
            .map(|(k, _)| k)
            .collect()
    }
}

/// A validated channel: where pages go and how.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChannelSpec {
    pub name: String,
    /// One delivery attempt, connect to last byte; a receiver that hangs past
    /// it is a temporary failure.
    #[serde(serialize_with = "human")]
    pub timeout: Duration,
    /// The receiver's own limit (0: none); the outbox bundles above it.
    pub rate_limit: u32,
    #[serde(serialize_with = "human")]
    pub rate_limit_period: Duration,
    #[serde(flatten)]
    pub kind: ChannelKind,
}

/// The closed set of channel kinds, each with its own validated keys.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ChannelKind {
    Webhook(webhook::Spec),
    Slack(slack::Spec),
    Dingtalk(dingtalk::Spec),
    Feishu(feishu::Spec),
    Wecom(wecom::Spec),
    Pagerduty(pagerduty::Spec),
    Alertmanager(alertmanager::Spec),
    Email(email::Spec),
    File(file::Spec),
}

/// Every kind's name, as `kind =` takes it.
const KINDS: [&str; 9] = [
    "webhook",
    "slack",
    "dingtalk",
    "feishu",
    "wecom",
    "pagerduty",
    "alertmanager",
    "email",
    "file",
];

/// The kind-specific keys each kind accepts.
fn keys_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "webhook" => &["url", "url-file", "secret", "secret-file", "headers"],
        "slack" | "wecom" => &["url", "url-file"],
        "dingtalk" => &["url", "url-file", "secret", "secret-file"],
        "feishu" => &["url", "url-file", "secret", "secret-file", "msg-type"],
        "pagerduty" => &["url", "routing-key", "routing-key-file"],
        "alertmanager" => &["url", "url-file", "generator-url"],
        "email" => &[
            "host",
            "port",
            "starttls",
            "username",
            "password",
            "password-file",
            "from",
            "to",
            "ca-file",
        ],
        "file" => &["path"],
        _ => &[],
    }
}

/// The receiver's documented limit, per kind (paging.md §5), as (messages, period).
fn default_rate_limit(kind: &str) -> (u32, Duration) {
    let minute = Duration::from_secs(60);
    match kind {
        "dingtalk" | "wecom" => (20, minute),
        // Feishu also caps bursts at 5/s; 100/min is the one bundling needs.
        "feishu" => (100, minute),
        "pagerduty" => (120, minute),
        // Slack incoming webhooks allow about one message per second.
        "slack" => (60, minute),
        _ => (0, minute),
    }
}

impl ChannelSpec {
    /// One delivery attempt of `msg`. Never panics and never logs the
    /// channel's credentials; every failure says why.
    pub async fn send(&self, msg: &Message, http: &reqwest::Client) -> Outcome {
        let t = self.timeout;
        match &self.kind {
            ChannelKind::Webhook(s) => s.send(msg, http, t).await,
            ChannelKind::Slack(s) => s.send(msg, http, t).await,
            ChannelKind::Dingtalk(s) => s.send(msg, http, t).await,
            ChannelKind::Feishu(s) => s.send(msg, http, t).await,
            ChannelKind::Wecom(s) => s.send(msg, http, t).await,
            ChannelKind::Pagerduty(s) => s.send(msg, http, t).await,
            ChannelKind::Alertmanager(s) => s.send(msg, http, t).await,
            ChannelKind::Email(s) => s.send(msg, t).await,
            ChannelKind::File(s) => s.send(msg).await,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Slack(_) => "slack",
            ChannelKind::Dingtalk(_) => "dingtalk",
            ChannelKind::Feishu(_) => "feishu",
            ChannelKind::Wecom(_) => "wecom",
            ChannelKind::Pagerduty(_) => "pagerduty",
            ChannelKind::Alertmanager(_) => "alertmanager",
            ChannelKind::Email(_) => "email",
            ChannelKind::File(_) => "file",
        }
    }

    /// The receiver's own limit: at most this many messages per period. `None`
    /// when the receiver has none (or `rate-limit = 0`).
    pub fn rate_limit(&self) -> Option<(u32, Duration)> {
        (self.rate_limit > 0).then_some((self.rate_limit, self.rate_limit_period))
    }
}

const NAME_HINT: &str = "letters, digits, `-` and `_`, starting with a letter";

pub(crate) fn validate_channels(cx: &mut Ctx, raw: Vec<RawChannel>) -> Vec<ChannelSpec> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in raw.iter().enumerate() {
        let base = format!("channels[{i}]");
        let key = |k: &str| format!("{base}.{k}");
        let Some(name) = r.name.clone() else {
            cx.error(&key("name"), "every channel needs a `name`");
            continue;
        };
        if !valid_name(&name) {
            cx.error(&key("name"), format!("`{name}`: a name is {NAME_HINT}"));
            continue;
        }
        if !names.insert(name.clone()) {
            cx.error(
                &key("name"),
                format!("`{name}` is used by an earlier channel"),
            );
            continue;
        }
        let Some(kind) = r.kind.as_deref() else {
            cx.error(
                &key("kind"),
                format!("every channel needs a `kind`: one of {}", KINDS.join(", ")),
            );
            continue;
        };
        if !KINDS.contains(&kind) {
            cx.error(
                &key("kind"),
                format!(
                    "`{kind}` is not a channel kind: one of {}",
                    KINDS.join(", ")
                ),
            );
            continue;
        }
        let allowed = keys_of(kind);
        let mut stray = false;
        for k in r.present() {
            if !allowed.contains(&k) {
                cx.error(
                    &key(k),
                    format!("`{k}` does not apply to a `{kind}` channel"),
                );
                stray = true;
            }
        }
        if stray {
            continue;
        }
        let timeout = cx.duration(
            &key("timeout"),
            r.timeout.as_deref(),
            Duration::from_secs(10),
            Duration::from_millis(100),
            Duration::from_secs(300),
        );
        let (default_count, default_period) = default_rate_limit(kind);
        let rate_limit = match r.rate_limit {
            Some(n) if n > 100_000 => {
                cx.error(&key("rate-limit"), "at most 100000 messages per period");
                default_count
            }
            Some(n) => n,
            None => default_count,
        };
        let rate_limit_period = cx.duration(
            &key("rate-limit-period"),
            r.rate_limit_period.as_deref(),
            default_period,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        );
        let spec = match kind {
            "webhook" => webhook::Spec::from_raw(cx, &base, r).map(ChannelKind::Webhook),
            "slack" => slack::Spec::from_raw(cx, &base, r).map(ChannelKind::Slack),
            "dingtalk" => dingtalk::Spec::from_raw(cx, &base, r).map(ChannelKind::Dingtalk),
            "feishu" => feishu::Spec::from_raw(cx, &base, r).map(ChannelKind::Feishu),
            "wecom" => wecom::Spec::from_raw(cx, &base, r).map(ChannelKind::Wecom),
            "pagerduty" => pagerduty::Spec::from_raw(cx, &base, r).map(ChannelKind::Pagerduty),
            "alertmanager" => {
                alertmanager::Spec::from_raw(cx, &base, r).map(ChannelKind::Alertmanager)
            }
            "email" => email::Spec::from_raw(cx, &base, r).map(ChannelKind::Email),
            _ => file::Spec::from_raw(cx, &base, r).map(ChannelKind::File),
        };
        if let Some(kind) = spec {
            out.push(ChannelSpec {
                name,
                timeout,
                rate_limit,
                rate_limit_period,
                kind,
            });
        }
    }
    out
}

/// The required `url` / `url-file` secret of a webhook-style channel, checked
/// to be an http(s) URL. `hosts` pins the provider's hosts: a URL elsewhere
/// must be loopback (a local relay, or a test receiver).
fn url_secret(cx: &mut Ctx, base: &str, r: &RawChannel, hosts: &[&str]) -> Option<Secret> {
    let key = format!("{base}.url");
    let Some(url) = cx.secret(&key, r.url.as_deref(), r.url_file.as_deref()) else {
        if r.url.is_none() && r.url_file.is_none() {
            cx.error(&key, "this channel needs `url` (or `url-file`)");
        }
        return None;
    };
    // The error never repeats the URL: it holds the credential.
    let parsed = match reqwest::Url::parse(url.expose()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        _ => {
            cx.error(&key, "not an http:// or https:// URL");
            return None;
        }
    };
    let host = parsed.host_str().unwrap_or_default();
    if !hosts.is_empty() && !is_loopback(host) {
        if !hosts.contains(&host) {
            cx.error(
                &key,
                format!(
                    "the host must be {} (or a loopback relay): the URL is a credential",
                    hosts.join(" or ")
                ),
            );
            return None;
        }
        if parsed.scheme() != "https" {
            cx.error(&key, "use https:// (the URL is a credential)");
            return None;
        }
    }
    Some(url)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An optional signing secret (`secret` / `secret-file`).
fn signing_secret(cx: &mut Ctx, base: &str, r: &RawChannel) -> Option<Secret> {
    cx.secret(
        &format!("{base}.secret"),
        r.secret.as_deref(),
        r.secret_file.as_deref(),
    )
}

fn human<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// The lines a page's body shows after its text: the ack link, where there is one.
fn ack_line(msg: &Message) -> Option<String> {
    msg.ack_url
        .as_ref()
        .map(|u| format!("确认 / Acknowledge: {u}"))
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
fn truncate_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mark = "…";
    let mut end = max.saturating_sub(mark.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{mark}", &text[..end])
}

/// Lowercase hex, for signatures, PagerDuty's dedup key and ack nonces.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_chinese_characters_whole() {
        let t = truncate_bytes("订单接口不可用", 10);
        assert!(t.len() <= 10, "{t}");
        assert!(t.starts_with("订"));
        assert!(t.ends_with('…'));
        assert_eq!(truncate_bytes("ok", 10), "ok");
    }

    #[test]
    fn every_kind_has_keys_and_loopback_is_recognised() {
        for k in KINDS {
            assert!(!keys_of(k).is_empty(), "{k}");
        }
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("oapi.dingtalk.com"));
    }
}
