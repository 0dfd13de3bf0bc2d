//! The on-call rota: people, shifts with primary and assistant layers, the holiday calendar, temporary schedules and overrides.
//!
//! Everything is computed, never stored: a slot is a shift occurrence on a
//! local date, converted to UTC instants in the rota's zone, so a 08:00 shift
//! stays 08:00 local across a daylight-saving change. Precedence is
//! override > temporary schedule > regular rota > nobody (which the pager
//! alerts on). Who fills a rotating layer counts only the slots that actually
//! happen, so a weekday-only rota of 14 people gives everyone a turn.

mod calendar;
mod config;
mod ics;
mod rotation;
mod schedule;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};

pub use calendar::{Calendar, Days, Holiday};
pub use config::RawOncall;
pub(crate) use config::validate;
pub use rotation::{Layer, Rotate};
pub use schedule::{LayerName, Override, Shift, Temporary};

/// The validated rota.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Rota {
    #[serde(serialize_with = "display")]
    pub time_zone: Tz,
    /// Where the calendar was read from, if a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar_file: Option<std::path::PathBuf>,
    /// File and inline entries merged.
    pub calendar: Calendar,
    pub people: Vec<Person>,
    pub shifts: Vec<Shift>,
    pub temporary: Vec<Temporary>,
    pub overrides: Vec<Override>,
}

fn display<S: Serializer>(v: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// Someone who can be on duty, and how each channel reaches them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Person {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dingtalk_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feishu_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wecom_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack_user_id: Option<String>,
    /// Names of the channels that reach this person (checked against `[[channels]]` elsewhere).
    pub channels: Vec<String>,
}

impl Person {
    /// How a page names this person on every channel.
    pub fn mention(&self) -> crate::page::Mention {
        crate::page::Mention {
            name: self.name.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
            dingtalk_user_id: self.dingtalk_user_id.clone(),
            feishu_user_id: self.feishu_user_id.clone(),
            wecom_user_id: self.wecom_user_id.clone(),
            slack_user_id: self.slack_user_id.clone(),
        }
    }
}

/// Which rule put a slot's people on duty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum Source {
    Regular,
    /// A temporary schedule, by name (e.g. the Spring Festival rota).
    Temporary(String),
    Override,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Regular => f.write_str("regular"),
            Source::Temporary(name) => write!(f, "temporary: {name}"),
            Source::Override => f.write_str("override"),
        }
    }
}

/// One stretch of a shift with the same people on duty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Slot {
    pub shift: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Person ids.
    pub primary: Vec<String>,
    pub assistant: Vec<String>,
    pub source: Source,
}

impl Slot {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    /// Whether anyone at all is on this slot.
    pub fn is_staffed(&self) -> bool {
        !self.primary.is_empty() || !self.assistant.is_empty()
    }
}

/// Who is on duty at one instant: one slot per shift running then (early and
/// mid overlap at 13:00, so both are listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct OnDuty {
    pub at: DateTime<Utc>,
    pub slots: Vec<Slot>,
}

impl OnDuty {
    /// Every primary on any slot, first appearance first, without repeats.
    pub fn primaries(&self) -> Vec<String> {
        dedup(self.slots.iter().flat_map(|s| &s.primary))
    }

    /// Every assistant on any slot, first appearance first, without repeats.
    pub fn assistants(&self) -> Vec<String> {
        dedup(self.slots.iter().flat_map(|s| &s.assistant))
    }

    /// Nobody on duty at all: the pager alerts on this.
    pub fn is_empty(&self) -> bool {
        !self.slots.iter().any(Slot::is_staffed)
    }
}

fn dedup<'a>(ids: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    out
}

impl Rota {
    /// Who is on duty at `at`.
    pub fn on_duty(&self, at: DateTime<Utc>) -> OnDuty {
        let slots = self
            .slots(at, at + chrono::Duration::seconds(1))
            .into_iter()
            .filter(|s| s.contains(at))
            .collect();
        OnDuty { at, slots }
    }

    /// Every slot overlapping `[from, to)`, in time order (by start, then shift
    /// order). Slots are whole, not clipped to the range. Callers bound the range:
    /// the work is proportional to its length in days.
    pub fn slots(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
        schedule::slots(self, from, to)
    }

    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    /// The person's name, or the id itself for someone unknown (cannot happen
    /// in a validated rota, but a display must not fail).
    pub fn name_of<'a>(&'a self, id: &'a str) -> &'a str {
        self.person(id).map_or(id, |p| p.name.as_str())
    }

    /// An RFC 5545 calendar of `person`'s slots overlapping `[from, to)`.
    pub fn ics(&self, person: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
        ics::calendar(self, person, from, to, Utc::now())
    }

    /// Reads an instant written as RFC 3339, or as local wall-clock time in the
    /// rota's zone: "2027-02-08 13:00", "2027-02-08T13:00:00", or a date
    /// ("2027-02-08", its midnight).
    pub fn parse_time(&self, text: &str) -> Result<DateTime<Utc>, String> {
        config::parse_instant(text, self.time_zone)
    }
}
