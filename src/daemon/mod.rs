//! The daemon: builds every part from a validated config, runs them under one token, drains on shutdown.
//!
//! Shutdown order: the root token is cancelled (SIGTERM/SIGINT in `main`, or a
//! test); systemd is told STOPPING; the HTTP server stops accepting and
//! finishes in-flight requests while the engine and the other loops return at
//! their next await; the task tracker is given `daemon.grace-period` to empty;
//! then the store records a clean stop. The unit's `TimeoutStopSec` is longer
//! than the default grace so systemd never kills a drain that is on time.

mod reload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::engine::{self, Readiness};
use crate::health::{CheckMetrics, Health, persist, scheduler};
use crate::incident::{self, IncidentMetrics};
use crate::metrics::{HostMetrics, Metrics};
use crate::probe::{self, heartbeat};
use crate::status::Status;
use crate::store::Store;
use crate::{http, notify};

pub use reload::ReloadRequest;

/// Everything `run` needs from outside: the world it runs in, passed in so a
/// test can start a whole daemon on `127.0.0.1:0` and stop it on purpose.
pub struct Launch {
    pub config: Config,
    pub listener: TcpListener,
    pub shutdown: CancellationToken,
    /// `--listen` from the command line; it stays in force across reloads.
    pub listen_override: Option<SocketAddr>,
}

/// Runs until `shutdown` is cancelled, then drains. Returns an error when the
/// daemon cannot start (store, metrics) or could not drain in time.
pub async fn run(launch: Launch) -> anyhow::Result<()> {
    let Launch {
        config,
        listener,
        shutdown,
        listen_override,
    } = launch;
    let metrics = Arc::new(Metrics::new().context("cannot register metrics")?);
    metrics.record_config_load(true);
    let state_dir = config.daemon.state_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&state_dir)).await??;
    let readiness = Readiness::default();
    readiness.set_store_open(true);
    let (run_id, unclean) = store.record_start(env!("CARGO_PKG_VERSION")).await?;
    if unclean {
        tracing::warn!("the previous run did not stop cleanly (crash, kill -9 or power loss)");
    }
    tracing::info!(store = %store.path().display(), "state store open");
    let host = HostMetrics::new(&metrics.registry).context("cannot register host metrics")?;
    let check_metrics =
        Arc::new(CheckMetrics::new(&metrics.registry).context("cannot register check metrics")?);
    let incident_metrics = Arc::new(
        IncidentMetrics::new(&metrics.registry).context("cannot register incident metrics")?,
    );
    // Flips are rare (a state change, not every probe); the bound only keeps
    // a wedged store from growing memory without limit.
    let (flip_tx, flip_rx) = mpsc::channel(4096);
    let health = Health::new(flip_tx, check_metrics);
    health.set_windows(
        persist::load_windows(&store)
            .await
            .context("cannot read maintenance windows")?,
    );
    let heartbeats = heartbeat::Book::default();
    for (name, pings) in persist::load_heartbeats(&store)
        .await
        .context("cannot read heartbeats")?
    {
        heartbeats.set(&name, pings);
    }
    let signer = crate::page::ack::Signer::load(
        config.paging.as_ref().and_then(|p| p.ack_secret.as_ref()),
        &config.daemon.state_dir,
    )
    .context("cannot read or create the acknowledgement key")?;
    let page_metrics = Arc::new(
        crate::page::metrics::PageMetrics::new(&metrics.registry)
            .context("cannot register paging metrics")?,
    );
    let pager = crate::page::pager::Pager::new(store.clone(), signer, page_metrics);
    let status = Status::load(store.clone())
        .await
        .context("cannot read the status mode")?;

    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let tracker = TaskTracker::new();

    tracker.spawn(engine::run(
        config_rx.clone(),
        metrics.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(crate::metrics::host::run(
        host,
        config_rx.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(reload::run(
        reload::Reloader {
            config: config_tx,
            metrics: metrics.clone(),
            store: store.clone(),
            listen_override,
        },
        reload_rx,
        shutdown.clone(),
    ));
    tracker.spawn(reload::on_sighup(reload_tx.clone(), shutdown.clone()));
    tracker.spawn(notify::watchdog(readiness.clone(), shutdown.clone()));
    tracker.spawn(crate::backup::run(
        store.clone(),
        metrics.clone(),
        config_rx.clone(),
        incident::Raiser::new(store.clone(), incident_metrics.clone(), pager.wake.clone()),
        shutdown.clone(),
    ));

    let addr = listener.local_addr()?;
    tracker.spawn(incident::run(
        flip_rx,
        store.clone(),
        config_rx.clone(),
        incident_metrics,
        pager.wake.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(crate::page::pager::run(
        pager.clone(),
        health.clone(),
        config_rx.clone(),
        addr,
        shutdown.clone(),
    ));
    tracker.spawn(crate::page::watcher::run(
        pager.clone(),
        readiness.clone(),
        config_rx.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(scheduler::run(
        config_rx.clone(),
        scheduler::Shared {
            health: health.clone(),
            http: probe::http::Clients::default(),
            heartbeats: heartbeats.clone(),
            self_addr: addr,
        },
        tracker.clone(),
        shutdown.clone(),
    ));
    let app = http::router(http::AppState {
        config: config_rx.clone(),
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        reload: reload_tx,
        started_at: SystemTime::now(),
        store: store.clone(),
        health,
        heartbeats,
        status,
        pager,
    });
    let server_token = shutdown.clone();
    let server = tracker.spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(server_token.clone().cancelled_owned())
            .await;
        if result.is_err() {
            // Without its server lantern is blind and mute: stop rather than limp.
            server_token.cancel();
        }
        result
    });
    tracing::info!("listening on http://{addr}");

    tokio::select! {
        _ = readiness.first_tick() => notify::ready(),
        _ = shutdown.cancelled() => {}
    }
    shutdown.cancelled().await;
    notify::stopping();
    tracing::info!("shutting down");

    tracker.close();
    let grace = config_rx.borrow().daemon.grace_period;
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        anyhow::bail!(
            "tasks did not finish within the grace period of {}",
            humantime::format_duration(grace)
        );
    }
    store.record_stop(run_id).await?;
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context("HTTP server failed")),
        Err(e) => Err(anyhow::Error::new(e).context("HTTP server task failed")),
    }
}
