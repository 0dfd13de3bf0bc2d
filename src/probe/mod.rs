//! Probes: one file per check kind, each with its validated spec and its probe; conditions and facts are shared.
//!
//! A probe returns [`Facts`] or says why it could not observe at all
//! (refused, timed out, bad credentials). Whether the facts are good enough
//! is for the check's conditions to say; whether a failure matters is for
//! `health`. Probes never page and never touch incidents.

pub mod command;
pub mod condition;
pub mod dns;
pub mod facts;
pub mod flow;
pub mod heartbeat;
pub mod http;
pub mod mysql;
pub mod postgres;
pub mod promql;
pub mod redis;
pub mod runner;
pub mod tcp;
pub mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::RawCheck;
use crate::config::validate::Ctx;
pub use condition::Condition;
pub use facts::{Facts, Scalar};

/// The kinds, as written in `kind = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KindName {
    Http,
    Tcp,
    Tls,
    Dns,
    Postgres,
    Mysql,
    Redis,
    Command,
    Heartbeat,
    Promql,
    Flow,
}

impl std::str::FromStr for KindName {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "http" => KindName::Http,
            "tcp" => KindName::Tcp,
            "tls" => KindName::Tls,
            "dns" => KindName::Dns,
            "postgres" => KindName::Postgres,
            "mysql" => KindName::Mysql,
            "redis" => KindName::Redis,
            "command" => KindName::Command,
            "heartbeat" => KindName::Heartbeat,
            "promql" => KindName::Promql,
            "flow" => KindName::Flow,
            _ => return Err(()),
        })
    }
}

impl KindName {
    pub const ALL: [KindName; 11] = [
        KindName::Http,
        KindName::Tcp,
        KindName::Tls,
        KindName::Dns,
        KindName::Postgres,
        KindName::Mysql,
        KindName::Redis,
        KindName::Command,
        KindName::Heartbeat,
        KindName::Promql,
        KindName::Flow,
    ];

    pub const ALL_TEXT: &'static str =
        "http, tcp, tls, dns, postgres, mysql, redis, command, heartbeat, promql, flow";

    pub fn as_str(self) -> &'static str {
        match self {
            KindName::Http => "http",
            KindName::Tcp => "tcp",
            KindName::Tls => "tls",
            KindName::Dns => "dns",
            KindName::Postgres => "postgres",
            KindName::Mysql => "mysql",
            KindName::Redis => "redis",
            KindName::Command => "command",
            KindName::Heartbeat => "heartbeat",
            KindName::Promql => "promql",
            KindName::Flow => "flow",
        }
    }

    /// The kind-specific keys this kind accepts.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            KindName::Http => &[
                "url",
                "method",
                "headers",
                "body",
                "ca-file",
                "client-cert",
                "client-key",
                "skip-verify",
                "follow-redirects",
                "reuse-connections",
                "bearer-token",
                "bearer-token-file",
            ],
            KindName::Tcp => &["address", "send", "expect"],
            KindName::Tls => &["address", "server-name", "ca-file", "skip-verify"],
            KindName::Dns => &["server", "query-name", "record-type"],
            KindName::Postgres | KindName::Mysql => &[
                "address",
                "user",
                "password",
                "password-file",
                "database",
                "query",
            ],
            KindName::Redis => &[
                "address",
                "username",
                "password",
                "password-file",
                "info-section",
            ],
            KindName::Command => &["argv", "env", "working-dir"],
            KindName::Heartbeat => &[
                "period",
                "grace",
                "schedule",
                "time-zone",
                "token",
                "token-file",
            ],
            KindName::Promql => &[
                "prometheus-url",
                "query",
                "empty-result",
                "bearer-token",
                "bearer-token-file",
            ],
            KindName::Flow => &["steps", "ca-file", "skip-verify"],
        }
    }

    /// The condition subjects that mean something for this kind.
    pub fn subjects(self) -> &'static [&'static str] {
        match self {
            KindName::Http => &[
                "status",
                "body",
                "json",
                "header",
                "response-time",
                "cert-expiry",
            ],
            KindName::Tcp => &["connected", "body", "response-time"],
            KindName::Tls => &["connected", "cert-expiry", "chain-expiry", "response-time"],
            KindName::Dns => &["rcode", "answers", "response-time"],
            KindName::Postgres | KindName::Mysql => &["value", "rows", "response-time"],
            KindName::Redis => &["info", "body", "response-time"],
            KindName::Command => &["exit-code", "output", "response-time"],
            KindName::Heartbeat => &["age", "exit-code"],
            KindName::Promql => &["value", "rows", "response-time"],
            KindName::Flow => &["response-time"],
        }
    }

    pub fn default_interval(self) -> Duration {
        match self {
            KindName::Heartbeat => Duration::from_secs(10),
            KindName::Flow | KindName::Promql => Duration::from_secs(60),
            _ => Duration::from_secs(30),
        }
    }

    /// What "healthy" means when the config lists no conditions.
    pub fn default_conditions(self) -> Vec<Condition> {
        let texts: &[&str] = match self {
            KindName::Http => &["status < 400"],
            KindName::Tcp | KindName::Tls => &["connected == true"],
            KindName::Dns => &["rcode == NOERROR"],
            KindName::Command => &["exit-code == 0"],
            _ => &[],
        };
        texts
            .iter()
            .map(|t| Condition::parse(t).expect("built-in conditions parse"))
            .collect()
    }
}

/// A validated check kind with everything its probe needs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Kind {
    Http(http::Spec),
    Tcp(tcp::Spec),
    Tls(tls::Spec),
    Dns(dns::Spec),
    Postgres(postgres::Spec),
    Mysql(mysql::Spec),
    Redis(redis::Spec),
    Command(command::Spec),
    Heartbeat(heartbeat::Spec),
    Promql(promql::Spec),
    Flow(flow::Spec),
}

impl Kind {
    /// Validates the kind-specific keys of `raw`; errors go to `cx` under `key`.
    pub(crate) fn from_raw(
        name: KindName,
        cx: &mut Ctx,
        key: &str,
        raw: &RawCheck,
    ) -> Option<Kind> {
        Some(match name {
            KindName::Http => Kind::Http(http::Spec::from_raw(cx, key, raw)?),
            KindName::Tcp => Kind::Tcp(tcp::Spec::from_raw(cx, key, raw)?),
            KindName::Tls => Kind::Tls(tls::Spec::from_raw(cx, key, raw)?),
            KindName::Dns => Kind::Dns(dns::Spec::from_raw(cx, key, raw)?),
            KindName::Postgres => Kind::Postgres(postgres::Spec::from_raw(cx, key, raw)?),
            KindName::Mysql => Kind::Mysql(mysql::Spec::from_raw(cx, key, raw)?),
            KindName::Redis => Kind::Redis(redis::Spec::from_raw(cx, key, raw)?),
            KindName::Command => Kind::Command(command::Spec::from_raw(cx, key, raw)?),
            KindName::Heartbeat => Kind::Heartbeat(heartbeat::Spec::from_raw(cx, key, raw)?),
            KindName::Promql => Kind::Promql(promql::Spec::from_raw(cx, key, raw)?),
            KindName::Flow => Kind::Flow(flow::Spec::from_raw(cx, key, raw)?),
        })
    }

    pub fn name(&self) -> KindName {
        match self {
            Kind::Http(_) => KindName::Http,
            Kind::Tcp(_) => KindName::Tcp,
            Kind::Tls(_) => KindName::Tls,
            Kind::Dns(_) => KindName::Dns,
            Kind::Postgres(_) => KindName::Postgres,
            Kind::Mysql(_) => KindName::Mysql,
            Kind::Redis(_) => KindName::Redis,
            Kind::Command(_) => KindName::Command,
            Kind::Heartbeat(_) => KindName::Heartbeat,
            Kind::Promql(_) => KindName::Promql,
            Kind::Flow(_) => KindName::Flow,
        }
    }

    /// One attempt. The caller bounds it with the check's timeout.
    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        match self {
            Kind::Http(s) => s.probe(cx).await,
            Kind::Tcp(s) => s.probe(cx).await,
            Kind::Tls(s) => s.probe(cx).await,
            Kind::Dns(s) => s.probe(cx).await,
            Kind::Postgres(s) => s.probe(cx).await,
            Kind::Mysql(s) => s.probe(cx).await,
            Kind::Redis(s) => s.probe(cx).await,
            Kind::Command(s) => s.probe(cx).await,
            Kind::Heartbeat(s) => s.probe(cx).await,
            Kind::Promql(s) => s.probe(cx).await,
            Kind::Flow(s) => s.probe(cx).await,
        }
    }
}

/// What probes share: lantern's own bound address (for `{self}` in URLs and
/// addresses), pooled HTTP clients, the heartbeat book, and the check's name
/// and timeout.
#[derive(Clone)]
pub struct ProbeContext {
    pub check: String,
    pub timeout: Duration,
    pub self_addr: SocketAddr,
    pub http: http::Clients,
    pub heartbeats: heartbeat::Book,
}

impl ProbeContext {
    /// A context outside a running daemon (tests, `lantern check-config --probe`):
    /// fresh clients, an empty heartbeat book, `{self}` meaning 127.0.0.1:9847.
    pub fn standalone(check: &str, timeout: Duration) -> ProbeContext {
        ProbeContext {
            check: check.to_string(),
            timeout,
            self_addr: SocketAddr::from(([127, 0, 0, 1], 9847)),
            http: http::Clients::default(),
            heartbeats: heartbeat::Book::default(),
        }
    }
}

/// Replaces `{self}` with lantern's bound address, so a config can probe
/// lantern itself even when started with `--listen 127.0.0.1:0`.
pub fn expand_self(text: &str, self_addr: SocketAddr) -> String {
    text.replace("{self}", &self_addr.to_string())
}

/// Validates a `host:port` address, allowing `{self}`.
pub(crate) fn address(cx: &mut Ctx, key: &str, raw: Option<&str>) -> Option<String> {
    let Some(a) = raw else {
        cx.error(key, "an `address` (host:port) is required");
        return None;
    };
    let probe = a.replace("{self}", "127.0.0.1:1");
    match probe.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Some(a.to_string())
        }
        _ => {
            cx.error(key, format!("`{a}` is not host:port"));
            None
        }
    }
}
