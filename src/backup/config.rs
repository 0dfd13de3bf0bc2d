//! `[backup]`: the raw keys and their validation into repositories, sets and schedules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize, Serializer};

use crate::config::validate::Ctx;
use crate::config::{Schedule, Secret, valid_name};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawBackup {
    pub timezone: Option<String>,
    pub work_dir: Option<String>,
    pub lock_wait: Option<String>,
    pub compliance_interval: Option<String>,
    pub check: Option<String>,
    pub read_data: Option<String>,
    pub read_data_subset: Option<String>,
    #[serde(default)]
    pub repositories: Vec<RawRepository>,
    #[serde(default)]
    pub sets: Vec<RawSet>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawRepository {
    pub name: Option<String>,
    pub repository: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub password_credential: Option<String>,
    pub medium: Option<String>,
    pub offsite: Option<bool>,
    pub offline: Option<bool>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawSet {
    pub name: Option<String>,
    pub repository: Option<String>,
    pub copy_to: Option<Vec<String>>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub command: Option<Vec<String>>,
    pub command_file: Option<String>,
    pub before: Option<Vec<String>>,
    pub after: Option<Vec<String>>,
    pub medium: Option<String>,
    pub rpo: Option<String>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub snapshot: Option<String>,
    pub copy: Option<String>,
    pub forget: Option<String>,
    pub drill: Option<String>,
    pub drill_verify: Option<Vec<String>>,
}

/// The validated `[backup]` section. Values first, arrays of tables last (TOML order).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct BackupConfig {
    #[serde(serialize_with = "tz_name")]
    pub timezone: Tz,
    /// Locks, cache and drill scratch space; `None`: `<daemon.state-dir>/backup`.
    pub work_dir: Option<PathBuf>,
    #[serde(serialize_with = "human")]
    pub lock_wait: Duration,
    #[serde(serialize_with = "human")]
    pub compliance_interval: Duration,
    pub check: Option<Schedule>,
    pub read_data: Option<Schedule>,
    pub read_data_subset: String,
    pub repositories: Vec<RepoSpec>,
    pub sets: Vec<SetSpec>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RepoSpec {
    pub name: String,
    /// rustic's repository string: an absolute path, `rest:URL` or `rclone:REMOTE:PATH`.
    pub repository: String,
    pub password: Secret,
    pub medium: String,
    pub offsite: bool,
    pub offline: bool,
    pub options: BTreeMap<String, String>,
}

impl RepoSpec {
    /// The directory of a local repository (an offline one is present when it exists).
    pub fn local_path(&self) -> Option<PathBuf> {
        let r = self
            .repository
            .strip_prefix("local:")
            .unwrap_or(&self.repository);
        r.starts_with('/').then(|| PathBuf::from(r))
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SetSpec {
    pub name: String,
    /// The primary repository: snapshots go here, copies start from here.
    pub repository: String,
    pub copy_to: Vec<String>,
    pub paths: Vec<PathBuf>,
    pub exclude: Vec<String>,
    pub command: Option<Vec<String>>,
    pub command_file: String,
    pub before: Option<Vec<String>>,
    pub after: Option<Vec<String>>,
    /// Where the live data sits, for the "two media" rule.
    pub medium: String,
    #[serde(serialize_with = "human")]
    pub rpo: Duration,
    pub keep: Keep,
    pub snapshot: Option<Schedule>,
    pub copy: Option<Schedule>,
    pub forget: Option<Schedule>,
    pub drill: Option<Schedule>,
    pub drill_verify: Option<Vec<String>>,
}

impl SetSpec {
    /// Every repository holding this set: the primary first.
    pub fn repositories(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.repository.as_str()).chain(self.copy_to.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Keep {
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

fn human<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn tz_name<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

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
fn schedule(cx: &mut Ctx, key: &str, raw: Option<&str>, default: &str, tz: Tz) -> Option<Schedule> {
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

fn name(cx: &mut Ctx, key: &str, raw: Option<String>) -> Option<String> {
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

fn repository(cx: &mut Ctx, key: &str, r: RawRepository) -> Option<RepoSpec> {
    let name = name(cx, &format!("{key}.name"), r.name);
    let rkey = format!("{key}.repository");
    let repository = match r.repository.as_deref() {
        None => {
            cx.error(&rkey, "where the repository lives is required: a path, `rest:URL` or `rclone:REMOTE:PATH`");
            None
        }
        Some(s) if s.starts_with("rest:http://") || s.starts_with("rest:https://") => {
            Some(s.to_string())
        }
        Some(s) if s.starts_with("rclone:") && s.len() > "rclone:".len() => Some(s.to_string()),
        Some(s) if s.starts_with("opendal:") || s.starts_with("s3:") || s.starts_with("sftp:") => {
            cx.error(
                &rkey,
                format!("`{s}`: this build has no opendal backends; reach S3 or SFTP through `rclone:REMOTE:PATH`"),
            );
            None
        }
        Some(s) if s.starts_with("rest:") => {
            cx.error(
                &rkey,
                format!("`{s}`: a REST repository is `rest:http://HOST:PORT/PATH`"),
            );
            None
        }
        Some(s) if s.is_empty() || s.contains(':') && !s.starts_with("local:") => {
            cx.error(
                &rkey,
                format!("`{s}` is not a repository: a path, `rest:URL` or `rclone:REMOTE:PATH`"),
            );
            None
        }
        Some(s) => {
            let path = s.strip_prefix("local:").unwrap_or(s);
            Some(cx.path(path).display().to_string())
        }
    };
    let pkey = format!("{key}.password");
    let password = match (&r.password_credential, &r.password, &r.password_file) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            cx.error(
                &format!("{key}.password-credential"),
                "set one of password, password-file and password-credential",
            );
            None
        }
        (Some(cred), None, None) => match credential(cred) {
            Ok(s) => Some(s),
            Err(msg) => {
                cx.error(&format!("{key}.password-credential"), msg);
                None
            }
        },
        _ => match cx.secret(&pkey, r.password.as_deref(), r.password_file.as_deref()) {
            Some(s) => Some(s),
            None => {
                if r.password.is_none() && r.password_file.is_none() {
                    cx.error(
                        &pkey,
                        "a repository password is required (password, password-file or password-credential)",
                    );
                }
                None
            }
        },
    };
    let medium = r.medium.unwrap_or_else(|| "local-disk".to_string());
    if medium.is_empty()
        || !medium
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        cx.error(
            &format!("{key}.medium"),
            "a medium is a short label such as local-disk, usb-disk or object-store",
        );
    }
    Some(RepoSpec {
        name: name?,
        repository: repository?,
        password: password?,
        medium,
        offsite: r.offsite.unwrap_or(false),
        offline: r.offline.unwrap_or(false),
        options: r.options,
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

fn set(cx: &mut Ctx, key: &str, s: RawSet, repos: &[String], tz: Tz) -> Option<SetSpec> {
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
    let rpo = cx.duration(
        &format!("{key}.rpo"),
        s.rpo.as_deref(),
        26 * 3600 * Duration::from_secs(1),
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
    let snapshot = schedule(
        cx,
        &format!("{key}.snapshot"),
        s.snapshot.as_deref(),
        "0 * * * *",
        tz,
    );
    let copy = schedule(
        cx,
        &format!("{key}.copy"),
        s.copy.as_deref(),
        "30 2 * * *",
        tz,
    );
    let forget = schedule(
        cx,
        &format!("{key}.forget"),
        s.forget.as_deref(),
        "0 3 * * *",
        tz,
    );
    let drill = schedule(
        cx,
        &format!("{key}.drill"),
        s.drill.as_deref(),
        "0 6 * * 0",
        tz,
    );
    Some(SetSpec {
        name: name?,
        repository: repository?,
        copy_to,
        paths,
        exclude: s.exclude,
        command,
        command_file,
        before,
        after,
        medium: s.medium.unwrap_or_else(|| "local-disk".to_string()),
        rpo,
        keep,
        snapshot,
        copy,
        forget,
        drill,
        drill_verify,
    })
}

/// Reads a systemd credential: `LoadCredential=` puts it in `$CREDENTIALS_DIRECTORY`.
fn credential(name: &str) -> Result<Secret, String> {
    if name.is_empty() || name.contains('/') {
        return Err(format!("`{name}` is not a credential name"));
    }
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
        "CREDENTIALS_DIRECTORY is not set: load the credential with LoadCredential= in the unit"
            .to_string()
    })?;
    let path = PathBuf::from(dir).join(name);
    let raw = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = raw.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} not in {keys:?}");
        }
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
        assert_eq!(set.rpo, std::time::Duration::from_secs(26 * 3600));
        // The password never shows in the effective config.
        let shown = Config::parse(Path::new("t.toml"), text)
            .unwrap()
            .to_effective_toml();
        assert!(!shown.contains("\"pw\""), "{shown}");
    }
}
