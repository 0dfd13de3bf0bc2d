//! `slack` channels: an incoming webhook with `text` (the notification) and `blocks`, mentions as `<@U…>`.
//!
//! Slack answers `ok` with 200; refusals such as `invalid_payload` or
//! `no_service` come as 4xx and are permanent; 429 and 5xx are retried.

use std::time::Duration;

use serde_json::json;

use super::{RawChannel, http, url_secret};
use crate::config::Secret;
use crate::config::validate::Ctx;
use crate::page::{Message, Outcome};

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub url: Secret,
}

impl Spec {
    pub(super) fn from_raw(cx: &mut Ctx, base: &str, r: &RawChannel) -> Option<Spec> {
        let url = url_secret(cx, base, r, &["hooks.slack.com"])?;
        Some(Spec { url })
    }

    pub(super) async fn send(
        &self,
        msg: &Message,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Outcome {
        let Ok(url) = reqwest::Url::parse(self.url.expose()) else {
            return Outcome::Permanent {
                reason: "the URL does not parse".into(),
            };
        };
        let body = payload(msg).to_string().into_bytes();
        match http::post_json(http, url, &[], body, timeout).await {
            Ok(reply) => reply.by_status(None),
            Err(outcome) => outcome,
        }
    }
}

/// Slack's mrkdwn needs only `&`, `<` and `>` escaped; `<…>` is its link and mention syntax.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn payload(msg: &Message) -> serde_json::Value {
    let title = escape(&msg.display_title());
    let mentions: Vec<String> = msg
        .mentions
        .iter()
        .map(|m| match &m.slack_user_id {
            Some(id) => format!("<@{id}>"),
            None => escape(&m.name),
        })
        .collect();
    let mut fallback = format!("{title}\n{}", escape(&msg.text));
    if !mentions.is_empty() {
        fallback.push('\n');
        fallback.push_str(&mentions.join(" "));
    }
    // Section text is limited to 3000 characters by Slack.
    let text: String = escape(&msg.text).chars().take(2900).collect();
    let mut blocks =
        vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("*{title}*")}})];
    if !text.trim().is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    let mut context = vec![format!(
        "{} · {} · {}",
        msg.severity.as_str(),
        escape(&msg.source),
        escape(&msg.dedup_key)
    )];
    if !mentions.is_empty() {
        context.push(mentions.join(" "));
    }
    if let Some(ack) = &msg.ack_url {
        fallback.push_str(&format!("\n确认 / Acknowledge: {ack}"));
        context.push(format!("<{ack}|确认 / Acknowledge>"));
    }
    blocks.push(json!({
        "type": "context",
        "elements": context.iter().map(|t| json!({"type": "mrkdwn", "text": t})).collect::<Vec<_>>(),
    }));
    json!({"text": fallback, "blocks": blocks})
}
