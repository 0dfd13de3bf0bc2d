//! The on-call rota through the built binary (`lantern oncall who|shifts`) and the daemon (`/api/v1/oncall`, `.ics` feeds).

use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{InProcess, TestConfig, bin, repo_root};

/// A Shanghai team: early and mid on workdays, a rest-day shift on holidays,
/// nobody from 20:00 to 08:00, a Spring Festival schedule, one swap.
fn team(calendar: &str) -> String {
    format!(
        r#"
[oncall]
time-zone = "Asia/Shanghai"
{calendar}

[[oncall.people]]
id = "ann"
name = "Ann Wang"

[[oncall.people]]
id = "bob"
name = "Bob Li"

[[oncall.people]]
id = "cat"
name = "Cat Zhang"

[[oncall.people]]
id = "dan"
name = "Dan Liu"

[[oncall.shifts]]
name = "early"
start = "08:00"
end = "16:00"
days = "workdays"
primary = {{ people = ["ann", "bob"], rotate = "day", start-date = "2027-01-04" }}
assistant = {{ people = ["cat"] }}

[[oncall.shifts]]
name = "mid"
start = "12:00"
end = "20:00"
days = "workdays"
primary = {{ people = ["dan"] }}

[[oncall.shifts]]
name = "weekend"
start = "09:00"
end = "18:00"
days = "holidays"
primary = {{ people = ["cat"] }}

[[oncall.temporary]]
name = "Spring Festival"
from = "2027-02-05 08:00"
to = "2027-02-14 08:00"

[[oncall.temporary.shifts]]
name = "festival"
start = "08:00"
end = "08:00"
primary = {{ people = ["bob", "dan"], rotate = "day" }}

[[oncall.overrides]]
from = "2027-03-03 08:00"
to = "2027-03-03 16:00"
shift = "early"
person = "dan"
replaces = "bob"

[[oncall.overrides]]
from = "2027-02-09 10:00"
to = "2027-02-09 12:00"
person = "ann"
"#
    )
}

const INLINE_CALENDAR: &str = r#"workdays = ["2027-02-20"]

[[oncall.holidays]]
name = "Spring Festival"
from = "2027-02-05"
to = "2027-02-13"

[[oncall.holidays]]
name = "Dragon Boat Festival"
from = "2027-06-09"
to = "2027-06-09"
"#;

fn lantern(config: &TestConfig, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(&config.path)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn who(config: &TestConfig, at: &str) -> (Option<i32>, String) {
    let o = lantern(config, &["oncall", "who", "--at", at]);
    let text = stdout(&o);
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(1),
        "{}{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text)
}

#[test]
fn who_names_the_people_on_every_overlapping_shift() {
    let c = TestConfig::new(&team(INLINE_CALENDAR));
    // Thursday 4 March 2027, 13:00: early and mid overlap.
    let (code, out) = who(&c, "2027-03-04 13:00");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("early"), "{out}");
    assert!(out.contains("mid"), "{out}");
    assert!(out.contains("Dan Liu (dan)"), "{out}");
    assert!(out.contains("assistant: Cat Zhang (cat)"), "{out}");
    assert!(out.contains("[regular]"), "{out}");
    // The same instant as RFC 3339 gives the same answer.
    let (_, utc) = who(&c, "2027-03-04T05:00:00Z");
    assert_eq!(
        out.lines().skip(1).collect::<Vec<_>>(),
        utc.lines().skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn nobody_on_duty_is_said_loudly_and_exits_1() {
    let c = TestConfig::new(&team(INLINE_CALENDAR));
    // 23:00 on a workday: no shift covers the night.
    let (code, out) = who(&c, "2027-03-03 23:00");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("NOBODY ON DUTY"), "{out}");
}

#[test]
fn a_make_up_saturday_is_a_working_day_and_a_weekday_holiday_is_not() {
    let c = TestConfig::new(&team(INLINE_CALENDAR));
    // Saturday 20 February is a make-up workday: the early shift runs.
    let (_, sat) = who(&c, "2027-02-20 10:00");
    assert!(sat.contains("early"), "{sat}");
    assert!(!sat.contains("weekend"), "{sat}");
    // An ordinary Saturday has the weekend shift instead.
    let (_, plain) = who(&c, "2027-02-27 10:00");
    assert!(
        plain.contains("weekend") && !plain.contains("early"),
        "{plain}"
    );
    // Wednesday 9 June, the Dragon Boat Festival: a rest day.
    let (_, holiday) = who(&c, "2027-06-09 10:00");
    assert!(
        holiday.contains("weekend") && !holiday.contains("early"),
        "{holiday}"
    );
}

#[test]
fn overrides_beat_the_temporary_schedule_which_beats_the_regular_rota() {
    let c = TestConfig::new(&team(INLINE_CALENDAR));
    // Tuesday 9 February, 09:00: the festival schedule, not early/mid.
    let (_, festival) = who(&c, "2027-02-09 09:00");
    assert!(festival.contains("festival"), "{festival}");
    assert!(
        festival.contains("[temporary: Spring Festival]"),
        "{festival}"
    );
    assert!(!festival.contains("early"), "{festival}");
    // 11:00 the same day, Ann's override takes the primary layer.
    let (_, over) = who(&c, "2027-02-09 11:00");
    assert!(over.contains("[override]"), "{over}");
    assert!(over.contains("primary:   Ann Wang (ann)"), "{over}");
    // The night before the festival is nobody's; the first festival night is covered.
    assert_eq!(who(&c, "2027-02-04 23:00").0, Some(1));
    assert_eq!(who(&c, "2027-02-05 23:00").0, Some(0));
}

#[test]
fn a_swap_replaces_only_the_named_person() {
    let c = TestConfig::new(&team(INLINE_CALENDAR));
    // Early alternates ann and bob over active workdays only: 36 of them from
    // 4 January to 2 March (festival weekdays out, make-up Saturday in).
    let (_, tue) = who(&c, "2027-03-02 09:00");
    assert!(tue.contains("primary:   Ann Wang (ann)"), "{tue}");
    let (_, thu) = who(&c, "2027-03-04 09:00");
    assert!(thu.contains("primary:   Ann Wang (ann)"), "{thu}");
    let (_, fri) = who(&c, "2027-03-05 09:00");
    assert!(fri.contains("primary:   Bob Li (bob)"), "{fri}");
    // Wednesday 3 March was bob's: dan takes his place, cat stays assistant.
    let (_, wed) = who(&c, "2027-03-03 09:00");
    assert!(wed.contains("primary:   Dan Liu (dan)"), "{wed}");
    assert!(wed.contains("[override]"), "{wed}");
    assert!(wed.contains("assistant: Cat Zhang (cat)"), "{wed}");
    assert!(!wed.contains("Bob"), "{wed}");
    // After the swap's window, the early shift ends as usual at 16:00.
    let (_, later) = who(&c, "2027-03-03 17:00");
    assert!(!later.contains("early") && later.contains("mid"), "{later}");
}

/// 14 people on a weekday-only daily rotation, as in GoAlert #55.
fn fourteen() -> String {
    let mut text = String::from("[oncall]\ntime-zone = \"Asia/Shanghai\"\n");
    text +=
        "\n[[oncall.holidays]]\nname = \"Qingming\"\nfrom = \"2027-04-05\"\nto = \"2027-04-05\"\n";
    let ids: Vec<String> = (1..=14).map(|i| format!("p{i:02}")).collect();
    for id in &ids {
        text += &format!("\n[[oncall.people]]\nid = \"{id}\"\nname = \"Person {id}\"\n");
    }
    let list = ids.iter().map(|i| format!("\"{i}\"")).collect::<Vec<_>>();
    text += &format!(
        "\n[[oncall.shifts]]\nname = \"day\"\nstart = \"09:00\"\nend = \"18:00\"\ndays = \"workdays\"\nprimary = {{ people = [{}], rotate = \"day\", start-date = \"2027-03-01\" }}\n",
        list.join(", ")
    );
    text
}

fn turns(out: &str) -> Vec<usize> {
    (1..=14)
        .map(|i| out.matches(&format!("(p{i:02})")).count())
        .collect()
}

#[test]
fn fourteen_people_on_a_weekday_rota_each_get_the_same_number_of_turns() {
    let c = TestConfig::new(&fourteen());
    // 14 workdays from Monday 1 March to Thursday 18 March.
    let o = lantern(
        &c,
        &[
            "oncall",
            "shifts",
            "--from",
            "2027-03-01",
            "--to",
            "2027-03-18",
        ],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(turns(&out), vec![1; 14], "{out}");
    // April, with Qingming on Monday the 5th: 21 workdays, nobody skipped.
    let o = lantern(
        &c,
        &[
            "oncall",
            "shifts",
            "--from",
            "2027-04-01",
            "--to",
            "2027-04-30",
        ],
    );
    let out = stdout(&o);
    let t = turns(&out);
    assert!(t.iter().all(|n| (1..=2).contains(n)), "{t:?}\n{out}");
    assert_eq!(t.iter().sum::<usize>(), 21, "{out}");
    assert!(!out.contains("04-05 09:00 Mon – 18:00  day"), "{out}");
}

#[test]
fn shifts_lists_the_holes_and_filters_by_person() {
    let c = TestConfig::new(&team(INLINE_CALENDAR));
    let o = lantern(
        &c,
        &[
            "oncall",
            "shifts",
            "--from",
            "2027-03-01",
            "--to",
            "2027-03-01",
        ],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("2027-03-01 00:00 Mon – 08:00  NOBODY ON DUTY"),
        "{out}"
    );
    assert!(out.contains("2027-03-01 08:00 Mon – 16:00  early"), "{out}");
    assert!(
        out.contains("2027-03-01 20:00 Mon – 03-02 00:00  NOBODY ON DUTY"),
        "{out}"
    );
    let o = lantern(
        &c,
        &[
            "oncall",
            "shifts",
            "--from",
            "2027-03-01",
            "--to",
            "2027-03-07",
            "--person",
            "dan",
        ],
    );
    let out = stdout(&o);
    assert!(!out.contains("NOBODY"), "{out}");
    assert!(out.lines().skip(1).all(|l| l.contains("(dan)")), "{out}");
    let o = lantern(&c, &["oncall", "shifts", "--person", "zed"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_shipped_2027_calendar_has_its_make_up_days_and_holidays() {
    let calendar = repo_root().join("config/rota-2027.toml");
    let c = TestConfig::new(&team(&format!(
        "calendar-file = \"{}\"",
        calendar.display()
    )));
    // Sunday 14 February 2027 is a make-up workday in the shipped calendar.
    let (_, sunday) = who(&c, "2027-02-14 10:00");
    assert!(sunday.contains("early"), "{sunday}");
    // Friday 1 October, National Day: a rest day.
    let (_, national) = who(&c, "2027-10-01 10:00");
    assert!(
        national.contains("weekend") && !national.contains("early"),
        "{national}"
    );
}

#[test]
fn a_config_without_a_rota_is_refused_by_the_oncall_commands() {
    let c = TestConfig::new("");
    let o = lantern(&c, &["oncall", "who"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no rota configured"));
}

async fn get(url: &str) -> (u16, String, String) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, r.text().await.unwrap())
}

#[tokio::test]
async fn the_api_says_who_is_on_duty_with_names_and_when_nobody_is() {
    let d = InProcess::start(&team(INLINE_CALENDAR)).await;
    let (status, _, body) = get(&d.url("/api/v1/oncall?at=2027-03-04T05:00:00Z")).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["nobody-on-duty"], false);
    assert_eq!(v["time-zone"], "Asia/Shanghai");
    let shifts: Vec<&str> = v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shift"].as_str().unwrap())
        .collect();
    assert_eq!(shifts, ["early", "mid"]);
    assert_eq!(v["slots"][1]["primary"][0]["name"], "Dan Liu");
    assert_eq!(v["slots"][1]["source"]["kind"], "regular");
    assert_eq!(v["assistants"][0]["id"], "cat");

    // Local time in the rota's zone works too (URL-encoded space).
    let (_, _, body) = get(&d.url("/api/v1/oncall?at=2027-03-03%2023:00")).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["nobody-on-duty"], true, "{body}");
    assert_eq!(v["slots"].as_array().unwrap().len(), 0);

    let (status, _, _) = get(&d.url("/api/v1/oncall?at=yesterday")).await;
    assert_eq!(status, 400);
    d.stop().await.unwrap();
}

#[tokio::test]
async fn each_person_has_an_ics_feed_and_unknown_people_are_404() {
    let d = InProcess::start(&team(INLINE_CALENDAR)).await;
    let url = d.url("/api/v1/oncall/dan.ics?from=2027-03-01&to=2027-03-06");
    let (status, ctype, body) = get(&url).await;
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("text/calendar"), "{ctype}");
    assert!(body.starts_with("BEGIN:VCALENDAR\r\n"), "{body}");
    assert!(body.ends_with("END:VCALENDAR\r\n"));
    assert!(
        !body.replace("\r\n", "").contains('\n'),
        "bare LF in {body}"
    );
    // Mid every workday Monday to Friday, plus early on 3 March by the swap.
    assert_eq!(body.matches("BEGIN:VEVENT").count(), 6, "{body}");
    assert_eq!(
        body.matches("SUMMARY:on call: mid (primary)\r\n").count(),
        5
    );
    assert!(
        body.contains("SUMMARY:on call: early (primary)\r\n"),
        "{body}"
    );
    assert!(body.contains("DTSTART:20270303T000000Z\r\n"), "{body}");
    // 12:00 Shanghai is 04:00 UTC.
    assert!(body.contains("DTSTART:20270301T040000Z\r\n"), "{body}");
    assert!(body.contains("DTEND:20270301T120000Z\r\n"), "{body}");
    // Stable UIDs: the same feed twice names the same events.
    let uids = |b: &str| {
        b.lines()
            .filter(|l| l.starts_with("UID:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (_, _, again) = get(&url).await;
    assert_eq!(uids(&body), uids(&again));
    assert!(body.lines().all(|l| l.len() <= 75));

    let (status, _, _) = get(&d.url("/api/v1/oncall/zed.ics")).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&d.url("/api/v1/oncall/dan.json")).await;
    assert_eq!(status, 404);
    d.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_rota_the_endpoints_say_so() {
    let d = InProcess::start("").await;
    let (status, _, body) = get(&d.url("/api/v1/oncall")).await;
    assert_eq!(status, 404);
    assert!(body.contains("no rota configured"), "{body}");
    d.stop().await.unwrap();
}

#[tokio::test]
async fn a_daylight_saving_zone_keeps_local_hours_and_stretches_the_night() {
    let d = InProcess::start(
        r#"
[oncall]
time-zone = "America/New_York"

[[oncall.people]]
id = "ann"
name = "Ann"

[[oncall.shifts]]
name = "day"
start = "08:00"
end = "16:00"
primary = { people = ["ann"] }

[[oncall.shifts]]
name = "night"
start = "20:00"
end = "08:00"
primary = { people = ["ann"] }
"#,
    )
    .await;
    let events = |from: &'static str, to: &'static str| {
        let url = d.url(&format!("/api/v1/oncall/ann.ics?from={from}&to={to}"));
        async move {
            let (status, _, body) = get(&url).await;
            assert_eq!(status, 200, "{body}");
            let mut out = Vec::new();
            let mut current = (String::new(), String::new(), String::new());
            for l in body.lines() {
                if let Some(v) = l.strip_prefix("SUMMARY:") {
                    current.0 = v.to_string();
                } else if let Some(v) = l.strip_prefix("DTSTART:") {
                    current.1 = v.to_string();
                } else if let Some(v) = l.strip_prefix("DTEND:") {
                    current.2 = v.to_string();
                } else if l == "END:VEVENT" {
                    out.push(std::mem::take(&mut current));
                }
            }
            out
        }
    };
    let hours = |s: &str, e: &str| {
        let p = |t: &str| chrono::NaiveDateTime::parse_from_str(t, "%Y%m%dT%H%M%SZ").unwrap();
        (p(e) - p(s)).num_hours()
    };
    // March: Friday 12th is EST (-5), Monday 15th EDT (-4).
    let march = events("2027-03-12", "2027-03-16").await;
    let day: Vec<_> = march.iter().filter(|e| e.0.contains("day")).collect();
    assert_eq!(day[0].1, "20270312T130000Z");
    assert_eq!(day[3].1, "20270315T120000Z");
    assert!(day.iter().all(|e| hours(&e.1, &e.2) == 8));
    let nights: Vec<i64> = march
        .iter()
        .filter(|e| e.0.contains("night"))
        .map(|e| hours(&e.1, &e.2))
        .collect();
    // Nights of the 11th (ending in the range), 12th, 13th (the change), 14th, 15th.
    assert_eq!(nights, [12, 12, 11, 12, 12], "{march:?}");
    // November: the night of Saturday the 6th is an hour longer.
    let november = events("2027-11-06", "2027-11-08").await;
    let nights: Vec<i64> = november
        .iter()
        .filter(|e| e.0.contains("night"))
        .map(|e| hours(&e.1, &e.2))
        .collect();
    assert_eq!(nights, [12, 13, 12], "{november:?}");
    d.stop().await.unwrap();
}
