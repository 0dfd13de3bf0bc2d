//! `/api/v1` for checks, incidents, heartbeats, maintenance windows and the status, plus the public `/status` page.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::api::error;
use super::{AppState, Authorized};
use crate::health::persist;
use crate::incident::{self, Filter};
use crate::probe::Kind;
use crate::probe::heartbeat::Ping;
use crate::status::{self, Mode, Override};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/checks", get(checks))
        .route("/checks/{name}", get(check))
        .route("/incidents", get(incidents))
        .route("/incidents/{id}", get(incident))
        .route("/incidents/{id}/notes", post(note))
        .route("/heartbeat/{name}", post(heartbeat_success))
        .route("/heartbeat/{name}/{signal}", post(heartbeat))
        .route("/maintenance", get(windows).post(add_window))
        .route("/maintenance/{id}", axum::routing::delete(delete_window))
        .route(
            "/status",
            get(status_json).put(set_status).delete(clear_status),
        )
}

pub fn public_routes() -> Router<AppState> {
    Router::new().route("/status", get(status_page))
}

fn store_error(e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "store error while serving the API");
    error(StatusCode::INTERNAL_SERVER_ERROR, "the state store failed")
}

async fn checks(State(s): State<AppState>) -> Response {
    let config = s.config.borrow().clone();
    Json(json!({ "checks": s.health.views(&config) })).into_response()
}

async fn check(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let config = s.config.borrow().clone();
    match s.health.views(&config).into_iter().find(|v| v.name == name) {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, "no check has that name"),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
}

async fn incidents(State(s): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    let filter = match q.status.as_deref() {
        None | Some("all") => Filter::All,
        Some("open") => Filter::Open,
        Some("resolved") => Filter::Resolved,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "status is one of open, resolved, all",
            );
        }
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match incident::list(&s.store, filter, limit).await {
        Ok(list) => Json(json!({ "incidents": list })).into_response(),
        Err(e) => store_error(e),
    }
}

async fn incident(State(s): State<AppState>, Path(id): Path<i64>) -> Response {
    match incident::get(&s.store, id).await {
        Ok(Some((incident, timeline))) => {
            Json(json!({ "incident": incident, "timeline": timeline })).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "no incident has that id"),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
}

async fn note(
    _: Authorized,
    State(s): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<NoteBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return error(StatusCode::BAD_REQUEST, "send JSON: {\"text\": \"...\"}");
    };
    let text = body.text.trim().to_string();
    if text.is_empty() || text.len() > 4000 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a note is 1 to 4000 bytes",
        );
    }
    match incident::add_note(&s.store, id, text).await {
        Ok(true) => (StatusCode::CREATED, Json(json!({ "status": "noted" }))).into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no incident has that id"),
        Err(e) => store_error(e),
    }
}

async fn heartbeat_success(s: State<AppState>, name: Path<String>, h: HeaderMap) -> Response {
    record_ping(s, name.0, "success".into(), h).await
}

async fn heartbeat(
    s: State<AppState>,
    Path((name, signal)): Path<(String, String)>,
    h: HeaderMap,
) -> Response {
    record_ping(s, name, signal, h).await
}

/// A job's ping: its own token (so a cron job never holds the admin token) or the API token.
async fn record_ping(
    State(s): State<AppState>,
    name: String,
    signal: String,
    headers: HeaderMap,
) -> Response {
    let config = s.config.borrow().clone();
    let Some(spec) = config.checks.iter().find(|c| c.name == name) else {
        return error(StatusCode::NOT_FOUND, "no check has that name");
    };
    let Kind::Heartbeat(hb) = &spec.kind else {
        return error(StatusCode::NOT_FOUND, "that check is not a heartbeat");
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let accepted = [hb.token.as_ref(), config.server.api_token.as_ref()]
        .into_iter()
        .flatten()
        .any(|t| presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(t.expose().as_bytes()))));
    if !accepted {
        return error(
            StatusCode::UNAUTHORIZED,
            "a heartbeat needs its check's token or the API token as a bearer token",
        );
    }
    let Some(ping) = Ping::parse(&signal) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the signal is start, success, fail or an exit code 0-255",
        );
    };
    let pings = s
        .heartbeats
        .record(&name, ping, std::time::SystemTime::now());
    if let Err(e) = persist::save_heartbeat(&s.store, name, pings).await {
        return store_error(e);
    }
    Json(json!({ "status": "recorded" })).into_response()
}

async fn windows(State(s): State<AppState>) -> Response {
    Json(json!({ "windows": s.health.windows() })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowBody {
    /// RFC 3339; default now.
    start: Option<String>,
    /// RFC 3339; or `duration` from the start.
    end: Option<String>,
    duration: Option<String>,
    #[serde(default)]
    checks: Vec<String>,
    reason: String,
}

async fn add_window(
    _: Authorized,
    State(s): State<AppState>,
    body: Result<Json<WindowBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(b)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "send JSON: {\"reason\": \"...\", \"duration\": \"2h\"} (or start/end in RFC 3339, and checks)",
        );
    };
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc));
    let start = match b.start.as_deref().map(parse) {
        None => Utc::now(),
        Some(Ok(t)) => t,
        Some(Err(_)) => return error(StatusCode::UNPROCESSABLE_ENTITY, "start is not RFC 3339"),
    };
    let end = match (b.end.as_deref(), b.duration.as_deref()) {
        (Some(e), None) => match parse(e) {
            Ok(t) => t,
            Err(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "end is not RFC 3339"),
        },
        (None, Some(d)) => match humantime::parse_duration(d)
            .ok()
            .and_then(|d| chrono::Duration::from_std(d).ok())
        {
            Some(d) => start + d,
            None => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "duration is like 90m or 2h",
                );
            }
        },
        _ => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "give end or duration, not both",
            );
        }
    };
    if end <= start || end - start > chrono::Duration::days(31) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a window ends after it starts and lasts at most 31 days",
        );
    }
    let config = s.config.borrow().clone();
    if let Some(unknown) = b
        .checks
        .iter()
        .find(|c| !config.checks.iter().any(|k| &k.name == *c))
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("no check is named `{unknown}`"),
        );
    }
    let reason = b.reason.trim().to_string();
    if reason.is_empty() || reason.len() > 500 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a reason is 1 to 500 bytes",
        );
    }
    match persist::add_window(&s.store, start, end, b.checks, reason).await {
        Ok(id) => {
            reload_windows(&s).await;
            (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn delete_window(_: Authorized, State(s): State<AppState>, Path(id): Path<i64>) -> Response {
    match persist::delete_window(&s.store, id).await {
        Ok(true) => {
            reload_windows(&s).await;
            Json(json!({ "status": "deleted" })).into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no window has that id"),
        Err(e) => store_error(e),
    }
}

async fn reload_windows(s: &AppState) {
    match persist::load_windows(&s.store).await {
        Ok(w) => s.health.set_windows(w),
        Err(e) => tracing::error!(error = %e, "cannot reload maintenance windows"),
    }
}

fn report(s: &AppState) -> status::Report {
    let config = s.config.borrow().clone();
    s.status.report(&config, &s.health)
}

async fn status_json(State(s): State<AppState>) -> Response {
    Json(report(&s)).into_response()
}

async fn status_page(State(s): State<AppState>) -> Response {
    let r = report(&s);
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(status::html(&r)),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    mode: String,
    message_en: Option<String>,
    message_zh: Option<String>,
    set_by: Option<String>,
}

async fn set_status(
    _: Authorized,
    State(s): State<AppState>,
    body: Result<Json<StatusBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(b)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "send JSON: {\"mode\": \"manual-intake\", \"message_en\": ..., \"message_zh\": ..., \"set_by\": ...}",
        );
    };
    let Some(mode) = Mode::parse(&b.mode) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "mode is one of normal, degraded, manual-intake, maintenance",
        );
    };
    let too_long = |m: &Option<String>| m.as_ref().is_some_and(|m| m.len() > 2000);
    if too_long(&b.message_en) || too_long(&b.message_zh) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a message is at most 2000 bytes",
        );
    }
    let o = Override {
        mode,
        message_en: b.message_en,
        message_zh: b.message_zh,
        set_at: std::time::SystemTime::now(),
        set_by: b
            .set_by
            .unwrap_or_else(|| "api".into())
            .chars()
            .take(100)
            .collect(),
    };
    match s.status.set(Some(o)).await {
        Ok(()) => Json(report(&s)).into_response(),
        Err(e) => store_error(e),
    }
}

async fn clear_status(_: Authorized, State(s): State<AppState>) -> Response {
    match s.status.set(None).await {
        Ok(()) => Json(report(&s)).into_response(),
        Err(e) => store_error(e),
    }
}
