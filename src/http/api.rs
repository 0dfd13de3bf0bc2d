//! `/api/v1`: JSON; reads are open on the (loopback) listener, changes need the bearer token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::oneshot;

use super::{AppState, Authorized};
use crate::daemon::ReloadRequest;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/info", get(info))
        .route("/reload", post(reload))
        .fallback(not_found)
}

async fn info(State(state): State<AppState>) -> Json<serde_json::Value> {
    let started = state
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let uptime = state.started_at.elapsed().map(|d| d.as_secs()).unwrap_or(0);
    let config = state.config.borrow().clone();
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": env!("LANTERN_REVISION"),
        "started_at": started,
        "uptime_seconds": uptime,
        "config": {
            "source": config.source,
            "last_reload_successful": state.metrics.config_last_reload_successful.get() == 1,
        },
        "ready": state.readiness.is_ready(),
    }))
}

/// Re-reads and validates the config file, as SIGHUP does; answers with the outcome.
async fn reload(_: Authorized, State(state): State<AppState>) -> Response {
    let (tx, rx) = oneshot::channel();
    if state
        .reload
        .send(ReloadRequest { reply: Some(tx) })
        .await
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "lantern is shutting down");
    }
    match rx.await {
        Ok(Ok(())) => Json(json!({ "status": "reloaded" })).into_response(),
        Ok(Err(message)) => error(StatusCode::UNPROCESSABLE_ENTITY, &message),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "lantern is shutting down"),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such API endpoint")
}

pub(super) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
