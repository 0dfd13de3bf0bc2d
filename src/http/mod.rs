//! The HTTP server: operational endpoints, `/api/v1`, request limits and per-route metrics.
//!
//! Limits are applied to every route, so no handler can be reached with an
//! unbounded body or hold a connection forever.

mod ack;
mod api;
mod auth;
mod backups;
mod checks;
mod oncall;
mod ops;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use tokio::sync::{mpsc, watch};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;
use crate::daemon::ReloadRequest;
use crate::engine::Readiness;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::probe::heartbeat;
use crate::status::Status;
use crate::store::Store;

pub use auth::Authorized;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: watch::Receiver<Arc<Config>>,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub started_at: SystemTime,
    pub store: Store,
    pub health: Health,
    pub heartbeats: heartbeat::Book,
    pub status: Status,
    pub pager: crate::page::pager::Pager,
}

/// Builds the router. Body limit and timeout come from the config at start;
/// changing them takes a restart, like the listen address.
pub fn router(state: AppState) -> Router {
    let (max_body, timeout) = {
        let c = state.config.borrow();
        (c.server.max_body_bytes, c.server.request_timeout)
    };
    Router::new()
        .merge(ops::routes())
        .merge(checks::public_routes())
        .merge(ack::public_routes())
        .nest(
            "/api/v1",
            api::routes()
                .merge(checks::routes())
                .merge(backups::routes())
                .merge(oncall::routes())
                .merge(ack::routes()),
        )
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .with_state(state)
}

/// Counts and times every request by its route template (never the raw path,
/// which would let any client mint new series).
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let start = Instant::now();
    let response = next.run(req).await;
    let m = &state.metrics;
    m.http_request_duration
        .with_label_values(&[&handler])
        .observe(start.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[&handler, response.status().as_str()])
        .inc();
    response
}
