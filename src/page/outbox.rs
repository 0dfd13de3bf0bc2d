//! The durable outbox: every page is a row (pending → sending → sent / failed, or bundled) before anyone is paged.
//!
//! GoAlert's model in SQLite. A row is claimed by setting it `sending` with
//! a deadline; a crash between sending and recording leaves it `sending`,
//! and the next start puts it back to `pending`, so the page goes out again:
//! a duplicate (which the dedup key makes harmless) rather than silence.
//! Temporary failures retry with exponential backoff and jitter; permanent
//! ones are flagged at once. Above a destination's rate limit the waiting
//! rows are bundled into one summary instead of being dropped.

use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Message, MessageKind, Outcome, Severity};
use crate::store::{Store, StoreError, to_ms};

/// A claimed row, ready to send.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub channel: String,
    pub message: Message,
    pub attempts: u32,
    pub fallback_of: Option<i64>,
}

/// What recording an attempt decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    Sent,
    Retry { at_ms: i64 },
    Failed { permanent: bool, reason: String },
}

/// Queues `msg` for `channel`, due at `due_ms`. Runs inside the caller's
/// transaction so a page exists exactly when the change that caused it does.
pub fn enqueue(
    c: &Connection,
    channel: &str,
    msg: &Message,
    due_ms: i64,
    fallback_of: Option<i64>,
) -> rusqlite::Result<i64> {
    let json = serde_json::to_string(msg).unwrap_or_else(|_| "{}".into());
    c.execute(
        "INSERT INTO outbox (channel, incident_id, dedup_key, kind, message, status, next_ms, created_ms, fallback_of)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8)",
        params![
            channel,
            msg.incident_id,
            msg.dedup_key,
            kind_str(msg.kind),
            json,
            due_ms,
            to_ms(SystemTime::now()),
            fallback_of
        ],
    )?;
    Ok(c.last_insert_rowid())
}

fn kind_str(k: MessageKind) -> &'static str {
    match k {
        MessageKind::Trigger => "trigger",
        MessageKind::Reminder => "reminder",
        MessageKind::Resolve => "resolve",
        MessageKind::Handover => "handover",
        MessageKind::Promise => "promise",
        MessageKind::Summary => "summary",
        MessageKind::Test => "test",
    }
}

/// At start: rows a previous run left `sending` (it died between sending and
/// recording) go back to `pending`, due now. Returns how many.
pub async fn recover(store: &Store) -> Result<usize, StoreError> {
    let now = to_ms(SystemTime::now());
    store
        .call(move |c| {
            c.execute(
                "UPDATE outbox SET status = 'pending', next_ms = ?1, deadline_ms = NULL,
                 last_error = 'lantern stopped while sending; sending again' WHERE status = 'sending'",
                [now],
            )
        })
        .await
}

/// Claims up to `limit` due rows, oldest first. Rows over their channel's
/// rate limit are bundled first (see [`bundle_over_limit`]).
pub async fn claim_due(
    store: &Store,
    now_ms: i64,
    limit: u32,
    send_deadline: Duration,
) -> Result<Vec<Claimed>, StoreError> {
    let deadline = now_ms + send_deadline.as_millis() as i64;
    store
        .call(move |c| {
            let tx = c.transaction()?;
            // A row stuck in `sending` past its deadline (a send that hung
            // beyond every timeout) is retried rather than waited on forever.
            tx.execute(
                "UPDATE outbox SET status = 'pending', attempts = attempts + 1,
                 last_error = 'send deadline expired' WHERE status = 'sending' AND deadline_ms < ?1",
                [now_ms],
            )?;
            let rows: Vec<(i64, String, String, u32, Option<i64>)> = {
                let mut stmt = tx.prepare(
                    "SELECT id, channel, message, attempts, fallback_of FROM outbox
                     WHERE status = 'pending' AND next_ms <= ?1 ORDER BY next_ms, id LIMIT ?2",
                )?;
                stmt.query_map(params![now_ms, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::new();
            for (id, channel, json, attempts, fallback_of) in rows {
                tx.execute(
                    "UPDATE outbox SET status = 'sending', deadline_ms = ?2 WHERE id = ?1",
                    params![id, deadline],
                )?;
                match serde_json::from_str::<Message>(&json) {
                    Ok(message) => out.push(Claimed {
                        id,
                        channel,
                        message,
                        attempts,
                        fallback_of,
                    }),
                    Err(e) => {
                        tx.execute(
                            "UPDATE outbox SET status = 'failed', permanent = 1, last_error = ?2 WHERE id = ?1",
                            params![id, format!("unreadable message: {e}")],
                        )?;
                    }
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
}

/// Exponential backoff from 2 s, doubling to at most 5 minutes, with ±25 %
/// jitter so retries to one receiver do not arrive in lockstep.
pub fn backoff(attempts: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let base = Duration::from_secs(2).saturating_mul(1 << attempts.min(8));
    let base = base.min(Duration::from_secs(300));
    let jittered = base.mul_f64(0.75 + 0.5 * jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(r) => jittered.max(r.min(Duration::from_secs(3600))),
        None => jittered,
    }
}

/// Records the outcome of sending row `id`.
pub async fn record(
    store: &Store,
    id: i64,
    outcome: Outcome,
    max_attempts: u32,
    jitter: f64,
) -> Result<Recorded, StoreError> {
    let now = to_ms(SystemTime::now());
    store
        .call(move |c| {
            let attempts: u32 = c.query_row("SELECT attempts FROM outbox WHERE id = ?1", [id], |r| r.get(0))?;
            let attempts = attempts + 1;
            Ok(match outcome {
                Outcome::Delivered { provider_id } => {
                    c.execute(
                        "UPDATE outbox SET status = 'sent', attempts = ?2, sent_ms = ?3, provider_id = ?4,
                         deadline_ms = NULL WHERE id = ?1",
                        params![id, attempts, now, provider_id],
                    )?;
                    Recorded::Sent
                }
                Outcome::Temporary { reason, retry_after } if attempts < max_attempts => {
                    let at_ms = now + backoff(attempts - 1, retry_after, jitter).as_millis() as i64;
                    c.execute(
                        "UPDATE outbox SET status = 'pending', attempts = ?2, next_ms = ?3, last_error = ?4,
                         deadline_ms = NULL WHERE id = ?1",
                        params![id, attempts, at_ms, reason],
                    )?;
                    Recorded::Retry { at_ms }
                }
                Outcome::Temporary { reason, .. } => {
                    let reason = format!("gave up after {attempts} attempts: {reason}");
                    c.execute(
                        "UPDATE outbox SET status = 'failed', attempts = ?2, last_error = ?3, deadline_ms = NULL
                         WHERE id = ?1",
                        params![id, attempts, reason],
                    )?;
                    Recorded::Failed {
                        permanent: false,
                        reason,
                    }
                }
                Outcome::Permanent { reason } => {
                    c.execute(
                        "UPDATE outbox SET status = 'failed', permanent = 1, attempts = ?2, last_error = ?3,
                         deadline_ms = NULL WHERE id = ?1",
                        params![id, attempts, reason],
                    )?;
                    Recorded::Failed {
                        permanent: true,
                        reason,
                    }
                }
            })
        })
        .await
}

/// For each channel with a rate limit: when it has already sent `limit` in
/// the window, its waiting due rows become one summary, due when the window
/// has room again. Nothing is dropped: the originals are kept as `bundled`.
pub async fn bundle_over_limit(
    store: &Store,
    limits: Vec<(String, u32, Duration)>,
    now_ms: i64,
    source: String,
) -> Result<u32, StoreError> {
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let mut bundled = 0;
            for (channel, limit, window) in limits {
                let since = now_ms - window.as_millis() as i64;
                let sent: u32 = tx.query_row(
                    "SELECT count(*) FROM outbox WHERE channel = ?1 AND status = 'sent' AND sent_ms > ?2",
                    params![channel, since],
                    |r| r.get(0),
                )?;
                if sent < limit {
                    continue;
                }
                let waiting: Vec<(i64, String)> = {
                    let mut stmt = tx.prepare(
                        "SELECT id, message FROM outbox WHERE channel = ?1 AND status = 'pending'
                         AND next_ms <= ?2 AND kind != 'summary' ORDER BY id",
                    )?;
                    stmt.query_map(params![channel, now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()?
                };
                if waiting.is_empty() {
                    continue;
                }
                // The oldest send in the window leaves it first: then there is room.
                let oldest: Option<i64> = tx
                    .query_row(
                        "SELECT min(sent_ms) FROM outbox WHERE channel = ?1 AND status = 'sent' AND sent_ms > ?2",
                        params![channel, since],
                        |r| r.get(0),
                    )
                    .optional()?
                    .flatten();
                let due = oldest.map_or(now_ms, |o| o + window.as_millis() as i64);
                let messages: Vec<Message> = waiting
                    .iter()
                    .filter_map(|(_, m)| serde_json::from_str(m).ok())
                    .collect();
                let summary = summarize(&messages, &source);
                let id = enqueue(&tx, &channel, &summary, due, None)?;
                for (orig, _) in &waiting {
                    tx.execute(
                        "UPDATE outbox SET status = 'bundled', bundle_id = ?2 WHERE id = ?1",
                        params![orig, id],
                    )?;
                }
                bundled += waiting.len() as u32;
            }
            tx.commit()?;
            Ok(bundled)
        })
        .await
}

/// One message standing for several, each listed with its ack link.
pub fn summarize(messages: &[Message], source: &str) -> Message {
    let drill = messages.iter().all(|m| m.drill) && !messages.is_empty();
    let mut text = format!(
        "{} pages held back by this channel's rate limit / 因频率限制合并的 {} 条告警:\n",
        messages.len(),
        messages.len()
    );
    for m in messages {
        text.push_str(&format!("• {}", m.display_title()));
        if let Some(u) = &m.ack_url {
            text.push_str(&format!(" — ack: {u}"));
        }
        text.push('\n');
    }
    let mut mentions = Vec::new();
    for m in messages {
        for p in &m.mentions {
            if !mentions.contains(p) {
                mentions.push(p.clone());
            }
        }
    }
    let severity = messages
        .iter()
        .map(|m| m.severity)
        .min_by_key(|s| *s as u8)
        .unwrap_or(Severity::Warning);
    Message {
        kind: MessageKind::Summary,
        dedup_key: format!(
            "summary:{}",
            messages.first().map_or("", |m| m.dedup_key.as_str())
        ),
        incident_id: None,
        severity,
        title: format!(
            "{} pages bundled / {} 条告警合并",
            messages.len(),
            messages.len()
        ),
        text,
        ack_url: None,
        mentions,
        drill,
        created_at: SystemTime::now(),
        source: source.to_string(),
        details: Default::default(),
    }
}

/// Depth and the age of the oldest waiting row, for the metrics and the watcher.
pub async fn depth(store: &Store) -> Result<(i64, Option<i64>), StoreError> {
    store
        .call(|c| {
            c.query_row(
                "SELECT count(*), min(created_ms) FROM outbox WHERE status IN ('pending', 'sending')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_caps_and_honours_retry_after() {
        assert_eq!(backoff(0, None, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(3, None, 0.5), Duration::from_secs(16));
        assert_eq!(backoff(20, None, 0.5), Duration::from_secs(300));
        assert_eq!(backoff(0, None, 0.0), Duration::from_millis(1500));
        assert_eq!(backoff(0, None, 1.0), Duration::from_millis(2500));
        assert_eq!(
            backoff(0, Some(Duration::from_secs(120)), 0.5),
            Duration::from_secs(120)
        );
    }
}
