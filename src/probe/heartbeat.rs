//! `heartbeat` checks: jobs push pings; missing one (period + grace, or a cron schedule) is a failure.
//!
//! Pings arrive through `POST /api/v1/heartbeat/{name}` and are kept in the
//! [`Book`] (and in the store, so a restart remembers them). The probe only
//! reads the book: "probing" a heartbeat is asking whether the last ping is
//! recent enough, as healthchecks.io's `sendalerts` does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Facts, ProbeContext};
use crate::config::validate::Ctx;
use crate::config::{RawCheck, Schedule, Secret};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    #[serde(serialize_with = "ser_opt")]
    pub period: Option<Duration>,
    #[serde(serialize_with = "ser")]
    pub grace: Duration,
    pub schedule: Option<Schedule>,
    /// A job's own token, so a cron job never holds the admin token; the API
    /// token is accepted as well.
    pub token: Option<Secret>,
}

fn ser<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser(d, s),
        None => s.serialize_none(),
    }
}

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        let k = |f: &str| format!("{key}.{f}");
        let grace = cx.duration(
            &k("grace"),
            raw.grace.as_deref(),
            Duration::from_secs(60),
            Duration::ZERO,
            Duration::from_secs(7 * 86400),
        );
        let token = cx.secret(&k("token"), raw.token.as_deref(), raw.token_file.as_deref());
        match (&raw.period, &raw.schedule) {
            (Some(p), None) => {
                if raw.time_zone.is_some() {
                    cx.error(
                        &k("time-zone"),
                        "`time-zone` goes with `schedule`, not `period`",
                    );
                }
                let period = cx.duration(
                    &k("period"),
                    Some(p),
                    Duration::from_secs(3600),
                    Duration::from_secs(1),
                    Duration::from_secs(366 * 86400),
                );
                Some(Spec {
                    period: Some(period),
                    grace,
                    schedule: None,
                    token,
                })
            }
            (None, Some(expr)) => {
                let tz = crate::config::validate::time_zone(
                    cx,
                    &k("time-zone"),
                    raw.time_zone.as_deref(),
                );
                match Schedule::parse(expr, tz) {
                    Ok(s) => Some(Spec {
                        period: None,
                        grace,
                        schedule: Some(s),
                        token,
                    }),
                    Err(e) => {
                        cx.error(&k("schedule"), e);
                        None
                    }
                }
            }
            _ => {
                cx.error(
                    key,
                    "a heartbeat needs either `period` or `schedule` (cron, with `time-zone`)",
                );
                None
            }
        }
    }

    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        let pings = cx.heartbeats.get(&cx.check);
        self.judge(&pings, SystemTime::now())
    }

    /// Whether the job is on time at `now`, given what it has reported.
    pub fn judge(&self, p: &Pings, now: SystemTime) -> Result<Facts, String> {
        let mut facts = Facts::default();
        if let Some(last) = p.last_success {
            facts.age_seconds = Some(now.duration_since(last).unwrap_or_default().as_secs_f64());
        }
        facts.exit_code = p.last_exit_code;
        if let Some((failed_at, code)) = p.last_failure
            && p.last_success.is_none_or(|s| failed_at > s)
        {
            return Err(match code {
                Some(c) => format!("the job reported failure (exit code {c})"),
                None => "the job reported failure".into(),
            });
        }
        // Until the first ping, count from when lantern began expecting one.
        let reference = p.last_success.unwrap_or(p.expecting_since);
        if let Some(period) = self.period {
            let due = reference + period + self.grace;
            if now > due {
                let late = now.duration_since(reference).unwrap_or_default();
                return Err(format!(
                    "no ping for {} (expected every {} + {} grace)",
                    humantime::format_duration(Duration::from_secs(late.as_secs())),
                    humantime::format_duration(period),
                    humantime::format_duration(self.grace)
                ));
            }
        }
        if let Some(schedule) = &self.schedule {
            let now_utc: DateTime<Utc> = now.into();
            let grace = chrono::Duration::from_std(self.grace).unwrap_or_default();
            // The latest run whose grace has already passed must have pinged.
            if let Some(due) = schedule.previous(now_utc - grace) {
                let due_sys: SystemTime = due.into();
                if due_sys > p.expecting_since && reference < due_sys {
                    return Err(format!(
                        "missed the run due at {} ({})",
                        due.with_timezone(&schedule.tz).format("%Y-%m-%d %H:%M %Z"),
                        schedule.expr
                    ));
                }
            }
        }
        Ok(facts)
    }
}

/// What a job has reported.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Pings {
    pub expecting_since: SystemTime,
    pub last_success: Option<SystemTime>,
    pub last_start: Option<SystemTime>,
    pub last_failure: Option<(SystemTime, Option<i32>)>,
    pub last_exit_code: Option<i32>,
}

impl Pings {
    pub fn new(expecting_since: SystemTime) -> Pings {
        Pings {
            expecting_since,
            last_success: None,
            last_start: None,
            last_failure: None,
            last_exit_code: None,
        }
    }
}

/// A ping's meaning, as healthchecks.io's endpoints have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail(Option<i32>),
}

impl Ping {
    /// `start`, `success`, `fail`, or an exit code (0 is success).
    pub fn parse(s: &str) -> Option<Ping> {
        match s {
            "start" => Some(Ping::Start),
            "success" | "" => Some(Ping::Success),
            "fail" => Some(Ping::Fail(None)),
            n => match n.parse::<i32>() {
                Ok(0) => Some(Ping::Success),
                Ok(c) if (0..=255).contains(&c) => Some(Ping::Fail(Some(c))),
                _ => None,
            },
        }
    }
}

/// The pings of every heartbeat check, shared between the API and the probes.
#[derive(Clone, Default)]
pub struct Book {
    inner: Arc<Mutex<HashMap<String, Pings>>>,
}

impl Book {
    pub fn get(&self, check: &str) -> Pings {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(check.to_string())
            .or_insert_with(|| Pings::new(SystemTime::now()))
    }

    pub fn set(&self, check: &str, pings: Pings) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(check.to_string(), pings);
    }

    /// Records a ping and returns the new state, for the store to persist.
    pub fn record(&self, check: &str, ping: Ping, at: SystemTime) -> Pings {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let p = map
            .entry(check.to_string())
            .or_insert_with(|| Pings::new(at));
        match ping {
            Ping::Start => p.last_start = Some(at),
            Ping::Success => {
                p.last_success = Some(at);
                p.last_exit_code = Some(0);
            }
            Ping::Fail(code) => {
                p.last_failure = Some((at, code));
                p.last_exit_code = code;
            }
        }
        *p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> SystemTime {
        Utc.with_ymd_and_hms(2027, 2, 10, h, m, 0).unwrap().into()
    }

    #[test]
    fn a_period_heartbeat_fails_only_after_period_plus_grace() {
        let spec = Spec {
            period: Some(Duration::from_secs(3600)),
            grace: Duration::from_secs(300),
            schedule: None,
            token: None,
        };
        let mut p = Pings::new(t(0, 0));
        p.last_success = Some(t(1, 0));
        assert!(spec.judge(&p, t(2, 5)).is_ok());
        let err = spec.judge(&p, t(2, 6)).unwrap_err();
        assert!(err.contains("no ping for 1h 6m"), "{err}");
        p.last_failure = Some((t(2, 1), Some(3)));
        assert!(spec.judge(&p, t(2, 2)).unwrap_err().contains("exit code 3"));
    }

    #[test]
    fn a_scheduled_heartbeat_follows_its_time_zone() {
        // A backup at 02:30 Shanghai time = 18:30 UTC the day before.
        let spec = Spec {
            period: None,
            grace: Duration::from_secs(600),
            schedule: Some(
                Schedule::parse("30 2 * * *", "Asia/Shanghai".parse().unwrap()).unwrap(),
            ),
            token: None,
        };
        let day =
            |d, h, m| -> SystemTime { Utc.with_ymd_and_hms(2027, 2, d, h, m, 0).unwrap().into() };
        let mut p = Pings::new(day(8, 0, 0));
        p.last_success = Some(day(8, 18, 31));
        assert!(
            spec.judge(&p, day(9, 18, 39)).is_ok(),
            "within grace of the 9th's run"
        );
        let err = spec.judge(&p, day(9, 18, 41)).unwrap_err();
        assert!(err.contains("2027-02-10 02:30 CST"), "{err}");
        p.last_success = Some(day(9, 18, 35));
        assert!(spec.judge(&p, day(9, 18, 41)).is_ok());
    }

    #[test]
    fn pings_parse_like_healthchecks() {
        assert_eq!(Ping::parse("start"), Some(Ping::Start));
        assert_eq!(Ping::parse("0"), Some(Ping::Success));
        assert_eq!(Ping::parse("2"), Some(Ping::Fail(Some(2))));
        assert_eq!(Ping::parse("999"), None);
        assert_eq!(Ping::parse("nope"), None);
    }
}
