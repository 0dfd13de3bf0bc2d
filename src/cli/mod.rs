//! The command line: clap definitions and dispatch, one file per subcommand.

mod check_config;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, defaults};

#[derive(Debug, Parser)]
#[command(
    name = "lantern",
    version,
    about = "Keeps an online shop taking orders while the team is away."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground.
    Run(RunArgs),
    /// Validate a config file and print the effective config, secrets masked (exit 78 if invalid).
    CheckConfig {
        /// The config file to check.
        file: PathBuf,
    },
    /// Print the version, revision and compiler.
    Version,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Config file.
    #[arg(long, short, env = "LANTERN_CONFIG", default_value = defaults::CONFIG_FILE)]
    pub config: PathBuf,
    /// Listen on this address instead of `server.listen` (e.g. 127.0.0.1:0).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Log format; overrides `log.format`.
    #[arg(long, value_parser = clap::value_parser!(LogFormatArg))]
    pub log_format: Option<LogFormatArg>,
    /// Log level or filter (e.g. `debug`, `lantern=debug,info`); overrides `log.level`.
    #[arg(long)]
    pub log_level: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormatArg {
    Auto,
    Text,
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(a: LogFormatArg) -> Self {
        match a {
            LogFormatArg::Auto => LogFormat::Auto,
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// Runs the parsed command and maps its outcome to the process exit code:
/// 0 ok, 1 runtime failure, 2 usage (clap), 78 invalid config.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::CheckConfig { file } => check_config::check_config(&file),
        Command::Version => {
            println!(
                "lantern {} (revision {}, rustc {})",
                env!("CARGO_PKG_VERSION"),
                env!("LANTERN_REVISION"),
                env!("LANTERN_RUSTC")
            );
            ExitCode::SUCCESS
        }
    }
}
