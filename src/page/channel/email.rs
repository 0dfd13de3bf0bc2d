//! `email` channels: a plain-text UTF-8 mail over SMTP (lettre, rustls), STARTTLS required by default.
//!
//! Recipients are `to` plus every mention's e-mail. SMTP 4xx replies,
//! connection failures and timeouts are temporary; 5xx replies, a server
//! without STARTTLS when it is required, and TLS failures (an untrusted
//! certificate) are permanent: they are configuration, not weather.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message as Mail};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::RawChannel;
use crate::config::Secret;
use crate::config::validate::Ctx;
use crate::page::{Message, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartTls {
    /// Refuse to send unless the server upgrades to TLS.
    Required,
    /// Upgrade when offered, else send in the clear.
    Opportunistic,
    /// Never upgrade (a relay on loopback).
    Off,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub host: String,
    pub port: u16,
    pub starttls: StartTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    /// Trust only this CA (PEM) instead of the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    #[serde(skip)]
    ca_pem: Option<Vec<u8>>,
}

impl Spec {
    pub(super) fn from_raw(cx: &mut Ctx, base: &str, r: &RawChannel) -> Option<Spec> {
        let key = |k: &str| format!("{base}.{k}");
        let host = match r.host.as_deref() {
            Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) => h.to_string(),
            Some(h) => {
                cx.error(&key("host"), format!("`{h}` is not a host name or address"));
                String::new()
            }
            None => {
                cx.error(&key("host"), "an email channel needs `host`");
                String::new()
            }
        };
        let starttls = match r.starttls.as_deref() {
            None | Some("required") => StartTls::Required,
            Some("opportunistic") => StartTls::Opportunistic,
            Some("off") => StartTls::Off,
            Some(other) => {
                cx.error(
                    &key("starttls"),
                    format!("`{other}` is not \"required\", \"opportunistic\" or \"off\""),
                );
                StartTls::Required
            }
        };
        let port = match r.port {
            Some(0) => {
                cx.error(&key("port"), "port 0 is not a port");
                587
            }
            Some(p) => p,
            None if starttls == StartTls::Off => 25,
            None => 587,
        };
        let password = cx.secret(
            &key("password"),
            r.password.as_deref(),
            r.password_file.as_deref(),
        );
        match (
            &r.username,
            r.password.is_some() || r.password_file.is_some(),
        ) {
            (Some(_), false) => cx.error(
                &key("password"),
                "`username` needs `password` (or `password-file`)",
            ),
            (None, true) => cx.error(&key("username"), "`password` needs `username`"),
            _ => {}
        }
        let from = match r.from.as_deref() {
            Some(f) if f.parse::<Mailbox>().is_ok() => f.to_string(),
            Some(f) => {
                cx.error(&key("from"), format!("`{f}` is not an e-mail address"));
                String::new()
            }
            None => {
                cx.error(&key("from"), "an email channel needs `from`");
                String::new()
            }
        };
        let to = r.to.clone().unwrap_or_default();
        for t in &to {
            if t.parse::<Mailbox>().is_err() {
                cx.error(&key("to"), format!("`{t}` is not an e-mail address"));
            }
        }
        let ca_file = r.ca_file.as_deref().map(|p| cx.path(p));
        let mut ca_pem = None;
        if let Some(ca) = &ca_file {
            match std::fs::read(ca) {
                Ok(pem) if Certificate::from_pem(&pem).is_ok() => ca_pem = Some(pem),
                Ok(_) => cx.error(
                    &key("ca-file"),
                    format!("{} holds no PEM certificate", ca.display()),
                ),
                Err(e) => cx.error(
                    &key("ca-file"),
                    format!("cannot read {}: {e}", ca.display()),
                ),
            }
        }
        Some(Spec {
            host,
            port,
            starttls,
            username: r.username.clone(),
            password,
            from,
            to,
            ca_file,
            ca_pem,
        })
    }

    pub(super) async fn send(&self, msg: &Message, timeout: Duration) -> Outcome {
        let mail = match self.mail(msg) {
            Ok(m) => m,
            Err(reason) => return Outcome::Permanent { reason },
        };
        let transport = match self.transport(timeout) {
            Ok(t) => t,
            Err(reason) => return Outcome::Permanent { reason },
        };
        match tokio::time::timeout(timeout, transport.send(mail)).await {
            Ok(Ok(resp)) => Outcome::Delivered {
                provider_id: resp.message().next().map(|l| l.chars().take(200).collect()),
            },
            Ok(Err(e)) => classify(&e, self.starttls),
            Err(_) => Outcome::Temporary {
                reason: format!(
                    "the SMTP server did not finish within {}",
                    humantime::format_duration(timeout)
                ),
                retry_after: None,
            },
        }
    }

    fn mail(&self, msg: &Message) -> Result<Mail, String> {
        let from: Mailbox = self.from.parse().map_err(|e| format!("from: {e}"))?;
        let mut builder = Mail::builder()
            .from(from)
            .subject(msg.display_title())
            .header(ContentType::TEXT_PLAIN);
        let mut seen = std::collections::BTreeSet::new();
        let mentioned = msg.mentions.iter().filter_map(|m| m.email.as_deref());
        for addr in self.to.iter().map(String::as_str).chain(mentioned) {
            // A mention's address comes from the rota, not this file: a bad one
            // is skipped rather than losing the page for everyone else.
            let Ok(mb) = addr.parse::<Mailbox>() else {
                continue;
            };
            if seen.insert(mb.email.to_string().to_ascii_lowercase()) {
                builder = builder.to(mb);
            }
        }
        if seen.is_empty() {
            return Err("no recipients: set `to` or give the mentions e-mail addresses".into());
        }
        builder
            .body(body(msg))
            .map_err(|e| format!("cannot build the mail: {e}"))
    }

    fn transport(&self, timeout: Duration) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let tls = match self.starttls {
            StartTls::Off => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(self.host.clone());
                if let Some(pem) = &self.ca_pem {
                    let cert = Certificate::from_pem(pem).map_err(|e| format!("ca-file: {e}"))?;
                    params = params
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| format!("TLS setup: {e}"))?;
                if mode == StartTls::Required {
                    Tls::Required(params)
                } else {
                    Tls::Opportunistic(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(user), Some(pass)) = (&self.username, &self.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
        }
        Ok(builder.build())
    }
}

/// The plain-text body: the text, the ack link, then the details.
pub fn body(msg: &Message) -> String {
    let mut out = format!("{}\n\n{}\n", msg.display_title(), msg.text.trim_end());
    if let Some(ack) = &msg.ack_url {
        out.push_str(&format!("\n确认 / Acknowledge: {ack}\n"));
    }
    out.push_str(&format!(
        "\nseverity: {}\nsource: {}\nkey: {}\n",
        msg.severity.as_str(),
        msg.source,
        msg.dedup_key
    ));
    for (k, v) in &msg.details {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out
}

fn classify(e: &lettre::transport::smtp::Error, starttls: StartTls) -> Outcome {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !reason.contains(&s_text) {
            reason.push_str(&format!(": {s_text}"));
        }
        source = s.source();
    }
    if e.is_transient() || e.is_timeout() {
        return Outcome::Temporary {
            reason: format!("SMTP: {reason}"),
            retry_after: None,
        };
    }
    if e.is_permanent() {
        return Outcome::Permanent {
            reason: format!("SMTP: {reason}"),
        };
    }
    if e.is_client() && reason.contains("STARTTLS") && starttls == StartTls::Required {
        return Outcome::Permanent {
            reason: format!(
                "the SMTP server does not offer STARTTLS and `starttls = \"required\"`: {reason}"
            ),
        };
    }
    // rustls' verdicts arrive wrapped in an io::Error of a connection error:
    // an untrusted or mismatched certificate fails the same way every time.
    if e.is_tls() || e.is_client() || reason.contains("certificate") {
        return Outcome::Permanent {
            reason: format!("SMTP: {reason}"),
        };
    }
    // Connection refused, reset, DNS: worth another try.
    Outcome::Temporary {
        reason: format!("SMTP: {reason}"),
        retry_after: None,
    }
}
