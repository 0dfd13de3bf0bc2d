//! `pagerduty` channels: Events API v2 trigger / resolve, deduplicated on `hex(sha256(dedup key))` as Alertmanager does.
//!
//! 202 is delivered (PagerDuty's `dedup_key` is the provider id); 400 is
//! permanent; 429, 5xx and network errors are retried. The summary is cut to
//! 1024 characters, and `custom_details` is replaced by a note when the event
//! would pass PagerDuty's 512 KB limit.

use std::time::Duration;

use ring::digest;
use serde_json::json;

use super::{RawChannel, http};
use crate::config::Secret;
use crate::config::validate::Ctx;
use crate::page::{Message, MessageKind, Outcome};

pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";
const SUMMARY_MAX: usize = 1024;
const EVENT_MAX: usize = 512_000;

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    /// The events endpoint (not a credential; the routing key is).
    pub url: String,
    pub routing_key: Secret,
}

impl Spec {
    pub(super) fn from_raw(cx: &mut Ctx, base: &str, r: &RawChannel) -> Option<Spec> {
        let url = r.url.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
            _ => cx.error(
                &format!("{base}.url"),
                format!("`{url}` is not an http:// or https:// URL"),
            ),
        }
        let key = format!("{base}.routing-key");
        let routing_key = cx.secret(
            &key,
            r.routing_key.as_deref(),
            r.routing_key_file.as_deref(),
        );
        if r.routing_key.is_none() && r.routing_key_file.is_none() {
            cx.error(
                &key,
                "a pagerduty channel needs `routing-key` (or `routing-key-file`)",
            );
        }
        Some(Spec {
            url,
            routing_key: routing_key?,
        })
    }

    pub(super) async fn send(
        &self,
        msg: &Message,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Outcome {
        let Ok(url) = reqwest::Url::parse(&self.url) else {
            return Outcome::Permanent {
                reason: "the URL does not parse".into(),
            };
        };
        let body = event(msg, self.routing_key.expose())
            .to_string()
            .into_bytes();
        let reply = match http::post_json(http, url, &[], body, timeout).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let provider_id = serde_json::from_str::<serde_json::Value>(&reply.body)
            .ok()
            .and_then(|v| {
                v.get("dedup_key")
                    .and_then(|k| k.as_str())
                    .map(String::from)
            });
        reply.by_status(provider_id)
    }
}

/// `hex(sha256(key))`: 64 characters, within PagerDuty's 255, and the same
/// incident always maps to the same alert.
pub fn dedup_key(key: &str) -> String {
    super::hex(digest::digest(&digest::SHA256, key.as_bytes()).as_ref())
}

pub fn event(msg: &Message, routing_key: &str) -> serde_json::Value {
    let dedup = dedup_key(&msg.dedup_key);
    if msg.kind == MessageKind::Resolve {
        return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup});
    }
    let summary: String = msg.display_title().chars().take(SUMMARY_MAX).collect();
    let mut details = serde_json::Map::new();
    for (k, v) in &msg.details {
        details.insert(k.clone(), json!(v));
    }
    details.insert("text".into(), json!(msg.text));
    details.insert("kind".into(), json!(msg.kind));
    details.insert("drill".into(), json!(msg.drill));
    if let Some(id) = msg.incident_id {
        details.insert("incident_id".into(), json!(id));
    }
    let created: chrono::DateTime<chrono::Utc> = msg.created_at.into();
    let mut links = Vec::new();
    if let Some(ack) = &msg.ack_url {
        links.push(json!({"href": ack, "text": "确认 / Acknowledge in lantern"}));
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup,
        "payload": {
            "summary": summary,
            "source": msg.source,
            "severity": msg.severity.as_str(),
            "timestamp": created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "component": msg.details.get("check"),
            "class": msg.kind,
            "custom_details": details,
        },
        "links": links,
        "client": "lantern",
    });
    if event.to_string().len() > EVENT_MAX {
        event["payload"]["custom_details"] =
            json!({"note": "details omitted: the event exceeded PagerDuty's 512 KB limit"});
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dedup_key_is_the_hex_sha256_of_the_incident_key() {
        // printf 'check:storefront' | sha256sum
        assert_eq!(
            dedup_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(dedup_key("check:storefront").len(), 64);
    }
}
