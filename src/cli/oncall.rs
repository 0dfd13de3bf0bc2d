//! `lantern oncall who|shifts`: the rota straight from the config file, no daemon needed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::config::{Config, EXIT_CONFIG, defaults};
use crate::oncall::{Rota, Slot};

#[derive(Debug, clap::Subcommand)]
pub enum OncallCommand {
    /// Who is on duty now or at --at; exits 1 when nobody is (so a cron job can alert).
    Who {
        /// RFC 3339, or local time in the rota's zone ("2027-02-08 13:00").
        #[arg(long)]
        at: Option<String>,
        #[arg(long, short, env = "LANTERN_CONFIG", default_value = defaults::CONFIG_FILE)]
        config: PathBuf,
    },
    /// Every slot between --from and --to, with the holes where nobody is on duty.
    Shifts {
        /// Start: RFC 3339, local time, or a date (its midnight). Default: now.
        #[arg(long)]
        from: Option<String>,
        /// End: RFC 3339, local time, or a date (included whole). Default: a week after --from.
        #[arg(long)]
        to: Option<String>,
        /// Only this person's slots (by id).
        #[arg(long)]
        person: Option<String>,
        #[arg(long, short, env = "LANTERN_CONFIG", default_value = defaults::CONFIG_FILE)]
        config: PathBuf,
    },
}

/// The longest range `shifts` prints: the work grows with it.
const MAX_DAYS: i64 = 366;

pub fn oncall(command: OncallCommand) -> ExitCode {
    match command {
        OncallCommand::Who { at, config } => match load(&config) {
            Ok(rota) => who(&rota, at.as_deref()),
            Err(code) => code,
        },
        OncallCommand::Shifts {
            from,
            to,
            person,
            config,
        } => match load(&config) {
            Ok(rota) => shifts(&rota, from.as_deref(), to.as_deref(), person.as_deref()),
            Err(code) => code,
        },
    }
}

fn load(file: &Path) -> Result<Rota, ExitCode> {
    match Config::load(file) {
        Ok(c) => c.oncall.ok_or_else(|| {
            eprintln!(
                "{}: no [oncall] section: no rota configured",
                file.display()
            );
            ExitCode::from(EXIT_CONFIG)
        }),
        Err(errors) => {
            eprintln!("{errors}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn usage(message: String) -> ExitCode {
    eprintln!("{message}");
    ExitCode::from(2)
}

fn local(rota: &Rota, t: DateTime<Utc>) -> String {
    t.with_timezone(&rota.time_zone)
        .format("%Y-%m-%d %H:%M %a")
        .to_string()
}

/// "2027-02-08 20:00 Mon – 02-09 08:00" in the rota's zone.
fn span(rota: &Rota, s: DateTime<Utc>, e: DateTime<Utc>) -> String {
    let (ls, le) = (
        s.with_timezone(&rota.time_zone),
        e.with_timezone(&rota.time_zone),
    );
    let end = if ls.date_naive() == le.date_naive() {
        le.format("%H:%M")
    } else {
        le.format("%m-%d %H:%M")
    };
    format!("{} – {end}", local(rota, s))
}

fn names(rota: &Rota, ids: &[String]) -> String {
    if ids.is_empty() {
        return "-".into();
    }
    ids.iter()
        .map(|id| format!("{} ({id})", rota.name_of(id)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn who(rota: &Rota, at: Option<&str>) -> ExitCode {
    let at = match at.map(|t| rota.parse_time(t)).transpose() {
        Ok(t) => t.unwrap_or_else(Utc::now),
        Err(e) => return usage(format!("--at: {e}")),
    };
    let duty = rota.on_duty(at);
    let when = format!(
        "{} ({}), {}",
        local(rota, at),
        rota.time_zone,
        at.format("%Y-%m-%dT%H:%M:%SZ")
    );
    if duty.is_empty() {
        println!("NOBODY ON DUTY at {when}");
        return ExitCode::from(1);
    }
    println!("on call at {when}");
    for slot in duty.slots.iter().filter(|s| s.is_staffed()) {
        println!(
            "{}  {}  [{}]",
            slot.shift,
            span(rota, slot.start, slot.end),
            slot.source
        );
        println!("  primary:   {}", names(rota, &slot.primary));
        println!("  assistant: {}", names(rota, &slot.assistant));
    }
    ExitCode::SUCCESS
}

fn shifts(rota: &Rota, from: Option<&str>, to: Option<&str>, person: Option<&str>) -> ExitCode {
    let from = match from.map(|t| rota.parse_time(t)).transpose() {
        Ok(t) => t.unwrap_or_else(Utc::now),
        Err(e) => return usage(format!("--from: {e}")),
    };
    let to = match to {
        None => from + Duration::days(7),
        // A bare date as the end means the whole of that day.
        Some(t) if NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").is_ok() => {
            match rota.parse_time(t) {
                Ok(t) => t + Duration::days(1),
                Err(e) => return usage(format!("--to: {e}")),
            }
        }
        Some(t) => match rota.parse_time(t) {
            Ok(t) => t,
            Err(e) => return usage(format!("--to: {e}")),
        },
    };
    if to <= from {
        return usage("--to must be after --from".into());
    }
    if to - from > Duration::days(MAX_DAYS) {
        return usage(format!("at most {MAX_DAYS} days at a time"));
    }
    if let Some(p) = person
        && rota.person(p).is_none()
    {
        return usage(format!("no person has the id `{p}`"));
    }
    println!(
        "shifts from {} to {} ({})",
        local(rota, from),
        local(rota, to),
        rota.time_zone
    );
    let slots = rota.slots(from, to);
    let mine =
        |s: &Slot| person.is_none_or(|p| s.primary.iter().chain(&s.assistant).any(|x| x == p));
    let mut covered = from;
    for slot in slots.iter().filter(|s| s.is_staffed()) {
        if person.is_none() && slot.start > covered {
            println!("{}  NOBODY ON DUTY", span(rota, covered, slot.start));
        }
        covered = covered.max(slot.end);
        if !mine(slot) {
            continue;
        }
        println!(
            "{}  {}  primary: {}  assistant: {}  [{}]",
            span(rota, slot.start, slot.end),
            slot.shift,
            names(rota, &slot.primary),
            names(rota, &slot.assistant),
            slot.source
        );
    }
    if person.is_none() && covered < to {
        println!("{}  NOBODY ON DUTY", span(rota, covered, to));
    }
    ExitCode::SUCCESS
}
