//! systemd notifications: READY, RELOADING, STOPPING, and a watchdog that pings only while the engine ticks.
//!
//! Every call is a no-op without `NOTIFY_SOCKET`, so the same binary runs under
//! systemd, in a terminal and in tests. A failed send is logged, never fatal:
//! the service manager being away must not take lantern down.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::engine::Readiness;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Startup finished: the listener is bound, the store open, the engine running.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("running")]);
}

/// A reload began. systemd 253+ requires the monotonic timestamp with it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// Shutdown began; systemd now waits up to `TimeoutStopSec` for us to exit.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Pings `WATCHDOG=1` at half the interval systemd asked for, but only while
/// the engine has ticked within that interval: a wedged engine then lets the
/// watchdog fire and systemd restarts us, which is the point of having one.
pub async fn watchdog(readiness: Readiness, shutdown: CancellationToken) {
    let Some(limit) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = (limit / 2).max(Duration::from_millis(10));
    tracing::info!(interval = ?limit, "systemd watchdog enabled");
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {
                match readiness.since_last_tick() {
                    Some(age) if age <= limit => send(&[NotifyState::Watchdog]),
                    age => tracing::warn!(?age, "engine has not ticked recently; withholding the watchdog ping"),
                }
            }
        }
    }
}
