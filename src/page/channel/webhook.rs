//! `webhook` channels: the message as versioned JSON, signed with HMAC-SHA256 over timestamp and body.
//!
//! # Payload (schema version 1)
//!
//! ```json
//! {"version": 1, "kind": "trigger", "dedup-key": "check:storefront", "incident-id": 42,
//!  "severity": "critical", "title": "[DRILL] storefront is down", "drill": true,
//!  "text": "…", "ack-url": "https://…", "created-at": "2026-02-10T01:02:03.456Z",
//!  "source": "ops-1", "mentions": [{"name": "…", "phone": "…", "email": "…", …}],
//!  "details": {"check": "storefront", …}}
//! ```
//!
//! `title` is the display title (`[DRILL] ` first for drills); absent optional
//! values are `null`. New fields may be added within a version; a change of
//! meaning bumps `version`.
//!
//! # Signature
//!
//! With a `secret`, every request carries
//! `X-Lantern-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key = secret, message = "<t>." + body)>`,
//! as Stripe does: the receiver recomputes `v1` over the exact body bytes it
//! received, compares in constant time, and refuses a `t` older than a few
//! minutes (replay). Without a secret there is no signature header.
//!
//! 2xx is delivered; 408, 429 and 5xx are retried (honouring Retry-After),
//! other 4xx are permanent.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;
use serde::Serialize;

use super::{RawChannel, http, signing_secret, url_secret};
use crate::config::Secret;
use crate::config::validate::Ctx;
use crate::page::{Mention, Message, MessageKind, Outcome, Severity};

pub const SIGNATURE_HEADER: &str = "X-Lantern-Signature";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub url: Secret,
    pub secret: Option<Secret>,
    /// Extra request headers; values may be credentials, so all are secrets.
    /// Last: it serializes as a table.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
}

impl Spec {
    pub(super) fn from_raw(cx: &mut Ctx, base: &str, r: &RawChannel) -> Option<Spec> {
        let url = url_secret(cx, base, r, &[]);
        let secret = signing_secret(cx, base, r);
        let mut headers = BTreeMap::new();
        for (name, value) in r.headers.iter().flatten() {
            let valid = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && reqwest::header::HeaderValue::from_str(value).is_ok();
            let reserved = ["content-type", "content-length", "host"]
                .contains(&name.to_ascii_lowercase().as_str())
                || name.eq_ignore_ascii_case(SIGNATURE_HEADER);
            if !valid {
                cx.error(
                    &format!("{base}.headers"),
                    format!("`{name}` is not a valid header name and value"),
                );
            } else if reserved {
                cx.error(
                    &format!("{base}.headers"),
                    format!("`{name}` is set by lantern itself"),
                );
            } else {
                headers.insert(name.clone(), Secret::new(value.clone()));
            }
        }
        Some(Spec {
            url: url?,
            secret,
            headers,
        })
    }

    pub(super) async fn send(
        &self,
        msg: &Message,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Outcome {
        let body = match serde_json::to_vec(&Payload::of(msg)) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Permanent {
                    reason: format!("cannot encode the message: {e}"),
                };
            }
        };
        let Ok(url) = reqwest::Url::parse(self.url.expose()) else {
            return Outcome::Permanent {
                reason: "the URL does not parse".into(),
            };
        };
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect();
        if let Some(secret) = &self.secret {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            headers.push((
                SIGNATURE_HEADER.into(),
                signature(secret.expose(), t, &body),
            ));
        }
        match http::post_json(http, url, &headers, body, timeout).await {
            Ok(reply) => reply.by_status(None),
            Err(outcome) => outcome,
        }
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`.
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(format!("{t}.").as_bytes());
    ctx.update(body);
    format!("t={t},v1={}", super::hex(ctx.sign().as_ref()))
}

/// The stable JSON form of a message (schema version 1), for `webhook` and `file`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Payload<'a> {
    pub version: u32,
    pub kind: MessageKind,
    pub dedup_key: &'a str,
    pub incident_id: Option<i64>,
    pub severity: Severity,
    pub title: String,
    pub drill: bool,
    pub text: &'a str,
    pub ack_url: Option<&'a str>,
    #[serde(with = "crate::store::time_ms")]
    pub created_at: SystemTime,
    pub source: &'a str,
    pub mentions: &'a [Mention],
    pub details: &'a BTreeMap<String, String>,
}

impl<'a> Payload<'a> {
    pub fn of(msg: &'a Message) -> Payload<'a> {
        Payload {
            version: 1,
            kind: msg.kind,
            dedup_key: &msg.dedup_key,
            incident_id: msg.incident_id,
            severity: msg.severity,
            title: msg.display_title(),
            drill: msg.drill,
            text: &msg.text,
            ack_url: msg.ack_url.as_deref(),
            created_at: msg.created_at,
            source: &msg.source,
            mentions: &msg.mentions,
            details: &msg.details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec
        let sig = signature("whsec", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            sig,
            "t=1700000000,v1=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032"
        );
    }

    #[test]
    fn a_different_secret_or_body_gives_a_different_signature() {
        let sig = signature("whsec", 1_700_000_000, br#"{"a":1}"#);
        assert_ne!(sig, signature("whsec2", 1_700_000_000, br#"{"a":1}"#));
        assert_ne!(sig, signature("whsec", 1_700_000_000, br#"{"a":2}"#));
        assert_ne!(sig, signature("whsec", 1_700_000_001, br#"{"a":1}"#));
    }
}
