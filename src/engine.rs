//! The engine tick: the one clock that drives due work (later: escalations, timers, schedules) and proves liveness.
//!
//! Timed work is stored as rows with due times and picked up here, never held
//! only in an in-memory sleep, so a restart loses nothing. The tick also feeds
//! `/-/ready`, the watchdog and `lantern_engine_last_tick_timestamp_seconds`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::{Metrics, unix_now_f64};

/// What `/-/ready` and the watchdog read: is the store open, and when did the engine last tick.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

struct ReadinessInner {
    epoch: Instant,
    store_open: AtomicBool,
    /// Milliseconds since `epoch` at the last tick, plus one; 0 means never.
    last_tick: AtomicU64,
    first_tick: tokio::sync::Notify,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            inner: Arc::new(ReadinessInner {
                epoch: Instant::now(),
                store_open: AtomicBool::new(false),
                last_tick: AtomicU64::new(0),
                first_tick: tokio::sync::Notify::new(),
            }),
        }
    }
}

impl Readiness {
    pub fn set_store_open(&self, open: bool) {
        self.inner.store_open.store(open, Ordering::Release);
    }

    pub fn store_open(&self) -> bool {
        self.inner.store_open.load(Ordering::Acquire)
    }

    fn record_tick(&self) {
        let ms = self.inner.epoch.elapsed().as_millis() as u64 + 1;
        if self.inner.last_tick.swap(ms, Ordering::AcqRel) == 0 {
            // notify_one keeps a permit, so a waiter that arrives late still wakes.
            self.inner.first_tick.notify_one();
        }
    }

    /// Waits for the engine's first tick (one waiter: the daemon, before READY=1).
    pub async fn first_tick(&self) {
        if self.since_last_tick().is_none() {
            self.inner.first_tick.notified().await;
        }
    }

    /// How long ago the engine last ticked; `None` before the first tick.
    pub fn since_last_tick(&self) -> Option<Duration> {
        match self.inner.last_tick.load(Ordering::Acquire) {
            0 => None,
            ms => Some(
                self.inner
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms - 1)),
            ),
        }
    }

    /// Ready to serve: the store is open and the engine has ticked at least once.
    pub fn is_ready(&self) -> bool {
        self.store_open() && self.since_last_tick().is_some()
    }
}

/// Runs ticks every `daemon.tick-interval` until `shutdown`; the interval
/// follows config reloads.
pub async fn run(
    mut config: watch::Receiver<Arc<Config>>,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let mut period = config.borrow().daemon.tick_interval;
    let mut ticker = ticker(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = config.changed() => {
                if changed.is_err() { return }
                let new = config.borrow_and_update().daemon.tick_interval;
                if new != period {
                    period = new;
                    ticker = self::ticker(period);
                }
            }
            _ = ticker.tick() => {
                tick(&metrics, &readiness);
            }
        }
    }
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(period);
    // After a stall, run one tick and carry on at the normal pace instead of a burst.
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

fn tick(metrics: &Metrics, readiness: &Readiness) {
    metrics.engine_last_tick_timestamp.set(unix_now_f64());
    readiness.record_tick();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_make_the_daemon_ready_and_follow_the_interval() {
        let cfg = Arc::new(
            Config::parse(
                std::path::Path::new("t.toml"),
                "[daemon]\ntick-interval = \"1s\"\n",
            )
            .unwrap(),
        );
        let (_tx, rx) = watch::channel(cfg);
        let metrics = Arc::new(Metrics::new().unwrap());
        let readiness = Readiness::default();
        readiness.set_store_open(true);
        assert!(!readiness.is_ready());
        let token = CancellationToken::new();
        let task = tokio::spawn(run(rx, metrics.clone(), readiness.clone(), token.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(readiness.is_ready(), "the first tick is immediate");
        assert!(metrics.engine_last_tick_timestamp.get() > 0.0);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(readiness.since_last_tick().unwrap() < Duration::from_secs(1));
        token.cancel();
        task.await.unwrap();
    }
}
