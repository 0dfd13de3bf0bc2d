//! `alertmanager` channels: `POST {url}/api/v2/alerts` with one alert; a resolve sets `endsAt` to now.
//!
//! Alertmanager expires an alert without `endsAt` after its
//! `resolve_timeout` (default 5 m); lantern's reminders re-post it while the
//! incident is open. 200 is delivered; 400 permanent; 429 and 5xx temporary.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::{RawChannel, http, url_secret};
use crate::config::Secret;
use crate::config::validate::Ctx;
use crate::page::{Message, MessageKind, Outcome};

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    /// Alertmanager's base URL (it may carry basic-auth credentials).
    pub url: Secret,
    /// The alert's `generatorURL`; default the message's ack link.
    pub generator_url: Option<String>,
}

impl Spec {
    pub(super) fn from_raw(cx: &mut Ctx, base: &str, r: &RawChannel) -> Option<Spec> {
        let url = url_secret(cx, base, r, &[]);
        if let Some(g) = &r.generator_url
            && reqwest::Url::parse(g).is_err()
        {
            cx.error(
                &format!("{base}.generator-url"),
                format!("`{g}` is not a URL"),
            );
        }
        Some(Spec {
            url: url?,
            generator_url: r.generator_url.clone(),
        })
    }

    pub(super) async fn send(
        &self,
        msg: &Message,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Outcome {
        let Ok(mut url) = reqwest::Url::parse(self.url.expose()) else {
            return Outcome::Permanent {
                reason: "the URL does not parse".into(),
            };
        };
        let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
        url.set_path(&path);
        let body = alerts(msg, self.generator_url.as_deref(), SystemTime::now())
            .to_string()
            .into_bytes();
        match http::post_json(http, url, &[], body, timeout).await {
            Ok(reply) => reply.by_status(None),
            Err(outcome) => outcome,
        }
    }
}

fn rfc3339(t: SystemTime) -> String {
    let t: DateTime<Utc> = t.into();
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The `postableAlerts` body: an array of one alert.
pub fn alerts(msg: &Message, generator_url: Option<&str>, now: SystemTime) -> serde_json::Value {
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!("LanternIncident"));
    if let Some(check) = msg.details.get("check") {
        labels.insert("check".into(), json!(check));
    }
    labels.insert("severity".into(), json!(msg.severity.as_str()));
    labels.insert("dedup_key".into(), json!(msg.dedup_key));
    labels.insert("source".into(), json!("lantern"));
    if msg.drill {
        labels.insert("drill".into(), json!("true"));
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert("summary".into(), json!(msg.display_title()));
    annotations.insert("description".into(), json!(msg.text));
    if let Some(ack) = &msg.ack_url {
        annotations.insert("ack_url".into(), json!(ack));
    }
    let mut alert = json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(msg.created_at),
    });
    if msg.kind == MessageKind::Resolve {
        alert["endsAt"] = json!(rfc3339(now));
    }
    if let Some(g) = generator_url.or(msg.ack_url.as_deref()) {
        alert["generatorURL"] = json!(g);
    }
    json!([alert])
}
