//! Watch the watcher: ping an external dead man's switch only while the engine ticks and the outbox drains.
//!
//! The switch pages someone when the pings stop, so lantern withholds them
//! whenever it could not page itself: a stalled engine, a stalled pager, or
//! pages waiting longer than `STUCK` in the outbox.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::outbox;
use super::pager::Pager;
use crate::config::Config;
use crate::engine::Readiness;
use crate::store::to_ms;

/// Pages waiting longer than this mean the outbox is not draining.
const STUCK: Duration = Duration::from_secs(300);

/// Whether lantern is fit to say "all is well": the reason if it is not.
pub fn withhold_reason(
    since_tick: Option<Duration>,
    tick_interval: Duration,
    pager_cycle_age: Duration,
    pager_tick: Duration,
    oldest_waiting: Option<Duration>,
) -> Option<String> {
    match since_tick {
        None => return Some("the engine has not ticked yet".into()),
        Some(t) if t > tick_interval * 3 + Duration::from_secs(1) => {
            return Some(format!("the engine last ticked {}s ago", t.as_secs()));
        }
        _ => {}
    }
    if pager_cycle_age > pager_tick * 3 + Duration::from_secs(5) {
        return Some(format!(
            "the pager last cycled {}s ago",
            pager_cycle_age.as_secs()
        ));
    }
    if let Some(age) = oldest_waiting
        && age > STUCK
    {
        return Some(format!(
            "a page has waited {}s in the outbox",
            age.as_secs()
        ));
    }
    None
}

pub async fn run(
    pager: Pager,
    readiness: Readiness,
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    loop {
        let cfg = config.borrow().clone();
        let (interval, url, pager_tick) = match cfg.paging.as_ref() {
            Some(p) => (p.heartbeat_interval, p.heartbeat_url.clone(), p.tick),
            None => (Duration::from_secs(60), None, Duration::from_secs(1)),
        };
        if let Some(url) = url {
            let now = to_ms(SystemTime::now());
            let cycle_age = Duration::from_millis(
                (now - pager.last_cycle_ms.load(Ordering::Acquire)).max(0) as u64,
            );
            let oldest = outbox::depth(&pager.store)
                .await
                .ok()
                .and_then(|(_, o)| o)
                .map(|o| Duration::from_millis((now - o).max(0) as u64));
            match withhold_reason(
                readiness.since_last_tick(),
                cfg.daemon.tick_interval,
                cycle_age,
                pager_tick,
                oldest,
            ) {
                Some(why) => {
                    pager
                        .metrics
                        .watcher_pings
                        .with_label_values(&["withheld"])
                        .inc();
                    tracing::warn!(reason = %why, "not pinging the external heartbeat");
                }
                None => match http.get(url.expose()).send().await {
                    Ok(r) if r.status().is_success() => {
                        pager
                            .metrics
                            .watcher_pings
                            .with_label_values(&["sent"])
                            .inc();
                    }
                    // The URL is a credential: log the status, never the URL.
                    Ok(r) => {
                        pager
                            .metrics
                            .watcher_pings
                            .with_label_values(&["failed"])
                            .inc();
                        tracing::warn!(status = %r.status(), "the external heartbeat refused the ping");
                    }
                    Err(e) => {
                        pager
                            .metrics
                            .watcher_pings
                            .with_label_values(&["failed"])
                            .inc();
                        tracing::warn!(error = %e.without_url(), "cannot ping the external heartbeat");
                    }
                },
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ping_is_withheld_when_the_engine_or_the_outbox_is_stuck() {
        let s = Duration::from_secs;
        assert_eq!(withhold_reason(Some(s(1)), s(1), s(1), s(1), None), None);
        assert!(withhold_reason(None, s(1), s(1), s(1), None).is_some());
        assert!(
            withhold_reason(Some(s(30)), s(1), s(1), s(1), None)
                .unwrap()
                .contains("engine")
        );
        assert!(
            withhold_reason(Some(s(1)), s(1), s(60), s(1), None)
                .unwrap()
                .contains("pager")
        );
        assert!(
            withhold_reason(Some(s(1)), s(1), s(1), s(1), Some(s(600)))
                .unwrap()
                .contains("outbox")
        );
        assert_eq!(
            withhold_reason(Some(s(1)), s(1), s(1), s(1), Some(s(10))),
            None
        );
    }
}
