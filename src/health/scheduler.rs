//! The scheduler: one task per check, observing at a fixed rate and confirming suspect failures quickly.
//!
//! Each check runs on its own task so a slow target (up to its timeout)
//! never delays another. Start times are spread evenly over the first
//! interval so thousands of checks do not fire at once. The schedule is
//! fixed-rate (the next start is the last *scheduled* start plus the
//! interval, not the end of the probe plus the interval), so probes do not
//! drift; a failed observation below the failure threshold brings the next
//! one forward to `confirm-interval`, so an outage is confirmed (or a blip
//! cleared) in a fraction of the interval. A config reload restarts the
//! tasks; health state, kept by check name, carries over.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Health;
use crate::config::{CheckSpec, Config};
use crate::probe::{ProbeContext, heartbeat, http, runner};

/// What every check task shares.
#[derive(Clone)]
pub struct Shared {
    pub health: Health,
    pub http: http::Clients,
    pub heartbeats: heartbeat::Book,
    pub self_addr: std::net::SocketAddr,
}

/// Runs every configured check until `shutdown`, restarting them on reload.
pub async fn run(
    mut config: watch::Receiver<Arc<Config>>,
    shared: Shared,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let current = config.borrow_and_update().clone();
        shared.health.retain(&current);
        let generation = shutdown.child_token();
        let n = current.checks.len().max(1) as u32;
        for (i, spec) in current.checks.iter().enumerate() {
            // Spread the first runs over the check's interval: check i of n starts at i/n.
            let offset = spec.interval.mul_f64(i as f64 / n as f64);
            tracker.spawn(check_loop(
                i,
                current.clone(),
                shared.clone(),
                offset,
                generation.clone(),
            ));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = config.changed() => {
                generation.cancel();
                if changed.is_err() { return }
            }
        }
    }
}

/// Check `index` of `config`: the task shares the config instead of copying its spec.
async fn check_loop(
    index: usize,
    config: Arc<Config>,
    shared: Shared,
    offset: Duration,
    stop: CancellationToken,
) {
    let spec: &CheckSpec = &config.checks[index];
    let cx = ProbeContext {
        check: spec.name.clone(),
        timeout: spec.timeout,
        self_addr: shared.self_addr,
        http: shared.http.clone(),
        heartbeats: shared.heartbeats.clone(),
    };
    let mut due = Instant::now() + offset;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        let started = Instant::now();
        shared
            .health
            .metrics()
            .lateness
            .observe(started.saturating_duration_since(due).as_secs_f64());
        let obs = tokio::select! {
            _ = stop.cancelled() => return,
            obs = runner::observe(spec, &cx) => obs,
        };
        let suspect = shared.health.record(spec, &config, obs).await;
        let step = if suspect {
            spec.confirm_interval.min(spec.interval)
        } else {
            spec.interval
        };
        due += step;
        // After a probe that overran its slot, start the next one now rather
        // than firing a burst of catch-up probes.
        let now = Instant::now();
        if due < now {
            due = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{CheckMetrics, State};
    use tokio::sync::mpsc;

    fn setup(text: &str) -> (Arc<Config>, Shared, mpsc::Receiver<super::super::Flip>) {
        let cfg = Arc::new(Config::parse(std::path::Path::new("t.toml"), text).unwrap());
        let (tx, rx) = mpsc::channel(64);
        let metrics = Arc::new(CheckMetrics::new(&prometheus::Registry::new()).unwrap());
        let shared = Shared {
            health: Health::new(tx, metrics),
            http: http::Clients::default(),
            heartbeats: heartbeat::Book::default(),
            self_addr: "127.0.0.1:9".parse().unwrap(),
        };
        (cfg, shared, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_confirmed_at_the_confirm_interval_and_the_next_probe_keeps_the_rate() {
        // A heartbeat that is overdue from the start fails without any I/O,
        // so paused time measures the scheduler alone.
        let (cfg, shared, mut rx) = setup(
            r#"
[[checks]]
name = "nightly"
kind = "heartbeat"
period = "1s"
grace = "0s"
interval = "10s"
confirm-interval = "1s"
failure-threshold = 2
"#,
        );
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        shared
            .heartbeats
            .set("nightly", heartbeat::Pings::new(long_ago));
        let (_tx, cfg_rx) = watch::channel(cfg);
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        let start = Instant::now();
        tracker.spawn(run(cfg_rx, shared.clone(), tracker.clone(), token.clone()));
        // t = 0: one failure is only suspect (PENDING, as before: no flip).
        let down = rx.recv().await.unwrap();
        assert_eq!((down.from, down.to), (State::Pending, State::Down));
        assert_eq!(
            start.elapsed().as_secs(),
            1,
            "confirmed a second later, not ten"
        );
        // The job pings; the next regular observation (t = 11 s) sees it.
        shared.heartbeats.record(
            "nightly",
            heartbeat::Ping::Success,
            std::time::SystemTime::now(),
        );
        let up = rx.recv().await.unwrap();
        assert_eq!(up.to, State::Up);
        assert_eq!(start.elapsed().as_secs(), 11);
        token.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
