//! Who is on duty when: shifts become dated slots in the rota's zone, temporary schedules replace the regular rota, overrides and swaps come last.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};

use super::calendar::{Calendar, Days, next_day, prev_day};
use super::rotation::Layer;
use super::{Rota, Slot, Source};

/// The shift name of a slot an override makes where no shift was running.
pub const OVERRIDE_SHIFT: &str = "override";

/// A daily shift: local start and end (end ≤ start crosses midnight), the days
/// it starts on, and who fills its layers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Shift {
    pub name: String,
    #[serde(serialize_with = "hm")]
    pub start: NaiveTime,
    #[serde(serialize_with = "hm")]
    pub end: NaiveTime,
    pub days: Days,
    pub primary: Layer,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assistant: Option<Layer>,
}

fn hm<S: Serializer>(t: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.format("%H:%M").to_string())
}

impl Shift {
    /// The UTC instants of the occurrence starting on local `date`. Wall-clock
    /// times are kept, so across a daylight-saving change the overnight shift
    /// is an hour shorter or longer; `end == start` is a 24-hour shift.
    pub fn span(&self, date: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        let end_date = if self.end <= self.start {
            next_day(date)
        } else {
            date
        };
        (
            local_to_utc(tz, date.and_time(self.start)),
            local_to_utc(tz, end_date.and_time(self.end)),
        )
    }

    fn slot(&self, date: NaiveDate, tz: Tz, cal: &Calendar, source: &Source) -> Option<Slot> {
        if !self.days.matches(date, cal) {
            return None;
        }
        let (start, end) = self.span(date, tz);
        (start < end).then(|| Slot {
            shift: self.name.clone(),
            start,
            end,
            primary: self.primary.on_duty(date, &self.days, cal),
            assistant: self
                .assistant
                .as_ref()
                .map(|l| l.on_duty(date, &self.days, cal))
                .unwrap_or_default(),
            source: source.clone(),
        })
    }
}

/// A holiday rota (春节, 国庆) that replaces the regular one inside `[from, to)`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Temporary {
    pub name: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub shifts: Vec<Shift>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerName {
    Primary,
    Assistant,
}

/// Someone takes a layer for a while: the whole layer, or, with `replaces`,
/// only one person's place (a swap).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Override {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub layer: LayerName,
    pub person: String,
    /// Only this shift (default: every shift running then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// A local wall-clock time as an instant. Ambiguous times (the repeated hour
/// in autumn) take the first; times in the spring gap take the end of the gap.
pub(super) fn local_to_utc(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    if let Some(t) = tz.from_local_datetime(&naive).earliest() {
        return t.with_timezone(&Utc);
    }
    // Gaps are at most a few hours; walk minute by minute to where time resumes.
    for m in 1..=24 * 60 {
        if let Some(t) = tz
            .from_local_datetime(&(naive + Duration::minutes(m)))
            .earliest()
        {
            return t.with_timezone(&Utc);
        }
    }
    Utc.from_utc_datetime(&naive)
}

fn local_date(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// Occurrences of `shifts` overlapping `[from, to)`.
fn occurrences(
    shifts: &[Shift],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: Tz,
    cal: &Calendar,
    source: &Source,
) -> Vec<Slot> {
    // Two days back: an overnight 24-hour shift plus a daylight-saving hour can
    // reach into `from`'s day from the day before yesterday.
    let first = prev_day(prev_day(local_date(tz, from)));
    let last = local_date(tz, to);
    let mut out = Vec::new();
    let mut date = first;
    loop {
        for shift in shifts {
            if let Some(s) = shift.slot(date, tz, cal, source)
                && s.start < to
                && s.end > from
            {
                out.push(s);
            }
        }
        let next = next_day(date);
        if date >= last || next == date {
            break;
        }
        date = next;
    }
    out
}

/// Cuts `[a, b)` out of a slot, keeping what is left on either side.
fn cut(slot: Slot, a: DateTime<Utc>, b: DateTime<Utc>) -> Vec<Slot> {
    if slot.end <= a || slot.start >= b {
        return vec![slot];
    }
    let mut out = Vec::new();
    if slot.start < a {
        out.push(Slot {
            end: a,
            ..slot.clone()
        });
    }
    if b < slot.end {
        out.push(Slot { start: b, ..slot });
    }
    out
}

/// Applies one override to one slot: the part inside the override's window
/// gets the new layer; the rest is unchanged.
fn apply(o: &Override, slot: Slot) -> Vec<Slot> {
    if slot.end <= o.from || slot.start >= o.to {
        return vec![slot];
    }
    if o.shift.as_ref().is_some_and(|s| *s != slot.shift) {
        return vec![slot];
    }
    let current = match o.layer {
        LayerName::Primary => &slot.primary,
        LayerName::Assistant => &slot.assistant,
    };
    let changed: Vec<String> = match &o.replaces {
        Some(r) if !current.contains(r) => return vec![slot],
        // A swap: only the named person's place changes hands.
        Some(r) => {
            let mut v: Vec<String> = Vec::new();
            for p in current {
                let p = if p == r { &o.person } else { p };
                if !v.contains(p) {
                    v.push(p.clone());
                }
            }
            v
        }
        None => vec![o.person.clone()],
    };
    let (a, b) = (slot.start.max(o.from), slot.end.min(o.to));
    let mut middle = Slot {
        start: a,
        end: b,
        source: Source::Override,
        ..slot.clone()
    };
    match o.layer {
        LayerName::Primary => middle.primary = changed,
        LayerName::Assistant => middle.assistant = changed,
    }
    let mut out = cut(slot, a, b);
    let at = out.iter().position(|s| s.start >= b).unwrap_or(out.len());
    out.insert(at, middle);
    out
}

/// The stretches of `[from, to)` that no slot covers.
fn gaps(
    slots: &[Slot],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = slots
        .iter()
        .filter(|s| s.start < to && s.end > from)
        .map(|s| (s.start, s.end))
        .collect();
    spans.sort();
    let mut out = Vec::new();
    let mut at = from;
    for (s, e) in spans {
        if s > at {
            out.push((at, s.min(to)));
        }
        at = at.max(e);
        if at >= to {
            break;
        }
    }
    if at < to {
        out.push((at, to));
    }
    out
}

pub(super) fn slots(rota: &Rota, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Slot> {
    if to <= from {
        return Vec::new();
    }
    let overlapping = |a: DateTime<Utc>, b: DateTime<Utc>| a < to && b > from;
    // Work over the whole of every override touching the range, so the slots
    // an override makes are whole too.
    let (mut lo, mut hi) = (from, to);
    for o in rota.overrides.iter().filter(|o| overlapping(o.from, o.to)) {
        lo = lo.min(o.from);
        hi = hi.max(o.to);
    }
    let (tz, cal) = (rota.time_zone, &rota.calendar);

    // Regular rota, minus every temporary window.
    let mut all: Vec<Slot> = Vec::new();
    for slot in occurrences(&rota.shifts, lo, hi, tz, cal, &Source::Regular) {
        let mut pieces = vec![slot];
        for t in &rota.temporary {
            pieces = pieces
                .into_iter()
                .flat_map(|p| cut(p, t.from, t.to))
                .collect();
        }
        all.extend(pieces);
    }

    // Temporary schedules, clipped to their windows.
    for t in rota.temporary.iter().filter(|t| t.from < hi && t.to > lo) {
        let source = Source::Temporary(t.name.clone());
        let (a, b) = (lo.max(t.from), hi.min(t.to));
        for mut s in occurrences(&t.shifts, a, b, tz, cal, &source) {
            s.start = s.start.max(t.from);
            s.end = s.end.min(t.to);
            if s.start < s.end {
                all.push(s);
            }
        }
    }

    // Overrides, in the order written: a later one wins where they overlap.
    for o in rota.overrides.iter().filter(|o| o.from < hi && o.to > lo) {
        all = all.into_iter().flat_map(|s| apply(o, s)).collect();
        if o.shift.is_none() && o.replaces.is_none() {
            // Nobody was scheduled: the override still puts someone on duty.
            for (a, b) in gaps(&all, o.from, o.to) {
                let mut s = Slot {
                    shift: OVERRIDE_SHIFT.to_string(),
                    start: a,
                    end: b,
                    primary: Vec::new(),
                    assistant: Vec::new(),
                    source: Source::Override,
                };
                match o.layer {
                    LayerName::Primary => s.primary.push(o.person.clone()),
                    LayerName::Assistant => s.assistant.push(o.person.clone()),
                }
                all.push(s);
            }
        }
    }

    all.retain(|s| s.start < s.end && overlapping(s.start, s.end));
    // Stable: shifts starting together stay in the order they are written.
    all.sort_by_key(|s| s.start);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::Rotate;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn t(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn fixed(people: &[&str]) -> Layer {
        Layer {
            people: people.iter().map(|p| p.to_string()).collect(),
            rotate: None,
            start_date: None,
        }
    }

    fn shift(name: &str, start: &str, end: &str, primary: &[&str], assistant: &[&str]) -> Shift {
        Shift {
            name: name.into(),
            start: t(start),
            end: t(end),
            days: Days::All,
            primary: fixed(primary),
            assistant: (!assistant.is_empty()).then(|| fixed(assistant)),
        }
    }

    fn rota(tz: Tz, shifts: Vec<Shift>) -> Rota {
        Rota {
            time_zone: tz,
            calendar_file: None,
            calendar: Calendar::default(),
            people: Vec::new(),
            shifts,
            temporary: Vec::new(),
            overrides: Vec::new(),
        }
    }

    fn shanghai() -> Rota {
        rota(
            chrono_tz::Asia::Shanghai,
            vec![
                shift("early", "08:00", "16:00", &["ann"], &["bob"]),
                shift("mid", "12:00", "20:00", &["cat"], &["dan"]),
                shift("late", "20:00", "08:00", &["eve"], &["fay"]),
            ],
        )
    }

    #[test]
    fn overlapping_shifts_are_both_on_duty_and_the_night_shift_crosses_midnight() {
        let r = shanghai();
        // 13:00 Shanghai is 05:00 UTC.
        let now = r.on_duty(utc("2027-03-10T05:00:00Z"));
        let names: Vec<&str> = now.slots.iter().map(|s| s.shift.as_str()).collect();
        assert_eq!(names, ["early", "mid"]);
        assert_eq!(now.primaries(), ["ann", "cat"]);
        assert_eq!(now.assistants(), ["bob", "dan"]);
        // 02:00 Shanghai on the 11th is the late shift that began on the 10th.
        let night = r.on_duty(utc("2027-03-10T18:00:00Z"));
        assert_eq!(night.slots.len(), 1);
        assert_eq!(night.slots[0].shift, "late");
        assert_eq!(night.slots[0].start, utc("2027-03-10T12:00:00Z"));
        assert_eq!(night.slots[0].end, utc("2027-03-11T00:00:00Z"));
    }

    #[test]
    fn a_gap_between_shifts_is_nobody_on_duty() {
        let r = rota(
            chrono_tz::UTC,
            vec![shift("day", "09:00", "17:00", &["ann"], &[])],
        );
        assert!(r.on_duty(utc("2027-03-10T18:00:00Z")).is_empty());
        assert!(!r.on_duty(utc("2027-03-10T10:00:00Z")).is_empty());
    }

    #[test]
    fn overrides_beat_temporary_schedules_which_beat_the_regular_rota() {
        let mut r = shanghai();
        r.temporary.push(Temporary {
            name: "Spring Festival".into(),
            from: utc("2027-02-05T16:00:00Z"),
            to: utc("2027-02-12T16:00:00Z"),
            shifts: vec![shift("holiday", "09:00", "21:00", &["gus"], &[])],
        });
        let at = utc("2027-02-08T05:00:00Z"); // 13:00 local, inside the festival
        let now = r.on_duty(at);
        assert_eq!(now.slots.len(), 1, "{now:?}");
        assert_eq!(now.primaries(), ["gus"]);
        assert_eq!(
            now.slots[0].source,
            Source::Temporary("Spring Festival".into())
        );
        // Outside, the regular rota again.
        assert_eq!(
            r.on_duty(utc("2027-02-15T05:00:00Z")).primaries(),
            ["ann", "cat"]
        );
        // The late shift of the 5th runs only until the festival starts.
        let late = r.on_duty(utc("2027-02-05T15:00:00Z"));
        assert_eq!(late.slots[0].end, utc("2027-02-05T16:00:00Z"));

        r.overrides.push(Override {
            from: utc("2027-02-08T04:00:00Z"),
            to: utc("2027-02-08T06:00:00Z"),
            layer: LayerName::Primary,
            person: "hal".into(),
            shift: None,
            replaces: None,
        });
        let now = r.on_duty(at);
        assert_eq!(now.primaries(), ["hal"]);
        assert_eq!(now.slots[0].source, Source::Override);
        // The holiday slot is split around the override.
        let day = r.slots(utc("2027-02-08T00:00:00Z"), utc("2027-02-08T14:00:00Z"));
        let spans: Vec<(&str, Vec<String>)> = day
            .iter()
            .map(|s| (s.shift.as_str(), s.primary.clone()))
            .collect();
        assert_eq!(
            spans,
            [
                ("holiday", vec!["gus".to_string()]),
                ("holiday", vec!["hal".to_string()]),
                ("holiday", vec!["gus".to_string()]),
            ]
        );
    }

    #[test]
    fn a_swap_replaces_only_the_named_person() {
        let mut r = rota(
            chrono_tz::UTC,
            vec![
                shift("day", "08:00", "20:00", &["ann", "bob"], &["cat"]),
                shift("other", "08:00", "20:00", &["dan"], &[]),
            ],
        );
        r.overrides.push(Override {
            from: utc("2027-03-10T08:00:00Z"),
            to: utc("2027-03-10T20:00:00Z"),
            layer: LayerName::Primary,
            person: "eve".into(),
            shift: None,
            replaces: Some("bob".into()),
        });
        let now = r.on_duty(utc("2027-03-10T12:00:00Z"));
        assert_eq!(now.slots[0].primary, ["ann", "eve"]);
        assert_eq!(now.slots[0].assistant, ["cat"]);
        assert_eq!(
            now.slots[1].primary,
            ["dan"],
            "a slot without bob is untouched"
        );
        assert_eq!(now.slots[1].source, Source::Regular);
        // The day after, bob is back.
        let next = r.on_duty(utc("2027-03-11T12:00:00Z"));
        assert_eq!(next.slots[0].primary, ["ann", "bob"]);
    }

    #[test]
    fn an_override_covers_a_hole_where_nobody_was_scheduled() {
        let mut r = rota(
            chrono_tz::UTC,
            vec![shift("day", "09:00", "17:00", &["ann"], &[])],
        );
        r.overrides.push(Override {
            from: utc("2027-03-10T16:00:00Z"),
            to: utc("2027-03-10T22:00:00Z"),
            layer: LayerName::Primary,
            person: "bob".into(),
            shift: None,
            replaces: None,
        });
        let evening = r.on_duty(utc("2027-03-10T20:00:00Z"));
        assert_eq!(evening.slots.len(), 1);
        assert_eq!(evening.slots[0].shift, OVERRIDE_SHIFT);
        assert_eq!(evening.slots[0].start, utc("2027-03-10T17:00:00Z"));
        assert_eq!(evening.primaries(), ["bob"]);
        assert_eq!(r.on_duty(utc("2027-03-10T16:30:00Z")).primaries(), ["bob"]);
    }

    #[test]
    fn wall_clock_shifts_keep_their_local_hours_across_daylight_saving() {
        let ny = chrono_tz::America::New_York;
        let day = shift("day", "08:00", "16:00", &["ann"], &[]);
        let night = shift("night", "20:00", "08:00", &["bob"], &[]);
        // Friday before the March change (EST, -5) and Monday after (EDT, -4).
        assert_eq!(
            day.span(d("2027-03-12"), ny),
            (utc("2027-03-12T13:00:00Z"), utc("2027-03-12T21:00:00Z"))
        );
        assert_eq!(
            day.span(d("2027-03-15"), ny),
            (utc("2027-03-15T12:00:00Z"), utc("2027-03-15T20:00:00Z"))
        );
        let hours = |date: &str| {
            let (s, e) = night.span(d(date), ny);
            (e - s).num_hours()
        };
        assert_eq!(hours("2027-03-13"), 11, "spring forward");
        assert_eq!(hours("2027-03-14"), 12);
        assert_eq!(hours("2027-11-06"), 13, "fall back");
        assert_eq!(hours("2027-11-07"), 12);
    }

    #[test]
    fn a_time_in_the_spring_gap_starts_when_the_clock_resumes() {
        let ny = chrono_tz::America::New_York;
        let gap = local_to_utc(ny, d("2027-03-14").and_time(t("02:30")));
        assert_eq!(gap, utc("2027-03-14T07:00:00Z")); // 03:00 EDT
        let amb = local_to_utc(ny, d("2027-11-07").and_time(t("01:30")));
        assert_eq!(amb, utc("2027-11-07T05:30:00Z")); // the first 01:30, EDT
    }

    #[test]
    fn the_rotation_inside_a_shift_uses_its_day_filter() {
        let mut s = shift("day", "09:00", "17:00", &["a", "b"], &[]);
        s.days = Days::Workdays;
        s.primary.rotate = Some(Rotate::Day);
        s.primary.start_date = Some(d("2027-03-05")); // a Friday
        let r = rota(chrono_tz::UTC, vec![s]);
        let who = |at: &str| r.on_duty(utc(at)).primaries();
        assert_eq!(who("2027-03-05T10:00:00Z"), ["a"]);
        assert!(who("2027-03-06T10:00:00Z").is_empty(), "Saturday");
        assert_eq!(
            who("2027-03-08T10:00:00Z"),
            ["b"],
            "Monday is the next turn"
        );
    }
}
