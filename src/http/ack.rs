//! Acknowledgements: the signed `/ack/{token}` page (GET shows, POST acknowledges), `POST /api/v1/incidents/{id}/ack`, handover notes and promises.
//!
//! GET never changes anything, so a chat app's link previewer that fetches
//! every URL in a message cannot acknowledge by accident; the button on the
//! page POSTs the same token.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::api::error;
use super::{AppState, Authorized};
use crate::page::ack::{Refusal, Subject};
use crate::page::escalation::{self, AckError, Acked};
use crate::page::{handover, promise};

pub fn public_routes() -> Router<AppState> {
    Router::new().route("/ack/{token}", get(ack_page).post(ack_post))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/incidents/{id}/ack", post(api_ack))
        .route("/handovers", get(handovers))
        .route("/handovers/notes", post(add_note))
        .route("/promises", get(promises).post(start_promise))
        .route("/promises/{id}/done", post(promise_done))
        .route("/outbox", get(outbox))
}

fn store_error(e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "store error while serving an acknowledgement");
    error(StatusCode::INTERNAL_SERVER_ERROR, "the state store failed")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"robots\" content=\"noindex\"><title>{t}</title>\
             <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}}\
             button{{font-size:1.2rem;padding:.6rem 1.4rem}}pre{{white-space:pre-wrap;background:#f6f8fa;padding:.5rem}}</style>\
             </head><body><h1>{t}</h1>{body}</body></html>",
            t = escape(title)
        )),
    )
        .into_response()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn refused(r: Refusal) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Link refused / 链接无效",
        &format!("<p>{}</p>", escape(&r.to_string())),
    )
}

async fn ack_page(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    let claims = match s.pager.signer.verify(&token, std::time::SystemTime::now()) {
        Ok(c) => c,
        Err(r) => return refused(r),
    };
    let (title, detail) = match claims.subject {
        Subject::Incident(id) => match crate::incident::get(&s.store, id).await {
            Ok(Some((i, _))) => (
                format!("Incident #{id}: {} / 事件确认", i.title),
                format!(
                    "<p>Status / 状态: <b>{}</b></p><p>{}</p>",
                    escape(&i.status),
                    escape(i.last_reason.as_deref().unwrap_or(""))
                ),
            ),
            Ok(None) => return page(StatusCode::NOT_FOUND, "No such incident", ""),
            Err(e) => return store_error(e),
        },
        Subject::Handover(id) => match handover::list(&s.store, 200).await {
            Ok(list) => match list.into_iter().find(|h| h.id == id) {
                Some(h) => (
                    format!("Shift handover: {} / 交接班签字", h.shift),
                    format!("<pre>{}</pre>", escape(&h.checklist)),
                ),
                None => return page(StatusCode::NOT_FOUND, "No such handover", ""),
            },
            Err(e) => return store_error(e),
        },
    };
    let who = claims.person.as_deref().unwrap_or("");
    page(
        StatusCode::OK,
        &title,
        &format!(
            "{detail}<form method=\"post\"><p>{}</p><button type=\"submit\">Acknowledge / 确认</button></form>",
            escape(who)
        ),
    )
}

async fn ack_post(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    let claims = match s.pager.signer.verify(&token, std::time::SystemTime::now()) {
        Ok(c) => c,
        Err(r) => return refused(r),
    };
    match claims.subject {
        Subject::Incident(id) => {
            let timeout = ack_timeout(&s, id).await;
            match escalation::acknowledge(
                &s.store,
                id,
                claims.person.clone(),
                "link",
                Some(claims.nonce),
                timeout,
            )
            .await
            {
                Ok(Ok(acked)) => {
                    record_ack_metrics(&s, id, "link").await;
                    let extra = if acked == Acked::Recorded {
                        " (it was already acknowledged or resolved)"
                    } else {
                        ""
                    };
                    page(
                        StatusCode::OK,
                        "Acknowledged / 已确认",
                        &format!("<p>Incident #{id} acknowledged{extra}. 事件 #{id} 已确认。</p>"),
                    )
                }
                Ok(Err(AckError::Replayed)) => page(
                    StatusCode::CONFLICT,
                    "Link already used / 链接已使用",
                    "<p>This link was already used to acknowledge. 此链接已被使用。</p>",
                ),
                Ok(Err(AckError::NoIncident)) => {
                    page(StatusCode::NOT_FOUND, "No such incident", "")
                }
                Err(e) => store_error(e),
            }
        }
        Subject::Handover(id) => match handover::sign(&s.store, id, claims.person).await {
            Ok(true) => {
                s.pager
                    .metrics
                    .handovers
                    .with_label_values(&["signed"])
                    .inc();
                page(
                    StatusCode::OK,
                    "Handover signed / 已签字",
                    "<p>Thank you. 交接完成。</p>",
                )
            }
            Ok(false) => page(
                StatusCode::CONFLICT,
                "Already signed / 已签字",
                "<p>This handover was already signed. 此交接已签字。</p>",
            ),
            Err(e) => store_error(e),
        },
    }
}

/// The ack timeout of the incident's policy (default policy when unknown).
async fn ack_timeout(s: &AppState, id: i64) -> std::time::Duration {
    let cfg = s.config.borrow().clone();
    let policy_name: Option<String> = s
        .store
        .call(move |c| {
            use rusqlite::OptionalExtension;
            c.query_row(
                "SELECT policy FROM escalations WHERE incident_id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()
        })
        .await
        .ok()
        .flatten();
    cfg.paging
        .as_ref()
        .and_then(|p| {
            policy_name
                .as_deref()
                .and_then(|n| p.policy(n))
                .or_else(|| p.policy(&p.default_policy))
        })
        .map_or(std::time::Duration::from_secs(1800), |p| p.ack_timeout)
}

async fn record_ack_metrics(s: &AppState, id: i64, via: &str) {
    s.pager.metrics.acks.with_label_values(&[via]).inc();
    if let Ok(Some(opened)) = escalation::opened_ms(&s.store, id).await {
        let now = crate::store::to_ms(std::time::SystemTime::now());
        s.pager
            .metrics
            .time_to_ack
            .observe((now - opened).max(0) as f64 / 1000.0);
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: Option<String>,
}

async fn api_ack(
    _: Authorized,
    State(s): State<AppState>,
    Path(id): Path<i64>,
    body: Option<Json<AckBody>>,
) -> Response {
    let by = body
        .and_then(|Json(b)| b.by)
        .map(|b| b.chars().take(100).collect::<String>())
        .unwrap_or_else(|| "api".into());
    let timeout = ack_timeout(&s, id).await;
    match escalation::acknowledge(&s.store, id, Some(by), "api", None, timeout).await {
        Ok(Ok(acked)) => {
            record_ack_metrics(&s, id, "api").await;
            Json(json!({ "status": "acknowledged", "escalation_stopped": acked == Acked::Stopped }))
                .into_response()
        }
        Ok(Err(AckError::NoIncident)) => error(StatusCode::NOT_FOUND, "no incident has that id"),
        Ok(Err(AckError::Replayed)) => error(StatusCode::CONFLICT, "already acknowledged"),
        Err(e) => store_error(e),
    }
}

async fn handovers(State(s): State<AppState>) -> Response {
    match handover::list(&s.store, 50).await {
        Ok(list) => Json(json!({ "handovers": list })).into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
    author: Option<String>,
}

async fn add_note(
    _: Authorized,
    State(s): State<AppState>,
    body: Result<Json<NoteBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(b)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "send JSON: {\"text\": \"...\", \"author\": \"...\"}",
        );
    };
    let text = b.text.trim().to_string();
    if text.is_empty() || text.len() > 4000 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a note is 1 to 4000 bytes",
        );
    }
    let author = b
        .author
        .unwrap_or_else(|| "api".into())
        .chars()
        .take(100)
        .collect();
    match handover::note(&s.store, author, text).await {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
struct PromiseQuery {
    all: Option<bool>,
}

async fn promises(State(s): State<AppState>, Query(q): Query<PromiseQuery>) -> Response {
    match promise::list(&s.store, !q.all.unwrap_or(false)).await {
        Ok(list) => Json(json!({ "promises": list })).into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromiseBody {
    promise: String,
    subject: String,
    #[serde(default)]
    drill: bool,
}

async fn start_promise(
    _: Authorized,
    State(s): State<AppState>,
    body: Result<Json<PromiseBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(b)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "send JSON: {\"promise\": \"NAME\", \"subject\": \"...\"}",
        );
    };
    let cfg = s.config.borrow().clone();
    let Some(p) = cfg.paging.as_ref().and_then(|p| p.promise(&b.promise)) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "no promise has that name");
    };
    if b.subject.trim().is_empty() || b.subject.len() > 500 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a subject is 1 to 500 bytes",
        );
    }
    match promise::start(&s.store, p, b.subject.trim().to_string(), b.drill).await {
        Ok(id) => {
            s.pager
                .metrics
                .promises
                .with_label_values(&["started"])
                .inc();
            (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn promise_done(_: Authorized, State(s): State<AppState>, Path(id): Path<i64>) -> Response {
    match promise::done(&s.store, id).await {
        Ok(true) => {
            s.pager.metrics.promises.with_label_values(&["kept"]).inc();
            Json(json!({ "status": "kept" })).into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "no open promise has that id"),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
struct OutboxQuery {
    limit: Option<u32>,
}

/// Recent outbox rows (without message bodies' secrets: messages hold none).
async fn outbox(State(s): State<AppState>, Query(q): Query<OutboxQuery>) -> Response {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let rows = s
        .store
        .call(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, channel, incident_id, kind, status, attempts, last_error, permanent, created_ms, sent_ms
                 FROM outbox ORDER BY id DESC LIMIT ?1",
            )?;
            stmt.query_map([limit], |r| {
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "channel": r.get::<_, String>(1)?,
                    "incident_id": r.get::<_, Option<i64>>(2)?,
                    "kind": r.get::<_, String>(3)?,
                    "status": r.get::<_, String>(4)?,
                    "attempts": r.get::<_, i64>(5)?,
                    "last_error": r.get::<_, Option<String>>(6)?,
                    "permanent": r.get::<_, bool>(7)?,
                    "created_ms": r.get::<_, i64>(8)?,
                    "sent_ms": r.get::<_, Option<i64>>(9)?,
                }))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await;
    match rows {
        Ok(rows) => Json(json!({ "outbox": rows })).into_response(),
        Err(e) => store_error(e),
    }
}
