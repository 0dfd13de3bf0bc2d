//! One observation of a check: attempts with backoff inside the timeout, then the check's conditions.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::ProbeContext;
use crate::config::CheckSpec;

/// The outcome of one observation (one scheduled run, with its retries).
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    #[serde(with = "crate::store::time_ms")]
    pub at: SystemTime,
    pub ok: bool,
    /// Time of the last attempt, the one the result comes from.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    pub attempts: u32,
    /// Why it failed: the probe's error or the first condition that did not hold.
    pub reason: Option<String>,
    #[serde(serialize_with = "time_opt")]
    pub cert_expiry: Option<SystemTime>,
    #[serde(serialize_with = "time_opt")]
    pub chain_expiry: Option<SystemTime>,
    pub heartbeat_age: Option<f64>,
}

fn time_opt<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => crate::store::time_ms::serialize(t, s),
        None => s.serialize_none(),
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Runs the check once, retrying failed attempts (`retries`, with doubling
/// `retry-backoff`) so a lost packet costs a retry, not a failure.
pub async fn observe(spec: &CheckSpec, cx: &ProbeContext) -> Observation {
    let first = tokio::time::Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let at = SystemTime::now();
        // Boxed: the largest kind's future would otherwise be inlined into
        // every check task, idle or not (~4 KiB each at 10,000 checks).
        let result = tokio::time::timeout(spec.timeout, Box::pin(spec.kind.probe(cx))).await;
        let duration = started.elapsed();
        let mut obs = Observation {
            at,
            ok: false,
            duration,
            attempts: attempt,
            reason: None,
            cert_expiry: None,
            chain_expiry: None,
            heartbeat_age: None,
        };
        match result {
            Err(_) => {
                obs.reason = Some(format!(
                    "timed out after {}",
                    humantime::format_duration(spec.timeout)
                ))
            }
            Ok(Err(e)) => obs.reason = Some(e),
            Ok(Ok(facts)) => {
                obs.cert_expiry = facts.cert_expiry;
                obs.chain_expiry = facts.chain_expiry;
                obs.heartbeat_age = facts.age_seconds;
                obs.reason = spec
                    .conditions
                    .iter()
                    .find_map(|c| c.evaluate(&facts, duration).err());
                obs.ok = obs.reason.is_none();
            }
        }
        if obs.ok || attempt > spec.retries {
            return obs;
        }
        let backoff = spec
            .retry_backoff
            .saturating_mul(1 << (attempt - 1).min(10));
        // Retries live inside one interval: one that could not finish before
        // the next scheduled observation is not started.
        if first.elapsed() + backoff + spec.timeout > spec.interval {
            return obs;
        }
        tokio::time::sleep(backoff).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::probe::heartbeat::Pings;

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_and_stop_before_the_next_interval() {
        let cfg = Config::parse(
            std::path::Path::new("t.toml"),
            r#"
[[checks]]
name = "job"
kind = "heartbeat"
period = "1s"
grace = "0s"
interval = "10s"
timeout = "1s"
retries = 5
retry-backoff = "1s"
"#,
        )
        .unwrap();
        let spec = &cfg.checks[0];
        let cx = ProbeContext::standalone("job", spec.timeout);
        // Overdue from the start, so every attempt fails without I/O.
        cx.heartbeats.set(
            "job",
            Pings::new(SystemTime::now() - Duration::from_secs(60)),
        );
        let start = tokio::time::Instant::now();
        let obs = observe(spec, &cx).await;
        assert!(!obs.ok);
        // Attempts at 0, 1, 3 and 7 s (backoff 1, 2, 4); an 8 s backoff would
        // run past the 10 s interval, so the fifth attempt is not made.
        assert_eq!(obs.attempts, 4);
        assert_eq!(start.elapsed().as_secs(), 7);
    }
}
