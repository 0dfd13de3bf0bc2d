//! The command line: clap definitions and dispatch, one file per subcommand.

mod ack;
mod backup;
mod check_config;
mod oncall;
mod run;
mod state;
mod status;

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
    /// Show the running daemon's checks, open incidents and public mode.
    Status {
        #[command(flatten)]
        daemon: DaemonArgs,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Back up, list, restore, check and drill backup sets (from the config directly).
    Backup(backup::BackupArgs),
    /// The on-call rota from the config file: who is on duty, and the shifts ahead.
    Oncall {
        #[command(subcommand)]
        command: oncall::OncallCommand,
    },
    /// Acknowledge an incident on the running daemon (stops its escalation until the ack timeout).
    Ack {
        /// The incident id (see `lantern status`).
        id: i64,
        /// Who acknowledges (default: $USER).
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
    /// Shift handover: leave a note for the next handover checklist.
    Handover {
        #[command(subcommand)]
        command: HandoverCommand,
    },
    /// lantern's own state: `dump` writes a consistent copy of its database to stdout.
    State {
        #[command(subcommand)]
        command: state::StateCommand,
    },
    /// Print the version, revision and compiler.
    Version,
}

#[derive(Debug, Subcommand)]
pub enum HandoverCommand {
    /// Leave a note that goes out with the next shift handover.
    Note {
        text: String,
        /// Who leaves it (default: $USER).
        #[arg(long)]
        author: Option<String>,
        #[command(flatten)]
        daemon: DaemonArgs,
    },
}

/// How a client subcommand finds the running daemon.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// The daemon's base URL, e.g. http://127.0.0.1:9847 (default: from the config's `server.listen`).
    #[arg(long, env = "LANTERN_URL")]
    pub url: Option<String>,
    /// Config file whose `server.listen` locates the daemon.
    #[arg(long, short, env = "LANTERN_CONFIG", default_value = defaults::CONFIG_FILE)]
    pub config: PathBuf,
}

impl DaemonArgs {
    /// The base URL: `--url`, else the config's listen address (an unspecified
    /// address such as 0.0.0.0 is reached on loopback), else the default.
    pub fn base_url(&self) -> Result<String, String> {
        if let Some(u) = &self.url {
            return Ok(u.trim_end_matches('/').to_string());
        }
        let listen: SocketAddr = if self.config.exists() {
            crate::config::Config::load(&self.config)
                .map_err(|e| e.to_string())?
                .server
                .listen
        } else {
            defaults::LISTEN
                .parse()
                .map_err(|_| "bad default address".to_string())?
        };
        let ip = match listen.ip() {
            std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        Ok(format!("http://{}", SocketAddr::new(ip, listen.port())))
    }
}

/// Runs a client command's async work on a small runtime of its own.
pub(crate) fn block_on<T>(
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
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
        Command::Status { daemon, json } => status::status(daemon, json),
        Command::Oncall { command } => oncall::oncall(command),
        Command::Ack { id, by, daemon } => ack::ack(daemon, id, by),
        Command::Handover {
            command:
                HandoverCommand::Note {
                    text,
                    author,
                    daemon,
                },
        } => ack::handover_note(daemon, text, author),
        Command::Backup(args) => backup::backup(args),
        Command::State { command } => state::state(command),
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
