//! The 3-2-1 verdict per set: three copies (live + two fresh repositories), two media, one off-site or offline.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::config::{BackupConfig, SetSpec};

/// The newest snapshot of a set in one repository, as last seen.
#[derive(Debug, Clone)]
pub struct Freshness {
    pub repository: String,
    pub newest: Option<DateTime<Utc>>,
}

/// Why a set is (not) compliant; a bounded label set for the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Ok,
    TooFewCopies,
    TooFewMedia,
    NoOffsite,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Ok,
        Reason::TooFewCopies,
        Reason::TooFewMedia,
        Reason::NoOffsite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::TooFewCopies => "too_few_copies",
            Reason::TooFewMedia => "too_few_media",
            Reason::NoOffsite => "no_offsite",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub set: String,
    pub compliant: bool,
    pub reason: Reason,
    /// A sentence for logs and the API.
    pub detail: String,
    pub copies: usize,
    pub media: usize,
    pub offsite: bool,
}

/// Judges one set at `now` from the newest snapshot time in each of its repositories.
pub fn evaluate(
    cfg: &BackupConfig,
    set: &SetSpec,
    seen: &[Freshness],
    now: DateTime<Utc>,
) -> Verdict {
    let rpo = chrono::Duration::from_std(set.rpo).unwrap_or(chrono::Duration::MAX);
    let fresh: Vec<_> = set
        .repositories()
        .filter_map(|name| {
            let spec = cfg.repositories.iter().find(|r| r.name == name)?;
            let newest = seen.iter().find(|f| f.repository == name)?.newest?;
            (now - newest <= rpo).then_some(spec)
        })
        .collect();
    let copies = 1 + fresh.len();
    let mut media: Vec<&str> = vec![set.medium.as_str()];
    for r in &fresh {
        if !media.contains(&r.medium.as_str()) {
            media.push(&r.medium);
        }
    }
    let offsite = fresh.iter().any(|r| r.offsite || r.offline);
    let names: Vec<&str> = fresh.iter().map(|r| r.name.as_str()).collect();
    let rpo_text = humantime::format_duration(Duration::from_secs(set.rpo.as_secs()));
    let (reason, detail) = if copies < 3 {
        (
            Reason::TooFewCopies,
            format!(
                "{copies} copies (live data + {} repositories with a snapshot younger than {rpo_text}: {names:?}); 3 needed",
                fresh.len()
            ),
        )
    } else if media.len() < 2 {
        (
            Reason::TooFewMedia,
            format!("every copy is on {}; 2 media needed", media[0]),
        )
    } else if !offsite {
        (
            Reason::NoOffsite,
            format!("none of {names:?} is off-site or offline"),
        )
    } else {
        (
            Reason::Ok,
            format!(
                "{copies} copies on {} media ({names:?}), off-site included",
                media.len()
            ),
        )
    };
    Verdict {
        set: set.name.clone(),
        compliant: reason == Reason::Ok,
        reason,
        detail,
        copies,
        media: media.len(),
        offsite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn config() -> BackupConfig {
        let text = r#"
[backup]
[[backup.repositories]]
name = "main"
repository = "/tmp/r1"
password = "pw"
[[backup.repositories]]
name = "usb"
repository = "/tmp/r2"
password = "pw"
medium = "usb-disk"
offline = true
[[backup.repositories]]
name = "same"
repository = "/tmp/r3"
password = "pw"
[[backup.sets]]
name = "state"
paths = ["/tmp"]
rpo = "1h"
"#;
        Config::parse(Path::new("t.toml"), text)
            .unwrap_or_else(|e| panic!("{e}"))
            .backup
            .unwrap()
    }

    fn seen(pairs: &[(&str, Option<i64>)], now: DateTime<Utc>) -> Vec<Freshness> {
        pairs
            .iter()
            .map(|(r, age)| Freshness {
                repository: r.to_string(),
                newest: age.map(|a| now - chrono::Duration::seconds(a)),
            })
            .collect()
    }

    #[test]
    fn two_fresh_repositories_on_another_offline_medium_comply() {
        let cfg = config();
        let now = Utc::now();
        let v = evaluate(
            &cfg,
            &cfg.sets[0],
            &seen(&[("main", Some(60)), ("usb", Some(60))], now),
            now,
        );
        assert!(v.compliant, "{v:?}");
        assert_eq!(v.copies, 3);
    }

    #[test]
    fn a_stale_copy_does_not_count() {
        let cfg = config();
        let now = Utc::now();
        let v = evaluate(
            &cfg,
            &cfg.sets[0],
            &seen(&[("main", Some(60)), ("usb", Some(7200))], now),
            now,
        );
        assert_eq!(v.reason, Reason::TooFewCopies);
        assert!(v.detail.contains("1h"), "{}", v.detail);
    }

    #[test]
    fn copies_on_one_medium_without_offsite_are_named() {
        let cfg = config();
        let now = Utc::now();
        let v = evaluate(
            &cfg,
            &cfg.sets[0],
            &seen(&[("main", Some(1)), ("same", Some(1))], now),
            now,
        );
        assert_eq!(v.reason, Reason::TooFewMedia);
    }
}
