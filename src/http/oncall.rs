//! `/api/v1/oncall`: who is on duty (JSON, with names) and each person's shifts as an iCalendar feed.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::error;
use crate::oncall::{Rota, Slot};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oncall", get(on_duty))
        // matchit cannot put a suffix after a parameter, so `.ics` is checked by hand.
        .route("/oncall/{file}", get(feed))
}

/// How far an `.ics` feed may reach: calendar clients poll it, so it stays cheap.
const MAX_FEED_DAYS: i64 = 732;

#[derive(Deserialize)]
struct At {
    at: Option<String>,
}

#[derive(Deserialize)]
struct Range {
    from: Option<String>,
    to: Option<String>,
}

/// Errors are boxed: a `Response` is large and these are the rare path.
fn rota(s: &AppState) -> Result<Rota, Box<Response>> {
    s.config
        .borrow()
        .oncall
        .clone()
        .ok_or_else(|| Box::new(error(StatusCode::NOT_FOUND, "no rota configured")))
}

fn time(rota: &Rota, key: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, Box<Response>> {
    raw.map(|t| rota.parse_time(t))
        .transpose()
        .map_err(|e| Box::new(error(StatusCode::BAD_REQUEST, &format!("{key}: {e}"))))
}

fn people(rota: &Rota, ids: &[String]) -> Value {
    ids.iter()
        .map(|id| json!({ "id": id, "name": rota.name_of(id) }))
        .collect()
}

fn slot_json(rota: &Rota, s: &Slot) -> Value {
    json!({
        "shift": s.shift,
        "start": s.start,
        "end": s.end,
        "source": s.source,
        "primary": people(rota, &s.primary),
        "assistant": people(rota, &s.assistant),
    })
}

async fn on_duty(State(s): State<AppState>, Query(q): Query<At>) -> Response {
    let rota = match rota(&s) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let at = match time(&rota, "at", q.at.as_deref()) {
        Ok(t) => t.unwrap_or_else(Utc::now),
        Err(r) => return *r,
    };
    let duty = rota.on_duty(at);
    Json(json!({
        "at": duty.at,
        "time-zone": rota.time_zone.to_string(),
        "nobody-on-duty": duty.is_empty(),
        "primaries": people(&rota, &duty.primaries()),
        "assistants": people(&rota, &duty.assistants()),
        "slots": duty.slots.iter().map(|x| slot_json(&rota, x)).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn feed(
    State(s): State<AppState>,
    Path(file): Path<String>,
    Query(q): Query<Range>,
) -> Response {
    let rota = match rota(&s) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let Some(person) = file.strip_suffix(".ics") else {
        return error(
            StatusCode::NOT_FOUND,
            "the feed is /api/v1/oncall/{person}.ics",
        );
    };
    if rota.person(person).is_none() {
        return error(StatusCode::NOT_FOUND, "no person has that id");
    }
    let now = Utc::now();
    let (from, to) = match (
        time(&rota, "from", q.from.as_deref()),
        time(&rota, "to", q.to.as_deref()),
    ) {
        (Ok(f), Ok(t)) => {
            // Default: the past month (for "who had it last week") and the year ahead.
            let from = f.unwrap_or(now - Duration::days(31));
            (from, t.unwrap_or(from + Duration::days(31 + 366)))
        }
        (Err(r), _) | (_, Err(r)) => return *r,
    };
    if to <= from || to - from > Duration::days(MAX_FEED_DAYS) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("`to` must be after `from`, at most {MAX_FEED_DAYS} days later"),
        );
    }
    (
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        rota.ics(person, from, to),
    )
        .into_response()
}
