//! Paging end to end: an outage pages the on-duty primary through a real webhook receiver, signed links acknowledge, escalation, retries, fallback, and a crash between sending and recording.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

use crate::checks_daemon::Target;
use crate::support::{InProcess, Process, TOKEN, TestConfig, get_json, get_text, poll_async};

/// What the receiver answers next: a queue of status codes, then `default`.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(Instant, Value)>>>,
    script: Arc<Mutex<Vec<u16>>>,
    hang: Arc<std::sync::atomic::AtomicBool>,
}

struct RunningReceiver {
    url: String,
    r: Receiver,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RunningReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(r): State<Receiver>, _h: HeaderMap, body: String) -> StatusCode {
    if r.hang.load(std::sync::atomic::Ordering::SeqCst) {
        // Accept the request and never answer: lantern must not wait forever.
        std::future::pending::<()>().await;
    }
    let code = {
        let mut s = r.script.lock().unwrap();
        if s.is_empty() { 200 } else { s.remove(0) }
    };
    if code == 200 {
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        r.got.lock().unwrap().push((Instant::now(), v));
    }
    StatusCode::from_u16(code).unwrap()
}

async fn receiver() -> RunningReceiver {
    receiver_on("127.0.0.1:0").await
}

async fn receiver_on(addr: &str) -> RunningReceiver {
    let r = Receiver::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    RunningReceiver { url, r, task }
}

impl RunningReceiver {
    fn messages(&self) -> Vec<Value> {
        self.r
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    async fn wait_for(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let found = poll_async(Duration::from_secs(20), || async {
            self.messages().iter().any(&f)
        })
        .await;
        assert!(found, "no {what} arrived; got {:?}", self.messages());
        self.messages().into_iter().find(|m| f(m)).unwrap()
    }
}

fn title(m: &Value) -> &str {
    m["message"]["title"]
        .as_str()
        .or_else(|| m["title"].as_str())
        .unwrap_or("")
}

fn mentions(m: &Value) -> Vec<String> {
    let list = m["message"]["mentions"]
        .as_array()
        .or_else(|| m["mentions"].as_array())
        .cloned()
        .unwrap_or_default();
    list.iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

fn ack_url(m: &Value) -> Option<String> {
    m["ack-url"].as_str().map(str::to_string)
}

/// A rota where alice is primary and bob assistant all day, both on `hook`.
fn paging_config(target: std::net::SocketAddr, hook: &str, steps: &str, extra: &str) -> String {
    format!(
        r#"
[[checks]]
name = "storefront"
kind = "http"
url = "http://{target}/health"
interval = "200ms"
timeout = "150ms"
confirm-interval = "50ms"
failure-threshold = 2

[oncall]
time-zone = "Asia/Shanghai"

[[oncall.people]]
id = "alice"
name = "Alice"
channels = ["hook"]

[[oncall.people]]
id = "bob"
name = "Bob"
channels = ["hook"]

[[oncall.people]]
id = "carol"
name = "Carol"
channels = []

[[oncall.shifts]]
name = "all-day"
start = "00:00"
end = "00:00"
days = "all"
primary = {{ people = ["alice"] }}
assistant = {{ people = ["bob"] }}

[[channels]]
name = "hook"
kind = "webhook"
url = "{hook}"
timeout = "1s"

[paging]
tick = "50ms"
{extra}

[[escalation]]
name = "default"
ack-timeout = "1h"
{steps}
"#
    )
}

const TWO_STEPS: &str = r#"
[[escalation.steps]]
delay = "0s"
targets = ["primary"]

[[escalation.steps]]
delay = "4s"
targets = ["assistant"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_pages_the_primary_and_the_signed_link_acknowledges_once_and_only_by_post() {
    let target = Target::start().await;
    let hook = receiver().await;
    let d = InProcess::start(&paging_config(target.addr, &hook.url, TWO_STEPS, "")).await;
    target.set(false);
    let page = hook
        .wait_for("trigger page", |m| title(m).contains("storefront is down"))
        .await;
    assert_eq!(
        mentions(&page),
        ["Alice"],
        "the primary is paged first: {page}"
    );
    let link = ack_url(&page).expect("a page carries an ack link");
    assert!(link.contains("/ack/"), "{link}");

    let client = reqwest::Client::new();
    // GET shows the incident and a button, and acknowledges nothing (link previewers).
    let shown = client.get(&link).send().await.unwrap();
    assert_eq!(shown.status(), 200);
    let html = shown.text().await.unwrap();
    assert!(html.contains("<form method=\"post\"") && html.contains("storefront"));
    let incidents: Value = client
        .get(d.url("/api/v1/incidents?status=open"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = incidents["incidents"][0]["id"].as_i64().unwrap();
    let timeline = |id: i64| {
        let client = client.clone();
        let url = d.url(&format!("/api/v1/incidents/{id}"));
        async move {
            let v: Value = client.get(url).send().await.unwrap().json().await.unwrap();
            v["timeline"].as_array().cloned().unwrap_or_default()
        }
    };
    assert!(!timeline(id).await.iter().any(|e| e["kind"] == "ack"));

    // A forged link (one character changed) and an expired-looking garbage one are refused.
    let mut forged = link.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(client.post(&forged).send().await.unwrap().status(), 403);

    let acked = client.post(&link).send().await.unwrap();
    assert_eq!(acked.status(), 200);
    let replayed = client.post(&link).send().await.unwrap();
    assert_eq!(replayed.status(), 409, "a link acknowledges once");
    let events = timeline(id).await;
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "ack" && e["message"].as_str().unwrap().contains("alice")),
        "{events:?}"
    );

    // Recovery sends the resolve notice; the acknowledged escalation never reached bob.
    target.set(true);
    hook.wait_for("resolve notice", |m| title(m).starts_with("RESOLVED"))
        .await;
    assert!(
        !hook.messages().iter().any(|m| mentions(m) == ["Bob"]),
        "an acknowledged incident does not escalate: {:?}",
        hook.messages()
    );
    let metrics = client
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"lantern_page_acks_total{via="link"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"lantern_page_messages_total{channel="hook",result="sent"}"#));
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_ack_the_assistant_is_paged_and_an_empty_step_does_not_eat_its_delay() {
    let target = Target::start().await;
    let hook = receiver().await;
    let steps = r#"
[[escalation.steps]]
delay = "0s"
targets = ["primary"]

[[escalation.steps]]
delay = "1s"
targets = ["person:carol"]

[[escalation.steps]]
delay = "30s"
targets = ["assistant"]
"#;
    let d = InProcess::start(&paging_config(target.addr, &hook.url, steps, "")).await;
    target.set(false);
    hook.wait_for("page to alice", |m| mentions(m) == ["Alice"])
        .await;
    let first = hook.r.got.lock().unwrap()[0].0;
    hook.wait_for("page to bob", |m| mentions(m) == ["Bob"])
        .await;
    let bob_at = hook
        .r
        .got
        .lock()
        .unwrap()
        .iter()
        .find(|(_, m)| mentions(m) == ["Bob"])
        .unwrap()
        .0;
    let gap = bob_at - first;
    // Carol has no channel: her step is skipped when it comes due (1 s), so
    // bob is paged then instead of at 30 s.
    assert!(gap < Duration::from_secs(10), "bob paged after {gap:?}");
    assert!(
        gap >= Duration::from_millis(900),
        "bob paged too early: {gap:?}"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_is_retried_and_a_permanent_refusal_goes_to_the_fallback_channel() {
    let target = Target::start().await;
    let hook = receiver().await;
    let fallback = tempfile::tempdir().unwrap();
    let fallback_file = fallback.path().join("pages.jsonl");
    // Two 503s, then accepted: delivered on the third attempt.
    hook.r.script.lock().unwrap().extend([503, 503]);
    let extra = format!(
        "fallback-channel = \"file\"\n\n[[channels]]\nname = \"file\"\nkind = \"file\"\npath = \"{}\"\n",
        fallback_file.display()
    );
    // TOML: the [[channels]] table must not land inside [paging]; put it after.
    let cfg = paging_config(
        target.addr,
        &hook.url,
        TWO_STEPS,
        "fallback-channel = \"file\"",
    ) + &extra.replace("fallback-channel = \"file\"\n\n", "");
    let d = InProcess::start(&cfg).await;
    target.set(false);
    hook.wait_for("retried page to alice", |m| {
        title(m).contains("storefront is down") && mentions(m) == ["Alice"]
    })
    .await;
    let outbox: Value = get_json(&d.url("/api/v1/outbox")).await;
    // The oldest row is the first page: the one the 503s hit.
    let row = outbox["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["channel"] == "hook")
        .min_by_key(|r| r["id"].as_i64())
        .cloned()
        .unwrap();
    assert_eq!(row["attempts"], 3, "{outbox}");

    // Now a permanent refusal (400): flagged at once and handed to the fallback.
    hook.r.script.lock().unwrap().extend([400; 20]);
    target.set(true);
    let ok = poll_async(Duration::from_secs(20), || async {
        std::fs::read_to_string(&fallback_file)
            .map(|t| t.contains("RESOLVED"))
            .unwrap_or(false)
    })
    .await;
    assert!(ok, "the fallback channel never got the resolve notice");
    let outbox: Value = get_json(&d.url("/api/v1/outbox")).await;
    assert!(
        outbox["outbox"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["channel"] == "hook" && r["status"] == "failed" && r["permanent"] == true),
        "{outbox}"
    );
    d.stop().await.unwrap();
}

#[test]
fn a_kill_between_sending_and_recording_delivers_after_restart_and_the_escalation_fires_on_time() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let target = rt.block_on(Target::start());
    let hook = rt.block_on(receiver());
    // The receiver takes the request and never answers: lantern is mid-send.
    hook.r.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let steps = r#"
[[escalation.steps]]
delay = "0s"
targets = ["primary"]

[[escalation.steps]]
delay = "6s"
targets = ["assistant"]
"#;
    let cfg = TestConfig::new(
        &paging_config(target.addr, &hook.url, steps, "")
            .replace("timeout = \"1s\"", "timeout = \"30s\""),
    );
    target.set(false);
    let mut p = Process::start(&cfg.path, &[], &[]);
    let opened = Instant::now();
    // Wait until the page is in flight (the outbox shows it sending), then kill -9.
    let sending = (0..400).any(|_| {
        let (_, body) = crate::support::get(&p.url("/api/v1/outbox"));
        if body.contains("\"status\":\"sending\"") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
        false
    });
    assert!(sending, "the page never went out");
    p.signal(rustix::process::Signal::KILL);
    p.wait_exit(Duration::from_secs(10));
    hook.r
        .hang
        .store(false, std::sync::atomic::Ordering::SeqCst);

    let p = Process::start(&cfg.path, &[], &[]);
    rt.block_on(hook.wait_for("the page to alice after the restart", |m| {
        mentions(m) == ["Alice"]
    }));
    // The escalation row survived: bob is paged at the 6 s step, not lost and not early.
    rt.block_on(hook.wait_for("the escalation to bob", |m| mentions(m) == ["Bob"]));
    let bob = opened.elapsed();
    assert!(
        bob >= Duration::from_secs(5),
        "bob paged too early: {bob:?}"
    );
    assert!(bob < Duration::from_secs(20), "bob paged late: {bob:?}");
    let alice_pages = hook
        .messages()
        .iter()
        .filter(|m| mentions(m) == ["Alice"])
        .count();
    assert!(alice_pages >= 1);
    drop(p);
    let _ = TOKEN;
}

/// HH:MM (UTC) of now minus `mins` minutes, for shifts whose boundary just passed.
fn hhmm(mins: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(mins))
        .format("%H:%M")
        .to_string()
}

fn handover_config(hook: &str, a_start: &str, b_start: &str) -> String {
    format!(
        r#"
[oncall]
time-zone = "UTC"

[[oncall.people]]
id = "alice"
name = "Alice"
channels = ["hook"]

[[oncall.people]]
id = "bob"
name = "Bob"
channels = ["hook"]

[[oncall.people]]
id = "erin"
name = "Erin"
channels = ["hook"]

[[oncall.shifts]]
name = "a"
start = "{a_start}"
end = "{a_end}"
primary = {{ people = ["alice"] }}

[[oncall.shifts]]
name = "b"
start = "{b_start}"
end = "{b_end}"
primary = {{ people = ["erin"] }}

[[channels]]
name = "hook"
kind = "webhook"
url = "{hook}"

[paging]
tick = "50ms"

[handover]
sign-within = "2s"
escalate-to = ["person:bob"]

[[escalation]]
name = "default"
[[escalation.steps]]
targets = ["primary"]
"#,
        a_end = shift_end(a_start),
        b_end = shift_end(b_start),
    )
}

fn shift_end(start: &str) -> String {
    let t = chrono::NaiveTime::parse_from_str(start, "%H:%M").unwrap();
    (t + chrono::Duration::hours(6)).format("%H:%M").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shift_boundary_sends_the_checklist_with_notes_and_an_unsigned_handover_escalates() {
    let hook = receiver().await;
    // First run: the boundaries are hours away; leave a note for the next handover.
    let d = InProcess::start(&handover_config(&hook.url, &hhmm(-180), &hhmm(-240))).await;
    let noted = reqwest::Client::new()
        .post(d.url("/api/v1/handovers/notes"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"text": "张女士要求下午五点前送达 / deliver before 17:00", "author": "dave"}))
        .send()
        .await
        .unwrap();
    assert_eq!(noted.status(), 201);
    let config = d.stop().await.unwrap();
    // Second run: both shifts began a minute or two ago.
    config.write(&handover_config(&hook.url, &hhmm(1), &hhmm(2)));
    let d = InProcess::resume(config).await;
    let to_alice = hook
        .wait_for("alice's handover", |m| {
            m["kind"] == "handover" && mentions(m) == ["Alice"]
        })
        .await;
    let text = to_alice["text"].as_str().unwrap();
    assert!(
        text.contains("张女士要求下午五点前送达"),
        "the note travels: {text}"
    );
    assert!(text.contains("Open incidents"), "{text}");
    assert!(
        text.contains("Checks not UP") && text.contains("Backups"),
        "{text}"
    );
    let sign = ack_url(&to_alice).expect("the incoming primary gets a signing link");
    let client = reqwest::Client::new();
    assert_eq!(client.post(&sign).send().await.unwrap().status(), 200);
    assert_eq!(client.post(&sign).send().await.unwrap().status(), 409);
    // Erin never signs shift b: after 2 s bob is paged about it.
    let escalated = hook
        .wait_for("the unsigned handover's escalation", |m| {
            m["title"].as_str().unwrap_or("").contains("not signed") && mentions(m) == ["Bob"]
        })
        .await;
    assert!(
        escalated["title"]
            .as_str()
            .unwrap()
            .contains("Handover of b"),
        "{escalated}"
    );
    assert!(
        !hook
            .messages()
            .iter()
            .any(|m| m["title"].as_str().unwrap_or("").contains("Handover of a")),
        "the signed handover does not escalate"
    );
    let list: Value = client
        .get(d.url("/api/v1/handovers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hs = list["handovers"].as_array().unwrap();
    assert_eq!(
        hs.len(),
        2,
        "one handover per boundary, even across ticks: {list}"
    );
    assert!(
        hs.iter()
            .any(|h| h["shift"] == "a" && h["signed_by"] == "alice")
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_promise_warns_then_pages_then_escalates_and_a_kept_one_stays_quiet() {
    let target = Target::start().await;
    let hook = receiver().await;
    let extra = r#"
[[promises]]
name = "reply"
description = "Reply to the customer within the promised time / 客户回复时限"
within = "3s"
warn-at = 0.3
page-at = 0.6
"#;
    let cfg = paging_config(target.addr, &hook.url, TWO_STEPS, "") + extra;
    let d = InProcess::start(&cfg).await;
    let client = reqwest::Client::new();
    let start = |subject: &'static str| {
        let client = client.clone();
        let url = d.url("/api/v1/promises");
        async move {
            let r = client
                .post(url)
                .bearer_auth(TOKEN)
                .json(&serde_json::json!({"promise": "reply", "subject": subject}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
        }
    };
    let kept = start("order 1001: kept").await;
    let ok = client
        .post(d.url(&format!("/api/v1/promises/{kept}/done")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    start("order 1002: late").await;
    let promise = |stage: &'static str| {
        move |m: &Value| m["kind"] == "promise" && m["title"].as_str().unwrap_or("").contains(stage)
    };
    let warn = hook.wait_for("the warning", promise("due soon")).await;
    assert_eq!(mentions(&warn), ["Alice"]);
    hook.wait_for("the page", promise("about to be broken"))
        .await;
    let broken = hook
        .wait_for("the escalation", promise("Promise broken:"))
        .await;
    assert_eq!(
        mentions(&broken),
        ["Bob"],
        "escalated to the policy's last step"
    );
    assert!(
        !hook
            .messages()
            .iter()
            .any(|m| m["title"].as_str().unwrap_or("").contains("1001")),
        "a kept promise pages nobody"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_over_a_channels_rate_limit_are_bundled_into_one_summary_not_dropped() {
    let a = Target::start().await;
    let b = Target::start().await;
    let hook = receiver().await;
    // Two checks on one channel that takes one page per 3 s.
    let cfg = paging_config(
        a.addr,
        &hook.url,
        TWO_STEPS
            .split("[[escalation.steps]]\ndelay = \"4s\"")
            .next()
            .unwrap(),
        "",
    )
    .replace(
        "timeout = \"1s\"",
        "timeout = \"1s\"\nrate-limit = 1\nrate-limit-period = \"3s\"",
    ) + &format!(
        r#"
[[checks]]
name = "payments"
kind = "http"
url = "http://{}/health"
interval = "200ms"
timeout = "150ms"
confirm-interval = "50ms"
failure-threshold = 2
"#,
        b.addr
    );
    let d = InProcess::start(&cfg).await;
    a.set(false);
    hook.wait_for("the first page", |m| {
        title(m).contains("storefront is down")
    })
    .await;
    b.set(false);
    let summary = hook
        .wait_for("the summary", |m| m["kind"] == "summary")
        .await;
    assert!(
        summary["text"]
            .as_str()
            .unwrap()
            .contains("payments is down"),
        "the held-back page is in the summary: {summary}"
    );
    assert!(
        !hook
            .messages()
            .iter()
            .any(|m| m["kind"] == "trigger" && title(m).contains("payments")),
        "the held-back page was not also sent on its own"
    );
    let outbox: Value = get_json(&d.url("/api/v1/outbox")).await;
    assert!(
        outbox["outbox"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "bundled"),
        "{outbox}"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_external_heartbeat_is_pinged_while_lantern_is_healthy() {
    let target = Target::start().await;
    let hook = receiver().await;
    // The dead man's switch: the same kind of receiver, on its own path.
    let pings = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = pings.clone();
    let app = Router::new().route(
        "/ping",
        axum::routing::get(move || {
            let c = counter.clone();
            async move {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ping_url = format!("http://{}/ping", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let extra = format!("heartbeat-url = \"{ping_url}\"\nheartbeat-interval = \"5s\"");
    let d = InProcess::start(&paging_config(target.addr, &hook.url, TWO_STEPS, &extra)).await;
    let ok = poll_async(Duration::from_secs(10), || async {
        pings.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await;
    assert!(ok, "the switch was never pinged");
    let metrics = get_text(&d.url("/metrics")).await;
    assert!(
        metrics.contains(r#"lantern_page_watcher_pings_total{result="sent"}"#),
        "{metrics}"
    );
    d.stop().await.unwrap();
    server.abort();
}
