//! The shift handover: at each boundary a checklist (open incidents, checks not UP, promises, backups, notes) goes to the outgoing and incoming pair, and the incoming primary must sign it in time.
//!
//! A boundary is handled once: its row (`handovers`, unique per shift and
//! boundary) is inserted in the same transaction as its messages, so a
//! restart neither skips nor repeats a handover. Signing is an
//! acknowledgement link for the incoming primary; an unsigned handover past
//! `handover.sign-within` pages `handover.escalate-to`.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::ack::Subject;
use super::escalation::{Ctx, Dest, destinations};
use super::{Message, MessageKind, Severity, outbox};
use crate::store::{Store, StoreError, from_ms, to_ms};

/// Boundaries further back than this are history, not handovers to run now
/// (lantern was down across them).
const LOOKBACK: chrono::Duration = chrono::Duration::minutes(10);

pub async fn tick(store: &Store, cx: &Ctx<'_>, now: SystemTime) -> Result<(), StoreError> {
    let (Some(rota), Some(cfg)) = (cx.config.oncall.as_ref(), cx.paging.handover.as_ref()) else {
        return Ok(());
    };
    let at: DateTime<Utc> = now.into();
    let now_ms = to_ms(now);
    // New boundaries: slots that started within the lookback.
    for slot in rota.slots(at - LOOKBACK, at + chrono::Duration::seconds(1)) {
        if slot.start > at || slot.start <= at - LOOKBACK {
            continue;
        }
        if !cfg.shifts.is_empty() && !cfg.shifts.contains(&slot.shift) {
            continue;
        }
        let boundary_ms = slot.start.timestamp_millis();
        let before = slot.start - chrono::Duration::seconds(1);
        let outgoing: Vec<String> = rota
            .slots(before, slot.start)
            .into_iter()
            .filter(|s| s.end == slot.start)
            .flat_map(|s| s.primary.into_iter().chain(s.assistant))
            .collect();
        let incoming: Vec<String> = slot
            .primary
            .iter()
            .chain(slot.assistant.iter())
            .cloned()
            .collect();
        let out_json = serde_json::to_string(&outgoing).unwrap_or_default();
        let in_json = serde_json::to_string(&incoming).unwrap_or_default();
        let shift_name = slot.shift.clone();
        // The incoming primary gets the whole signing time from when the checklist goes out.
        let due_ms = boundary_ms.max(now_ms) + cfg.sign_within.as_millis() as i64;
        // The row first (once per boundary); its messages in the next step,
        // which also picks up any row a crash left without them.
        store
            .call(move |c| {
                c.execute(
                    "INSERT INTO handovers (shift, boundary_ms, outgoing, incoming, checklist, due_ms)
                     VALUES (?1, ?2, ?3, ?4, '', ?5) ON CONFLICT (shift, boundary_ms) DO NOTHING",
                    params![shift_name, boundary_ms, out_json, in_json, due_ms],
                )
            })
            .await?;
    }
    let unsent: Vec<(i64, String, String, String)> = store
        .call(|c| {
            let mut stmt = c.prepare(
                "SELECT id, shift, outgoing, incoming FROM handovers WHERE checklist = '' ORDER BY id",
            )?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .await?;
    for (id, shift, outgoing, incoming) in unsent {
        let outgoing: Vec<String> = serde_json::from_str(&outgoing).unwrap_or_default();
        let incoming: Vec<String> = serde_json::from_str(&incoming).unwrap_or_default();
        // Notes left since this shift's previous handover travel with this
        // one (every shift handing over sees them).
        let shift_q = shift.clone();
        let notes: Vec<String> = store
            .call(move |c| {
                let mut stmt = c.prepare(
                    "SELECT author, text FROM handover_notes
                     WHERE at_ms > coalesce((SELECT max(boundary_ms) FROM handovers
                                             WHERE shift = ?2 AND id != ?1), 0)
                     ORDER BY id",
                )?;
                stmt.query_map(params![id, shift_q], |r| {
                    Ok(format!(
                        "- {} ({})",
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(0)?
                    ))
                })?
                .collect()
            })
            .await?;
        let mut text = format!(
            "Shift handover / 交接班: {shift}\noutgoing / 交班: {}\nincoming / 接班: {}\n\n{}",
            names(cx, &outgoing),
            names(cx, &incoming),
            checklist(store, cx).await?
        );
        if !notes.is_empty() {
            text.push_str(&format!("\nNotes / 交接备注:\n{}\n", notes.join("\n")));
        }
        // The incoming primary is the first incoming person (primaries come first).
        let signer_id = incoming.first().cloned();
        let mut messages: Vec<(String, Message)> = Vec::new();
        let everyone: Vec<String> = outgoing.iter().chain(incoming.iter()).cloned().collect();
        for person in dedup(everyone) {
            let signs = signer_id.as_deref() == Some(person.as_str());
            for d in person_dests(cx, &person) {
                let ack_url = signs.then(|| cx.ack_url(Subject::Handover(id), Some(&person)));
                let mut body = text.clone();
                if let Some(u) = &ack_url {
                    body.push_str(&format!("\nSign the handover / 接班确认签字: {u}\n"));
                }
                messages.push((
                    d.channel.clone(),
                    Message {
                        kind: MessageKind::Handover,
                        dedup_key: format!("handover:{id}"),
                        incident_id: None,
                        severity: Severity::Info,
                        title: format!("Shift handover: {shift} / 交接班 {shift}"),
                        text: body,
                        ack_url,
                        mentions: d.mentions.clone(),
                        drill: false,
                        created_at: SystemTime::now(),
                        source: cx.source.to_string(),
                        details: Default::default(),
                    },
                ));
            }
        }
        let count = messages.len();
        let sent = store
            .call(move |c| {
                let tx = c.transaction()?;
                let claimed = tx.execute(
                    "UPDATE handovers SET checklist = ?2 WHERE id = ?1 AND checklist = ''",
                    params![id, text],
                )?;
                if claimed == 1 {
                    for (channel, m) in &messages {
                        outbox::enqueue(&tx, channel, m, now_ms, None)?;
                    }
                }
                tx.commit()?;
                Ok(claimed == 1)
            })
            .await?;
        if sent {
            tracing::info!(handover = id, shift = %shift, messages = count, "shift handover sent");
        }
    }
    // Unsigned in time: escalate, once.
    let overdue: Vec<(i64, String, String)> = store
        .call(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, shift, incoming FROM handovers
                 WHERE signed_ms IS NULL AND escalated_ms IS NULL AND due_ms <= ?1",
            )?;
            stmt.query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .await?;
    for (id, shift, incoming) in overdue {
        let incoming: Vec<String> = serde_json::from_str(&incoming).unwrap_or_default();
        let who = incoming.first().cloned().unwrap_or_else(|| "nobody".into());
        let dests = destinations(cx.config, &cfg.escalate_to, at);
        let messages: Vec<(String, Message)> = dests
            .iter()
            .map(|d| {
                (
                    d.channel.clone(),
                    Message {
                        kind: MessageKind::Reminder,
                        dedup_key: format!("handover:{id}"),
                        incident_id: None,
                        severity: Severity::Error,
                        title: format!("Handover of {shift} not signed by {who} / 交接班未签字"),
                        text: format!(
                            "{who} has not signed the {shift} handover within {}.\n{who} 未在规定时间内签字确认交接班。\nSign / 签字: {}\n",
                            humantime::format_duration(cfg.sign_within),
                            cx.ack_url(Subject::Handover(id), None)
                        ),
                        ack_url: Some(cx.ack_url(Subject::Handover(id), None)),
                        mentions: d.mentions.clone(),
                        drill: false,
                        created_at: SystemTime::now(),
                        source: cx.source.to_string(),
                        details: Default::default(),
                    },
                )
            })
            .collect();
        store
            .call(move |c| {
                let tx = c.transaction()?;
                for (channel, m) in &messages {
                    outbox::enqueue(&tx, channel, m, now_ms, None)?;
                }
                tx.execute(
                    "UPDATE handovers SET escalated_ms = ?2 WHERE id = ?1",
                    params![id, now_ms],
                )?;
                tx.commit()
            })
            .await?;
        tracing::warn!(handover = id, "handover not signed in time: escalated");
    }
    Ok(())
}

fn person_dests(cx: &Ctx<'_>, person: &str) -> Vec<Dest> {
    destinations(
        cx.config,
        &[super::config::Target::Person(person.to_string())],
        Utc::now(),
    )
}

fn names(cx: &Ctx<'_>, ids: &[String]) -> String {
    let rota = cx.config.oncall.as_ref();
    let list: Vec<String> = ids
        .iter()
        .map(|id| {
            rota.and_then(|r| r.person(id))
                .map(|p| format!("{} ({id})", p.name))
                .unwrap_or_else(|| id.clone())
        })
        .collect();
    if list.is_empty() {
        "nobody / 无".into()
    } else {
        list.join(", ")
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for s in v {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The checklist: open incidents, checks not UP, open promises.
async fn checklist(store: &Store, cx: &Ctx<'_>) -> Result<String, StoreError> {
    let (incidents, promises, backups) = store
        .call(|c| {
            let mut stmt = c.prepare(
                "SELECT id, title, opened_ms, suppressed FROM incidents WHERE status = 'open' ORDER BY id",
            )?;
            let incidents: Vec<String> = stmt
                .query_map([], |r| {
                    let opened: DateTime<Utc> = from_ms(r.get(2)?).into();
                    Ok(format!(
                        "- #{} {} (since {}){}",
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        opened.format("%Y-%m-%d %H:%M UTC"),
                        r.get::<_, Option<String>>(3)?
                            .map(|s| format!(" [not paged: {s}]"))
                            .unwrap_or_default()
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = c.prepare(
                "SELECT promise, subject, deadline_ms FROM promises WHERE done_ms IS NULL ORDER BY deadline_ms",
            )?;
            let promises: Vec<String> = stmt
                .query_map([], |r| {
                    let due: DateTime<Utc> = from_ms(r.get(2)?).into();
                    Ok(format!(
                        "- {}: {} (due {})",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        due.format("%Y-%m-%d %H:%M UTC")
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            // The newest run of each set and job: is the safety net in place?
            let mut stmt = c.prepare(
                "SELECT set_name, job, repository, result, finished_ms, message FROM backup_runs r
                 WHERE id = (SELECT max(id) FROM backup_runs WHERE set_name = r.set_name AND job = r.job)
                 ORDER BY set_name, job",
            )?;
            let backups: Vec<String> = stmt
                .query_map([], |r| {
                    let at: DateTime<Utc> = from_ms(r.get(4)?).into();
                    let result: String = r.get(3)?;
                    let message: String = r.get(5)?;
                    Ok(format!(
                        "- {} {} → {}: {} at {}{}",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        result,
                        at.format("%Y-%m-%d %H:%M UTC"),
                        if message.is_empty() { String::new() } else { format!(" ({message})") }
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok((incidents, promises, backups))
        })
        .await?;
    let section = |title: &str, items: &[String]| {
        if items.is_empty() {
            format!("{title}: none / 无\n")
        } else {
            format!("{title}:\n{}\n", items.join("\n"))
        }
    };
    Ok(format!(
        "{}{}{}{}",
        section("Open incidents / 未结事件", &incidents),
        section("Checks not UP / 异常检查", cx.not_up),
        section("Open promises (customer requests) / 待兑现承诺", &promises),
        section("Backups, last run of each job / 备份状态", &backups),
    ))
}

/// Signs a handover; false when there is no such handover or it was already signed.
pub async fn sign(store: &Store, id: i64, person: Option<String>) -> Result<bool, StoreError> {
    let now = to_ms(SystemTime::now());
    store
        .call(move |c| {
            Ok(c.execute(
                "UPDATE handovers SET signed_ms = ?2, signed_by = ?3 WHERE id = ?1 AND signed_ms IS NULL",
                params![id, now, person.unwrap_or_else(|| "someone".into())],
            )? > 0)
        })
        .await
}

/// Leaves a note for the next handover (`lantern handover note "…"`).
pub async fn note(store: &Store, author: String, text: String) -> Result<i64, StoreError> {
    let now = to_ms(SystemTime::now());
    store
        .call(move |c| {
            c.execute(
                "INSERT INTO handover_notes (at_ms, author, text) VALUES (?1, ?2, ?3)",
                params![now, author, text],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await
}

/// A handover for the API and the ack page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Handover {
    pub id: i64,
    pub shift: String,
    #[serde(with = "crate::store::time_ms")]
    pub boundary: SystemTime,
    pub outgoing: Vec<String>,
    pub incoming: Vec<String>,
    pub checklist: String,
    #[serde(with = "crate::store::time_ms")]
    pub due: SystemTime,
    pub signed_by: Option<String>,
    pub escalated: bool,
}

pub async fn list(store: &Store, limit: u32) -> Result<Vec<Handover>, StoreError> {
    store
        .call(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, shift, boundary_ms, outgoing, incoming, checklist, due_ms, signed_by, escalated_ms
                 FROM handovers ORDER BY id DESC LIMIT ?1",
            )?;
            stmt.query_map([limit], |r| {
                Ok(Handover {
                    id: r.get(0)?,
                    shift: r.get(1)?,
                    boundary: from_ms(r.get(2)?),
                    outgoing: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
                    incoming: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                    checklist: r.get(5)?,
                    due: from_ms(r.get(6)?),
                    signed_by: r.get(7)?,
                    escalated: r.get::<_, Option<i64>>(8)?.is_some(),
                })
            })?
            .collect()
        })
        .await
}
