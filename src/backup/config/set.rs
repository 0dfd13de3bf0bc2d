//! `[[backup.sets]]`: sources (paths, a dump command), hooks, retention, schedules and the time each command may take.

use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;

use super::raw::RawSet;
use super::validate::{DAY, HOUR, name, schedule};
use super::{Keep, SetSpec};
use crate::config::validate::Ctx;

/// A dump of a shop's database takes minutes; an hour is generous and still
/// ends a hung one (a lock wait, a dead mount) before the next hourly snapshot.
const COMMAND_TIMEOUT: Duration = HOUR;
/// Hooks and the drill's verify command do small, quick work; ten minutes
/// means stuck, and jobs run one at a time, so a stuck one stalls the queue.
const HOOK_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10 * 60);

pub(super) fn set(cx: &mut Ctx, key: &str, s: RawSet, repos: &[String], tz: Tz) -> Option<SetSpec> {
    let name = name(cx, &format!("{key}.name"), s.name);
    let known = |cx: &mut Ctx, k: &str, r: &str| {
        let ok = repos.iter().any(|n| n == r);
        if !ok {
            cx.error(k, format!("no repository is named `{r}`"));
        }
        ok
    };
    let repository = match s.repository {
        Some(r) => known(cx, &format!("{key}.repository"), &r).then_some(r),
        None => repos.first().cloned(),
    };
    let copy_to = match s.copy_to {
        Some(list) => {
            let mut out = Vec::new();
            for r in list {
                if known(cx, &format!("{key}.copy-to"), &r) {
                    if Some(&r) == repository.as_ref() {
                        cx.error(
                            &format!("{key}.copy-to"),
                            format!("`{r}` is the set's own repository"),
                        );
                    } else if !out.contains(&r) {
                        out.push(r);
                    }
                }
            }
            out
        }
        None => repos
            .iter()
            .filter(|r| Some(*r) != repository.as_ref())
            .cloned()
            .collect(),
    };
    let paths: Vec<PathBuf> = s.paths.iter().map(|p| cx.path(p)).collect();
    for (i, g) in s.exclude.iter().enumerate() {
        if g.is_empty() {
            cx.error(&format!("{key}.exclude[{i}]"), "an empty pattern");
        }
    }
    let command = argv(cx, &format!("{key}.command"), s.command);
    let command_file = match (&command, s.command_file) {
        (_, Some(f)) if f.is_empty() || f.contains('/') => {
            cx.error(
                &format!("{key}.command-file"),
                "a plain file name such as orders.dump",
            );
            String::new()
        }
        (Some(_), None) => {
            cx.error(
                &format!("{key}.command-file"),
                "name the file the command's output is stored as, e.g. \"orders.dump\"",
            );
            String::new()
        }
        (_, f) => f.unwrap_or_default(),
    };
    if paths.is_empty() && command.is_none() {
        cx.error(
            &format!("{key}.paths"),
            "a set backs up paths, a command's output, or both",
        );
    }
    let before = argv(cx, &format!("{key}.before"), s.before);
    let after = argv(cx, &format!("{key}.after"), s.after);
    let drill_verify = argv(cx, &format!("{key}.drill-verify"), s.drill_verify);
    // At least a second: coreutils `timeout` reads "0s" as no bound at all.
    let command_timeout = cx.duration(
        &format!("{key}.command-timeout"),
        s.command_timeout.as_deref(),
        COMMAND_TIMEOUT,
        Duration::from_secs(1),
        7 * DAY,
    );
    let hook_timeout = cx.duration(
        &format!("{key}.hook-timeout"),
        s.hook_timeout.as_deref(),
        HOOK_TIMEOUT,
        Duration::from_secs(1),
        DAY,
    );
    let drill_verify_timeout = cx.duration(
        &format!("{key}.drill-verify-timeout"),
        s.drill_verify_timeout.as_deref(),
        VERIFY_TIMEOUT,
        Duration::from_secs(1),
        DAY,
    );
    let rpo = cx.duration(
        &format!("{key}.rpo"),
        s.rpo.as_deref(),
        26 * HOUR,
        Duration::from_secs(1),
        366 * DAY,
    );
    let keep = Keep {
        hourly: s.keep_hourly.unwrap_or(24),
        daily: s.keep_daily.unwrap_or(7),
        weekly: s.keep_weekly.unwrap_or(4),
        monthly: s.keep_monthly.unwrap_or(12),
    };
    if keep
        == (Keep {
            hourly: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
        })
    {
        cx.error(
            &format!("{key}.keep-daily"),
            "retention would keep no snapshot at all",
        );
    }
    let mut every = |k: &str, raw: Option<String>, default: &str| {
        schedule(cx, &format!("{key}.{k}"), raw.as_deref(), default, tz)
    };
    let snapshot = every("snapshot", s.snapshot, "0 * * * *");
    let copy = every("copy", s.copy, "30 2 * * *");
    let forget = every("forget", s.forget, "0 3 * * *");
    let drill = every("drill", s.drill, "0 6 * * 0");
    Some(SetSpec {
        name: name?,
        repository: repository?,
        copy_to,
        paths,
        exclude: s.exclude,
        command,
        command_file,
        command_timeout,
        before,
        after,
        hook_timeout,
        medium: s.medium.unwrap_or_else(|| "local-disk".to_string()),
        rpo,
        keep,
        snapshot,
        copy,
        forget,
        drill,
        drill_verify,
        drill_verify_timeout,
    })
}

fn argv(cx: &mut Ctx, key: &str, raw: Option<Vec<String>>) -> Option<Vec<String>> {
    let v = raw?;
    if v.first().is_none_or(|p| p.is_empty()) {
        cx.error(key, "a command is an argument list whose first item is the program, e.g. [\"pg_dump\", \"-Fc\", \"orders\"]");
        return None;
    }
    Some(v)
}
