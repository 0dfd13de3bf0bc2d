//! Escalation: an incident's policy walked step by step, every timer a row (`escalations.next_ms`) read by the pager's tick.
//!
//! An escalation starts in the same transaction that opens its incident, so
//! no incident is ever open without one (and none pages twice after a
//! restart: the row says which step is next and when). A step with nobody to
//! page is skipped at once rather than eating its delay; a round that pages
//! nobody at all is itself an alert ("nobody on duty") to the fallback
//! channel. After the last step the policy starts over (`repeat` rounds)
//! and then keeps reminding while the incident stays open and unacknowledged.
//! An acknowledgement stops it until the ack timeout, which starts it again.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, params};

use super::ack::{Signer, Subject};
use super::config::{PagingConfig, Policy, Target};
use super::{Mention, Message, MessageKind, Severity, outbox};
use crate::config::Config;
use crate::store::{Store, StoreError, from_ms, to_ms};

/// Starts (or, for a reopened incident, restarts) the escalation of `incident_id`.
pub fn start(
    c: &Connection,
    incident_id: i64,
    policy: &str,
    at_ms: i64,
    drill: bool,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO escalations (incident_id, policy, step, round, next_ms, state, drill)
         VALUES (?1, ?2, 0, 0, ?3, 'active', ?4)
         ON CONFLICT (incident_id) DO UPDATE SET policy = ?2, step = 0, round = 0, next_ms = ?3,
             state = 'active', acked_ms = NULL, acked_by = NULL, ack_timeout_ms = NULL, drill = ?4",
        params![incident_id, policy, at_ms, drill],
    )?;
    Ok(())
}

/// Marks the escalation resolved; its resolve notices go out on the next tick.
pub fn resolve(c: &Connection, incident_id: i64, at_ms: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE escalations SET state = 'resolved', next_ms = ?2 WHERE incident_id = ?1 AND state != 'resolved'",
        params![incident_id, at_ms],
    )?;
    Ok(())
}

/// Where one message goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Dest {
    pub channel: String,
    pub mentions: Vec<Mention>,
    /// The person the ack link is for, when the message goes to one person.
    pub person: Option<String>,
}

/// Resolves a step's targets against the rota at `at`.
pub fn destinations(
    config: &Config,
    targets: &[Target],
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<Dest> {
    let Some(rota) = config.oncall.as_ref() else {
        // Without a rota only channel targets can be paged.
        return targets
            .iter()
            .filter_map(|t| match t {
                Target::Channel(c) => Some(Dest {
                    channel: c.clone(),
                    mentions: Vec::new(),
                    person: None,
                }),
                _ => None,
            })
            .collect();
    };
    let duty = rota.on_duty(at);
    let person_dests = |id: &str| -> Vec<Dest> {
        rota.person(id)
            .map(|p| {
                p.channels
                    .iter()
                    .map(|c| Dest {
                        channel: c.clone(),
                        mentions: vec![p.mention()],
                        person: Some(p.id.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out: Vec<Dest> = Vec::new();
    let push = |d: Dest, out: &mut Vec<Dest>| {
        if !out.contains(&d) {
            out.push(d);
        }
    };
    for t in targets {
        match t {
            Target::Primary => {
                for id in duty.primaries() {
                    for d in person_dests(&id) {
                        push(d, &mut out);
                    }
                }
            }
            Target::Assistant => {
                for id in duty.assistants() {
                    for d in person_dests(&id) {
                        push(d, &mut out);
                    }
                }
            }
            Target::Person(id) => {
                for d in person_dests(id) {
                    push(d, &mut out);
                }
            }
            Target::Channel(c) => {
                let mentions = duty
                    .primaries()
                    .iter()
                    .filter_map(|id| rota.person(id).map(|p| p.mention()))
                    .collect();
                push(
                    Dest {
                        channel: c.clone(),
                        mentions,
                        person: None,
                    },
                    &mut out,
                );
            }
        }
    }
    out
}

/// What the tick needs besides the store.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub paging: &'a PagingConfig,
    pub signer: &'a Signer,
    pub base_url: &'a str,
    pub source: &'a str,
    /// Checks not UP now, for the handover checklist.
    pub not_up: &'a [String],
}

impl Ctx<'_> {
    pub fn ack_url(&self, subject: Subject, person: Option<&str>) -> String {
        let token = self
            .signer
            .sign(subject, person, self.paging.ack_link_ttl, SystemTime::now());
        format!("{}/ack/{token}", self.base_url)
    }
}

#[derive(Debug)]
struct Row {
    incident_id: i64,
    policy: String,
    step: usize,
    round: u32,
    state: String,
    acked_by: Option<String>,
    drill: bool,
}

#[derive(Debug)]
struct IncidentInfo {
    check: String,
    dedup_key: String,
    title: String,
    reason: Option<String>,
    opened_ms: i64,
    status: String,
}

/// What one tick did, for metrics.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fired {
    pub steps: u32,
    pub messages: u32,
    pub nobody_on_duty: u32,
}

/// Advances every due escalation and queues its messages. Each escalation
/// moves in its own transaction: the messages and the next due time are
/// written together.
pub async fn tick(store: &Store, cx: &Ctx<'_>, now: SystemTime) -> Result<Fired, StoreError> {
    let now_ms = to_ms(now);
    let due: Vec<i64> = store
        .call(move |c| {
            let mut stmt = c.prepare(
                "SELECT incident_id FROM escalations WHERE next_ms IS NOT NULL AND next_ms <= ?1 ORDER BY next_ms LIMIT 500",
            )?;
            stmt.query_map([now_ms], |r| r.get(0))?.collect()
        })
        .await?;
    let mut fired = Fired::default();
    for id in due {
        // Everything an escalation needs to decide is computed here, then
        // written in one transaction on the store's thread.
        let plan = store.call(move |c| load(c, id)).await?;
        let Some((row, incident)) = plan else {
            continue;
        };
        let policy = cx
            .paging
            .policy(&row.policy)
            .or_else(|| cx.paging.policy(&cx.paging.default_policy))
            .cloned();
        let Some(policy) = policy else { continue };
        let (writes, f) = advance(cx, &policy, &row, &incident, now);
        fired.steps += f.steps;
        fired.messages += f.messages;
        fired.nobody_on_duty += f.nobody_on_duty;
        store
            .call(move |c| {
                let tx = c.transaction()?;
                for (channel, msg) in &writes.messages {
                    outbox::enqueue(&tx, channel, msg, now_ms, None)?;
                }
                tx.execute(
                    "UPDATE escalations SET step = ?2, round = ?3, state = ?4, next_ms = ?5 WHERE incident_id = ?1",
                    params![id, writes.step as i64, writes.round, writes.state, writes.next_ms],
                )?;
                for (kind, text) in &writes.timeline {
                    tx.execute(
                        "INSERT INTO incident_events (incident_id, at_ms, kind, message) VALUES (?1, ?2, ?3, ?4)",
                        params![id, now_ms, kind, text],
                    )?;
                }
                tx.commit()
            })
            .await?;
    }
    Ok(fired)
}

fn load(c: &Connection, id: i64) -> rusqlite::Result<Option<(Row, IncidentInfo)>> {
    let row = c
        .query_row(
            "SELECT incident_id, policy, step, round, state, acked_by, drill FROM escalations WHERE incident_id = ?1",
            [id],
            |r| {
                Ok(Row {
                    incident_id: r.get(0)?,
                    policy: r.get(1)?,
                    step: r.get::<_, i64>(2)? as usize,
                    round: r.get(3)?,
                    state: r.get(4)?,
                    acked_by: r.get(5)?,
                    drill: r.get(6)?,
                })
            },
        )
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let incident = c.query_row(
        "SELECT check_name, title, last_reason, opened_ms, status, dedup_key FROM incidents WHERE id = ?1",
        [id],
        |r| {
            Ok(IncidentInfo {
                check: r.get(0)?,
                title: r.get(1)?,
                reason: r.get(2)?,
                opened_ms: r.get(3)?,
                status: r.get(4)?,
                dedup_key: r.get(5)?,
            })
        },
    )?;
    // Who was paged, for the resolve notices.
    Ok(Some((row, incident)))
}

struct Writes {
    messages: Vec<(String, Message)>,
    step: usize,
    round: u32,
    state: &'static str,
    next_ms: Option<i64>,
    timeline: Vec<(&'static str, String)>,
}

fn advance(
    cx: &Ctx<'_>,
    policy: &Policy,
    row: &Row,
    incident: &IncidentInfo,
    now: SystemTime,
) -> (Writes, Fired) {
    let now_ms = to_ms(now);
    let at: chrono::DateTime<chrono::Utc> = now.into();
    let mut fired = Fired::default();
    let mut w = Writes {
        messages: Vec::new(),
        step: row.step,
        round: row.round,
        state: "active",
        next_ms: None,
        timeline: Vec::new(),
    };
    let message = |kind: MessageKind, dest: &Dest| -> Message {
        incident_message(cx, kind, row, incident, dest)
    };
    match row.state.as_str() {
        "resolved" => {
            w.state = "resolved";
            if policy.resolve_notice {
                // Everyone who was paged at the first step hears it is over.
                let dests = policy
                    .steps
                    .iter()
                    .take(row.step.max(1))
                    .flat_map(|s| destinations(cx.config, &s.targets, at))
                    .collect::<Vec<_>>();
                for d in dedup(dests) {
                    w.messages
                        .push((d.channel.clone(), message(MessageKind::Resolve, &d)));
                }
                fired.messages += w.messages.len() as u32;
            }
            return (w, fired);
        }
        "acked" => {
            // The ack timed out while the incident is still open: page again from the top.
            w.timeline.push((
                "ack-timeout",
                format!(
                    "acknowledged by {} but still open after {}: escalating again",
                    row.acked_by.as_deref().unwrap_or("someone"),
                    humantime::format_duration(policy.ack_timeout)
                ),
            ));
            w.step = 0;
            w.round = 0;
        }
        "exhausted" => {
            let last = policy
                .steps
                .last()
                .map(|s| s.targets.clone())
                .unwrap_or_default();
            for d in destinations(cx.config, &last, at) {
                w.messages
                    .push((d.channel.clone(), message(MessageKind::Reminder, &d)));
            }
            fired.messages += w.messages.len() as u32;
            w.state = "exhausted";
            w.next_ms = Some(now_ms + policy.reminder_interval.as_millis() as i64);
            return (w, fired);
        }
        _ => {}
    }
    // Active: fire the next step that has anyone to page, skipping empty ones.
    let kind = if w.round == 0 && row.state != "acked" {
        MessageKind::Trigger
    } else {
        MessageKind::Reminder
    };
    let mut i = w.step;
    let mut paged = false;
    while i < policy.steps.len() {
        let dests = destinations(cx.config, &policy.steps[i].targets, at);
        if dests.is_empty() {
            w.timeline.push((
                "escalation",
                format!("step {} has nobody to page: skipped", i + 1),
            ));
            i += 1;
            continue;
        }
        for d in &dests {
            w.messages.push((d.channel.clone(), message(kind, d)));
        }
        fired.steps += 1;
        fired.messages += dests.len() as u32;
        let names: Vec<String> = dests
            .iter()
            .map(|d| match &d.person {
                Some(p) => format!("{p} via {}", d.channel),
                None => d.channel.clone(),
            })
            .collect();
        w.timeline.push((
            "page",
            format!(
                "step {} (round {}): paged {}",
                i + 1,
                w.round + 1,
                names.join(", ")
            ),
        ));
        paged = true;
        break;
    }
    if !paged && i >= policy.steps.len() && w.step == 0 {
        // A whole round without anyone to page: that is an alert of its own.
        fired.nobody_on_duty += 1;
        if let Some(fallback) = &cx.paging.fallback_channel {
            let d = Dest {
                channel: fallback.clone(),
                mentions: Vec::new(),
                person: None,
            };
            let mut m = message(kind, &d);
            m.title = format!("NOBODY ON DUTY for: {} / 无人值班", m.title);
            m.severity = Severity::Critical;
            w.messages.push((fallback.clone(), m));
            fired.messages += 1;
        }
        w.timeline.push((
            "escalation",
            "nobody is on duty for any step of the policy".to_string(),
        ));
    }
    if paged && i + 1 < policy.steps.len() {
        let gap = policy.steps[i + 1]
            .delay
            .saturating_sub(policy.steps[i].delay);
        w.step = i + 1;
        w.next_ms = Some(now_ms + gap.as_millis() as i64);
    } else if w.round < policy.repeat {
        w.step = 0;
        w.round += 1;
        w.next_ms = Some(now_ms + policy.reminder_interval.as_millis() as i64);
    } else {
        w.step = policy.steps.len();
        w.state = "exhausted";
        w.next_ms = Some(now_ms + policy.reminder_interval.as_millis() as i64);
    }
    (w, fired)
}

fn dedup(dests: Vec<Dest>) -> Vec<Dest> {
    let mut out: Vec<Dest> = Vec::new();
    for d in dests {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

fn incident_message(
    cx: &Ctx<'_>,
    kind: MessageKind,
    row: &Row,
    incident: &IncidentInfo,
    dest: &Dest,
) -> Message {
    let opened: chrono::DateTime<chrono::Utc> = from_ms(incident.opened_ms).into();
    let tz = cx
        .config
        .oncall
        .as_ref()
        .map(|r| r.time_zone)
        .unwrap_or(chrono_tz::Tz::UTC);
    let opened_local = opened.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z");
    // A backup incident's "check" is its key (`backup:SET`); it reads as the set.
    let backup_set = incident.dedup_key.strip_prefix("backup:");
    let (subject, zh_down, zh_still, zh_back) = match backup_set {
        Some(set) => (
            format!("backup set {set}"),
            format!("【故障】备份集 {set} 不满足 3-2-1"),
            format!("【仍未恢复】备份集 {set} 仍不满足 3-2-1,请尽快处理"),
            format!("【已恢复】备份集 {set} 已满足 3-2-1"),
        ),
        None => (
            format!("check {}", incident.check),
            format!("【故障】{} 不可用", incident.check),
            format!("【仍未恢复】{} 仍不可用,请尽快处理", incident.check),
            format!("【已恢复】{} 已恢复正常", incident.check),
        ),
    };
    let (title, zh) = match kind {
        MessageKind::Resolve => (format!("RESOLVED: {}", incident.title), zh_back),
        MessageKind::Reminder => (format!("STILL DOWN: {}", incident.title), zh_still),
        _ => (incident.title.clone(), zh_down),
    };
    let ack_url = (kind != MessageKind::Resolve && incident.status == "open")
        .then(|| cx.ack_url(Subject::Incident(row.incident_id), dest.person.as_deref()));
    let mut text = format!(
        "{zh}\n{title}\nincident #{} · {subject} · since {opened_local}\n",
        row.incident_id
    );
    if let Some(r) = &incident.reason {
        text.push_str(&format!("reason / 原因: {r}\n"));
    }
    if let Some(u) = &ack_url {
        text.push_str(&format!("acknowledge / 确认: {u}\n"));
    }
    let mut details = BTreeMap::new();
    details.insert("check".to_string(), incident.check.clone());
    details.insert("incident".to_string(), row.incident_id.to_string());
    if let Some(r) = &incident.reason {
        details.insert("reason".to_string(), r.clone());
    }
    Message {
        kind,
        dedup_key: incident.dedup_key.clone(),
        incident_id: Some(row.incident_id),
        severity: if kind == MessageKind::Resolve {
            Severity::Info
        } else {
            Severity::Critical
        },
        title,
        text,
        ack_url,
        mentions: dest.mentions.clone(),
        drill: row.drill,
        created_at: SystemTime::now(),
        source: cx.source.to_string(),
        details,
    }
}

/// Why an acknowledgement was not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("no incident has that id")]
    NoIncident,
    #[error("this link was already used")]
    Replayed,
}

/// What an acknowledgement did.
#[derive(Debug, PartialEq, Eq)]
pub enum Acked {
    /// The escalation stopped until the ack timeout.
    Stopped,
    /// Recorded, but the incident was already acknowledged or resolved.
    Recorded,
}

/// Records an acknowledgement (once per link nonce) and pauses the escalation until the ack timeout.
pub async fn acknowledge(
    store: &Store,
    incident_id: i64,
    person: Option<String>,
    via: &'static str,
    nonce: Option<String>,
    ack_timeout: Duration,
) -> Result<Result<Acked, AckError>, StoreError> {
    let now = to_ms(SystemTime::now());
    store
        .call(move |c| {
            let tx = c.transaction()?;
            let status: Option<String> = tx
                .query_row("SELECT status FROM incidents WHERE id = ?1", [incident_id], |r| r.get(0))
                .optional()?;
            let Some(status) = status else {
                return Ok(Err(AckError::NoIncident));
            };
            let inserted = tx.execute(
                "INSERT INTO acks (incident_id, person, via, at_ms, nonce) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (nonce) DO NOTHING",
                params![incident_id, person, via, now, nonce],
            )?;
            if inserted == 0 {
                return Ok(Err(AckError::Replayed));
            }
            let who = person.clone().unwrap_or_else(|| "someone".into());
            tx.execute(
                "INSERT INTO incident_events (incident_id, at_ms, kind, message) VALUES (?1, ?2, 'ack', ?3)",
                params![incident_id, now, format!("acknowledged by {who} via {via}")],
            )?;
            let changed = if status == "open" {
                tx.execute(
                    "UPDATE escalations SET state = 'acked', acked_ms = ?2, acked_by = ?3,
                     ack_timeout_ms = ?4, next_ms = ?4 WHERE incident_id = ?1 AND state IN ('active', 'exhausted')",
                    params![incident_id, now, who, now + ack_timeout.as_millis() as i64],
                )?
            } else {
                0
            };
            tx.commit()?;
            Ok(Ok(if changed > 0 { Acked::Stopped } else { Acked::Recorded }))
        })
        .await
}

/// When the incident was opened and first acknowledged, for time-to-ack.
pub async fn opened_ms(store: &Store, incident_id: i64) -> Result<Option<i64>, StoreError> {
    store
        .call(move |c| {
            c.query_row(
                "SELECT opened_ms FROM incidents WHERE id = ?1",
                [incident_id],
                |r| r.get(0),
            )
            .optional()
        })
        .await
}
