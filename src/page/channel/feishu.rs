//! `feishu` channels: a Feishu / Lark custom bot's `post` (default) or `text` message with `at` mentions, optionally signed.
//!
//! Sign, inverted against DingTalk: `timestamp` = Unix seconds as a string,
//! `sign = base64(HMAC-SHA256(key = timestamp + "\n" + secret, message = ""))`,
//! both in the JSON body. Success is `code == 0` (or the legacy
//! `StatusCode == 0`), never HTTP 200 alone; `19021` (sign) and `9499` (bad
//! request) are permanent, `11232` (frequency limited), 429 and 5xx temporary.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use ring::hmac;
use serde_json::json;

use super::dingtalk::robot_code;
use super::{RawChannel, ack_line, http, signing_secret, truncate_bytes, url_secret};
use crate::config::Secret;
use crate::config::validate::Ctx;
use crate::page::{Message, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MsgType {
    Post,
    Text,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub msg_type: MsgType,
    pub url: Secret,
    pub secret: Option<Secret>,
}

/// The text's share of Feishu's 20 KB body limit.
const TEXT_MAX: usize = 16 * 1024;

/// "Request frequency limited" for bots.
const THROTTLED: [i64; 1] = [11232];

impl Spec {
    pub(super) fn from_raw(cx: &mut Ctx, base: &str, r: &RawChannel) -> Option<Spec> {
        let url = url_secret(cx, base, r, &["open.feishu.cn", "open.larksuite.com"]);
        let secret = signing_secret(cx, base, r);
        let msg_type = match r.msg_type.as_deref() {
            None | Some("post") => MsgType::Post,
            Some("text") => MsgType::Text,
            Some(other) => {
                cx.error(
                    &format!("{base}.msg-type"),
                    format!("`{other}` is not `post` or `text`"),
                );
                MsgType::Post
            }
        };
        Some(Spec {
            msg_type,
            url: url?,
            secret,
        })
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
        let mut body = payload(msg, self.msg_type);
        if let Some(secret) = &self.secret {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            body["timestamp"] = json!(ts.to_string());
            body["sign"] = json!(sign(secret.expose(), ts));
        }
        let body = body.to_string().into_bytes();
        match http::post_json(http, url, &[], body, timeout).await {
            Ok(reply) => read_reply(&reply),
            Err(outcome) => outcome,
        }
    }
}

/// Feishu's signature: the key is `timestamp + "\n" + secret`, the message empty.
pub fn sign(secret: &str, timestamp_s: u64) -> String {
    let key = hmac::Key::new(
        hmac::HMAC_SHA256,
        format!("{timestamp_s}\n{secret}").as_bytes(),
    );
    let tag = hmac::sign(&key, b"");
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

pub fn payload(msg: &Message, msg_type: MsgType) -> serde_json::Value {
    let title = msg.display_title();
    let mentioned: Vec<(&str, &str)> = msg
        .mentions
        .iter()
        .filter_map(|m| m.feishu_user_id.as_deref().map(|id| (id, m.name.as_str())))
        .collect();
    match msg_type {
        MsgType::Text => {
            let mut text = format!("{title}\n{}", truncate_bytes(&msg.text, TEXT_MAX));
            if let Some(ack) = ack_line(msg) {
                text.push('\n');
                text.push_str(&ack);
            }
            for (id, name) in &mentioned {
                text.push_str(&format!(" <at user_id=\"{id}\">{name}</at>"));
            }
            json!({"msg_type": "text", "content": {"text": text}})
        }
        MsgType::Post => {
            let mut content: Vec<serde_json::Value> = truncate_bytes(&msg.text, TEXT_MAX)
                .lines()
                .map(|l| json!([{"tag": "text", "text": l}]))
                .collect();
            if let Some(ack) = &msg.ack_url {
                content.push(json!([{"tag": "a", "text": "确认 / Acknowledge", "href": ack}]));
            }
            if !mentioned.is_empty() {
                let ats: Vec<serde_json::Value> = mentioned
                    .iter()
                    .map(|(id, name)| json!({"tag": "at", "user_id": id, "user_name": name}))
                    .collect();
                content.push(json!(ats));
            }
            json!({
                "msg_type": "post",
                "content": {"post": {"zh_cn": {"title": title, "content": content}}},
            })
        }
    }
}

fn read_reply(reply: &http::Reply) -> Outcome {
    if reply.status == 429 || reply.status >= 500 {
        return reply.temporary(format!("HTTP {}: {}", reply.status, reply.excerpt()));
    }
    if !(200..300).contains(&reply.status) {
        // Feishu answers some refusals with 400 and a code: read it for the reason.
        if let Some((code, text)) = robot_code(&reply.body, "code", "msg") {
            return Outcome::Permanent {
                reason: format!("HTTP {}: Feishu code {code} {text}", reply.status),
            };
        }
        return reply.by_status(None);
    }
    let answer = robot_code(&reply.body, "code", "msg")
        .or_else(|| robot_code(&reply.body, "StatusCode", "StatusMessage"));
    let Some((code, text)) = answer else {
        return reply.temporary(format!(
            "HTTP {} without a code: {}",
            reply.status,
            reply.excerpt()
        ));
    };
    match code {
        0 => Outcome::Delivered { provider_id: None },
        c if THROTTLED.contains(&c) => {
            reply.temporary(format!("Feishu throttled the bot: code {c} {text}"))
        }
        c => Outcome::Permanent {
            reason: format!("Feishu refused the message: code {c} {text}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_sign_vector_matches() {
        assert_eq!(
            sign("feishu-secret-xyz", 1_700_000_000),
            "RpXbw7bncheMXKEHLeETmnhcqsBrZOUBOwyPTuLV4ic="
        );
    }

    #[test]
    fn the_dingtalk_order_does_not_produce_the_feishu_sign() {
        let dingtalk_order = super::super::dingtalk::sign("feishu-secret-xyz", 1_700_000_000);
        assert_eq!(
            dingtalk_order,
            "YGhF00Kmf67nt3vokH79purgqJJamMLkPEiwOcnS7js="
        );
        assert_ne!(dingtalk_order, sign("feishu-secret-xyz", 1_700_000_000));
        assert_ne!(
            sign("feishu-secret-xyz", 1_700_000_000_000),
            "RpXbw7bncheMXKEHLeETmnhcqsBrZOUBOwyPTuLV4ic="
        );
    }
}
