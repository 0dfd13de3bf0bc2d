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
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let at = SystemTime::now();
        let result = tokio::time::timeout(spec.timeout, spec.kind.probe(cx)).await;
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
        tokio::time::sleep(backoff).await;
    }
}
