//! The `[backup]` section's own keys, name rules and schedules; repositories and sets are checked in `repo` and `set`.

use std::time::Duration;

use chrono_tz::Tz;

use super::raw::RawBackup;
use super::repo::repository;
use super::set::set;
use super::{BackupConfig, RepoSpec, SetSpec};
use crate::config::validate::Ctx;
use crate::config::{Schedule, valid_name};

pub(super) const MINUTE: Duration = Duration::from_secs(60);
pub(super) const HOUR: Duration = Duration::from_secs(3600);
pub(super) const DAY: Duration = Duration::from_secs(86_400);

pub(crate) fn validate(cx: &mut Ctx, raw: Option<RawBackup>) -> Option<BackupConfig> {
    let raw = raw?;
    let timezone = match raw.timezone.as_deref() {
        None => Tz::UTC,
        Some(name) => name.parse::<Tz>().unwrap_or_else(|_| {
            cx.error(
                "backup.timezone",
                format!("unknown time zone `{name}` (use an IANA name such as Asia/Shanghai)"),
            );
            Tz::UTC
        }),
    };
    let lock_wait = cx.duration(
        "backup.lock-wait",
        raw.lock_wait.as_deref(),
        10 * MINUTE,
        Duration::ZERO,
        DAY,
    );
    let compliance_interval = cx.duration(
        "backup.compliance-interval",
        raw.compliance_interval.as_deref(),
        MINUTE,
        Duration::from_secs(1),
        DAY,
    );
    let check = schedule(
        cx,
        "backup.check",
        raw.check.as_deref(),
        "0 4 * * *",
        timezone,
    );
    let read_data = schedule(
        cx,
        "backup.read-data",
        raw.read_data.as_deref(),
        "0 5 * * 0",
        timezone,
    );
    let read_data_subset = raw
        .read_data_subset
        .unwrap_or_else(|| "weekly/month".to_string());
    if read_data_subset
        .parse::<rustic_core::ReadSubsetOption>()
        .is_err()
    {
        cx.error(
            "backup.read-data-subset",
            format!(
                "`{read_data_subset}` is not a subset: write \"all\", \"25%\", \"500MiB\", \"1/5\" or a rolling \"daily/week\", \"weekly/month\""
            ),
        );
    }
    let work_dir = raw.work_dir.as_deref().map(|p| cx.path(p));

    let mut repositories = Vec::new();
    for (i, r) in raw.repositories.into_iter().enumerate() {
        let key = format!("backup.repositories[{i}]");
        if let Some(spec) = repository(cx, &key, r) {
            if repositories.iter().any(|o: &RepoSpec| o.name == spec.name) {
                cx.error(
                    &format!("{key}.name"),
                    format!("another repository is named `{}`", spec.name),
                );
            }
            repositories.push(spec);
        }
    }
    if repositories.is_empty() {
        cx.error(
            "backup.repositories",
            "a backup needs at least one [[backup.repositories]]",
        );
    }
    let names: Vec<String> = repositories.iter().map(|r| r.name.clone()).collect();
    let mut sets: Vec<SetSpec> = Vec::new();
    for (i, s) in raw.sets.into_iter().enumerate() {
        let key = format!("backup.sets[{i}]");
        if let Some(spec) = set(cx, &key, s, &names, timezone) {
            if sets.iter().any(|o| o.name == spec.name) {
                cx.error(
                    &format!("{key}.name"),
                    format!("another set is named `{}`", spec.name),
                );
            }
            sets.push(spec);
        }
    }
    Some(BackupConfig {
        timezone,
        work_dir,
        lock_wait,
        compliance_interval,
        check,
        read_data,
        read_data_subset,
        repositories,
        sets,
    })
}

/// A cron schedule, `"off"` for none, or the default.
pub(super) fn schedule(
    cx: &mut Ctx,
    key: &str,
    raw: Option<&str>,
    default: &str,
    tz: Tz,
) -> Option<Schedule> {
    let expr = raw.unwrap_or(default);
    if expr == "off" {
        return None;
    }
    match Schedule::parse(expr, tz) {
        Ok(s) => Some(s),
        Err(e) => {
            cx.error(key, e);
            None
        }
    }
}

/// A repository's or set's name: required, and usable as a metric label and a file name.
pub(super) fn name(cx: &mut Ctx, key: &str, raw: Option<String>) -> Option<String> {
    match raw {
        None => {
            cx.error(key, "a name is required");
            None
        }
        Some(n) if !valid_name(&n) => {
            cx.error(
                key,
                format!(
                    "`{n}` is not a name: letters, digits, `-` and `_`, starting with a letter"
                ),
            );
            None
        }
        Some(n) => Some(n),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::Config;

    /// The keys the errors of `text` name.
    fn error_keys(text: &str) -> Vec<String> {
        match Config::parse(Path::new("t.toml"), text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().filter_map(|e| e.key).collect(),
        }
    }

    #[test]
    fn errors_name_the_key_that_is_wrong() {
        let keys = error_keys(
            r#"
[backup]
timezone = "Mars/Olympus"
read-data-subset = "most"
[[backup.repositories]]
name = "main"
repository = "opendal:s3"
password = "x"
[[backup.repositories]]
name = "nopw"
repository = "/tmp/r"
[[backup.sets]]
name = "db"
repository = "elsewhere"
command = ["pg_dump"]
snapshot = "every hour"
command-timeout = "0s"
hook-timeout = "soon"
drill-verify-timeout = "2d"
"#,
        );
        for k in [
            "backup.timezone",
            "backup.read-data-subset",
            "backup.repositories[0].repository",
            "backup.repositories[1].password",
            "backup.sets[0].repository",
            "backup.sets[0].command-file",
            "backup.sets[0].snapshot",
            "backup.sets[0].command-timeout",
            "backup.sets[0].hook-timeout",
            "backup.sets[0].drill-verify-timeout",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
        }
    }

    #[test]
    fn a_missing_key_is_reported_at_the_line_of_its_table() {
        let text = "[backup]\n[[backup.repositories]]\nname = \"main\"\nrepository = \"/tmp/r\"\n";
        let e = Config::parse(Path::new("t.toml"), text).unwrap_err();
        let pw =
            e.0.iter()
                .find(|e| e.key.as_deref() == Some("backup.repositories[0].password"));
        assert_eq!(pw.and_then(|e| e.line), Some(2), "{e}");
    }

    #[test]
    fn defaults_fill_a_minimal_section_and_copies_go_to_every_other_repository() {
        let text = r#"
[backup]
[[backup.repositories]]
name = "a"
repository = "repo-a"
password = "${HOME}"
[[backup.repositories]]
name = "b"
repository = "rest:http://127.0.0.1:8000/"
password = "pw"
offsite = true
[[backup.sets]]
name = "files"
paths = ["data"]
"#;
        let cfg = Config::parse(Path::new("/etc/lantern/t.toml"), text)
            .unwrap_or_else(|e| panic!("{e}"))
            .backup
            .unwrap();
        let set = &cfg.sets[0];
        assert_eq!(set.repository, "a");
        assert_eq!(set.copy_to, vec!["b".to_string()]);
        assert_eq!(set.paths[0], Path::new("/etc/lantern/data"));
        assert_eq!(cfg.repositories[0].repository, "/etc/lantern/repo-a");
        assert!(set.snapshot.is_some() && cfg.check.is_some());
        assert_eq!(set.rpo, Duration::from_secs(26 * 3600));
        assert_eq!(set.command_timeout, Duration::from_secs(3600));
        assert_eq!(set.hook_timeout, Duration::from_secs(600));
        assert_eq!(set.drill_verify_timeout, Duration::from_secs(600));
        // The password never shows in the effective config; the timeouts do.
        let shown = Config::parse(Path::new("t.toml"), text)
            .unwrap()
            .to_effective_toml();
        assert!(!shown.contains("\"pw\""), "{shown}");
        assert!(shown.contains("command-timeout = \"1h\""), "{shown}");
    }
}
