//! The pager task: on every tick (or at once when woken), advance due escalations, handovers and promises, then drain the outbox.
//!
//! Sends run on their own tasks so one hanging receiver never delays
//! another page; a claimed row is `sending` until its outcome is recorded.
//! A channel that keeps failing gets its page copied to the fallback
//! channel (once), so a broken robot does not mean silence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::ack::Signer;
use super::metrics::PageMetrics;
use super::outbox::{self, Recorded};
use super::{Outcome, escalation, handover, promise};
use crate::config::Config;
use crate::store::{Store, to_ms};

/// What the pager shares with the API (acks, handover notes, test pages).
#[derive(Clone)]
pub struct Pager {
    pub store: Store,
    pub signer: Signer,
    pub metrics: Arc<PageMetrics>,
    /// Wakes the pager now instead of at its next tick (an incident just opened).
    pub wake: Arc<Notify>,
    /// Unix ms of the last completed cycle, for the watcher.
    pub last_cycle_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl Pager {
    pub fn new(store: Store, signer: Signer, metrics: Arc<PageMetrics>) -> Pager {
        Pager {
            store,
            signer,
            metrics,
            wake: Arc::new(Notify::new()),
            last_cycle_ms: Arc::default(),
        }
    }
}

/// lantern's host name, as pages name their source.
pub fn source() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lantern".into())
}

/// The base of acknowledgement links: `paging.public-url`, else lantern's own address.
pub fn base_url(config: &Config, self_addr: std::net::SocketAddr) -> String {
    config
        .paging
        .as_ref()
        .and_then(|p| p.public_url.clone())
        .unwrap_or_else(|| format!("http://{self_addr}"))
}

pub async fn run(
    pager: Pager,
    health: crate::health::Health,
    config: watch::Receiver<Arc<Config>>,
    self_addr: std::net::SocketAddr,
    shutdown: CancellationToken,
) {
    match outbox::recover(&pager.store).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            rows = n,
            "pages left sending by the last run are sent again"
        ),
        Err(e) => tracing::error!(error = %e, "cannot recover the outbox"),
    }
    let http = reqwest::Client::builder()
        .user_agent(concat!("lantern/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let sends = TaskTracker::new();
    let source = source();
    // Consecutive temporary failures per channel, for the fallback.
    let failing: Arc<std::sync::Mutex<HashMap<String, u32>>> = Arc::default();
    loop {
        let cfg = config.borrow().clone();
        let tick = cfg
            .paging
            .as_ref()
            .map_or(Duration::from_secs(1), |p| p.tick);
        if let Some(paging) = cfg.paging.as_ref() {
            let base = base_url(&cfg, self_addr);
            let not_up: Vec<String> = health
                .views(&cfg)
                .into_iter()
                .filter(|v| !v.state.is_serving())
                .map(|v| {
                    format!(
                        "- {} {} {}",
                        v.name,
                        v.state.as_str(),
                        v.last.and_then(|l| l.reason).unwrap_or_default()
                    )
                })
                .collect();
            let cx = escalation::Ctx {
                not_up: &not_up,
                config: &cfg,
                paging,
                signer: &pager.signer,
                base_url: &base,
                source: &source,
            };
            let now = SystemTime::now();
            match escalation::tick(&pager.store, &cx, now).await {
                Ok(f) => {
                    pager.metrics.escalations.inc_by(f.steps as u64);
                    pager.metrics.nobody_on_duty.inc_by(f.nobody_on_duty as u64);
                }
                Err(e) => tracing::error!(error = %e, "escalation tick failed"),
            }
            if let Err(e) = handover::tick(&pager.store, &cx, now).await {
                tracing::error!(error = %e, "handover tick failed");
            }
            if let Err(e) = promise::tick(&pager.store, &cx, now).await {
                tracing::error!(error = %e, "promise tick failed");
            }
            drain(&pager, &cfg, &http, &sends, &failing, &source).await;
        }
        if let Ok((depth, oldest)) = outbox::depth(&pager.store).await {
            pager.metrics.outbox_depth.set(depth);
            let age = oldest.map_or(0.0, |o| {
                (to_ms(SystemTime::now()) - o).max(0) as f64 / 1000.0
            });
            pager.metrics.outbox_oldest_age.set(age);
        }
        pager.last_cycle_ms.store(
            to_ms(SystemTime::now()),
            std::sync::atomic::Ordering::Release,
        );
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
            _ = pager.wake.notified() => {}
        }
    }
    // Sends in flight finish (each has its own timeout) so their outcome is recorded.
    sends.close();
    sends.wait().await;
}

async fn drain(
    pager: &Pager,
    cfg: &Arc<Config>,
    http: &reqwest::Client,
    sends: &TaskTracker,
    failing: &Arc<std::sync::Mutex<HashMap<String, u32>>>,
    source: &str,
) {
    let Some(paging) = cfg.paging.as_ref() else {
        return;
    };
    let now_ms = to_ms(SystemTime::now());
    let limits: Vec<(String, u32, Duration)> = cfg
        .channels
        .iter()
        .filter_map(|c| c.rate_limit().map(|(n, w)| (c.name.clone(), n, w)))
        .collect();
    match outbox::bundle_over_limit(&pager.store, limits, now_ms, source.to_string()).await {
        Ok(0) => {}
        Ok(n) => pager
            .metrics
            .messages
            .with_label_values(&["-", "bundled"])
            .inc_by(n as u64),
        Err(e) => tracing::error!(error = %e, "cannot bundle pages"),
    }
    let claimed = match outbox::claim_due(&pager.store, now_ms, 100, Duration::from_secs(120)).await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the outbox");
            return;
        }
    };
    for row in claimed {
        let Some(channel) = cfg.channels.iter().find(|c| c.name == row.channel).cloned() else {
            let _ = outbox::record(
                &pager.store,
                row.id,
                Outcome::Permanent {
                    reason: format!("no channel is named `{}` any more", row.channel),
                },
                1,
                0.5,
            )
            .await;
            continue;
        };
        let pager = pager.clone();
        let http = http.clone();
        let failing = failing.clone();
        let max_attempts = paging.max_attempts;
        let fallback = paging.fallback_channel.clone();
        let fallback_after = paging.fallback_after;
        sends.spawn(async move {
            let outcome = channel.send(&row.message, &http).await;
            let label = channel.name.as_str();
            let jitter = jitter();
            let recorded = match outbox::record(&pager.store, row.id, outcome.clone(), max_attempts, jitter).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot record a page's outcome; it will be sent again");
                    return;
                }
            };
            let streak = {
                let mut f = failing.lock().unwrap_or_else(|p| p.into_inner());
                let n = f.entry(row.channel.clone()).or_insert(0);
                if recorded == Recorded::Sent {
                    *n = 0;
                } else {
                    *n += 1;
                }
                *n
            };
            match &recorded {
                Recorded::Sent => {
                    pager.metrics.messages.with_label_values(&[label, "sent"]).inc();
                    tracing::info!(channel = label, row = row.id, title = %row.message.display_title(), "page delivered");
                }
                Recorded::Retry { .. } => {
                    pager.metrics.messages.with_label_values(&[label, "retried"]).inc();
                    tracing::warn!(channel = label, row = row.id, outcome = ?outcome, "page not delivered; will retry");
                }
                Recorded::Failed { permanent, reason } => {
                    pager.metrics.messages.with_label_values(&[label, "failed"]).inc();
                    tracing::error!(channel = label, row = row.id, permanent, reason = %reason, "page failed");
                }
            }
            // A channel that keeps failing (or failed for good) hands this page
            // to the fallback channel once, so a broken robot is not silence.
            let hand_over = match &recorded {
                Recorded::Failed { .. } => true,
                Recorded::Retry { .. } => streak >= fallback_after,
                Recorded::Sent => false,
            };
            if let (true, Some(fb), None) = (hand_over, fallback, row.fallback_of)
                && fb != row.channel {
                    let original = row.id;
                    let mut msg = row.message.clone();
                    msg.text.push_str(&format!(
                        "\n(via fallback: channel `{}` is failing / 主通道 {} 发送失败)\n",
                        row.channel, row.channel
                    ));
                    let store = pager.store.clone();
                    let queued = store
                        .call(move |c| {
                            let already: i64 = c.query_row(
                                "SELECT count(*) FROM outbox WHERE fallback_of = ?1",
                                [original],
                                |r| r.get(0),
                            )?;
                            if already == 0 {
                                outbox::enqueue(c, &fb, &msg, to_ms(SystemTime::now()), Some(original))?;
                            }
                            Ok(already == 0)
                        })
                        .await;
                    if matches!(queued, Ok(true)) {
                        pager.metrics.messages.with_label_values(&[label, "fallback"]).inc();
                        pager.wake.notify_one();
                    }
                }
        });
    }
}

/// A jitter factor in [0, 1) from the clock's nanoseconds: enough to spread retries.
fn jitter() -> f64 {
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (n % 1000) as f64 / 1000.0
}
