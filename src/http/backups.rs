//! `/api/v1/backups`: recorded backup runs, and run requests (bearer token) that the daemon's backup task takes.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::api::error;
use super::{AppState, Authorized};
use crate::backup::schedule::Job;
use crate::backup::store;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/backups", get(list))
        .route("/backups/{set}/run", post(request))
}

#[derive(Deserialize)]
struct ListQuery {
    set: Option<String>,
    limit: Option<u32>,
}

async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let sets: Vec<String> = s
        .config
        .borrow()
        .backup
        .as_ref()
        .map(|b| b.sets.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match store::list(&s.store, q.set, limit).await {
        Ok(runs) => Json(json!({ "sets": sets, "runs": runs })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "store error while listing backup runs");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the state store failed")
        }
    }
}

#[derive(Deserialize)]
struct RunQuery {
    /// run (snapshot + copy, the default), snapshot, copy, forget, drill, check, read-data.
    job: Option<String>,
}

async fn request(
    _auth: Authorized,
    State(s): State<AppState>,
    Path(set): Path<String>,
    Query(q): Query<RunQuery>,
) -> Response {
    let known = s
        .config
        .borrow()
        .backup
        .as_ref()
        .is_some_and(|b| b.sets.iter().any(|x| x.name == set));
    if !known {
        return error(StatusCode::NOT_FOUND, "no backup set has that name");
    }
    let job = q.job.unwrap_or_else(|| "run".into());
    if Job::parse(&job, &set).is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "job is one of run, snapshot, copy, forget, drill, check, read-data",
        );
    }
    match store::request(&s.store, set, job, "api".into()).await {
        Ok(id) => (StatusCode::ACCEPTED, Json(json!({ "request": id }))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "store error while queueing a backup run");
            error(StatusCode::INTERNAL_SERVER_ERROR, "the state store failed")
        }
    }
}
