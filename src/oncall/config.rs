//! `[oncall]` as written (and the calendar file), validated into a [`Rota`] with every error naming its key.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::calendar::{Calendar, Days, Holiday, weekday_bit};
use super::rotation::{Layer, Rotate};
use super::schedule::{LayerName, OVERRIDE_SHIFT, Override, Shift, Temporary, local_to_utc};
use super::{Person, Rota};
use crate::config::valid_name;
use crate::config::validate::Ctx;

/// `[oncall]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawOncall {
    pub time_zone: Option<String>,
    pub calendar_file: Option<String>,
    #[serde(default)]
    pub workdays: Vec<RawWhen>,
    #[serde(default)]
    pub holidays: Vec<RawHoliday>,
    #[serde(default)]
    pub people: Vec<RawPerson>,
    #[serde(default)]
    pub shifts: Vec<RawShift>,
    #[serde(default)]
    pub temporary: Vec<RawTemporary>,
    #[serde(default)]
    pub overrides: Vec<RawOverride>,
}

/// The calendar file: the same two keys, at top level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCalendarFile {
    #[serde(default)]
    workdays: Vec<RawWhen>,
    #[serde(default)]
    holidays: Vec<RawHoliday>,
}

/// A date or time, quoted or as a bare TOML date/time.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawWhen {
    Text(String),
    Toml(toml::value::Datetime),
}

impl RawWhen {
    fn text(&self) -> String {
        match self {
            RawWhen::Text(s) => s.clone(),
            RawWhen::Toml(d) => d.to_string(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawHoliday {
    pub name: Option<String>,
    pub from: Option<RawWhen>,
    pub to: Option<RawWhen>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawPerson {
    pub id: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub dingtalk_user_id: Option<String>,
    pub feishu_user_id: Option<String>,
    pub wecom_user_id: Option<String>,
    pub slack_user_id: Option<String>,
    pub channels: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawShift {
    pub name: Option<String>,
    pub start: Option<RawWhen>,
    pub end: Option<RawWhen>,
    pub days: Option<RawDays>,
    pub primary: Option<RawLayer>,
    pub assistant: Option<RawLayer>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawDays {
    Named(String),
    List(Vec<RawWhen>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawLayer {
    pub people: Option<Vec<String>>,
    pub rotate: Option<String>,
    pub start_date: Option<RawWhen>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawTemporary {
    pub name: Option<String>,
    pub from: Option<RawWhen>,
    pub to: Option<RawWhen>,
    #[serde(default)]
    pub shifts: Vec<RawShift>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawOverride {
    pub from: Option<RawWhen>,
    pub to: Option<RawWhen>,
    pub layer: Option<String>,
    pub person: Option<String>,
    pub shift: Option<String>,
    pub replaces: Option<String>,
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date such as \"2027-02-06\""))
}

fn parse_time_of_day(text: &str) -> Result<NaiveTime, String> {
    let t = text.trim();
    NaiveTime::parse_from_str(t, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(t, "%H:%M:%S"))
        .map_err(|_| format!("`{text}` is not a time of day such as \"08:00\""))
}

/// RFC 3339, or local wall-clock time in `tz` ("2027-02-08 13:00", "…T13:00:00",
/// or a bare date meaning its midnight).
pub(super) fn parse_instant(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(local_to_utc(tz, n));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(local_to_utc(tz, d.and_time(NaiveTime::MIN)));
    }
    Err(format!(
        "`{text}` is not a time: write RFC 3339 (\"2027-02-08T13:00:00+08:00\") or local time in {tz} (\"2027-02-08 13:00\")"
    ))
}

/// Validation state: the collector, the rota's zone and the known people.
struct V<'c, 'a> {
    cx: &'c mut Ctx<'a>,
    tz: Tz,
    people: HashSet<String>,
}

impl V<'_, '_> {
    fn required<T>(&mut self, key: &str, v: Option<T>) -> Option<T> {
        if v.is_none() {
            self.cx.error(key, "is required");
        }
        v
    }

    fn date(&mut self, key: &str, raw: Option<&RawWhen>) -> Option<NaiveDate> {
        let raw = self.required(key, raw)?;
        parse_date(&raw.text())
            .map_err(|e| self.cx.error(key, e))
            .ok()
    }

    fn time(&mut self, key: &str, raw: Option<&RawWhen>) -> Option<NaiveTime> {
        let raw = self.required(key, raw)?;
        parse_time_of_day(&raw.text())
            .map_err(|e| self.cx.error(key, e))
            .ok()
    }

    fn instant(&mut self, key: &str, raw: Option<&RawWhen>) -> Option<DateTime<Utc>> {
        let raw = self.required(key, raw)?;
        parse_instant(&raw.text(), self.tz)
            .map_err(|e| self.cx.error(key, e))
            .ok()
    }

    /// `[from, to)` with from before to.
    fn range(
        &mut self,
        key: &str,
        from: Option<&RawWhen>,
        to: Option<&RawWhen>,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let f = self.instant(&format!("{key}.from"), from);
        let t = self.instant(&format!("{key}.to"), to);
        let (f, t) = (f?, t?);
        if t <= f {
            self.cx.error(&format!("{key}.to"), "must be after `from`");
            return None;
        }
        Some((f, t))
    }

    fn person_ref(&mut self, key: &str, id: &str) -> bool {
        let known = self.people.contains(id);
        if !known {
            self.cx.error(key, format!("no person has the id `{id}`"));
        }
        known
    }

    fn days(&mut self, key: &str, raw: Option<&RawDays>) -> Days {
        let list = match raw {
            None => return Days::All,
            Some(RawDays::Named(name)) => {
                return match name.as_str() {
                    "all" => Days::All,
                    "workdays" => Days::Workdays,
                    "holidays" => Days::Holidays,
                    "weekends" => Days::Weekends,
                    other => {
                        if let Some(b) = weekday_bit(other) {
                            return Days::List {
                                weekdays: b,
                                dates: BTreeSet::new(),
                            };
                        }
                        self.cx.error(
                            key,
                            format!("`{other}`: one of \"all\", \"workdays\", \"holidays\", \"weekends\", or a list of weekdays and dates"),
                        );
                        Days::All
                    }
                };
            }
            Some(RawDays::List(list)) => list,
        };
        if list.is_empty() {
            self.cx
                .error(key, "an empty list: the shift would never run");
        }
        let (mut weekdays, mut dates) = (0u8, BTreeSet::new());
        for item in list {
            let text = item.text();
            if let Some(b) = weekday_bit(&text) {
                weekdays |= b;
            } else if let Ok(d) = parse_date(&text) {
                dates.insert(d);
            } else {
                self.cx.error(
                    key,
                    format!("`{text}` is neither a weekday (\"mon\" … \"sun\") nor a date"),
                );
            }
        }
        Days::List { weekdays, dates }
    }

    fn layer(&mut self, key: &str, raw: &RawLayer, default_start: Option<NaiveDate>) -> Layer {
        let people = raw.people.clone().unwrap_or_default();
        if people.is_empty() {
            self.cx
                .error(&format!("{key}.people"), "must name at least one person");
        }
        for p in &people {
            self.person_ref(&format!("{key}.people"), p);
        }
        let rotate = match raw.rotate.as_deref() {
            None => None,
            Some("shift") => Some(Rotate::Shift),
            Some("day") => Some(Rotate::Day),
            Some("week") => Some(Rotate::Week),
            Some(other) => {
                self.cx.error(
                    &format!("{key}.rotate"),
                    format!("`{other}`: one of \"shift\", \"day\", \"week\" (or leave it out: everyone listed is on duty)"),
                );
                None
            }
        };
        let start_key = format!("{key}.start-date");
        let start_date = match (&raw.start_date, default_start) {
            (Some(r), _) => self.date(&start_key, Some(r)),
            (None, Some(d)) => Some(d),
            (None, None) if rotate.is_some() => {
                self.cx.error(
                    &start_key,
                    "a rotation needs the date its first turn starts, e.g. \"2027-01-04\"",
                );
                None
            }
            (None, None) => None,
        };
        if rotate.is_none() && raw.start_date.is_some() {
            self.cx.error(
                &start_key,
                "only a rotating layer (with `rotate`) has a start date",
            );
        }
        Layer {
            people,
            rotate,
            start_date: start_date.filter(|_| rotate.is_some()),
        }
    }

    fn shifts(
        &mut self,
        key: &str,
        raw: &[RawShift],
        default_start: Option<NaiveDate>,
    ) -> Vec<Shift> {
        let mut out = Vec::new();
        let mut names = HashSet::new();
        for (i, s) in raw.iter().enumerate() {
            let k = |f: &str| format!("{key}[{i}].{f}");
            let name = self.required(&k("name"), s.name.clone());
            if let Some(n) = &name {
                if !valid_name(n) || n == OVERRIDE_SHIFT {
                    self.cx.error(
                        &k("name"),
                        format!("`{n}`: a shift name is letters, digits, - and _, starting with a letter (and not \"{OVERRIDE_SHIFT}\")"),
                    );
                } else if !names.insert(n.clone()) {
                    self.cx
                        .error(&k("name"), format!("a second shift named `{n}`"));
                }
            }
            let start = self.time(&k("start"), s.start.as_ref());
            let end = self.time(&k("end"), s.end.as_ref());
            let days = self.days(&k("days"), s.days.as_ref());
            let primary = self
                .required(&k("primary"), s.primary.as_ref())
                .map(|l| self.layer(&k("primary"), l, default_start));
            let assistant = s
                .assistant
                .as_ref()
                .map(|l| self.layer(&k("assistant"), l, default_start));
            if let (Some(name), Some(start), Some(end), Some(primary)) = (name, start, end, primary)
            {
                out.push(Shift {
                    name,
                    start,
                    end,
                    days,
                    primary,
                    assistant,
                });
            }
        }
        out
    }

    fn holidays(&mut self, key: &str, raw: &[RawHoliday], out: &mut Vec<Holiday>) {
        for (i, h) in raw.iter().enumerate() {
            let k = |f: &str| format!("{key}[{i}].{f}");
            let name = self.required(&k("name"), h.name.clone().filter(|n| !n.is_empty()));
            let from = self.date(&k("from"), h.from.as_ref());
            let to = self.date(&k("to"), h.to.as_ref());
            let (Some(name), Some(from), Some(to)) = (name, from, to) else {
                continue;
            };
            if to < from {
                self.cx
                    .error(&k("to"), "is before `from` (both days are included)");
            } else if (to - from).num_days() > 31 {
                self.cx
                    .error(&k("to"), "a holiday longer than a month is surely a typo");
            } else {
                out.push(Holiday { name, from, to });
            }
        }
    }

    fn workdays(&mut self, key: &str, raw: &[RawWhen], out: &mut BTreeSet<NaiveDate>) {
        for (i, w) in raw.iter().enumerate() {
            match parse_date(&w.text()) {
                Ok(d) => {
                    out.insert(d);
                }
                Err(e) => self.cx.error(key, format!("[{i}]: {e}")),
            }
        }
    }
}

/// The calendar file, with errors reported against `oncall.calendar-file`.
fn calendar_file(v: &mut V, path: &std::path::Path) -> Option<(Vec<Holiday>, BTreeSet<NaiveDate>)> {
    let key = "oncall.calendar-file";
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            v.cx.error(key, format!("cannot read {}: {e}", path.display()));
            return None;
        }
    };
    let raw: RawCalendarFile = match toml::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.message().to_string();
            let at = e
                .span()
                .map(|s| {
                    format!(
                        ":{}",
                        text[..s.start.min(text.len())].matches('\n').count() + 1
                    )
                })
                .unwrap_or_default();
            v.cx.error(key, format!("{}{at}: {msg}", path.display()));
            return None;
        }
    };
    // Errors inside the file name its keys with the file's path as the prefix.
    let (mut holidays, mut workdays) = (Vec::new(), BTreeSet::new());
    let mut inner = Vec::new();
    for (i, h) in raw.holidays.iter().enumerate() {
        let name = h.name.clone().filter(|n| !n.is_empty());
        let from = h.from.as_ref().map(|w| parse_date(&w.text()));
        let to = h.to.as_ref().map(|w| parse_date(&w.text()));
        match (name, from, to) {
            (Some(name), Some(Ok(from)), Some(Ok(to))) if from <= to && (to - from).num_days() <= 31 => {
                holidays.push(Holiday { name, from, to })
            }
            (_, Some(Err(e)), _) | (_, _, Some(Err(e))) => inner.push(format!("holidays[{i}]: {e}")),
            _ => inner.push(format!(
                "holidays[{i}]: needs a name, and `from` on or before `to` (dates, at most a month apart)"
            )),
        }
    }
    for (i, w) in raw.workdays.iter().enumerate() {
        match parse_date(&w.text()) {
            Ok(d) => {
                workdays.insert(d);
            }
            Err(e) => inner.push(format!("workdays[{i}]: {e}")),
        }
    }
    for e in inner {
        v.cx.error(key, format!("{}: {e}", path.display()));
    }
    Some((holidays, workdays))
}

pub(crate) fn validate(cx: &mut Ctx, raw: Option<RawOncall>) -> Option<Rota> {
    let raw = raw?;
    if raw.time_zone.is_none() {
        cx.error(
            "oncall.time-zone",
            "a rota needs its time zone, e.g. \"Asia/Shanghai\"",
        );
    }
    let tz = crate::config::validate::time_zone(cx, "oncall.time-zone", raw.time_zone.as_deref());
    let mut v = V {
        cx,
        tz,
        people: HashSet::new(),
    };

    // The calendar: the file's entries and the inline ones together.
    let (mut holidays, mut workdays) = (Vec::new(), BTreeSet::new());
    let calendar_path = raw.calendar_file.as_deref().map(|f| v.cx.path(f));
    if let Some(path) = &calendar_path
        && let Some((h, w)) = calendar_file(&mut v, path)
    {
        holidays.extend(h);
        workdays.extend(w);
    }
    v.holidays("oncall.holidays", &raw.holidays, &mut holidays);
    v.workdays("oncall.workdays", &raw.workdays, &mut workdays);
    holidays.sort_by_key(|h| h.from);
    for pair in holidays.windows(2) {
        if pair[1].from <= pair[0].to {
            v.cx.error(
                "oncall.holidays",
                format!("`{}` and `{}` overlap", pair[0].name, pair[1].name),
            );
        }
    }
    let calendar = Calendar::new(holidays, workdays);
    for d in &calendar.workdays {
        if let Some(h) = calendar.holiday(*d) {
            v.cx.error(
                "oncall.workdays",
                format!("{d} is both a make-up workday and part of `{h}`"),
            );
        }
    }

    // People first: everything else refers to them.
    let mut people = Vec::new();
    if raw.people.is_empty() {
        v.cx.error("oncall.people", "a rota needs at least one person");
    }
    for (i, p) in raw.people.into_iter().enumerate() {
        let k = |f: &str| format!("oncall.people[{i}].{f}");
        let id = v.required(&k("id"), p.id);
        let name = v.required(&k("name"), p.name.filter(|n| !n.trim().is_empty()));
        let channels = p.channels.unwrap_or_default();
        if channels.iter().any(|c| c.trim().is_empty()) {
            v.cx.error(&k("channels"), "a channel name must not be empty");
        }
        for (field, value) in [
            ("phone", &p.phone),
            ("email", &p.email),
            ("dingtalk-user-id", &p.dingtalk_user_id),
            ("feishu-user-id", &p.feishu_user_id),
            ("wecom-user-id", &p.wecom_user_id),
            ("slack-user-id", &p.slack_user_id),
        ] {
            if value.as_deref().is_some_and(|s| s.trim().is_empty()) {
                v.cx.error(&k(field), "must not be empty (leave it out instead)");
            }
        }
        let (Some(id), Some(name)) = (id, name) else {
            continue;
        };
        if !valid_name(&id) {
            v.cx.error(
                &k("id"),
                format!("`{id}`: an id is letters, digits, - and _, starting with a letter"),
            );
        } else if !v.people.insert(id.clone()) {
            v.cx.error(&k("id"), format!("a second person with the id `{id}`"));
        }
        people.push(Person {
            id,
            name,
            phone: p.phone,
            email: p.email,
            dingtalk_user_id: p.dingtalk_user_id,
            feishu_user_id: p.feishu_user_id,
            wecom_user_id: p.wecom_user_id,
            slack_user_id: p.slack_user_id,
            channels,
        });
    }

    if raw.shifts.is_empty() {
        v.cx.error("oncall.shifts", "a rota needs at least one shift");
    }
    let shifts = v.shifts("oncall.shifts", &raw.shifts, None);

    let mut temporary: Vec<Temporary> = Vec::new();
    for (i, t) in raw.temporary.iter().enumerate() {
        let key = format!("oncall.temporary[{i}]");
        let name = v.required(
            &format!("{key}.name"),
            t.name.clone().filter(|n| !n.is_empty()),
        );
        let range = v.range(&key, t.from.as_ref(), t.to.as_ref());
        if let Some((f, to)) = range
            && (to - f).num_days() > 366
        {
            v.cx.error(
                &format!("{key}.to"),
                "a temporary schedule longer than a year is surely a typo",
            );
        }
        if t.shifts.is_empty() {
            v.cx.error(
                &format!("{key}.shifts"),
                "a temporary schedule needs its own shifts",
            );
        }
        // A rotation inside it starts with the schedule unless told otherwise.
        let start = range.map(|(f, _)| f.with_timezone(&tz).date_naive());
        let shifts = v.shifts(&format!("{key}.shifts"), &t.shifts, start);
        if let (Some(name), Some((from, to))) = (name, range) {
            if let Some(other) = temporary.iter().find(|o| o.from < to && from < o.to) {
                v.cx.error(
                    &format!("{key}.from"),
                    format!("overlaps the temporary schedule `{}`", other.name),
                );
            } else if temporary.iter().any(|o| o.name == name) {
                v.cx.error(
                    &format!("{key}.name"),
                    format!("a second temporary schedule named `{name}`"),
                );
            }
            temporary.push(Temporary {
                name,
                from,
                to,
                shifts,
            });
        }
    }

    let shift_names: HashSet<&str> = shifts
        .iter()
        .chain(temporary.iter().flat_map(|t| &t.shifts))
        .map(|s| s.name.as_str())
        .collect();
    let mut overrides = Vec::new();
    for (i, o) in raw.overrides.iter().enumerate() {
        let key = format!("oncall.overrides[{i}]");
        let k = |f: &str| format!("{key}.{f}");
        let range = v.range(&key, o.from.as_ref(), o.to.as_ref());
        let layer = match o.layer.as_deref() {
            None | Some("primary") => Some(LayerName::Primary),
            Some("assistant") => Some(LayerName::Assistant),
            Some(other) => {
                v.cx.error(
                    &k("layer"),
                    format!("`{other}`: \"primary\" or \"assistant\""),
                );
                None
            }
        };
        let person = v.required(&k("person"), o.person.clone());
        let person_ok = person
            .as_deref()
            .is_some_and(|p| v.person_ref(&k("person"), p));
        if let Some(s) = &o.shift
            && !shift_names.contains(s.as_str())
        {
            v.cx.error(&k("shift"), format!("no shift is named `{s}`"));
        }
        if let Some(r) = &o.replaces
            && v.person_ref(&k("replaces"), r)
            && Some(r) == person.as_ref()
        {
            v.cx.error(&k("replaces"), "a person cannot replace themselves");
        }
        if let (Some((from, to)), Some(layer), Some(person), true) =
            (range, layer, person, person_ok)
        {
            overrides.push(Override {
                from,
                to,
                layer,
                person,
                shift: o.shift.clone(),
                replaces: o.replaces.clone(),
            });
        }
    }

    Some(Rota {
        time_zone: tz,
        calendar_file: calendar_path,
        calendar,
        people,
        shifts,
        temporary,
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, crate::config::ConfigErrors> {
        Config::parse(Path::new("/nonexistent/t.toml"), text)
    }

    const TEAM: &str = r#"
[[channels]]
name = "dingtalk-ops"
kind = "file"
path = "/tmp/pages.jsonl"

[oncall]
time-zone = "Asia/Shanghai"
workdays = [2027-02-13, "2027-02-14"]

[[oncall.holidays]]
name = "Spring Festival"
from = 2027-02-06
to = "2027-02-12"

[[oncall.people]]
id = "ann"
name = "Ann"
phone = "+86 138 0000 0001"
channels = ["dingtalk-ops"]

[[oncall.people]]
id = "bob"
name = "Bob"

[[oncall.shifts]]
name = "early"
start = "08:00"
end = 16:00:00
days = "workdays"
primary = { people = ["ann", "bob"], rotate = "day", start-date = "2027-01-04" }
assistant = { people = ["bob"] }
"#;

    #[test]
    fn a_rota_with_bare_toml_dates_and_quoted_ones_loads() {
        let c = parse(TEAM).unwrap();
        let rota = c.oncall.clone().unwrap();
        let d = |s: &str| s.parse().unwrap();
        assert!(rota.calendar.is_workday(d("2027-02-13")));
        assert!(!rota.calendar.is_workday(d("2027-02-08")));
        assert_eq!(
            rota.person("ann").unwrap().mention().phone.as_deref(),
            Some("+86 138 0000 0001")
        );
        let shown = c.to_effective_toml();
        assert!(shown.contains("[oncall]"), "{shown}");
        assert!(shown.contains("time-zone = \"Asia/Shanghai\""), "{shown}");
    }

    #[test]
    fn unknown_people_bad_times_and_reversed_ranges_name_their_keys() {
        let text = format!(
            "{TEAM}\n[[oncall.shifts]]\nname = \"late\"\nstart = \"25:00\"\nend = \"08:00\"\nprimary = {{ people = [\"zed\"] }}\n\n[[oncall.overrides]]\nfrom = \"2027-03-02 10:00\"\nto = \"2027-03-02 09:00\"\nperson = \"ann\"\nshift = \"nope\"\n"
        );
        let e = parse(&text).unwrap_err();
        let keys: Vec<&str> = e.0.iter().filter_map(|e| e.key.as_deref()).collect();
        for want in [
            "oncall.shifts[1].start",
            "oncall.shifts[1].primary.people",
            "oncall.overrides[0].to",
            "oncall.overrides[0].shift",
        ] {
            assert!(keys.contains(&want), "{want} missing from {keys:?}");
        }
        let start =
            e.0.iter()
                .find(|e| e.key.as_deref() == Some("oncall.shifts[1].start"))
                .unwrap();
        assert!(start.line.is_some(), "{start:?}");
    }

    #[test]
    fn a_rotation_without_a_start_date_and_an_empty_layer_are_refused() {
        let text = TEAM
            .replace(", start-date = \"2027-01-04\"", "")
            .replace("people = [\"bob\"]", "people = []");
        let e = parse(&text).unwrap_err();
        let keys: Vec<&str> = e.0.iter().filter_map(|e| e.key.as_deref()).collect();
        assert!(
            keys.contains(&"oncall.shifts[0].primary.start-date"),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"oncall.shifts[0].assistant.people"),
            "{keys:?}"
        );
    }

    #[test]
    fn a_make_up_day_inside_a_holiday_and_overlapping_temporaries_are_refused() {
        let text = format!(
            "{}\n[[oncall.temporary]]\nname = \"a\"\nfrom = \"2027-02-05\"\nto = \"2027-02-10\"\n[[oncall.temporary.shifts]]\nname = \"h\"\nstart = \"09:00\"\nend = \"21:00\"\nprimary = {{ people = [\"ann\"] }}\n\n[[oncall.temporary]]\nname = \"b\"\nfrom = \"2027-02-09\"\nto = \"2027-02-12\"\n[[oncall.temporary.shifts]]\nname = \"h\"\nstart = \"09:00\"\nend = \"21:00\"\nprimary = {{ people = [\"bob\"] }}\n",
            TEAM.replace("\"2027-02-14\"", "\"2027-02-10\"")
        );
        let e = parse(&text).unwrap_err();
        let keys: Vec<&str> = e.0.iter().filter_map(|e| e.key.as_deref()).collect();
        assert!(keys.contains(&"oncall.workdays"), "{keys:?}");
        assert!(keys.contains(&"oncall.temporary[1].from"), "{keys:?}");
    }

    #[test]
    fn a_rota_needs_its_time_zone() {
        let e = parse(&TEAM.replace("time-zone = \"Asia/Shanghai\"\n", "")).unwrap_err();
        assert_eq!(e.0[0].key.as_deref(), Some("oncall.time-zone"), "{e}");
    }

    #[test]
    fn local_times_are_read_in_the_rota_zone() {
        let tz = chrono_tz::Asia::Shanghai;
        let want: chrono::DateTime<chrono::Utc> = "2027-02-08T05:00:00Z".parse().unwrap();
        assert_eq!(super::parse_instant("2027-02-08 13:00", tz).unwrap(), want);
        assert_eq!(
            super::parse_instant("2027-02-08T13:00:00", tz).unwrap(),
            want
        );
        assert_eq!(
            super::parse_instant("2027-02-08T05:00:00Z", tz).unwrap(),
            want
        );
        assert_eq!(
            super::parse_instant("2027-02-08", tz).unwrap(),
            "2027-02-07T16:00:00Z"
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        );
        assert!(super::parse_instant("tomorrow", tz).is_err());
    }
}
