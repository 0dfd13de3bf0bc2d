//! Delivery channels against real receivers on loopback: axum robots and webhooks that record, refuse, throttle or hang, and an aiosmtpd SMTP sink.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lantern::config::Config;
use lantern::page::channel::ChannelSpec;
use lantern::page::{Mention, Message, MessageKind, Outcome, Severity};
use ring::{digest, hmac};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::support::{KillOnDrop, free_port, repo_root};
use crate::tls_support::Pki;

// ---- helpers ---------------------------------------------------------------

/// Every channel in `toml` (a `[[channels]]` list), validated as the daemon would.
fn channels(toml: &str) -> Vec<ChannelSpec> {
    Config::parse(Path::new("t.toml"), toml)
        .unwrap_or_else(|e| panic!("{e}\n{toml}"))
        .channels
}

fn channel(toml: &str) -> ChannelSpec {
    channels(toml).remove(0)
}

const PHONE: &str = "13800001111";
const ACK: &str = "http://127.0.0.1:9847/ack/tok-abc";

fn oncall() -> Mention {
    Mention {
        name: "王晴".into(),
        phone: Some(PHONE.into()),
        email: Some("wangqing@example.test".into()),
        dingtalk_user_id: Some("user123".into()),
        feishu_user_id: Some("ou_abc".into()),
        wecom_user_id: Some("wangqing".into()),
        slack_user_id: Some("U123".into()),
    }
}

/// A drill page for storefront, in Chinese, with an ack link and one mention.
fn message(kind: MessageKind, drill: bool) -> Message {
    Message {
        kind,
        dedup_key: "check:storefront".into(),
        incident_id: Some(42),
        severity: Severity::Critical,
        title: "订单接口不可用".into(),
        text: "api-1 连接超时\n已持续 5 分钟".into(),
        ack_url: Some(ACK.into()),
        mentions: vec![oncall()],
        drill,
        created_at: SystemTime::now(),
        source: "ops-1".into(),
        details: BTreeMap::from([("check".to_string(), "storefront".to_string())]),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// What a receiver answers; `hang` never answers.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    hang: bool,
}

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: body.into(),
        hang: false,
    }
}

/// One request a receiver saw.
#[derive(Clone, Debug)]
struct Seen {
    path_and_query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn query(&self) -> BTreeMap<String, String> {
        let url = reqwest::Url::parse(&format!("http://x{}", self.path_and_query)).unwrap();
        url.query_pairs().into_owned().collect()
    }
}

#[derive(Clone)]
struct Recv {
    answer: Answer,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// An HTTP receiver on 127.0.0.1 that records every request and answers `answer`.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Recv {
            answer,
            seen: seen.clone(),
        };
        let app = Router::new().fallback(record).with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn only(&self) -> Seen {
        let seen = self.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "requests seen: {seen:?}");
        seen[0].clone()
    }
}

async fn record(State(s): State<Recv>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    s.seen.lock().unwrap().push(Seen {
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body: body.to_vec(),
    });
    if s.answer.hang {
        std::future::pending::<()>().await;
    }
    let mut resp = (
        StatusCode::from_u16(s.answer.status).unwrap(),
        s.answer.body.clone(),
    )
        .into_response();
    for (k, v) in &s.answer.headers {
        resp.headers_mut().insert(*k, v.parse().unwrap());
    }
    resp
}

async fn send_to(toml: &str, msg: &Message) -> Outcome {
    channel(toml).send(msg, &client()).await
}

fn is_temporary(o: &Outcome) -> bool {
    matches!(o, Outcome::Temporary { .. })
}

fn is_permanent(o: &Outcome) -> bool {
    matches!(o, Outcome::Permanent { .. })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- webhook ---------------------------------------------------------------

#[tokio::test]
async fn a_webhook_gets_the_versioned_json_signed_over_timestamp_and_body() {
    let rx = Receiver::start(answer(204, "")).await;
    let toml = format!(
        "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"whsec_test\"\nheaders = {{ X-Team = \"ops\" }}\n",
        rx.url("/hooks/lantern")
    );
    let out = send_to(&toml, &message(MessageKind::Trigger, true)).await;
    assert_eq!(out, Outcome::Delivered { provider_id: None });
    let seen = rx.only();
    assert_eq!(seen.path_and_query, "/hooks/lantern");
    assert_eq!(seen.headers["x-team"], "ops");
    let v = seen.json();
    assert_eq!(v["version"], 1);
    assert_eq!(v["kind"], "trigger");
    assert_eq!(v["title"], "[DRILL] 订单接口不可用");
    assert_eq!(v["drill"], true);
    assert_eq!(v["text"], "api-1 连接超时\n已持续 5 分钟");
    assert_eq!(v["ack-url"], ACK);
    assert_eq!(v["dedup-key"], "check:storefront");
    assert_eq!(v["incident-id"], 42);
    assert_eq!(v["severity"], "critical");
    assert_eq!(v["mentions"][0]["phone"], PHONE);
    assert_eq!(v["details"]["check"], "storefront");

    // X-Lantern-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>
    let sig = seen.headers["x-lantern-signature"]
        .to_str()
        .unwrap()
        .to_string();
    let (t, v1) = sig
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap_or_else(|| panic!("{sig}"));
    let t: u64 = t.parse().unwrap();
    assert!(now_secs().abs_diff(t) < 60, "{t}");
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"whsec_test");
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(&seen.body);
    assert_eq!(v1, hex(hmac::sign(&key, &signed).as_ref()));
    let wrong = hmac::Key::new(hmac::HMAC_SHA256, b"another");
    assert_ne!(v1, hex(hmac::sign(&wrong, &signed).as_ref()));
}

#[tokio::test]
async fn a_webhook_without_a_secret_sends_no_signature_and_no_drill_tag_for_a_real_page() {
    let rx = Receiver::start(answer(200, "ok")).await;
    let toml = format!(
        "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        rx.url("/h")
    );
    let out = send_to(&toml, &message(MessageKind::Trigger, false)).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let seen = rx.only();
    assert!(seen.headers.get("x-lantern-signature").is_none());
    assert_eq!(seen.json()["title"], "订单接口不可用");
}

#[tokio::test]
async fn webhook_answers_5xx_and_429_are_temporary_with_retry_after_and_4xx_permanent() {
    let mut throttled = answer(429, "slow down");
    throttled.headers.push(("retry-after", "7".into()));
    let cases = [
        (answer(503, "maintenance"), "temporary"),
        (throttled, "retry-after"),
        (answer(400, "bad"), "permanent"),
        (answer(410, "gone"), "permanent"),
    ];
    for (ans, want) in cases {
        let status = ans.status;
        let rx = Receiver::start(ans).await;
        let toml = format!(
            "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            rx.url("/h")
        );
        let out = send_to(&toml, &message(MessageKind::Trigger, false)).await;
        match want {
            "temporary" => assert!(is_temporary(&out), "{status}: {out:?}"),
            "retry-after" => assert_eq!(
                out,
                Outcome::Temporary {
                    reason: "HTTP 429: slow down".into(),
                    retry_after: Some(Duration::from_secs(7)),
                }
            ),
            _ => assert!(is_permanent(&out), "{status}: {out:?}"),
        }
    }
}

#[tokio::test]
async fn a_hanging_receiver_is_a_temporary_failure_within_the_timeout() {
    let mut hang = answer(200, "");
    hang.hang = true;
    let rx = Receiver::start(hang).await;
    let toml = format!(
        "[[channels]]\nname = \"hook\"\nkind = \"dingtalk\"\nurl = \"{}\"\ntimeout = \"500ms\"\n",
        rx.url("/robot/send?access_token=T")
    );
    let started = Instant::now();
    let out = send_to(&toml, &message(MessageKind::Trigger, false)).await;
    let took = started.elapsed();
    assert!(is_temporary(&out), "{out:?}");
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(rx.seen.lock().unwrap().len(), 1, "the request did arrive");
}

#[tokio::test]
async fn a_receiver_that_is_down_is_temporary_and_the_reason_never_shows_the_url_token() {
    let port = free_port();
    for kind in ["dingtalk", "wecom", "slack", "webhook", "alertmanager"] {
        let toml = format!(
            "[[channels]]\nname = \"down\"\nkind = \"{kind}\"\nurl = \"http://127.0.0.1:{port}/send?access_token=TOKEN-SHOULD-NOT-LEAK\"\n"
        );
        let spec = channel(&toml);
        let out = spec
            .send(&message(MessageKind::Trigger, false), &client())
            .await;
        let Outcome::Temporary { reason, .. } = &out else {
            panic!("{kind}: {out:?}")
        };
        assert!(reason.contains("connect"), "{kind}: {reason}");
        assert!(
            !reason.contains("TOKEN-SHOULD-NOT-LEAK"),
            "{kind}: {reason}"
        );
        assert!(!format!("{spec:?}").contains("TOKEN-SHOULD-NOT-LEAK"));
    }
}

// ---- slack -----------------------------------------------------------------

#[tokio::test]
async fn slack_gets_text_and_blocks_with_the_mention_the_drill_tag_and_the_ack_link() {
    let rx = Receiver::start(answer(200, "ok")).await;
    let toml = format!(
        "[[channels]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{}\"\n",
        rx.url("/services/T/B/X")
    );
    let out = send_to(&toml, &message(MessageKind::Trigger, true)).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let v = rx.only().json();
    let text = v["text"].as_str().unwrap();
    assert!(text.starts_with("[DRILL] 订单接口不可用"), "{text}");
    assert!(text.contains("<@U123>"), "{text}");
    let blocks = v["blocks"].to_string();
    assert!(blocks.contains("*[DRILL] 订单接口不可用*"), "{blocks}");
    assert!(blocks.contains("<@U123>"), "{blocks}");
    assert!(blocks.contains(&format!("<{ACK}|")), "{blocks}");
    assert!(blocks.contains("已持续 5 分钟"), "{blocks}");
}

#[tokio::test]
async fn slack_refusals_are_permanent_and_throttling_temporary() {
    for (status, body, permanent) in [
        (400, "invalid_payload", true),
        (404, "no_service", true),
        (429, "rate_limited", false),
        (500, "", false),
    ] {
        let rx = Receiver::start(answer(status, body)).await;
        let toml = format!(
            "[[channels]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{}\"\n",
            rx.url("/services/x")
        );
        let out = send_to(&toml, &message(MessageKind::Trigger, false)).await;
        if permanent {
            let Outcome::Permanent { reason } = &out else {
                panic!("{status}: {out:?}")
            };
            assert!(reason.contains(body), "{reason}");
        } else {
            assert!(is_temporary(&out), "{status}: {out:?}");
        }
    }
}

// ---- dingtalk --------------------------------------------------------------

#[tokio::test]
async fn dingtalk_gets_a_signed_markdown_message_with_at_mobiles_and_the_at_text() {
    let rx = Receiver::start(answer(200, r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    let secret = "SECtest0123456789abcdef";
    let toml = format!(
        "[[channels]]\nname = \"dd\"\nkind = \"dingtalk\"\nurl = \"{}\"\nsecret = \"{secret}\"\n",
        rx.url("/robot/send?access_token=TOKEN")
    );
    let spec = channel(&toml);
    assert_eq!(spec.rate_limit(), Some((20, Duration::from_secs(60))));
    let out = spec
        .send(&message(MessageKind::Trigger, true), &client())
        .await;
    assert_eq!(out, Outcome::Delivered { provider_id: None });
    let seen = rx.only();
    let q = seen.query();
    assert_eq!(q["access_token"], "TOKEN");
    let ts: u64 = q["timestamp"].parse().unwrap();
    assert!(
        (now_secs() * 1000).abs_diff(ts) < 60_000,
        "timestamp in milliseconds: {ts}"
    );
    // The sign decodes from the URL to the base64 of HMAC(secret, ts + "\n" + secret).
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let want = b64(hmac::sign(&key, format!("{ts}\n{secret}").as_bytes()).as_ref());
    assert_eq!(q["sign"], want);
    let v = seen.json();
    assert_eq!(v["msgtype"], "markdown");
    assert_eq!(v["markdown"]["title"], "[DRILL] 订单接口不可用");
    let text = v["markdown"]["text"].as_str().unwrap();
    assert!(text.contains("[DRILL] 订单接口不可用"), "{text}");
    assert!(text.contains("已持续 5 分钟"), "{text}");
    assert!(text.contains(&format!("@{PHONE}")), "{text}");
    assert!(text.contains(ACK), "{text}");
    assert_eq!(v["at"]["atMobiles"][0], PHONE);
    assert_eq!(v["at"]["isAtAll"], false);
}

#[tokio::test]
async fn dingtalk_http_200_with_a_nonzero_errcode_is_not_delivered() {
    for (body, permanent) in [
        (
            r#"{"errcode":310000,"errmsg":"sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"}"#,
            true,
        ),
        (r#"{"errcode":300001,"errmsg":"token is not exist"}"#, true),
        (r#"{"errcode":130101,"errmsg":"send too fast"}"#, false),
        (r#"{"errcode":90030,"errmsg":"webhook over limit"}"#, false),
        ("<html>proxy page</html>", false),
    ] {
        let rx = Receiver::start(answer(200, body)).await;
        let toml = format!(
            "[[channels]]\nname = \"dd\"\nkind = \"dingtalk\"\nurl = \"{}\"\n",
            rx.url("/robot/send?access_token=T")
        );
        let out = send_to(&toml, &message(MessageKind::Trigger, false)).await;
        if permanent {
            assert!(is_permanent(&out), "{body}: {out:?}");
        } else {
            assert!(is_temporary(&out), "{body}: {out:?}");
        }
    }
}

// ---- feishu ----------------------------------------------------------------

#[tokio::test]
async fn feishu_gets_a_post_signed_in_the_body_the_feishu_way_with_at_tags() {
    let rx = Receiver::start(answer(200, r#"{"code":0,"msg":"success","data":{}}"#)).await;
    let secret = "feishu-secret-xyz";
    let toml = format!(
        "[[channels]]\nname = \"fs\"\nkind = \"feishu\"\nurl = \"{}\"\nsecret = \"{secret}\"\n",
        rx.url("/open-apis/bot/v2/hook/TOKEN")
    );
    let out = send_to(&toml, &message(MessageKind::Trigger, true)).await;
    assert_eq!(out, Outcome::Delivered { provider_id: None });
    let v = rx.only().json();
    let ts = v["timestamp"].as_str().expect("timestamp is a string");
    let ts_n: u64 = ts.parse().unwrap();
    assert!(now_secs().abs_diff(ts_n) < 60, "timestamp in seconds: {ts}");
    let key = hmac::Key::new(hmac::HMAC_SHA256, format!("{ts}\n{secret}").as_bytes());
    assert_eq!(v["sign"], b64(hmac::sign(&key, b"").as_ref()));
    let dingtalk_order = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    assert_ne!(
        v["sign"],
        b64(hmac::sign(&dingtalk_order, format!("{ts}\n{secret}").as_bytes()).as_ref())
    );
    assert_eq!(v["msg_type"], "post");
    let post = &v["content"]["post"]["zh_cn"];
    assert_eq!(post["title"], "[DRILL] 订单接口不可用");
    let content = post["content"].to_string();
    assert!(content.contains("已持续 5 分钟"), "{content}");
    assert!(content.contains(r#""tag":"at""#), "{content}");
    assert!(content.contains(r#""user_id":"ou_abc""#), "{content}");
    assert!(content.contains(ACK), "{content}");
}

#[tokio::test]
async fn feishu_text_messages_carry_at_user_id_markup() {
    let rx = Receiver::start(answer(200, r#"{"code":0,"msg":"success"}"#)).await;
    let toml = format!(
        "[[channels]]\nname = \"fs\"\nkind = \"feishu\"\nmsg-type = \"text\"\nurl = \"{}\"\n",
        rx.url("/open-apis/bot/v2/hook/T")
    );
    let out = send_to(&toml, &message(MessageKind::Trigger, true)).await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let v = rx.only().json();
    assert_eq!(v["msg_type"], "text");
    assert!(v.get("sign").is_none(), "no secret, no sign");
    let text = v["content"]["text"].as_str().unwrap();
    assert!(text.starts_with("[DRILL] 订单接口不可用"), "{text}");
    assert!(text.contains(r#"<at user_id="ou_abc">王晴</at>"#), "{text}");
}

#[tokio::test]
async fn feishu_http_200_with_a_nonzero_code_is_not_delivered() {
    for (status, body, permanent) in [
        (
            200,
            r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
            true,
        ),
        (200, r#"{"code":9499,"msg":"Bad Request"}"#, true),
        (400, r#"{"code":9499,"msg":"Bad Request"}"#, true),
        (200, r#"{"code":11232,"msg":"frequency limited"}"#, false),
        (200, r#"{"StatusCode":0,"StatusMessage":"success"}"#, false),
    ] {
        let rx = Receiver::start(answer(status, body)).await;
        let toml = format!(
            "[[channels]]\nname = \"fs\"\nkind = \"feishu\"\nurl = \"{}\"\n",
            rx.url("/open-apis/bot/v2/hook/T")
        );
        let out = send_to(&toml, &message(MessageKind::Trigger, false)).await;
        if body.contains("StatusCode") {
            // The legacy answer shape still counts as success.
            assert!(matches!(out, Outcome::Delivered { .. }), "{body}: {out:?}");
        } else if permanent {
            assert!(is_permanent(&out), "{body}: {out:?}");
        } else {
            assert!(is_temporary(&out), "{body}: {out:?}");
        }
    }
}

// ---- wecom -----------------------------------------------------------------

#[tokio::test]
async fn wecom_sends_text_with_the_mobile_list_when_phones_are_given_else_markdown() {
    let rx = Receiver::start(answer(200, r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    let toml = format!(
        "[[channels]]\nname = \"wx\"\nkind = \"wecom\"\nurl = \"{}\"\n",
        rx.url("/cgi-bin/webhook/send?key=KEY")
    );
    let spec = channel(&toml);
    let with_phone = message(MessageKind::Trigger, true);
    let mut without_phone = message(MessageKind::Trigger, true);
    without_phone.mentions[0].phone = None;
    for m in [&with_phone, &without_phone] {
        let out = spec.send(m, &client()).await;
        assert_eq!(out, Outcome::Delivered { provider_id: None });
    }
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].query()["key"], "KEY");
    let text = seen[0].json();
    assert_eq!(text["msgtype"], "text");
    assert_eq!(text["text"]["mentioned_mobile_list"][0], PHONE);
    assert_eq!(text["text"]["mentioned_list"][0], "wangqing");
    let content = text["text"]["content"].as_str().unwrap();
    assert!(content.starts_with("[DRILL] 订单接口不可用"), "{content}");
    assert!(content.contains(ACK), "{content}");
    let md = seen[1].json();
    assert_eq!(md["msgtype"], "markdown");
    let content = md["markdown"]["content"].as_str().unwrap();
    assert!(content.contains("[DRILL] 订单接口不可用"), "{content}");
    assert!(content.contains("<@wangqing>"), "{content}");
    assert!(content.contains("已持续 5 分钟"), "{content}");
}

#[tokio::test]
async fn wecom_http_200_with_a_nonzero_errcode_is_not_delivered() {
    for (body, permanent) in [
        (
            r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
            false,
        ),
        (r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#, true),
    ] {
        let rx = Receiver::start(answer(200, body)).await;
        let toml = format!(
            "[[channels]]\nname = \"wx\"\nkind = \"wecom\"\nurl = \"{}\"\n",
            rx.url("/cgi-bin/webhook/send?key=K")
        );
        let out = send_to(&toml, &message(MessageKind::Trigger, false)).await;
        if permanent {
            assert!(is_permanent(&out), "{body}: {out:?}");
        } else {
            assert!(is_temporary(&out), "{body}: {out:?}");
        }
    }
}

// ---- pagerduty -------------------------------------------------------------

#[tokio::test]
async fn pagerduty_gets_a_trigger_then_a_resolve_on_the_hashed_dedup_key() {
    let rx = Receiver::start(answer(
        202,
        r#"{"status":"success","message":"Event processed","dedup_key":"from-pd"}"#,
    ))
    .await;
    let toml = format!(
        "[[channels]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl = \"{}\"\nrouting-key = \"R0123456789abcdef0123456789abcde\"\n",
        rx.url("/v2/enqueue")
    );
    let spec = channel(&toml);
    let mut trigger = message(MessageKind::Trigger, true);
    trigger.title = "长".repeat(2000);
    let out = spec.send(&trigger, &client()).await;
    assert_eq!(
        out,
        Outcome::Delivered {
            provider_id: Some("from-pd".into())
        }
    );
    let out = spec
        .send(&message(MessageKind::Resolve, true), &client())
        .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let seen = rx.seen.lock().unwrap().clone();
    let want_key = hex(digest::digest(&digest::SHA256, b"check:storefront").as_ref());
    let t = seen[0].json();
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(t["routing_key"], "R0123456789abcdef0123456789abcde");
    assert_eq!(t["dedup_key"], want_key);
    let summary = t["payload"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("[DRILL] 长"), "{summary}");
    assert_eq!(summary.chars().count(), 1024);
    assert_eq!(t["payload"]["severity"], "critical");
    assert_eq!(t["payload"]["source"], "ops-1");
    assert_eq!(t["payload"]["custom_details"]["check"], "storefront");
    assert_eq!(t["links"][0]["href"], ACK);
    let r = seen[1].json();
    assert_eq!(r["event_action"], "resolve");
    assert_eq!(r["dedup_key"], want_key);
}

#[tokio::test]
async fn pagerduty_400_is_permanent_and_429_and_5xx_temporary() {
    for (status, permanent) in [(400, true), (429, false), (502, false)] {
        let rx = Receiver::start(answer(
            status,
            r#"{"status":"invalid event","errors":["x"]}"#,
        ))
        .await;
        let toml = format!(
            "[[channels]]\nname = \"pd\"\nkind = \"pagerduty\"\nurl = \"{}\"\nrouting-key = \"k\"\n",
            rx.url("/v2/enqueue")
        );
        let out = send_to(&toml, &message(MessageKind::Trigger, false)).await;
        assert_eq!(is_permanent(&out), permanent, "{status}: {out:?}");
        assert_eq!(is_temporary(&out), !permanent, "{status}: {out:?}");
    }
}

// ---- alertmanager ----------------------------------------------------------

#[tokio::test]
async fn alertmanager_gets_one_alert_and_a_resolve_ends_it() {
    let rx = Receiver::start(answer(200, "")).await;
    let toml = format!(
        "[[channels]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"{}\"\n",
        rx.url("/am/")
    );
    let spec = channel(&toml);
    for kind in [MessageKind::Trigger, MessageKind::Resolve] {
        let out = spec.send(&message(kind, true), &client()).await;
        assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    }
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen[0].path_and_query, "/am/api/v2/alerts");
    let fire = seen[0].json();
    let alert = &fire[0];
    assert_eq!(fire.as_array().unwrap().len(), 1);
    assert_eq!(alert["labels"]["alertname"], "LanternIncident");
    assert_eq!(alert["labels"]["check"], "storefront");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["dedup_key"], "check:storefront");
    assert_eq!(alert["labels"]["source"], "lantern");
    assert_eq!(alert["annotations"]["summary"], "[DRILL] 订单接口不可用");
    assert_eq!(alert["annotations"]["ack_url"], ACK);
    assert!(alert["startsAt"].as_str().unwrap().ends_with('Z'));
    assert!(alert.get("endsAt").is_none(), "a firing alert has no end");
    let resolved = &seen[1].json()[0];
    let ends = resolved["endsAt"].as_str().expect("a resolve sets endsAt");
    let ends = chrono::DateTime::parse_from_rfc3339(ends).unwrap();
    assert!((chrono::Utc::now() - ends.to_utc()).num_seconds().abs() < 60);
}

#[tokio::test]
async fn alertmanager_400_is_permanent_and_5xx_temporary() {
    for (status, permanent) in [(400, true), (503, false)] {
        let rx = Receiver::start(answer(status, "nope")).await;
        let toml = format!(
            "[[channels]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"{}\"\n",
            rx.url("")
        );
        let out = send_to(&toml, &message(MessageKind::Trigger, false)).await;
        assert_eq!(is_permanent(&out), permanent, "{status}: {out:?}");
        assert_eq!(is_temporary(&out), !permanent, "{status}: {out:?}");
    }
}

// ---- file ------------------------------------------------------------------

#[tokio::test]
async fn a_file_channel_appends_one_json_line_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pages/out.jsonl");
    let toml = format!(
        "[[channels]]\nname = \"log\"\nkind = \"file\"\npath = \"{}\"\n",
        path.display()
    );
    let spec = channel(&toml);
    for kind in [MessageKind::Trigger, MessageKind::Resolve] {
        let out = spec.send(&message(kind, true), &client()).await;
        assert_eq!(out, Outcome::Delivered { provider_id: None });
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["version"], 1);
    assert_eq!(lines[0]["title"], "[DRILL] 订单接口不可用");
    assert_eq!(lines[1]["kind"], "resolve");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Under a regular file nothing can be written: temporary, with the path.
    std::fs::write(dir.path().join("plain"), "x").unwrap();
    let bad = dir.path().join("plain/out.jsonl");
    let toml = format!(
        "[[channels]]\nname = \"log\"\nkind = \"file\"\npath = \"{}\"\n",
        bad.display()
    );
    let out = send_to(&toml, &message(MessageKind::Trigger, false)).await;
    let Outcome::Temporary { reason, .. } = out else {
        panic!("{out:?}")
    };
    assert!(reason.contains("plain/out.jsonl"), "{reason}");
}

// ---- validation ------------------------------------------------------------

fn config_error(toml: &str) -> String {
    match Config::parse(Path::new("t.toml"), toml) {
        Ok(_) => panic!("accepted:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn channel_errors_name_the_key() {
    let cases = [
        (
            "[[channels]]\nname = \"a\"\nkind = \"slack\"\n",
            "channels[0].url",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"sms\"\n",
            "channels[0].kind",
        ),
        (
            "[[channels]]\nname = \"1a\"\nkind = \"file\"\npath = \"x\"\n",
            "channels[0].name",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"file\"\npath = \"x\"\n[[channels]]\nname = \"a\"\nkind = \"file\"\npath = \"y\"\n",
            "channels[1].name",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/x\"\nrouting-key = \"k\"\n",
            "channels[0].routing-key",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"dingtalk\"\nurl = \"https://evil.example/robot/send?access_token=T\"\n",
            "channels[0].url",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"dingtalk\"\nurl = \"http://oapi.dingtalk.com/robot/send?access_token=T\"\n",
            "channels[0].url",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"dingtalk\"\nurl = \"https://oapi.dingtalk.com/robot/send\"\nsecret-file = \"/nonexistent/secret\"\n",
            "channels[0].secret-file",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"pagerduty\"\n",
            "channels[0].routing-key",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nfrom = \"a@b.test\"\nstarttls = \"maybe\"\n",
            "channels[0].starttls",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nfrom = \"not an address\"\n",
            "channels[0].from",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"file\"\npath = \"x\"\ntimeout = \"forever\"\n",
            "channels[0].timeout",
        ),
        (
            "[[channels]]\nname = \"a\"\nkind = \"feishu\"\nurl = \"https://open.feishu.cn/open-apis/bot/v2/hook/T\"\nmsg-type = \"card\"\n",
            "channels[0].msg-type",
        ),
    ];
    for (toml, key) in cases {
        let err = config_error(toml);
        assert!(
            err.contains(&format!("`{key}`")),
            "wanted {key} in: {err}\n{toml}"
        );
    }
}

#[test]
fn the_effective_config_masks_every_channel_credential_and_rate_limits_default_per_kind() {
    let toml = "\
[[channels]]
name = \"dd\"
kind = \"dingtalk\"
url = \"https://oapi.dingtalk.com/robot/send?access_token=DD-TOKEN-123\"
secret = \"SEC-DD-SECRET\"

[[channels]]
name = \"pd\"
kind = \"pagerduty\"
routing-key = \"PD-ROUTING-KEY\"
rate-limit = 30
rate-limit-period = \"1m\"

[[channels]]
name = \"hook\"
kind = \"webhook\"
url = \"https://hooks.example.test/x?token=HOOK-TOKEN\"
secret = \"HOOK-SECRET\"
headers = { Authorization = \"Bearer HEADER-TOKEN\" }

[[channels]]
name = \"mail\"
kind = \"email\"
host = \"127.0.0.1\"
starttls = \"off\"
username = \"lantern\"
password = \"MAIL-PASSWORD\"
from = \"lantern@example.test\"
to = [\"ops@example.test\"]

[[channels]]
name = \"log\"
kind = \"file\"
path = \"pages.jsonl\"
rate-limit = 0
";
    let config = Config::parse(Path::new("/tmp/t.toml"), toml).unwrap();
    let shown = config.to_effective_toml();
    for secret in [
        "DD-TOKEN-123",
        "SEC-DD-SECRET",
        "PD-ROUTING-KEY",
        "HOOK-TOKEN",
        "HOOK-SECRET",
        "HEADER-TOKEN",
        "MAIL-PASSWORD",
    ] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        assert!(!format!("{:?}", config.channels).contains(secret));
    }
    assert!(shown.contains("kind = \"dingtalk\""), "{shown}");
    assert!(
        shown.contains("https://events.pagerduty.com/v2/enqueue"),
        "{shown}"
    );
    let by_name = |n: &str| config.channels.iter().find(|c| c.name == n).unwrap();
    assert_eq!(by_name("dd").kind_name(), "dingtalk");
    assert_eq!(
        by_name("dd").rate_limit(),
        Some((20, Duration::from_secs(60)))
    );
    assert_eq!(
        by_name("pd").rate_limit(),
        Some((30, Duration::from_secs(60)))
    );
    assert_eq!(by_name("hook").rate_limit(), None);
    assert_eq!(by_name("log").rate_limit(), None);
    assert_eq!(by_name("mail").timeout, Duration::from_secs(10));
}

// ---- email -----------------------------------------------------------------

/// aiosmtpd on a free port, writing each received mail as JSON into `dir`.
struct SmtpSink {
    // Declared first so the sink is gone before its dir is removed.
    _child: KillOnDrop,
    port: u16,
    dir: tempfile::TempDir,
}

/// Debian's python3 has python3-aiosmtpd; a pyenv shim earlier on PATH may not.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("LANTERN_PYTHON") {
        return PathBuf::from(p);
    }
    let debian = Path::new("/usr/bin/python3");
    if debian.is_file() {
        return debian.to_path_buf();
    }
    PathBuf::from("python3")
}

impl SmtpSink {
    fn start(tls: Option<(&Path, &Path)>) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(python());
        cmd.arg(repo_root().join("tests/fixtures/smtp_sink.py"))
            .arg(port.to_string())
            .arg(dir.path());
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (Debian: python3-aiosmtpd) is needed");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(20));
        assert_eq!(
            ready.as_deref(),
            Ok("ready"),
            "the SMTP sink did not start (is python3-aiosmtpd installed?)"
        );
        SmtpSink {
            _child: KillOnDrop(child),
            port,
            dir,
        }
    }

    /// The mails received so far, waiting up to `limit` for at least `n`.
    fn mails(&self, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            if files.len() >= n || Instant::now() > deadline {
                files.sort();
                return files
                    .iter()
                    .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn email_channel(port: u16, extra: &str) -> ChannelSpec {
    channel(&format!(
        "[[channels]]\nname = \"mail\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"灯塔 <lantern@example.test>\"\nto = [\"ops@example.test\"]\ntimeout = \"5s\"\n{extra}\n"
    ))
}

#[tokio::test]
async fn an_email_without_tls_reaches_the_sink_with_chinese_subject_and_body_intact() {
    let sink = SmtpSink::start(None);
    let spec = email_channel(sink.port, "starttls = \"off\"");
    let out = spec
        .send(&message(MessageKind::Trigger, true), &client())
        .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let mails = sink.mails(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m["subject"], "[DRILL] 订单接口不可用");
    assert_eq!(m["mail_from"], "lantern@example.test");
    let rcpts = m["rcpt_tos"].to_string();
    assert!(rcpts.contains("ops@example.test"), "{rcpts}");
    assert!(
        rcpts.contains("wangqing@example.test"),
        "mention's e-mail: {rcpts}"
    );
    assert_eq!(m["content_type"], "text/plain");
    assert_eq!(m["charset"], "utf-8");
    // Mail lines end in CRLF on the wire.
    let body = m["body"].as_str().unwrap().replace("\r\n", "\n");
    assert!(body.contains("api-1 连接超时\n已持续 5 分钟"), "{body}");
    assert!(body.contains(ACK), "{body}");
    assert_eq!(m["tls"], false);
}

#[tokio::test]
async fn starttls_required_works_against_a_tls_sink_and_refuses_one_without_tls() {
    let pki = Pki::new(365);
    let tls_sink = SmtpSink::start(Some((&pki.path("cert.pem"), &pki.path("key.pem"))));
    let ca = format!("ca-file = \"{}\"", pki.path("ca.pem").display());
    let auth = "username = \"lantern\"\npassword = \"s3cret\"";
    let spec = email_channel(tls_sink.port, &format!("{ca}\n{auth}"));
    let out = spec
        .send(&message(MessageKind::Trigger, false), &client())
        .await;
    assert!(matches!(out, Outcome::Delivered { .. }), "{out:?}");
    let mails = tls_sink.mails(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0]["tls"], true);
    assert_eq!(mails[0]["authenticated"], true);
    assert_eq!(mails[0]["subject"], "订单接口不可用");

    // A wrong password is refused with 535: permanent.
    let wrong = email_channel(
        tls_sink.port,
        &format!("{ca}\nusername = \"lantern\"\npassword = \"wrong\""),
    );
    let out = wrong
        .send(&message(MessageKind::Trigger, false), &client())
        .await;
    assert!(is_permanent(&out), "{out:?}");

    // Without ca-file the test CA is not trusted: permanent, and nothing sent.
    let untrusted = email_channel(tls_sink.port, "");
    let out = untrusted
        .send(&message(MessageKind::Trigger, false), &client())
        .await;
    assert!(is_permanent(&out), "{out:?}");

    // Against a sink with no STARTTLS, "required" refuses to send in the clear.
    let plain_sink = SmtpSink::start(None);
    let spec = email_channel(plain_sink.port, &ca);
    let out = spec
        .send(&message(MessageKind::Trigger, false), &client())
        .await;
    let Outcome::Permanent { reason } = &out else {
        panic!("{out:?}")
    };
    assert!(reason.contains("STARTTLS"), "{reason}");
    assert!(plain_sink.mails(1, Duration::from_millis(300)).is_empty());
    assert_eq!(tls_sink.mails(2, Duration::from_millis(300)).len(), 1);
}

#[tokio::test]
async fn smtp_4xx_is_temporary_5xx_permanent_and_a_dead_server_temporary() {
    let sink = SmtpSink::start(None);
    let to = |addr: &str| {
        channel(&format!(
            "[[channels]]\nname = \"mail\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {}\nstarttls = \"off\"\nfrom = \"lantern@example.test\"\nto = [\"{addr}\"]\n",
            sink.port
        ))
    };
    let mut msg = message(MessageKind::Trigger, false);
    msg.mentions.clear();
    let out = to("tempfail@example.test").send(&msg, &client()).await;
    assert!(is_temporary(&out), "{out:?}");
    let out = to("reject@example.test").send(&msg, &client()).await;
    assert!(is_permanent(&out), "{out:?}");
    assert!(sink.mails(1, Duration::from_millis(300)).is_empty());

    let dead = email_channel(free_port(), "starttls = \"off\"");
    let out = dead.send(&msg, &client()).await;
    assert!(is_temporary(&out), "{out:?}");
}
