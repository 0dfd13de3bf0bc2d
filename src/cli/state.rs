//! `lantern state dump`: a consistent copy of the state database on stdout, taken while the daemon runs, for the backup of lantern's own state.
//!
//! Copying `lantern.db` and its `-wal` file as plain files while the daemon
//! writes can pair a database with a log from another moment, which restores
//! as a corrupt or silently older database. SQLite's `VACUUM INTO` reads one
//! transaction-consistent view through a read-only connection (WAL lets it
//! run beside the daemon's writer) and writes a compact, self-contained file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rusqlite::{Connection, OpenFlags};

use crate::config::{Config, EXIT_CONFIG, defaults};
use crate::store::FILE_NAME;

#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Write a consistent copy of the state database to stdout (a backup set's `command`).
    Dump {
        #[arg(long, short, env = "LANTERN_CONFIG", default_value = defaults::CONFIG_FILE)]
        config: PathBuf,
    },
}

pub fn state(command: StateCommand) -> ExitCode {
    let StateCommand::Dump { config } = command;
    let cfg = match Config::load(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match dump(&cfg.daemon.state_dir, &mut std::io::stdout().lock()) {
        Ok(bytes) => {
            eprintln!("state dump: {bytes} bytes");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("state dump failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes a consistent copy of `state_dir/lantern.db` to `out`; returns its size.
pub fn dump(state_dir: &Path, out: &mut impl Write) -> anyhow::Result<u64> {
    let db = state_dir.join(FILE_NAME);
    if !db.exists() {
        anyhow::bail!("{} does not exist", db.display());
    }
    let c = Connection::open_with_flags(
        &db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The daemon may be mid-checkpoint; wait for it rather than fail.
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    // Beside the database (same file system, same permissions), removed after.
    let tmp = Scratch(state_dir.join(format!(".lantern-dump-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    std::fs::create_dir(&tmp.0)?;
    let copy = tmp.0.join(FILE_NAME);
    let target = copy
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("temporary path is not UTF-8"))?;
    c.execute("VACUUM INTO ?1", [target])?;
    let mut f = std::fs::File::open(&copy)?;
    let n = std::io::copy(&mut f, out)?;
    out.flush()?;
    Ok(n)
}

/// A scratch directory removed when dropped, whatever happened.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
