//! `dingtalk` channels: a custom robot's markdown message with `at` mentions, optionally signed (加签) in the URL.
//!
//! Sign: `timestamp` = Unix milliseconds, `sign = base64(HMAC-SHA256(key =
//! secret, message = timestamp + "\n" + secret))`, both appended to the URL
//! as query parameters (URL-encoded exactly once). DingTalk highlights a
//! mention only when `@<mobile>` / `@<userId>` is also in the text, so both
//! are written. Success is `errcode == 0`, never HTTP 200 alone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use ring::hmac;
use serde_json::json;

use super::{RawChannel, http, signing_secret, truncate_bytes, url_secret};
use crate::config::Secret;
use crate::config::validate::Ctx;
use crate::page::{Message, Outcome};

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub url: Secret,
    pub secret: Option<Secret>,
}

/// Codes that mean "too fast, try later" (paging.md §3.1, §4): `130101` send
/// too fast, `90030` webhook over limit, `-1` system busy.
const THROTTLED: [i64; 3] = [130101, 90030, -1];

impl Spec {
    pub(super) fn from_raw(cx: &mut Ctx, base: &str, r: &RawChannel) -> Option<Spec> {
        let url = url_secret(cx, base, r, &["oapi.dingtalk.com"]);
        let secret = signing_secret(cx, base, r);
        Some(Spec { url: url?, secret })
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
        if let Some(secret) = &self.secret {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64;
            // append_pair encodes once: pass the raw base64.
            url.query_pairs_mut()
                .append_pair("timestamp", &ts.to_string())
                .append_pair("sign", &sign(secret.expose(), ts));
        }
        let body = payload(msg).to_string().into_bytes();
        match http::post_json(http, url, &[], body, timeout).await {
            Ok(reply) => read_reply(&reply),
            Err(outcome) => outcome,
        }
    }
}

/// The 加签 signature, base64 (not yet URL-encoded).
pub fn sign(secret: &str, timestamp_ms: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

pub fn payload(msg: &Message) -> serde_json::Value {
    let title = msg.display_title();
    let mobiles: Vec<&str> = msg
        .mentions
        .iter()
        .filter_map(|m| m.phone.as_deref())
        .collect();
    // One @ per person: the mobile when known, else the user id.
    let user_ids: Vec<&str> = msg
        .mentions
        .iter()
        .filter(|m| m.phone.is_none())
        .filter_map(|m| m.dingtalk_user_id.as_deref())
        .collect();
    let mut text = format!("#### {title}\n\n");
    // Markdown needs blank lines to keep the text's line breaks.
    // DingTalk refuses bodies much over 20 KB.
    for line in truncate_bytes(&msg.text, 16 * 1024).lines() {
        text.push_str(line);
        text.push_str("\n\n");
    }
    if let Some(url) = &msg.ack_url {
        text.push_str(&format!("[确认 / Acknowledge]({url})\n\n"));
    }
    let ats: Vec<String> = mobiles
        .iter()
        .chain(user_ids.iter())
        .map(|who| format!("@{who}"))
        .collect();
    if !ats.is_empty() {
        text.push_str(&ats.join(" "));
    }
    json!({
        "msgtype": "markdown",
        "markdown": {"title": title, "text": text.trim_end()},
        "at": {"atMobiles": mobiles, "atUserIds": user_ids, "isAtAll": false},
    })
}

fn read_reply(reply: &http::Reply) -> Outcome {
    // 310000 (sign, keyword or IP), 300001 (bad token) and the rest are permanent.
    errcode_reply(reply, "DingTalk", &THROTTLED)
}

/// Reads a robot's `{"errcode": N, "errmsg": …}` answer (DingTalk, WeCom):
/// HTTP 200 is not delivery, only errcode 0 is; `throttled` codes are worth
/// retrying, any other code will fail again.
pub(super) fn errcode_reply(reply: &http::Reply, robot: &str, throttled: &[i64]) -> Outcome {
    if reply.status == 429 || reply.status >= 500 {
        return reply.temporary(format!("HTTP {}: {}", reply.status, reply.excerpt()));
    }
    if !(200..300).contains(&reply.status) {
        return reply.by_status(None);
    }
    let Some((code, text)) = robot_code(&reply.body, "errcode", "errmsg") else {
        return reply.temporary(format!(
            "HTTP {} without an errcode: {}",
            reply.status,
            reply.excerpt()
        ));
    };
    match code {
        0 => Outcome::Delivered { provider_id: None },
        c if throttled.contains(&c) => {
            reply.temporary(format!("{robot} throttled the robot: errcode {c} {text}"))
        }
        c => Outcome::Permanent {
            reason: format!("{robot} refused the message: errcode {c} {text}"),
        },
    }
}

/// Reads a robot answer's numeric code and message, e.g. `{"errcode":0,"errmsg":"ok"}`.
pub(super) fn robot_code(body: &str, code: &str, msg: &str) -> Option<(i64, String)> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let c = v.get(code)?.as_i64()?;
    let m = v
        .get(msg)
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    Some((c, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_sign_vector_matches_and_is_encoded_once_in_the_url() {
        let sign = sign("SECtest0123456789abcdef", 1_700_000_000_000);
        assert_eq!(sign, "/lfnxUUu80FwVTsIlv2F1cMGBb+PxEKAwYh/bsRxXcc=");
        let mut url =
            reqwest::Url::parse("https://oapi.dingtalk.com/robot/send?access_token=T").unwrap();
        url.query_pairs_mut()
            .append_pair("timestamp", "1700000000000")
            .append_pair("sign", &sign);
        assert!(
            url.as_str().ends_with(
                "&timestamp=1700000000000&sign=%2FlfnxUUu80FwVTsIlv2F1cMGBb%2BPxEKAwYh%2FbsRxXcc%3D"
            ),
            "{url}"
        );
    }

    #[test]
    fn a_wrong_secret_timestamp_or_the_feishu_order_does_not_give_the_sign() {
        let good = "/lfnxUUu80FwVTsIlv2F1cMGBb+PxEKAwYh/bsRxXcc=";
        assert_ne!(sign("SECtest0123456789abcdeg", 1_700_000_000_000), good);
        // Seconds instead of milliseconds is the classic mistake.
        assert_ne!(sign("SECtest0123456789abcdef", 1_700_000_000), good);
        assert_ne!(
            super::super::feishu::sign("SECtest0123456789abcdef", 1_700_000_000_000),
            good
        );
    }
}
