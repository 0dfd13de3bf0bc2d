//! `promql` checks against a real Prometheus scraping an exporter in the test, and `flow` checks against an order API in the test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use lantern::config::{CheckSpec, Config};
use lantern::probe::runner::Observation;
use serde_json::{Value, json};

use crate::probe_support::run;
use crate::prometheus_support::Prometheus;
use crate::support::free_port;

/// The one check in `toml`, validated as lantern would at start.
fn check(toml: &str) -> CheckSpec {
    let config = Config::parse(Path::new("t.toml"), toml)
        .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{toml}"));
    config.checks.into_iter().next().expect("one check")
}

/// Observes `spec` until `done` holds or `limit` passes; returns the last observation.
async fn run_until(
    spec: &CheckSpec,
    limit: Duration,
    done: impl Fn(&Observation) -> bool,
) -> Observation {
    let deadline = Instant::now() + limit;
    loop {
        let obs = run(spec).await;
        if done(&obs) || Instant::now() >= deadline {
            return obs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

// ---------------------------------------------------------------- promql

/// A shop exporter whose gauges the test turns up and down.
#[derive(Default)]
struct Exporter {
    /// f64 bits: the payment success ratio.
    ratio: AtomicU64,
    queue_depth: AtomicU64,
}

impl Exporter {
    fn set_ratio(&self, r: f64) {
        self.ratio.store(r.to_bits(), Ordering::SeqCst);
    }
}

async fn start_exporter(e: Arc<Exporter>) -> SocketAddr {
    let router = Router::new()
        .route(
            "/metrics",
            get(|State(e): State<Arc<Exporter>>| async move {
                let ratio = f64::from_bits(e.ratio.load(Ordering::SeqCst));
                let depth = e.queue_depth.load(Ordering::SeqCst);
                format!(
                    "# HELP shop_payment_success_ratio Share of payments that succeeded.\n# TYPE shop_payment_success_ratio gauge\nshop_payment_success_ratio{{region=\"eu\"}} {ratio}\n# HELP shop_queue_depth Orders waiting.\n# TYPE shop_queue_depth gauge\nshop_queue_depth {depth}\n"
                )
            }),
        )
        .with_state(e);
    serve(router).await
}

fn promql_check(prom: &str, query: &str, extra: &str) -> CheckSpec {
    check(&format!(
        "[[checks]]\nname = \"payments\"\nkind = \"promql\"\ntimeout = \"5s\"\nprometheus-url = \"{prom}\"\nquery = '{query}'\n{extra}\n"
    ))
}

#[tokio::test]
async fn promql_passes_on_a_healthy_ratio_fails_on_a_bad_one_and_on_a_stopped_prometheus() {
    let exporter = Arc::new(Exporter::default());
    exporter.set_ratio(0.99);
    let target = start_exporter(exporter.clone()).await;
    let prom = Prometheus::start_ready("shop", target).await;
    let spec = promql_check(
        &prom.url(),
        "shop_payment_success_ratio{region=\"eu\"}",
        "conditions = [\"value >= 0.95\", \"rows == 1\"]",
    );

    // The first scrape lands within a second or two.
    let obs = run_until(&spec, Duration::from_secs(30), |o| o.ok).await;
    assert!(obs.ok, "healthy ratio did not pass: {:?}", obs.reason);

    exporter.set_ratio(0.71);
    let obs = run_until(&spec, Duration::from_secs(30), |o| !o.ok).await;
    let reason = obs.reason.unwrap_or_default();
    assert!(!obs.ok, "a bad ratio never failed the check");
    assert!(
        reason.contains("value >= 0.95") && reason.contains("0.71"),
        "reason should name the condition and the value: {reason}"
    );

    // NaN (0/0 when no payments happen) must not look healthy.
    exporter.set_ratio(f64::NAN);
    let obs = run_until(&spec, Duration::from_secs(30), |o| {
        o.reason.as_deref().is_some_and(|r| r.contains("NaN"))
    })
    .await;
    assert!(!obs.ok, "NaN passed: {:?}", obs.reason);

    exporter.set_ratio(0.98);
    let obs = run_until(&spec, Duration::from_secs(30), |o| o.ok).await;
    assert!(obs.ok, "recovered ratio did not pass: {:?}", obs.reason);

    drop(prom);
    let obs = run(&spec).await;
    let reason = obs.reason.unwrap_or_default();
    assert!(!obs.ok, "check passed with Prometheus stopped");
    assert!(
        reason.to_lowercase().contains("connect"),
        "expected a connect error, got: {reason}"
    );
}

#[tokio::test]
async fn promql_empty_results_fail_by_default_pass_when_asked_and_bad_queries_carry_prometheus_error()
 {
    let exporter = Arc::new(Exporter::default());
    exporter.set_ratio(0.99);
    exporter.queue_depth.store(5, Ordering::SeqCst);
    let target = start_exporter(exporter.clone()).await;
    let prom = Prometheus::start_ready("shop", target).await;

    // Wait until the exporter's series are in, so "empty" means empty, not "not yet scraped".
    let present = promql_check(
        &prom.url(),
        "shop_queue_depth",
        "conditions = [\"value == 5\"]",
    );
    let obs = run_until(&present, Duration::from_secs(30), |o| o.ok).await;
    assert!(obs.ok, "queue depth never showed up: {:?}", obs.reason);

    let over_limit = "shop_queue_depth > 1000";
    let default = promql_check(&prom.url(), over_limit, "");
    let obs = run(&default).await;
    assert!(!obs.ok);
    let reason = obs.reason.unwrap_or_default();
    assert!(reason.contains("query returned no series"), "{reason}");

    let pass = promql_check(
        &prom.url(),
        over_limit,
        "empty-result = \"pass\"\nconditions = [\"rows == 0\"]",
    );
    let obs = run(&pass).await;
    assert!(
        obs.ok,
        "empty result with empty-result = pass: {:?}",
        obs.reason
    );

    // The same check fails once a queue really is over the limit.
    exporter.queue_depth.store(5000, Ordering::SeqCst);
    let obs = run_until(&pass, Duration::from_secs(30), |o| !o.ok).await;
    let reason = obs.reason.unwrap_or_default();
    assert!(
        reason.contains("rows == 0") && reason.contains('1'),
        "{reason}"
    );

    let bad = promql_check(&prom.url(), "sum(rate(payments_total[5m]", "");
    let obs = run(&bad).await;
    let reason = obs.reason.unwrap_or_default();
    assert!(!obs.ok);
    assert!(
        reason.contains("bad_data") && reason.contains("parse error"),
        "expected Prometheus's parse error: {reason}"
    );
}

#[test]
fn promql_refuses_a_bad_empty_result_and_a_value_condition_that_empty_cannot_meet() {
    let text = "[[checks]]\nname = \"q\"\nkind = \"promql\"\nprometheus-url = \"http://127.0.0.1:9090\"\nquery = \"up\"\nempty-result = \"maybe\"\n";
    let e = Config::parse(Path::new("t.toml"), text).unwrap_err();
    assert_eq!(e.0[0].key.as_deref(), Some("checks[0].empty-result"), "{e}");
    let text = "[[checks]]\nname = \"q\"\nkind = \"promql\"\nprometheus-url = \"http://127.0.0.1:9090\"\nquery = \"up\"\nempty-result = \"pass\"\nconditions = [\"value < 3\"]\n";
    let e = Config::parse(Path::new("t.toml"), text).unwrap_err();
    assert_eq!(e.0[0].key.as_deref(), Some("checks[0].empty-result"), "{e}");
    let text = "[[checks]]\nname = \"q\"\nkind = \"promql\"\nquery = \"up\"\n";
    let e = Config::parse(Path::new("t.toml"), text).unwrap_err();
    assert_eq!(
        e.0[0].key.as_deref(),
        Some("checks[0].prometheus-url"),
        "{e}"
    );
}

// ---------------------------------------------------------------- flow

#[derive(Debug, Clone)]
struct Order {
    status: String,
    gets: u32,
    run: String,
}

/// An order API with in-memory orders; it confirms an order on its second GET
/// unless told never to.
#[derive(Default)]
struct Shop {
    orders: Mutex<BTreeMap<u64, Order>>,
    next: AtomicU64,
    never_confirm: AtomicBool,
    fail_create: AtomicBool,
    cleanups: Mutex<Vec<String>>,
}

impl Shop {
    fn orders(&self) -> BTreeMap<u64, Order> {
        self.orders.lock().unwrap().clone()
    }
}

type Shared = State<Arc<Shop>>;

async fn start_shop(shop: Arc<Shop>) -> SocketAddr {
    let router = Router::new()
        .route(
            "/orders",
            post(|State(s): Shared, Json(body): Json<Value>| async move {
                if s.fail_create.load(Ordering::SeqCst) {
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Json(json!({"error": "db down"})),
                    );
                }
                let id = s.next.fetch_add(1, Ordering::SeqCst) + 1;
                let run = body["run"].as_str().unwrap_or_default().to_string();
                s.orders.lock().unwrap().insert(
                    id,
                    Order {
                        status: "pending".into(),
                        gets: 0,
                        run,
                    },
                );
                (
                    StatusCode::CREATED,
                    Json(json!({"id": id, "status": "pending"})),
                )
            }),
        )
        .route(
            "/orders/{id}",
            get(|State(s): Shared, UrlPath(id): UrlPath<u64>| async move {
                let never = s.never_confirm.load(Ordering::SeqCst);
                let mut orders = s.orders.lock().unwrap();
                let Some(o) = orders.get_mut(&id) else {
                    return (
                        StatusCode::NOT_FOUND,
                        Json(json!({"error": "no such order"})),
                    );
                };
                o.gets += 1;
                if o.gets >= 2 && !never && o.status == "pending" {
                    o.status = "confirmed".into();
                }
                (StatusCode::OK, Json(json!({"id": id, "status": o.status})))
            }),
        )
        .route(
            "/orders/{id}/cancel",
            post(|State(s): Shared, UrlPath(id): UrlPath<u64>| async move {
                let mut orders = s.orders.lock().unwrap();
                let Some(o) = orders.get_mut(&id) else {
                    return (
                        StatusCode::NOT_FOUND,
                        Json(json!({"error": "no such order"})),
                    );
                };
                o.status = "cancelled".into();
                (
                    StatusCode::OK,
                    Json(json!({"id": id, "status": "cancelled"})),
                )
            }),
        )
        .route(
            "/cleanup/{run}",
            post(
                |State(s): Shared, UrlPath(run): UrlPath<String>| async move {
                    s.cleanups.lock().unwrap().push(run);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(shop);
    serve(router).await
}

/// place → poll until confirmed → cancel (always-run).
fn order_flow(addr: SocketAddr, place_capture: &str) -> CheckSpec {
    check(&format!(
        r#"
[[checks]]
name = "order-flow"
kind = "flow"
timeout = "8s"

[[checks.steps]]
name = "place"
method = "POST"
url = "http://{addr}/orders"
body = '{{"run": "{{{{run_id}}}}"}}'
capture = {{ order_id = "{place_capture}" }}
conditions = ["status == 201", "json($.status) == pending"]

[[checks.steps]]
name = "confirm"
url = "http://{addr}/orders/{{{{order_id}}}}"
conditions = ["status == 200", 'json($.status) == "confirmed"']
poll-every = "100ms"
poll-within = "1s"

[[checks.steps]]
name = "cancel"
method = "POST"
url = "http://{addr}/orders/{{{{order_id}}}}/cancel"
conditions = ["json($.status) == cancelled"]
always-run = true

[[checks.steps]]
name = "note-cleanup"
method = "POST"
url = "http://{addr}/cleanup/{{{{run_id}}}}"
always-run = true
"#
    ))
}

#[tokio::test]
async fn a_flow_places_an_order_waits_for_confirmation_and_cancels_it() {
    let shop = Arc::new(Shop::default());
    let addr = start_shop(shop.clone()).await;
    let spec = order_flow(addr, "$.id");

    let obs = run(&spec).await;
    assert!(obs.ok, "flow failed: {:?}", obs.reason);
    let orders = shop.orders();
    assert_eq!(orders.len(), 1, "{orders:?}");
    let order = &orders[&1];
    assert_eq!(order.status, "cancelled", "the cleanup step did not cancel");
    assert!(order.gets >= 2, "the confirm step did not poll: {order:?}");
    assert!(
        order.run.starts_with("lantern-"),
        "run id not sent: {order:?}"
    );
    assert_eq!(
        *shop.cleanups.lock().unwrap(),
        std::slice::from_ref(&order.run)
    );

    // A second run is a new test order with its own run id.
    let obs = run(&spec).await;
    assert!(obs.ok, "second run failed: {:?}", obs.reason);
    let orders = shop.orders();
    assert_eq!(orders[&2].status, "cancelled");
    assert_ne!(orders[&1].run, orders[&2].run, "run ids repeat");
}

#[tokio::test]
async fn a_flow_that_never_confirms_fails_naming_the_poll_step_and_still_cancels() {
    let shop = Arc::new(Shop::default());
    shop.never_confirm.store(true, Ordering::SeqCst);
    let addr = start_shop(shop.clone()).await;
    let spec = order_flow(addr, "$.id");

    let obs = run(&spec).await;
    assert!(!obs.ok, "flow passed though the order never confirmed");
    let reason = obs.reason.unwrap_or_default();
    assert!(
        reason.starts_with("step `confirm`:")
            && reason.contains("json($.status) == \"confirmed\"")
            && reason.contains("pending")
            && reason.contains("still after"),
        "{reason}"
    );
    let orders = shop.orders();
    assert!(orders[&1].gets >= 3, "the step was not polled: {orders:?}");
    assert_eq!(
        orders[&1].status, "cancelled",
        "cleanup did not cancel the test order"
    );
    assert_eq!(shop.cleanups.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn cleanup_steps_run_even_when_the_first_step_gets_a_500() {
    let shop = Arc::new(Shop::default());
    shop.fail_create.store(true, Ordering::SeqCst);
    let addr = start_shop(shop.clone()).await;
    let spec = order_flow(addr, "$.id");

    let obs = run(&spec).await;
    assert!(!obs.ok);
    let reason = obs.reason.unwrap_or_default();
    assert!(
        reason.starts_with("step `place`: status == 201 (got `500`)"),
        "{reason}"
    );
    // The cancel step needs an order id that was never captured: skipped, and said so.
    assert!(
        reason.contains("cleanup step `cancel` skipped: `{{order_id}}` was never captured"),
        "{reason}"
    );
    // The cleanup that needs only the run id still ran.
    let cleanups = shop.cleanups.lock().unwrap().clone();
    assert_eq!(cleanups.len(), 1, "{cleanups:?}");
    assert!(cleanups[0].starts_with("lantern-"));
    assert!(shop.orders().is_empty());
}

#[tokio::test]
async fn a_missing_capture_path_fails_its_step_with_a_clear_reason() {
    let shop = Arc::new(Shop::default());
    let addr = start_shop(shop.clone()).await;
    let spec = order_flow(addr, "$.order_number");

    let obs = run(&spec).await;
    assert!(!obs.ok);
    let reason = obs.reason.unwrap_or_default();
    assert!(
        reason.starts_with(
            "step `place`: capture `order_id`: `$.order_number` matched nothing in the response body"
        ),
        "{reason}"
    );
    // The order was created but its id never captured, so it cannot be cancelled: the reason says so.
    assert!(reason.contains("cleanup step `cancel` skipped"), "{reason}");
    assert_eq!(shop.orders()[&1].status, "pending");
}

#[tokio::test]
async fn a_stopped_api_fails_the_first_step_with_a_connect_error() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let spec = order_flow(addr, "$.id");
    let obs = run(&spec).await;
    assert!(!obs.ok);
    let reason = obs.reason.unwrap_or_default();
    assert!(
        reason.starts_with("step `place`:") && reason.to_lowercase().contains("connect"),
        "{reason}"
    );
}
