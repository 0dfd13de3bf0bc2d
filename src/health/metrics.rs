//! Per-check metrics, named after blackbox_exporter's `probe_*` where meanings match, plus the threshold-aware state.

use std::time::UNIX_EPOCH;

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::{State, Tracker};
use crate::config::CheckSpec;
use crate::probe::runner::Observation;

pub struct CheckMetrics {
    success: IntGaugeVec,
    duration: HistogramVec,
    observations: IntCounterVec,
    state: IntGaugeVec,
    consecutive_failures: IntGaugeVec,
    cert_expiry: GaugeVec,
    chain_expiry: GaugeVec,
    heartbeat_age: GaugeVec,
    last_observation: GaugeVec,
    /// How late probes start against their schedule; one series for all checks.
    pub lateness: Histogram,
}

impl CheckMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<CheckMetrics> {
        let success = IntGaugeVec::new(
            Opts::new(
                "lantern_check_success",
                "Whether the check's last observation succeeded (1) or failed (0), like probe_success.",
            ),
            &["check", "kind"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "lantern_check_duration_seconds",
                "Duration of the last attempt of each observation.",
            )
            // Few buckets: this histogram exists once per check, and at
            // 10,000 checks every bucket is 10,000 series.
            .buckets(vec![0.01, 0.05, 0.25, 1.0, 5.0]),
            &["check"],
        )?;
        let observations = IntCounterVec::new(
            Opts::new(
                "lantern_check_observations_total",
                "Observations made, by check and result (success or failure).",
            ),
            &["check", "result"],
        )?;
        let state = IntGaugeVec::new(
            Opts::new(
                "lantern_check_state",
                "The check's threshold-aware state: 1 for the current one of UP, PENDING, DEGRADED, DOWN, MAINTENANCE.",
            ),
            &["check", "state"],
        )?;
        let consecutive_failures = IntGaugeVec::new(
            Opts::new(
                "lantern_check_consecutive_failures",
                "Failed observations in a row.",
            ),
            &["check"],
        )?;
        let cert_expiry = GaugeVec::new(
            Opts::new(
                "lantern_check_cert_expiry_timestamp_seconds",
                "When the certificate the target presented (the leaf) expires.",
            ),
            &["check"],
        )?;
        let chain_expiry = GaugeVec::new(
            Opts::new(
                "lantern_check_chain_expiry_timestamp_seconds",
                "Earliest expiry in the presented certificate chain, like probe_ssl_earliest_cert_expiry.",
            ),
            &["check"],
        )?;
        let heartbeat_age = GaugeVec::new(
            Opts::new(
                "lantern_check_heartbeat_age_seconds",
                "Seconds since a heartbeat check's last successful ping.",
            ),
            &["check"],
        )?;
        let last_observation = GaugeVec::new(
            Opts::new(
                "lantern_check_last_observation_timestamp_seconds",
                "When the check was last observed.",
            ),
            &["check"],
        )?;
        let lateness = Histogram::with_opts(
            HistogramOpts::new(
                "lantern_check_start_lateness_seconds",
                "How late observations start against their schedule.",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]),
        )?;
        registry.register(Box::new(success.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(observations.clone()))?;
        registry.register(Box::new(state.clone()))?;
        registry.register(Box::new(consecutive_failures.clone()))?;
        registry.register(Box::new(cert_expiry.clone()))?;
        registry.register(Box::new(chain_expiry.clone()))?;
        registry.register(Box::new(heartbeat_age.clone()))?;
        registry.register(Box::new(last_observation.clone()))?;
        registry.register(Box::new(lateness.clone()))?;
        Ok(CheckMetrics {
            success,
            duration,
            observations,
            state,
            consecutive_failures,
            cert_expiry,
            chain_expiry,
            heartbeat_age,
            last_observation,
            lateness,
        })
    }

    pub(super) fn observe(
        &self,
        spec: &CheckSpec,
        obs: &Observation,
        state: State,
        tracker: &Tracker,
    ) {
        let name = spec.name.as_str();
        self.success
            .with_label_values(&[name, spec.kind.name().as_str()])
            .set(obs.ok as i64);
        self.duration
            .with_label_values(&[name])
            .observe(obs.duration.as_secs_f64());
        self.observations
            .with_label_values(&[name, if obs.ok { "success" } else { "failure" }])
            .inc();
        for s in State::ALL {
            self.state
                .with_label_values(&[name, s.as_str()])
                .set((s == state) as i64);
        }
        self.consecutive_failures
            .with_label_values(&[name])
            .set(tracker.consecutive_failures() as i64);
        let ts = |t: std::time::SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        };
        if let Some(t) = obs.cert_expiry {
            self.cert_expiry.with_label_values(&[name]).set(ts(t));
        }
        if let Some(t) = obs.chain_expiry {
            self.chain_expiry.with_label_values(&[name]).set(ts(t));
        }
        if let Some(age) = obs.heartbeat_age {
            self.heartbeat_age.with_label_values(&[name]).set(age);
        }
        self.last_observation
            .with_label_values(&[name])
            .set(ts(obs.at));
    }

    /// Removes every series of a check that is no longer configured.
    pub(super) fn forget(&self, check: &str) {
        let by_check = [check];
        let _ = self.duration.remove_label_values(&by_check);
        let _ = self.consecutive_failures.remove_label_values(&by_check);
        let _ = self.cert_expiry.remove_label_values(&by_check);
        let _ = self.chain_expiry.remove_label_values(&by_check);
        let _ = self.heartbeat_age.remove_label_values(&by_check);
        let _ = self.last_observation.remove_label_values(&by_check);
        for s in State::ALL {
            let _ = self.state.remove_label_values(&[check, s.as_str()]);
        }
        for r in ["success", "failure"] {
            let _ = self.observations.remove_label_values(&[check, r]);
        }
        for k in crate::probe::KindName::ALL {
            let _ = self.success.remove_label_values(&[check, k.as_str()]);
        }
    }
}
