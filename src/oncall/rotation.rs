//! A layer (primary or assistant) of a shift: fixed people, or a rotation whose turns count only the slots that actually happen.

use chrono::NaiveDate;
use serde::Serialize;

use super::calendar::{Calendar, Days};

/// How often a rotating layer hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rotate {
    /// Every occurrence of the shift (a shift starts at most once a day, so this is "day" too).
    Shift,
    /// Every active day.
    Day,
    /// Every Monday-started week holding at least one active day.
    Week,
}

/// Who fills one layer of a shift.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Layer {
    /// Person ids, in rotation order.
    pub people: Vec<String>,
    /// None: everyone listed is on duty in every slot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotate: Option<Rotate>,
    /// The first active slot on or after this date is `people[0]`'s turn
    /// (set exactly when `rotate` is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<NaiveDate>,
}

impl Layer {
    /// Who is on this layer for the shift occurrence starting on `date`
    /// (which the caller knows is active under `days`).
    ///
    /// The turn index is the number of *active* slots between `start_date` and
    /// `date`, not the number of calendar days: a daily rotation filtered to
    /// weekdays would otherwise land on the same few people (GoAlert #55, where
    /// 4 of 14 were never scheduled).
    pub fn on_duty(&self, date: NaiveDate, days: &Days, cal: &Calendar) -> Vec<String> {
        let (Some(rotate), Some(start)) = (self.rotate, self.start_date) else {
            return self.people.clone();
        };
        if self.people.is_empty() {
            return Vec::new();
        }
        let turn = match rotate {
            Rotate::Shift | Rotate::Day => {
                if date >= start {
                    days.count(start, date, cal)
                } else {
                    -days.count(date, start, cal)
                }
            }
            Rotate::Week => {
                if date >= start {
                    days.count_weeks(start, date, cal)
                } else {
                    -days.count_weeks(date, start, cal)
                }
            }
        };
        let i = turn.rem_euclid(self.people.len() as i64) as usize;
        vec![self.people[i].clone()]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::calendar::Holiday;
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn fourteen(rotate: Rotate) -> Layer {
        Layer {
            people: (1..=14).map(|i| format!("p{i:02}")).collect(),
            rotate: Some(rotate),
            start_date: Some(d("2027-03-01")),
        }
    }

    /// Turns per person over the active days in `[from, to)`.
    fn turns(layer: &Layer, from: &str, to: &str, cal: &Calendar) -> BTreeMap<String, u32> {
        let mut out: BTreeMap<String, u32> = layer.people.iter().map(|p| (p.clone(), 0)).collect();
        for date in d(from).iter_days().take_while(|x| *x < d(to)) {
            if Days::Workdays.matches(date, cal) {
                for p in layer.on_duty(date, &Days::Workdays, cal) {
                    *out.entry(p).or_default() += 1;
                }
            }
        }
        out
    }

    #[test]
    fn fourteen_people_on_a_weekday_daily_rotation_each_get_one_turn_in_fourteen_workdays() {
        let cal = Calendar::default();
        let layer = fourteen(Rotate::Day);
        // 2027-03-01 is a Monday: the 14th workday is Thursday 2027-03-18.
        let t = turns(&layer, "2027-03-01", "2027-03-19", &cal);
        assert!(t.values().all(|n| *n == 1), "{t:?}");
        // And over ten such fortnights (28 weeks), ten turns each.
        let t = turns(&layer, "2027-03-01", "2027-09-13", &cal);
        assert!(t.values().all(|n| *n == 10), "{t:?}");
    }

    #[test]
    fn a_month_with_a_holiday_skips_nobody() {
        let cal = Calendar::new(
            vec![Holiday {
                name: "Labour Day".into(),
                from: d("2027-05-01"),
                to: d("2027-05-05"),
            }],
            [d("2027-04-25"), d("2027-05-08")].into(),
        );
        let layer = fourteen(Rotate::Shift);
        let t = turns(&layer, "2027-04-01", "2027-05-31", &cal);
        let (min, max) = (t.values().min().unwrap(), t.values().max().unwrap());
        assert!(*min >= 1 && max - min <= 1, "{t:?}");
        // The turn after the holiday is the next person, not a skipped one.
        let before = layer.on_duty(d("2027-04-30"), &Days::Workdays, &cal);
        let after = layer.on_duty(d("2027-05-06"), &Days::Workdays, &cal);
        let i = |p: &Vec<String>| layer.people.iter().position(|x| *x == p[0]).unwrap();
        assert_eq!((i(&before) + 1) % 14, i(&after));
    }

    #[test]
    fn a_weekly_rotation_hands_over_on_mondays_and_skips_empty_weeks() {
        let cal = Calendar::new(
            vec![Holiday {
                name: "Long".into(),
                from: d("2027-03-08"),
                to: d("2027-03-14"),
            }],
            Default::default(),
        );
        let layer = Layer {
            people: vec!["a".into(), "b".into(), "c".into()],
            rotate: Some(Rotate::Week),
            start_date: Some(d("2027-03-01")),
        };
        let who = |s: &str| layer.on_duty(d(s), &Days::Workdays, &cal)[0].clone();
        assert_eq!(who("2027-03-01"), "a");
        assert_eq!(who("2027-03-05"), "a");
        // The week of 8 March has no workday; the week after is b's, not c's.
        assert_eq!(who("2027-03-15"), "b");
        assert_eq!(who("2027-03-22"), "c");
    }

    #[test]
    fn dates_before_the_start_rotate_backwards() {
        let cal = Calendar::default();
        let layer = Layer {
            people: vec!["a".into(), "b".into(), "c".into()],
            rotate: Some(Rotate::Day),
            start_date: Some(d("2027-03-03")),
        };
        let who = |s: &str| layer.on_duty(d(s), &Days::All, &cal)[0].clone();
        assert_eq!(who("2027-03-02"), "c");
        assert_eq!(who("2027-03-01"), "b");
        assert_eq!(who("2027-03-03"), "a");
    }

    #[test]
    fn a_fixed_layer_puts_everyone_on_duty() {
        let layer = Layer {
            people: vec!["a".into(), "b".into()],
            rotate: None,
            start_date: Some(d("2027-01-01")),
        };
        assert_eq!(
            layer.on_duty(d("2027-05-05"), &Days::All, &Calendar::default()),
            ["a", "b"]
        );
    }
}
