//! Response promises as timers: "fallback orders confirmed within 2 h" warns at a share of the time, pages at another, escalates at the deadline.
//!
//! A promise is a row with its start and deadline; each stage is recorded
//! when reached, in the same transaction as its messages, so each fires once.

use std::time::SystemTime;

use rusqlite::params;
use serde::Serialize;

use super::config::Target;
use super::escalation::{Ctx, destinations};
use super::{Message, MessageKind, Severity, outbox};
use crate::store::{Store, StoreError, from_ms, to_ms};

#[derive(Debug, Clone, Serialize)]
pub struct Open {
    pub id: i64,
    pub promise: String,
    pub subject: String,
    #[serde(with = "crate::store::time_ms")]
    pub started: SystemTime,
    #[serde(with = "crate::store::time_ms")]
    pub deadline: SystemTime,
    pub stage: &'static str,
    pub done: bool,
}

/// Starts a promise timer (an intake order to confirm, a customer to answer).
pub async fn start(
    store: &Store,
    promise: &super::config::Promise,
    subject: String,
    drill: bool,
) -> Result<i64, StoreError> {
    let now = to_ms(SystemTime::now());
    let deadline = now + promise.within.as_millis() as i64;
    let name = promise.name.clone();
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO promises (promise, subject, started_ms, deadline_ms, drill) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, subject, now, deadline, drill],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
}

/// Marks a promise kept; false when it does not exist or was already done.
pub async fn done(store: &Store, id: i64) -> Result<bool, StoreError> {
    let now = to_ms(SystemTime::now());
    store
        .call(move |c| {
            Ok(c.execute(
                "UPDATE promises SET done_ms = ?2 WHERE id = ?1 AND done_ms IS NULL",
                params![id, now],
            )? > 0)
        })
        .await
}

pub async fn list(store: &Store, open_only: bool) -> Result<Vec<Open>, StoreError> {
    store
        .call(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, promise, subject, started_ms, deadline_ms, warned_ms, paged_ms, escalated_ms, done_ms
                 FROM promises WHERE (?1 = 0 OR done_ms IS NULL) ORDER BY deadline_ms LIMIT 1000",
            )?;
            stmt.query_map([open_only as i64], |r| {
                let stage = if r.get::<_, Option<i64>>(8)?.is_some() {
                    "kept"
                } else if r.get::<_, Option<i64>>(7)?.is_some() {
                    "escalated"
                } else if r.get::<_, Option<i64>>(6)?.is_some() {
                    "paged"
                } else if r.get::<_, Option<i64>>(5)?.is_some() {
                    "warned"
                } else {
                    "running"
                };
                Ok(Open {
                    id: r.get(0)?,
                    promise: r.get(1)?,
                    subject: r.get(2)?,
                    started: from_ms(r.get(3)?),
                    deadline: from_ms(r.get(4)?),
                    stage,
                    done: stage == "kept",
                })
            })?
            .collect()
        })
        .await
}

/// Which stage a promise reaches at `share` of its time.
fn stage(share: f64, warn_at: f64, page_at: f64) -> u8 {
    if share >= 1.0 {
        3
    } else if share >= page_at {
        2
    } else if share >= warn_at {
        1
    } else {
        0
    }
}

pub async fn tick(store: &Store, cx: &Ctx<'_>, now: SystemTime) -> Result<(), StoreError> {
    if cx.paging.promises.is_empty() {
        return Ok(());
    }
    let now_ms = to_ms(now);
    type Row = (
        i64,
        String,
        String,
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        bool,
    );
    let open: Vec<Row> = store
        .call(|c| {
            let mut stmt = c.prepare(
                "SELECT id, promise, subject, started_ms, deadline_ms, warned_ms, paged_ms, escalated_ms, drill
                 FROM promises WHERE done_ms IS NULL AND escalated_ms IS NULL",
            )?;
            stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?
            .collect()
        })
        .await?;
    let at: chrono::DateTime<chrono::Utc> = now.into();
    for (id, name, subject, started, deadline, warned, paged, _, drill) in open {
        let Some(p) = cx.paging.promise(&name) else {
            continue;
        };
        let share = (now_ms - started) as f64 / (deadline - started).max(1) as f64;
        let reached = stage(share, p.warn_at, p.page_at);
        let done_stage = if paged.is_some() {
            2
        } else if warned.is_some() {
            1
        } else {
            0
        };
        if reached <= done_stage {
            continue;
        }
        let (targets, severity, column, label, zh): (Vec<Target>, Severity, &str, &str, &str) =
            match reached {
                1 => (
                    vec![Target::Primary],
                    Severity::Warning,
                    "warned_ms",
                    "due soon",
                    "即将超时",
                ),
                2 => (
                    vec![Target::Primary, Target::Assistant],
                    Severity::Error,
                    "paged_ms",
                    "about to be broken",
                    "马上超时",
                ),
                _ => {
                    let policy = cx.paging.policy(&p.policy);
                    let targets = policy
                        .and_then(|pol| pol.steps.last())
                        .map(|s| s.targets.clone())
                        .unwrap_or_else(|| vec![Target::Primary, Target::Assistant]);
                    (
                        targets,
                        Severity::Critical,
                        "escalated_ms",
                        "broken",
                        "已超时",
                    )
                }
            };
        let due: chrono::DateTime<chrono::Utc> = from_ms(deadline).into();
        let messages: Vec<(String, Message)> = destinations(cx.config, &targets, at)
            .into_iter()
            .map(|d| {
                (
                    d.channel.clone(),
                    Message {
                        kind: MessageKind::Promise,
                        dedup_key: format!("promise:{id}"),
                        incident_id: None,
                        severity,
                        title: format!("Promise {label}: {name} — {subject} / 承诺{zh}"),
                        text: format!(
                            "{}\n{subject}\ndeadline / 截止: {} UTC\n",
                            if p.description.is_empty() {
                                &name
                            } else {
                                &p.description
                            },
                            due.format("%Y-%m-%d %H:%M")
                        ),
                        ack_url: None,
                        mentions: d.mentions,
                        drill,
                        created_at: SystemTime::now(),
                        source: cx.source.to_string(),
                        details: Default::default(),
                    },
                )
            })
            .collect();
        let column = column.to_string();
        store
            .call(move |c| {
                let tx = c.transaction()?;
                for (channel, m) in &messages {
                    outbox::enqueue(&tx, channel, m, now_ms, None)?;
                }
                // Earlier stages skipped over (lantern was down) count as reached too.
                tx.execute(
                    &format!(
                        "UPDATE promises SET {column} = ?2, warned_ms = coalesce(warned_ms, ?2) WHERE id = ?1"
                    ),
                    params![id, now_ms],
                )?;
                if column == "escalated_ms" {
                    tx.execute(
                        "UPDATE promises SET paged_ms = coalesce(paged_ms, ?2) WHERE id = ?1",
                        params![id, now_ms],
                    )?;
                }
                tx.commit()
            })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::stage;

    #[test]
    fn a_promise_warns_then_pages_then_escalates_at_its_shares() {
        assert_eq!(stage(0.1, 0.6, 0.9), 0);
        assert_eq!(stage(0.6, 0.6, 0.9), 1);
        assert_eq!(stage(0.95, 0.6, 0.9), 2);
        assert_eq!(stage(1.0, 0.6, 0.9), 3);
    }
}
