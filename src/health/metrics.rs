//! Per-check metrics, named after blackbox_exporter's `probe_*` where meanings match, plus the threshold-aware state.
//!
//! Kept as one small record per check and rendered straight into the
//! exposition text, not as prometheus-crate children: at 10,000 checks the
//! crate's per-series storage and `Registry::gather` copy cost ~100 MB, this
//! costs a few. The render takes a snapshot under the lock and formats
//! outside it, so a scrape never stalls the checks recording results.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{Histogram, HistogramOpts, Registry};

use super::{State, Tracker};
use crate::config::CheckSpec;
use crate::probe::runner::Observation;

/// Upper bounds of `lantern_check_duration_seconds`; few, since every bucket is one series per check.
const BUCKETS: [f64; 5] = [0.01, 0.05, 0.25, 1.0, 5.0];

/// A gauge only some checks have: name, help, and how to read it.
type OptionalFamily = (&'static str, &'static str, fn(&Series) -> Option<f64>);

#[derive(Debug, Clone)]
struct Series {
    kind: &'static str,
    ok: bool,
    successes: u64,
    failures: u64,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    state: State,
    consecutive_failures: u32,
    cert_expiry: Option<f64>,
    chain_expiry: Option<f64>,
    heartbeat_age: Option<f64>,
    last: f64,
}

pub struct CheckMetrics {
    series: Mutex<BTreeMap<String, Series>>,
    /// How late probes start against their schedule; one series for all checks.
    pub lateness: Histogram,
}

fn ts(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl CheckMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<CheckMetrics> {
        let lateness = Histogram::with_opts(
            HistogramOpts::new(
                "lantern_check_start_lateness_seconds",
                "How late observations start against their schedule.",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]),
        )?;
        registry.register(Box::new(lateness.clone()))?;
        Ok(CheckMetrics {
            series: Mutex::default(),
            lateness,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Series>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn observe(
        &self,
        spec: &CheckSpec,
        obs: &Observation,
        state: State,
        tracker: &Tracker,
    ) {
        let mut map = self.lock();
        let s = map.entry(spec.name.clone()).or_insert_with(|| Series {
            kind: spec.kind.name().as_str(),
            ok: false,
            successes: 0,
            failures: 0,
            buckets: [0; BUCKETS.len()],
            sum: 0.0,
            state,
            consecutive_failures: 0,
            cert_expiry: None,
            chain_expiry: None,
            heartbeat_age: None,
            last: 0.0,
        });
        s.kind = spec.kind.name().as_str();
        s.ok = obs.ok;
        if obs.ok {
            s.successes += 1;
        } else {
            s.failures += 1;
        }
        let d = obs.duration.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if d <= *le {
                s.buckets[i] += 1;
            }
        }
        s.sum += d;
        s.state = state;
        s.consecutive_failures = tracker.consecutive_failures();
        s.cert_expiry = obs.cert_expiry.map(ts).or(s.cert_expiry);
        s.chain_expiry = obs.chain_expiry.map(ts).or(s.chain_expiry);
        s.heartbeat_age = obs.heartbeat_age.or(s.heartbeat_age);
        s.last = ts(obs.at);
    }

    /// Removes every series of a check that is no longer configured.
    pub(super) fn forget(&self, check: &str) {
        self.lock().remove(check);
    }

    /// Appends every check family to an exposition in the text format.
    pub fn render_into(&self, out: &mut String) {
        let snapshot: Vec<(String, Series)> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if snapshot.is_empty() {
            return;
        }
        out.reserve(snapshot.len() * 1200);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            out,
            "lantern_check_success",
            "gauge",
            "Whether the check's last observation succeeded (1) or failed (0), like probe_success.",
        );
        for (c, s) in &snapshot {
            let _ = writeln!(
                out,
                "lantern_check_success{{check=\"{c}\",kind=\"{}\"}} {}",
                s.kind, s.ok as u8
            );
        }
        family(
            out,
            "lantern_check_duration_seconds",
            "histogram",
            "Duration of the last attempt of each observation.",
        );
        for (c, s) in &snapshot {
            for (le, n) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "lantern_check_duration_seconds_bucket{{check=\"{c}\",le=\"{le}\"}} {n}"
                );
            }
            let count = s.successes + s.failures;
            let _ = writeln!(
                out,
                "lantern_check_duration_seconds_bucket{{check=\"{c}\",le=\"+Inf\"}} {count}\n\
                 lantern_check_duration_seconds_sum{{check=\"{c}\"}} {}\n\
                 lantern_check_duration_seconds_count{{check=\"{c}\"}} {count}",
                s.sum
            );
        }
        family(
            out,
            "lantern_check_observations_total",
            "counter",
            "Observations made, by check and result (success or failure).",
        );
        for (c, s) in &snapshot {
            let _ = writeln!(
                out,
                "lantern_check_observations_total{{check=\"{c}\",result=\"failure\"}} {}\n\
                 lantern_check_observations_total{{check=\"{c}\",result=\"success\"}} {}",
                s.failures, s.successes
            );
        }
        family(
            out,
            "lantern_check_state",
            "gauge",
            "The check's threshold-aware state: 1 for the current one of UP, PENDING, DEGRADED, DOWN, MAINTENANCE.",
        );
        for (c, s) in &snapshot {
            for st in State::ALL {
                let _ = writeln!(
                    out,
                    "lantern_check_state{{check=\"{c}\",state=\"{}\"}} {}",
                    st.as_str(),
                    (st == s.state) as u8
                );
            }
        }
        family(
            out,
            "lantern_check_consecutive_failures",
            "gauge",
            "Failed observations in a row.",
        );
        for (c, s) in &snapshot {
            let _ = writeln!(
                out,
                "lantern_check_consecutive_failures{{check=\"{c}\"}} {}",
                s.consecutive_failures
            );
        }
        let optional: [OptionalFamily; 3] = [
            (
                "lantern_check_cert_expiry_timestamp_seconds",
                "When the certificate the target presented (the leaf) expires.",
                |s| s.cert_expiry,
            ),
            (
                "lantern_check_chain_expiry_timestamp_seconds",
                "Earliest expiry in the presented certificate chain, like probe_ssl_earliest_cert_expiry.",
                |s| s.chain_expiry,
            ),
            (
                "lantern_check_heartbeat_age_seconds",
                "Seconds since a heartbeat check's last successful ping.",
                |s| s.heartbeat_age,
            ),
        ];
        for (name, help, get) in optional {
            if !snapshot.iter().any(|(_, s)| get(s).is_some()) {
                continue;
            }
            family(out, name, "gauge", help);
            for (c, s) in &snapshot {
                if let Some(v) = get(s) {
                    let _ = writeln!(out, "{name}{{check=\"{c}\"}} {v}");
                }
            }
        }
        family(
            out,
            "lantern_check_last_observation_timestamp_seconds",
            "gauge",
            "When the check was last observed.",
        );
        for (c, s) in &snapshot {
            let _ = writeln!(
                out,
                "lantern_check_last_observation_timestamp_seconds{{check=\"{c}\"}} {}",
                s.last
            );
        }
    }
}
