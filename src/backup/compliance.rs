//! The 3-2-1 verdict per set: three copies (live + two fresh repositories), two media, one off-site or offline; a failing verdict is an incident.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::config::{BackupConfig, SetSpec};
use crate::incident::{Raised, Raiser};

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
                "{copies} copies (live data + {} with a snapshot younger than {rpo_text}: {}); 3 needed",
                match fresh.len() {
                    1 => "1 repository".to_string(),
                    n => format!("{n} repositories"),
                },
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
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

/// The dedup key of a set's compliance incident: one open incident per set.
pub fn incident_key(set: &str) -> String {
    format!("backup:{set}")
}

/// Turns verdicts into incidents: a set that fails 3-2-1 raises
/// `backup:SET`, a compliant one clears it. Only the daemon has one (the
/// CLI judges without paging anyone).
pub struct Alerts {
    raiser: Raiser,
    /// The paging policy that health uses for a check naming none; `None`: no paging.
    policy: Option<String>,
    flap_window: Duration,
    /// Per set, the verdict last written (compliant, detail). Empty after a
    /// start or reload, so every set's first verdict is written: raising an
    /// open incident or clearing a closed one writes nothing, so a restart
    /// neither duplicates nor resolves and reopens.
    written: HashMap<String, (bool, String)>,
    swept: bool,
}

impl Alerts {
    pub fn new(raiser: Raiser, policy: Option<String>, flap_window: Duration) -> Alerts {
        Alerts {
            raiser,
            policy,
            flap_window,
            written: HashMap::new(),
            swept: false,
        }
    }

    /// Writes each verdict that differs from the one last written. The
    /// first call also resolves the incidents of sets no longer configured.
    pub async fn follow(&mut self, verdicts: &[Verdict]) {
        if !self.swept {
            self.swept = self.sweep(verdicts).await;
        }
        for v in verdicts {
            let now = (v.compliant, v.detail.clone());
            match self.written.get(&v.set) {
                // A compliant set's changing detail concerns no incident.
                Some(w) if (w.0 && v.compliant) || *w == now => continue,
                _ => {}
            }
            let key = incident_key(&v.set);
            let result = if v.compliant {
                self.raiser.clear(&key, v.detail.clone()).await
            } else {
                let r = Raised {
                    key,
                    title: format!("backup set {}: 3-2-1 not met", v.set),
                    reason: v.detail.clone(),
                    policy: self.policy.clone(),
                    at: std::time::SystemTime::now(),
                };
                self.raiser.raise(r, self.flap_window).await
            };
            match result {
                Ok(_) => {
                    self.written.insert(v.set.clone(), now);
                }
                // Not remembered as written: the next verdict tries again.
                Err(e) => {
                    tracing::error!(set = %v.set, error = %e, "cannot record the backup set's incident")
                }
            }
        }
    }

    /// Resolves open `backup:` incidents whose set is not among `verdicts`; true when done.
    async fn sweep(&self, verdicts: &[Verdict]) -> bool {
        let keys = match self.raiser.open_keys(&incident_key("")).await {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "cannot list open backup incidents");
                return false;
            }
        };
        let mut ok = true;
        for key in keys {
            if verdicts.iter().any(|v| incident_key(&v.set) == key) {
                continue;
            }
            let set = key.strip_prefix(&incident_key("")).unwrap_or(&key);
            let reason = format!("backup set {set} is no longer configured");
            if let Err(e) = self.raiser.clear(&key, reason).await {
                tracing::error!(key, error = %e, "cannot resolve a removed set's incident");
                ok = false;
            }
        }
        ok
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
