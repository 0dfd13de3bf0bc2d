//! Checks inside a running daemon: outages open and resolve incidents, incidents survive restarts, heartbeats, maintenance, status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::Value;

use crate::support::{InProcess, TOKEN, get_json, get_text, metric_value, poll_async};

/// A real HTTP target whose health the test flips.
pub struct Target {
    pub addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct TargetState {
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicU32>,
}

impl Target {
    pub async fn start() -> Target {
        let healthy = Arc::new(AtomicBool::new(true));
        let hits = Arc::new(AtomicU32::new(0));
        let state = TargetState {
            healthy: healthy.clone(),
            hits: hits.clone(),
        };
        let app = Router::new()
            .route("/health", get(target_health))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Target {
            addr,
            healthy,
            hits,
            task,
        }
    }

    pub fn set(&self, up: bool) {
        self.healthy.store(up, Ordering::SeqCst);
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn target_health(State(s): State<TargetState>) -> (StatusCode, &'static str) {
    s.hits.fetch_add(1, Ordering::SeqCst);
    if s.healthy.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::BAD_GATEWAY, "bad gateway")
    }
}

fn shop_check(target: SocketAddr) -> String {
    format!(
        r#"
[health]
flap-window = "0s"

[[checks]]
name = "storefront"
kind = "http"
url = "http://{target}/health"
interval = "200ms"
timeout = "150ms"
confirm-interval = "50ms"
failure-threshold = 2
conditions = ["status == 200", "body contains ok"]
"#
    )
}

async fn check_state(d: &InProcess, name: &str) -> String {
    let v = get_json(&d.url(&format!("/api/v1/checks/{name}"))).await;
    v["state"].as_str().unwrap_or("").to_string()
}

async fn wait_state(d: &InProcess, name: &str, want: &str) {
    let ok = poll_async(Duration::from_secs(10), || async {
        check_state(d, name).await == want
    })
    .await;
    assert!(
        ok,
        "{name} never became {want}: {}",
        check_state(d, name).await
    );
}

/// The open incidents once there are `n` of them: the recorder writes a flip
/// just after the check's state shows it, so poll rather than read once.
async fn wait_incidents(d: &InProcess, n: usize) -> Vec<Value> {
    let ok = poll_async(Duration::from_secs(10), || async {
        open_incidents(d).await.len() == n
    })
    .await;
    let open = open_incidents(d).await;
    assert!(ok, "expected {n} open incident(s): {open:?}");
    open
}

async fn open_incidents(d: &InProcess) -> Vec<Value> {
    get_json(&d.url("/api/v1/incidents?status=open")).await["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_opens_an_incident_and_recovery_resolves_it_with_a_timeline() {
    let target = Target::start().await;
    let d = InProcess::start(&shop_check(target.addr)).await;
    wait_state(&d, "storefront", "UP").await;
    assert!(open_incidents(&d).await.is_empty());

    target.set(false);
    wait_state(&d, "storefront", "DOWN").await;
    let open = wait_incidents(&d, 1).await;
    assert_eq!(open[0]["dedup_key"], "check:storefront");
    assert!(
        open[0]["last_reason"]
            .as_str()
            .unwrap()
            .contains("status == 200"),
        "{open:?}"
    );
    let metrics = get_text(&d.url("/metrics")).await;
    assert_eq!(metric_value(&metrics, "lantern_incidents_open"), Some(1.0));
    assert!(
        metrics.contains(r#"lantern_check_state{check="storefront",state="DOWN"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"lantern_check_success{check="storefront",kind="http"} 0"#));

    target.set(true);
    wait_state(&d, "storefront", "UP").await;
    let id = open[0]["id"].as_i64().unwrap();
    let detail = get_json(&d.url(&format!("/api/v1/incidents/{id}"))).await;
    assert_eq!(detail["incident"]["status"], "resolved");
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "resolved"]);
    assert!(target.hits.load(Ordering::SeqCst) >= 4);
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_incident_and_its_notes_survive_a_restart_and_recovery_resolves_the_same_one() {
    let target = Target::start().await;
    target.set(false);
    let d = InProcess::start(&shop_check(target.addr)).await;
    wait_state(&d, "storefront", "DOWN").await;
    let id = wait_incidents(&d, 1).await[0]["id"].as_i64().unwrap();
    let client = reqwest::Client::new();
    let noted = client
        .post(d.url(&format!("/api/v1/incidents/{id}/notes")))
        .json(&serde_json::json!({"text": "restarted php-fpm, watching"}))
        .send()
        .await
        .unwrap();
    assert_eq!(noted.status(), 401, "notes need the token");
    let noted = client
        .post(d.url(&format!("/api/v1/incidents/{id}/notes")))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"text": "restarted php-fpm, watching"}))
        .send()
        .await
        .unwrap();
    assert_eq!(noted.status(), 201);
    let config = d.stop().await.unwrap();

    let d = InProcess::resume(config).await;
    let open = open_incidents(&d).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"].as_i64(), Some(id));
    wait_state(&d, "storefront", "DOWN").await;
    assert_eq!(open_incidents(&d).await.len(), 1, "no second incident");
    target.set(true);
    wait_state(&d, "storefront", "UP").await;
    let detail = get_json(&d.url(&format!("/api/v1/incidents/{id}"))).await;
    assert_eq!(detail["incident"]["status"], "resolved");
    let timeline = detail["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e["kind"] == "note" && e["message"] == "restarted php-fpm, watching")
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_down_records_the_dependent_flip_without_a_page() {
    let target = Target::start().await;
    // `db` is a TCP listener the test closes; `storefront` depends on it.
    let db = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let db_addr = db.local_addr().unwrap();
    let cfg = format!(
        r#"{}depends-on = ["db"]

[[checks]]
name = "db"
kind = "tcp"
address = "{db_addr}"
interval = "100ms"
timeout = "100ms"
failure-threshold = 1
"#,
        shop_check(target.addr)
    );
    let d = InProcess::start(&cfg).await;
    wait_state(&d, "storefront", "UP").await;
    wait_state(&d, "db", "UP").await;
    drop(db);
    wait_state(&d, "db", "DOWN").await;
    target.set(false);
    wait_state(&d, "storefront", "DOWN").await;
    let open = wait_incidents(&d, 2).await;
    let store = open.iter().find(|i| i["check"] == "storefront").unwrap();
    let db = open.iter().find(|i| i["check"] == "db").unwrap();
    assert!(db["suppressed"].is_null(), "the root cause pages");
    assert!(
        store["suppressed"]
            .as_str()
            .unwrap()
            .contains("dependency `db` is down"),
        "{store}"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_need_a_token_and_a_missed_or_failed_run_turns_the_check_down() {
    let d = InProcess::start(
        r#"
[[checks]]
name = "backup"
kind = "heartbeat"
period = "1s"
grace = "0s"
interval = "100ms"
failure-threshold = 1
token = "job-token-0123456789abcdef"
"#,
    )
    .await;
    let client = reqwest::Client::new();
    let ping = |signal: &'static str, token: Option<&'static str>| {
        let client = client.clone();
        let url = d.url(&format!("/api/v1/heartbeat/backup{signal}"));
        async move {
            let mut req = client.post(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(ping("", None).await, 401);
    assert_eq!(ping("", Some("wrong-token-0123456789")).await, 401);
    assert_eq!(ping("/nonsense", Some(TOKEN)).await, 400);
    assert_eq!(ping("", Some("job-token-0123456789abcdef")).await, 200);
    wait_state(&d, "backup", "UP").await;
    // No further ping: overdue after the 1 s period.
    wait_state(&d, "backup", "DOWN").await;
    assert_eq!(ping("/0", Some(TOKEN)).await, 200, "exit code 0 is success");
    wait_state(&d, "backup", "UP").await;
    assert_eq!(ping("/3", Some(TOKEN)).await, 200);
    wait_state(&d, "backup", "DOWN").await;
    let v = get_json(&d.url("/api/v1/checks/backup")).await;
    assert!(
        v["last"]["reason"]
            .as_str()
            .unwrap()
            .contains("exit code 3"),
        "{v}"
    );
    // The ping survives a restart: the book is loaded from the store.
    let config = d.stop().await.unwrap();
    let d = InProcess::resume(config).await;
    wait_state(&d, "backup", "DOWN").await;
    let v = get_json(&d.url("/api/v1/checks/backup")).await;
    assert!(
        v["last"]["reason"]
            .as_str()
            .unwrap()
            .contains("exit code 3")
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_maintenance_window_from_the_api_keeps_probing_and_opens_no_incident_until_it_ends() {
    let target = Target::start().await;
    let d = InProcess::start(&shop_check(target.addr)).await;
    wait_state(&d, "storefront", "UP").await;
    let client = reqwest::Client::new();
    let created = client
        .post(d.url("/api/v1/maintenance"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"duration": "1h", "checks": ["storefront"], "reason": "PHP upgrade"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let bad = client
        .post(d.url("/api/v1/maintenance"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"duration": "1h", "checks": ["nope"], "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    wait_state(&d, "storefront", "MAINTENANCE").await;
    target.set(false);
    let hits = target.hits.load(Ordering::SeqCst);
    let ok = poll_async(Duration::from_secs(10), || async {
        get_json(&d.url("/api/v1/checks/storefront")).await["health"] == "DOWN"
    })
    .await;
    assert!(ok, "still probed and judged underneath the window");
    assert!(target.hits.load(Ordering::SeqCst) > hits);
    assert!(
        open_incidents(&d).await.is_empty(),
        "no incident in maintenance"
    );
    let status = get_json(&d.url("/api/v1/status")).await;
    assert_eq!(
        status["mode"], "normal",
        "a window on one check is not the whole shop"
    );

    let ended = client
        .delete(d.url(&format!("/api/v1/maintenance/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    wait_state(&d, "storefront", "DOWN").await;
    assert_eq!(
        wait_incidents(&d, 1).await.len(),
        1,
        "still down after the window"
    );
    d.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_follows_the_checks_and_an_explicit_mode_wins_across_a_restart() {
    let target = Target::start().await;
    let d = InProcess::start(&shop_check(target.addr)).await;
    wait_state(&d, "storefront", "UP").await;
    assert_eq!(get_json(&d.url("/api/v1/status")).await["mode"], "normal");
    target.set(false);
    wait_state(&d, "storefront", "DOWN").await;
    let s = get_json(&d.url("/api/v1/status")).await;
    assert_eq!(s["mode"], "degraded");
    assert_eq!(s["source"], "computed");

    let client = reqwest::Client::new();
    let body = serde_json::json!({"mode": "manual-intake", "set_by": "on-call"});
    let refused = client
        .put(d.url("/api/v1/status"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let bad = client
        .put(d.url("/api/v1/status"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"mode": "party"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let set = client
        .put(d.url("/api/v1/status"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let page = reqwest::get(d.url("/status")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("人工接单") && html.contains("Manual order intake"));
    assert!(!html.contains("<script"), "no JavaScript needed");

    let config = d.stop().await.unwrap();
    let d = InProcess::resume(config).await;
    let s = get_json(&d.url("/api/v1/status")).await;
    assert_eq!(
        s["mode"], "manual-intake",
        "a restart does not silently reopen the shop"
    );
    assert_eq!(s["set_by"], "on-call");
    let cleared = client
        .delete(d.url("/api/v1/status"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    target.set(true);
    wait_state(&d, "storefront", "UP").await;
    assert_eq!(get_json(&d.url("/api/v1/status")).await["mode"], "normal");
    d.stop().await.unwrap();
}
