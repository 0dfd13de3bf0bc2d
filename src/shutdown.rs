//! Signals that end the process: SIGTERM and SIGINT cancel the root token; a second one exits at once.
//!
//! systemd stops services with SIGTERM, a terminal with SIGINT: both take the
//! same graceful path (see `daemon` for the drain order). SIGHUP is not here:
//! it reloads, and the daemon owns that.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Exit code when a second signal cuts the drain short (128 + SIGINT, as shells report it).
pub const EXIT_FORCED: i32 = 130;

/// Installs the handlers now (so a signal that arrives during start-up is not
/// lost) and returns; the watching task lives as long as the process.
pub fn watch_signals(token: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // Deliberately untracked: it must outlive the tracker it is draining, to
    // catch the second signal.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = int.recv() => tracing::info!("SIGINT: draining"),
        }
        token.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting without finishing the drain");
        std::process::exit(EXIT_FORCED);
    });
    Ok(())
}
