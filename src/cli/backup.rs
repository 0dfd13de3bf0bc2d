//! `lantern backup …`: list, run, snapshots, restore, check and drill, working from the config directly.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;

use crate::backup::adaptor::BackupError;
use crate::backup::jobs::{self, Env};
use crate::config::{Config, EXIT_CONFIG, defaults};
use crate::store::{Store, StoreError};

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Config file.
    #[arg(long, short, env = "LANTERN_CONFIG", default_value = defaults::CONFIG_FILE)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: BackupCommand,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// List the sets, their repositories and their 3-2-1 verdict.
    List,
    /// Snapshot a set to its primary repository, then copy it to the others.
    Run {
        set: String,
        /// Only snapshot; leave copying to the schedule.
        #[arg(long)]
        no_copy: bool,
    },
    /// List a set's snapshots in each repository (or one).
    Snapshots {
        set: String,
        #[arg(long)]
        repo: Option<String>,
    },
    /// Restore a set into a directory and verify every file against the snapshot.
    Restore {
        set: String,
        /// A snapshot id (or its prefix), or `latest` for the newest run.
        #[arg(long, default_value = "latest")]
        snapshot: String,
        #[arg(long)]
        target: PathBuf,
        #[arg(long)]
        repo: Option<String>,
    },
    /// Check every repository; `--read-data` also reads the packs.
    Check {
        #[arg(long)]
        read_data: bool,
        /// Which part to read with --read-data (default: all).
        #[arg(long, default_value = "all")]
        subset: String,
    },
    /// Restore the latest run into scratch space, verify, time it, clean up.
    Drill { set: String },
    /// Forget snapshots beyond the set's retention, then prune.
    Forget { set: String },
}

pub fn backup(args: BackupArgs) -> ExitCode {
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // rustic logs every step at info; a person at a terminal wants the result lines.
    let level = if config.log.level.contains('=') {
        config.log.level.clone()
    } else {
        format!("{},rustic_core=warn,rustic_backend=warn", config.log.level)
    };
    crate::logging::init(config.log.format, &level);
    let Some(cfg) = config.backup.clone() else {
        eprintln!("{}: has no [backup] section", args.config.display());
        return ExitCode::from(EXIT_CONFIG);
    };
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let mut env = Env::new(
        Arc::new(cfg),
        &config.daemon.state_dir,
        &format!("cli:{user}"),
    );
    env.ws.bars = crate::backup::adaptor::Bars::for_terminal();
    let state_dir = config.daemon.state_dir.clone();
    let result = super::block_on(async move {
        // The store records the run. While the daemon holds it, the run is
        // recorded beside the daemon's own writes (the repository lock keeps
        // the two from working on one repository at once).
        let opened = tokio::task::spawn_blocking(move || match Store::open(&state_dir) {
            Err(StoreError::Locked { .. }) => Store::open_beside(&state_dir),
            other => other,
        })
        .await?;
        match opened {
            Ok(s) => env.store = Some(s),
            Err(e) => eprintln!("note: {e}; this run is not recorded"),
        }
        command(&env, args.command).await
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("lantern backup: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A progress line on a terminal only; scripts and logs get the result lines.
fn progress(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("… {msg}");
    }
}

fn report<T>(what: &str, r: &Result<T, BackupError>) -> bool {
    match r {
        Ok(_) => true,
        Err(BackupError::Absent { .. }) => {
            if let Err(e) = r {
                println!("{what}: absent ({e})");
            }
            true
        }
        Err(e) => {
            println!("{what}: FAILED: {e}");
            false
        }
    }
}

async fn command(env: &Env, cmd: BackupCommand) -> anyhow::Result<bool> {
    Ok(match cmd {
        BackupCommand::List => {
            env.refresh_all().await;
            let verdicts = env.evaluate(&mut Default::default());
            for set in &env.cfg.sets {
                let repos: Vec<&str> = set.repositories().collect();
                let v = verdicts.iter().find(|v| v.set == set.name);
                println!(
                    "{}\trepositories: {}\t3-2-1: {}",
                    set.name,
                    repos.join(", "),
                    v.map_or("?".to_string(), |v| format!(
                        "{} ({})",
                        if v.compliant { "yes" } else { "no" },
                        v.detail
                    ))
                );
            }
            true
        }
        BackupCommand::Run { set, no_copy } => {
            progress(&format!("backing up {set}"));
            let r = jobs::snapshot(env, &set).await;
            if let Ok(o) = &r {
                println!(
                    "snapshot {}: {} files, {} bytes read, {} bytes added",
                    o.snapshots
                        .iter()
                        .map(|s| &s.id[..8])
                        .collect::<Vec<_>>()
                        .join(","),
                    o.files_processed,
                    o.bytes_processed,
                    o.bytes_added
                );
            }
            let mut ok = report("snapshot", &r);
            if ok && !no_copy {
                for (repo, r) in jobs::copy(env, &set).await {
                    progress(&format!("copying {set} to {repo}"));
                    if let Ok(n) = &r {
                        println!("copy to {repo}: {n} snapshot(s)");
                    }
                    ok &= report(&format!("copy to {repo}"), &r);
                }
            }
            ok
        }
        BackupCommand::Snapshots { set, repo } => {
            let spec = env.set(&set)?.clone();
            let mut ok = true;
            for name in spec.repositories() {
                if repo.as_deref().is_some_and(|r| r != name) {
                    continue;
                }
                let r = crate::backup::adaptor::snapshots(
                    env.ws.clone(),
                    env.repo(name)?.clone(),
                    Some(set.clone()),
                )
                .await;
                if let Ok(list) = &r {
                    for s in list {
                        println!(
                            "{name}\t{}\t{}\t{}\t{} files\t{} bytes",
                            &s.id[..8],
                            s.time.format("%Y-%m-%d %H:%M:%S"),
                            s.paths.join(","),
                            s.files,
                            s.bytes
                        );
                    }
                }
                ok &= report(name, &r);
            }
            ok
        }
        BackupCommand::Restore {
            set,
            snapshot,
            target,
            repo,
        } => {
            progress(&format!(
                "restoring {set} ({snapshot}) into {}",
                target.display()
            ));
            let r = jobs::restore(env, &set, repo.as_deref(), &snapshot, target.clone()).await;
            if let Ok(o) = &r {
                println!(
                    "restored {} files, {} bytes into {}: every file verified",
                    o.files,
                    o.bytes,
                    target.display()
                );
            }
            report("restore", &r)
        }
        BackupCommand::Check { read_data, subset } => {
            let mut ok = true;
            for (repo, r) in jobs::check(env, read_data.then_some(subset.clone())).await {
                if let Ok(o) = &r {
                    println!("{repo}: ok ({} warning(s))", o.warnings);
                }
                ok &= report(&repo, &r);
            }
            ok
        }
        BackupCommand::Drill { set } => {
            progress(&format!("drilling {set}"));
            let start = std::time::Instant::now();
            let r = jobs::drill(env, &set).await;
            if let Ok(o) = &r {
                println!(
                    "drill {set}: restored and verified {} files, {} bytes in {:.1}s",
                    o.files,
                    o.bytes,
                    start.elapsed().as_secs_f64()
                );
            }
            report("drill", &r)
        }
        BackupCommand::Forget { set } => {
            let mut ok = true;
            for (repo, r) in jobs::forget(env, &set).await {
                if let Ok(n) = &r {
                    println!("{repo}: forgot {n} snapshot(s)");
                }
                ok &= report(&repo, &r);
            }
            ok
        }
    })
}
