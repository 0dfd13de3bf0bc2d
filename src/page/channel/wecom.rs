//! `wecom` channels: a WeCom group robot; markdown with `<@userid>` mentions, or text with `mentioned_mobile_list` when phones are given.
//!
//! One message per page, so one answer decides the outcome. WeCom reaches
//! people by phone only from a `text` message (markdown has no mobile
//! list), so: when any mention has a phone, the page goes as `text` with
//! `mentioned_list` (user ids) and `mentioned_mobile_list` (phones);
//! otherwise as `markdown` with `<@userid>` in the body. No signing: the
//! `key` in the URL is the only credential. Success is `errcode == 0`;
//! `45009` (frequency) and `-1` (busy) are temporary.

use std::time::Duration;

use serde_json::json;

use super::{RawChannel, ack_line, http, truncate_bytes, url_secret};
use crate::config::Secret;
use crate::config::validate::Ctx;
use crate::page::{Message, Outcome, Severity};

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub url: Secret,
}

const THROTTLED: [i64; 2] = [45009, -1];
/// WeCom's limits on content, in bytes.
const TEXT_MAX: usize = 2048;
const MARKDOWN_MAX: usize = 4096;

impl Spec {
    pub(super) fn from_raw(cx: &mut Ctx, base: &str, r: &RawChannel) -> Option<Spec> {
        let url = url_secret(cx, base, r, &["qyapi.weixin.qq.com"])?;
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
            Ok(reply) => read_reply(&reply),
            Err(outcome) => outcome,
        }
    }
}

pub fn payload(msg: &Message) -> serde_json::Value {
    let title = msg.display_title();
    let user_ids: Vec<&str> = msg
        .mentions
        .iter()
        .filter_map(|m| m.wecom_user_id.as_deref())
        .collect();
    let phones: Vec<&str> = msg
        .mentions
        .iter()
        .filter_map(|m| m.phone.as_deref())
        .collect();
    if !phones.is_empty() {
        let mut text = format!("{title}\n{}", msg.text);
        if let Some(ack) = ack_line(msg) {
            text.push('\n');
            text.push_str(&ack);
        }
        return json!({
            "msgtype": "text",
            "text": {
                "content": truncate_bytes(&text, TEXT_MAX),
                "mentioned_list": user_ids,
                "mentioned_mobile_list": phones,
            },
        });
    }
    let colour = match msg.severity {
        Severity::Critical | Severity::Error => "warning",
        Severity::Warning => "comment",
        Severity::Info => "info",
    };
    let mut text = format!(
        "### {title}\n> <font color=\"{colour}\">{}</font> {}\n",
        msg.severity.as_str(),
        msg.source
    );
    for line in msg.text.lines() {
        text.push_str(line);
        text.push('\n');
    }
    if let Some(ack) = &msg.ack_url {
        text.push_str(&format!("[确认 / Acknowledge]({ack})\n"));
    }
    let ats: Vec<String> = user_ids.iter().map(|id| format!("<@{id}>")).collect();
    // Mentions go last and are kept whole when the body is cut.
    let ats = ats.join(" ");
    let room = MARKDOWN_MAX.saturating_sub(ats.len() + 1);
    let content = format!("{}{ats}", truncate_bytes(&text, room));
    json!({"msgtype": "markdown", "markdown": {"content": content.trim_end()}})
}

fn read_reply(reply: &http::Reply) -> Outcome {
    // 93000 (invalid webhook key) and the rest are permanent.
    super::dingtalk::errcode_reply(reply, "WeCom", &THROTTLED)
}
