//! `lantern run`: load the config, set up logging and the runtime, run the daemon until a signal.

use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::RunArgs;
use crate::config::{Config, EXIT_CONFIG};
use crate::daemon::{self, Launch};
use crate::{logging, shutdown};

pub fn run(args: RunArgs) -> ExitCode {
    let mut config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "lantern: not starting: {} is invalid",
                args.config.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let format = args.log_format.map(Into::into).unwrap_or(config.log.format);
    logging::init(
        format,
        args.log_level.as_deref().unwrap_or(&config.log.level),
    );

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let grace = config.daemon.grace_period;
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        shutdown::watch_signals(shutdown.clone())?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
        daemon::run(Launch {
            config,
            listener,
            shutdown,
            listen_override: args.listen,
        })
        .await
    });
    // A backup still running on a blocking thread (rustic cannot be
    // cancelled) gets the grace period, then is abandoned: a repository
    // stays consistent when its writer dies at any point. Dropping the
    // runtime instead would wait for it however long it takes.
    runtime.shutdown_timeout(grace);
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
