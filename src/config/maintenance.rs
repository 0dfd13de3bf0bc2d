//! Maintenance windows (recurring by cron in a time zone, or one-off dated) and the cron schedule type they share.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Serialize, Serializer};

use super::checks::RawWindow;
use super::validate::Ctx;

/// A cron expression bound to a time zone: holidays and shifts are local time.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub expr: String,
    // Boxed: a parsed Cron is ~350 bytes and would bloat every enum holding a Schedule.
    cron: Box<Cron>,
    pub tz: Tz,
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{} ({})", self.expr, self.tz))
    }
}

impl Schedule {
    /// Parses a 5-field (minute first) or 6-field (seconds first) cron expression.
    pub fn parse(expr: &str, tz: Tz) -> Result<Schedule, String> {
        let cron: Cron = expr
            .parse()
            .map_err(|e| format!("`{expr}` is not a cron expression: {e}"))?;
        Ok(Schedule {
            expr: expr.to_string(),
            cron: Box::new(cron),
            tz,
        })
    }

    /// The latest time at or before `now` that the schedule matches.
    pub fn previous(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&now.with_timezone(&self.tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first time after `now` that the schedule matches.
    pub fn next(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&now.with_timezone(&self.tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Parses an IANA time zone name, defaulting to UTC when none is given.
pub(crate) fn time_zone(cx: &mut Ctx, key: &str, raw: Option<&str>) -> Tz {
    match raw {
        None => Tz::UTC,
        Some(name) => name.parse::<Tz>().unwrap_or_else(|_| {
            cx.error(
                key,
                format!("unknown time zone `{name}` (use an IANA name such as Asia/Shanghai)"),
            );
            Tz::UTC
        }),
    }
}

/// When paging is suppressed for some checks. Checks keep running and recording.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Window {
    Recurring {
        schedule: Schedule,
        #[serde(serialize_with = "super::human")]
        duration: Duration,
        reason: String,
    },
    OneOff {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: String,
    },
}

impl Window {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        match self {
            Window::OneOff { start, end, .. } => *start <= now && now < *end,
            Window::Recurring {
                schedule, duration, ..
            } => match schedule.previous(now) {
                Some(began) => {
                    now < began + chrono::Duration::from_std(*duration).unwrap_or_default()
                }
                None => false,
            },
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Window::Recurring { reason, .. } | Window::OneOff { reason, .. } => reason,
        }
    }
}

/// Validates a list of windows; with `global`, each may name the checks it covers.
pub(super) fn validate_windows(
    cx: &mut Ctx,
    key: &str,
    raw: &[RawWindow],
    global: bool,
) -> Vec<(Window, Vec<String>)> {
    let mut out = Vec::new();
    for (i, w) in raw.iter().enumerate() {
        let k = |f: &str| format!("{key}[{i}].{f}");
        if !global && w.checks.is_some() {
            cx.error(
                &k("checks"),
                "only a top-level [[maintenance]] window names checks",
            );
        }
        let reason = w.reason.clone().unwrap_or_else(|| "maintenance".into());
        let window = match (&w.schedule, &w.start) {
            (Some(expr), None) => {
                if w.end.is_some() {
                    cx.error(&k("end"), "a recurring window has `duration`, not `end`");
                }
                let tz = time_zone(cx, &k("time-zone"), w.time_zone.as_deref());
                let Some(d) = w.duration.as_deref() else {
                    cx.error(&k("duration"), "a recurring window needs a `duration`");
                    continue;
                };
                let duration = cx.duration(
                    &k("duration"),
                    Some(d),
                    Duration::from_secs(3600),
                    Duration::from_secs(1),
                    Duration::from_secs(31 * 86400),
                );
                match Schedule::parse(expr, tz) {
                    Ok(schedule) => Window::Recurring {
                        schedule,
                        duration,
                        reason,
                    },
                    Err(e) => {
                        cx.error(&k("schedule"), e);
                        continue;
                    }
                }
            }
            (None, Some(start)) => {
                // Dated windows carry their offset in the RFC 3339 text; a
                // duration or zone here would be silently ignored otherwise.
                for (field, set) in [
                    ("duration", w.duration.is_some()),
                    ("time-zone", w.time_zone.is_some()),
                ] {
                    if set {
                        cx.error(
                            &k(field),
                            format!("a one-off window has `start` and `end` (with their offset), not `{field}`"),
                        );
                    }
                }
                let parse =
                    |cx: &mut Ctx, field: &str, v: &str| match DateTime::parse_from_rfc3339(v) {
                        Ok(t) => Some(t.with_timezone(&Utc)),
                        Err(_) => {
                            cx.error(
                            &k(field),
                            format!(
                                "`{v}` is not an RFC 3339 time such as 2027-02-10T02:00:00+08:00"
                            ),
                        );
                            None
                        }
                    };
                let Some(end) = w.end.as_deref() else {
                    cx.error(&k("end"), "a one-off window needs an `end`");
                    continue;
                };
                let (Some(s), Some(e)) = (parse(cx, "start", start), parse(cx, "end", end)) else {
                    continue;
                };
                if e <= s {
                    cx.error(&k("end"), "must be after `start`");
                    continue;
                }
                Window::OneOff {
                    start: s,
                    end: e,
                    reason,
                }
            }
            _ => {
                cx.error(
                    &format!("{key}[{i}]"),
                    "a window has either `schedule` + `duration` or `start` + `end`",
                );
                continue;
            }
        };
        out.push((window, w.checks.clone().unwrap_or_default()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_recurring_window_follows_its_time_zone() {
        // Sundays 02:00–04:00 Shanghai time = Saturday 18:00–20:00 UTC.
        let w = Window::Recurring {
            schedule: Schedule::parse("0 2 * * SUN", "Asia/Shanghai".parse().unwrap()).unwrap(),
            duration: Duration::from_secs(7200),
            reason: "db vacuum".into(),
        };
        let sat = |h, m| Utc.with_ymd_and_hms(2027, 2, 13, h, m, 0).unwrap();
        assert!(!w.is_active(sat(17, 59)));
        assert!(w.is_active(sat(18, 0)));
        assert!(w.is_active(sat(19, 59)));
        assert!(!w.is_active(sat(20, 0)));
    }

    #[test]
    fn a_one_off_window_is_half_open() {
        let start = Utc.with_ymd_and_hms(2027, 2, 10, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2027, 2, 10, 1, 0, 0).unwrap();
        let w = Window::OneOff {
            start,
            end,
            reason: "migration".into(),
        };
        assert!(w.is_active(start));
        assert!(!w.is_active(end));
    }
}
