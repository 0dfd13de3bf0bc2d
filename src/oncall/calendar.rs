//! The dated calendar (public holidays, make-up workdays) and the day filters shifts run on, with arithmetic counting of active days.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::{Serialize, Serializer};

/// A named run of public holidays, both ends inclusive.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Holiday {
    pub name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Holidays and make-up workdays (调休): the State Council publishes both yearly.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Calendar {
    /// Weekend days that are working days.
    pub workdays: BTreeSet<NaiveDate>,
    pub holidays: Vec<Holiday>,
    /// Every holiday date and its name, expanded once at load.
    #[serde(skip)]
    holiday_dates: BTreeMap<NaiveDate, String>,
}

impl Calendar {
    /// Builds the calendar; the caller has checked that ranges are ordered and disjoint.
    pub(super) fn new(holidays: Vec<Holiday>, workdays: BTreeSet<NaiveDate>) -> Calendar {
        let mut holiday_dates = BTreeMap::new();
        for h in &holidays {
            for d in h.from.iter_days().take_while(|d| *d <= h.to) {
                holiday_dates.insert(d, h.name.clone());
            }
        }
        Calendar {
            workdays,
            holidays,
            holiday_dates,
        }
    }

    /// The holiday `date` falls in, if any.
    pub fn holiday(&self, date: NaiveDate) -> Option<&str> {
        self.holiday_dates.get(&date).map(String::as_str)
    }

    /// Monday to Friday, minus dated holidays, plus make-up workdays.
    pub fn is_workday(&self, date: NaiveDate) -> bool {
        if self.workdays.contains(&date) {
            return true;
        }
        !is_weekend(date) && !self.holiday_dates.contains_key(&date)
    }

    /// Dates in `[from, to)` where the calendar departs from the plain week.
    fn special(&self, from: NaiveDate, to: NaiveDate) -> BTreeSet<NaiveDate> {
        self.holiday_dates
            .range(from..to)
            .map(|(d, _)| *d)
            .chain(self.workdays.range(from..to).copied())
            .collect()
    }
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The days a shift starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Days {
    /// Every day.
    All,
    /// Working days by the calendar: Monday to Friday minus holidays plus make-up days.
    Workdays,
    /// Rest days by the calendar: the complement of `Workdays`.
    Holidays,
    /// Saturdays and Sundays, whatever the calendar says.
    Weekends,
    /// Named weekdays (bit 0 = Monday) and dated days, whatever the calendar says.
    List {
        weekdays: u8,
        dates: BTreeSet<NaiveDate>,
    },
}

const MON_FRI: u8 = 0b001_1111;
const SAT_SUN: u8 = 0b110_0000;

fn bit(date: NaiveDate) -> u8 {
    1 << date.weekday().num_days_from_monday()
}

impl Days {
    /// Whether a shift with this filter starts on `date`.
    pub fn matches(&self, date: NaiveDate, cal: &Calendar) -> bool {
        match self {
            Days::All => true,
            Days::Workdays => cal.is_workday(date),
            Days::Holidays => !cal.is_workday(date),
            Days::Weekends => is_weekend(date),
            Days::List { weekdays, dates } => weekdays & bit(date) != 0 || dates.contains(&date),
        }
    }

    /// The weekday mask that holds outside the calendar's special dates.
    fn base_mask(&self) -> u8 {
        match self {
            Days::All => 0x7f,
            Days::Workdays => MON_FRI,
            Days::Holidays | Days::Weekends => SAT_SUN,
            Days::List { weekdays, .. } => *weekdays,
        }
    }

    /// Dates where `matches` may differ from `base_mask`.
    fn exceptions(&self, from: NaiveDate, to: NaiveDate, cal: &Calendar) -> BTreeSet<NaiveDate> {
        match self {
            Days::Workdays | Days::Holidays => cal.special(from, to),
            Days::List { dates, .. } => dates.range(from..to).copied().collect(),
            Days::All | Days::Weekends => BTreeSet::new(),
        }
    }

    /// How many days in `[from, to)` match. Arithmetic on whole weeks plus the
    /// calendar's few special dates, so a far-away date costs no day-by-day walk.
    pub fn count(&self, from: NaiveDate, to: NaiveDate, cal: &Calendar) -> i64 {
        if to <= from {
            return 0;
        }
        let mask = self.base_mask();
        let total = (to - from).num_days();
        let mut n = (total / 7) * i64::from(mask.count_ones());
        let mut d = from + Duration::days(total / 7 * 7);
        while d < to {
            if mask & bit(d) != 0 {
                n += 1;
            }
            d += Duration::days(1);
        }
        for e in self.exceptions(from, to, cal) {
            let base = mask & bit(e) != 0;
            let actual = self.matches(e, cal);
            n += i64::from(actual) - i64::from(base);
        }
        n
    }

    /// How many Monday-started weeks from `from`'s week up to (not including)
    /// `to`'s week have at least one matching day.
    pub fn count_weeks(&self, from: NaiveDate, to: NaiveDate, cal: &Calendar) -> i64 {
        let (from, to) = (monday(from), monday(to));
        if to <= from {
            return 0;
        }
        let weeks = (to - from).num_days() / 7;
        if self.base_mask() == 0 && matches!(self, Days::List { .. }) {
            // Only dated days: count the weeks that hold one.
            let mondays: BTreeSet<NaiveDate> = self
                .exceptions(from, to, cal)
                .into_iter()
                .map(monday)
                .collect();
            return mondays.len() as i64;
        }
        // Every week is active unless the calendar empties it, which can only
        // happen in a week holding a special date.
        let suspects: BTreeSet<NaiveDate> = self
            .exceptions(from, to, cal)
            .into_iter()
            .map(monday)
            .collect();
        let empty = suspects
            .into_iter()
            .filter(|m| !m.iter_days().take(7).any(|d| self.matches(d, cal)))
            .count() as i64;
        weeks - empty
    }
}

pub(super) fn monday(d: NaiveDate) -> NaiveDate {
    d.checked_sub_days(chrono::Days::new(u64::from(
        d.weekday().num_days_from_monday(),
    )))
    .unwrap_or(d)
}

pub(super) fn next_day(d: NaiveDate) -> NaiveDate {
    d.checked_add_days(chrono::Days::new(1)).unwrap_or(d)
}

pub(super) fn prev_day(d: NaiveDate) -> NaiveDate {
    d.checked_sub_days(chrono::Days::new(1)).unwrap_or(d)
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Parses a weekday name ("mon" … "sun", or the full English name).
pub(super) fn weekday_bit(s: &str) -> Option<u8> {
    let s = s.to_ascii_lowercase();
    let short = s.get(..3)?;
    let i = WEEKDAYS.iter().position(|w| *w == short)?;
    let full: Weekday = s.parse().ok()?;
    (full.num_days_from_monday() as usize == i).then_some(1 << i)
}

impl Serialize for Days {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Days::All => s.serialize_str("all"),
            Days::Workdays => s.serialize_str("workdays"),
            Days::Holidays => s.serialize_str("holidays"),
            Days::Weekends => s.serialize_str("weekends"),
            Days::List { weekdays, dates } => {
                let mut list: Vec<String> = (0..7)
                    .filter(|i| weekdays & (1 << i) != 0)
                    .map(|i| WEEKDAYS[i].to_string())
                    .collect();
                list.extend(dates.iter().map(|d| d.to_string()));
                list.serialize(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Spring Festival 2027 as the example calendar has it.
    fn spring() -> Calendar {
        Calendar::new(
            vec![Holiday {
                name: "Spring Festival".into(),
                from: d("2027-02-06"),
                to: d("2027-02-12"),
            }],
            [d("2027-02-13"), d("2027-02-14")].into(),
        )
    }

    #[test]
    fn a_make_up_saturday_is_a_workday_and_a_weekday_holiday_is_not() {
        let cal = spring();
        assert!(cal.is_workday(d("2027-02-13")), "make-up Saturday");
        assert!(!cal.is_workday(d("2027-02-08")), "Monday in the holiday");
        assert!(cal.is_workday(d("2027-02-15")), "ordinary Monday");
        assert!(!cal.is_workday(d("2027-02-20")), "ordinary Saturday");
        assert_eq!(cal.holiday(d("2027-02-09")), Some("Spring Festival"));
    }

    #[test]
    fn counting_agrees_with_walking_day_by_day() {
        let cal = spring();
        let filters = [
            Days::All,
            Days::Workdays,
            Days::Holidays,
            Days::Weekends,
            Days::List {
                weekdays: 0b101,
                dates: [d("2027-02-13"), d("2027-03-02")].into(),
            },
            Days::List {
                weekdays: 0,
                dates: [d("2027-02-13"), d("2027-03-02")].into(),
            },
        ];
        let start = d("2027-01-01");
        for f in &filters {
            for len in [0, 1, 6, 7, 8, 40, 45, 100] {
                let end = start + Duration::days(len);
                let walked = start
                    .iter_days()
                    .take_while(|x| *x < end)
                    .filter(|x| f.matches(*x, &cal))
                    .count() as i64;
                assert_eq!(f.count(start, end, &cal), walked, "{f:?} over {len} days");
                let weeks: BTreeSet<NaiveDate> = monday(start)
                    .iter_days()
                    .take_while(|x| *x < monday(end))
                    .filter(|x| f.matches(*x, &cal))
                    .map(monday)
                    .collect();
                assert_eq!(f.count_weeks(start, end, &cal), weeks.len() as i64, "{f:?}");
            }
        }
    }

    #[test]
    fn a_week_of_holidays_is_not_an_active_week_for_a_workday_shift() {
        let mut cal = spring();
        assert_eq!(
            Days::Workdays.count_weeks(d("2027-02-01"), d("2027-02-22"), &cal),
            3,
            "the make-up weekend keeps the festival week active"
        );
        cal = Calendar::new(cal.holidays.clone(), BTreeSet::new());
        // Weeks of Feb 1, Feb 8 (all holiday), Feb 15: only two are active.
        assert_eq!(
            Days::Workdays.count_weeks(d("2027-02-01"), d("2027-02-22"), &cal),
            2
        );
    }

    #[test]
    fn weekday_names_parse_short_or_long() {
        assert_eq!(weekday_bit("mon"), Some(1));
        assert_eq!(weekday_bit("Sunday"), Some(64));
        assert_eq!(weekday_bit("monkey"), None);
        assert_eq!(weekday_bit("xx"), None);
    }
}
