//! Operational endpoints: `/`, `/metrics`, `/-/healthy`, `/-/ready`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use super::AppState;
use crate::metrics::CONTENT_TYPE;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
}

async fn landing() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>lantern</title></head><body>",
        "<h1>lantern ",
        env!("CARGO_PKG_VERSION"),
        "</h1><ul>",
        "<li><a href=\"/metrics\">metrics</a></li>",
        "<li><a href=\"/-/healthy\">healthy</a></li>",
        "<li><a href=\"/-/ready\">ready</a></li>",
        "<li><a href=\"/status\">status</a> (public, 中文 / English)</li>",
        "<li><a href=\"/api/v1/info\">/api/v1/info</a></li>",
        "<li><a href=\"/api/v1/checks\">/api/v1/checks</a></li>",
        "<li><a href=\"/api/v1/incidents\">/api/v1/incidents</a></li>",
        "</ul></body></html>"
    ))
}

/// Rendered on the runtime thread: at 10,000 checks it takes ~20 ms of CPU,
/// and a worker's malloc arena is reused scrape after scrape, where a fresh
/// blocking thread's arena would keep each scrape's ~12 MB for itself.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = state.metrics.render();
    state.health.metrics().render_into(&mut body);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

/// Alive: answering at all is the answer.
async fn healthy() -> &'static str {
    "Healthy\n"
}

/// Ready: the store is open and the engine has ticked, so state-changing work can be done.
async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let r = &state.readiness;
    if !r.store_open() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: the state store is not open\n",
        )
    } else if r.since_last_tick().is_none() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: the engine has not ticked yet\n",
        )
    } else {
        (StatusCode::OK, "Ready\n")
    }
}
