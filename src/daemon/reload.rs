//! Config reload: on SIGHUP or `POST /api/v1/reload`, re-read, validate, and swap; a bad file changes nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::notify;
use crate::store::Store;

/// One reload; `reply` carries the outcome back to an API caller.
pub struct ReloadRequest {
    pub reply: Option<oneshot::Sender<Result<(), String>>>,
}

pub(super) struct Reloader {
    pub config: watch::Sender<Arc<Config>>,
    pub metrics: Arc<Metrics>,
    pub store: Store,
    pub listen_override: Option<SocketAddr>,
}

/// Serves reload requests one at a time until shutdown.
pub(super) async fn run(
    r: Reloader,
    mut requests: mpsc::Receiver<ReloadRequest>,
    shutdown: CancellationToken,
) {
    loop {
        let request = tokio::select! {
            _ = shutdown.cancelled() => return,
            req = requests.recv() => match req { Some(req) => req, None => return },
        };
        notify::reloading();
        let outcome = r.reload().await;
        notify::ready();
        if let Some(reply) = request.reply {
            let _ = reply.send(outcome);
        }
    }
}

impl Reloader {
    async fn reload(&self) -> Result<(), String> {
        let path = self.config.borrow().source.clone();
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|e| format!("reload task failed: {e}"))
            .and_then(|r| r.map_err(|e| e.to_string()));
        match loaded {
            Ok(mut new) => {
                if let Some(listen) = self.listen_override {
                    new.server.listen = listen;
                }
                let old = self.config.borrow().clone();
                if new.server.listen != old.server.listen {
                    tracing::warn!(old = %old.server.listen, new = %new.server.listen, "server.listen changed; it takes effect at the next restart");
                }
                if new.daemon.state_dir != old.daemon.state_dir {
                    tracing::warn!("daemon.state-dir changed; it takes effect at the next restart");
                    new.daemon.state_dir = old.daemon.state_dir.clone();
                }
                self.config.send_replace(Arc::new(new));
                self.metrics.record_config_load(true);
                self.record(true, None).await;
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(message) => {
                self.metrics.record_config_load(false);
                self.record(false, Some(message.clone())).await;
                // One line per event, so journald and JSON collectors keep it whole.
                let flat = message.replace('\n', "; ");
                tracing::error!(error = %flat, "configuration reload refused; the running configuration stays in force");
                Err(message)
            }
        }
    }

    async fn record(&self, ok: bool, error: Option<String>) {
        if let Err(e) = self.store.record_reload(ok, error).await {
            tracing::warn!(error = %e, "cannot record the reload in the store");
        }
    }
}

/// Turns each SIGHUP into a reload request.
pub(super) async fn on_sighup(requests: mpsc::Sender<ReloadRequest>, shutdown: CancellationToken) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reload through the API instead");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hup.recv() => {
                if got.is_none() { return }
                tracing::info!("SIGHUP: reloading configuration");
                if requests.send(ReloadRequest { reply: None }).await.is_err() { return }
            }
        }
    }
}
