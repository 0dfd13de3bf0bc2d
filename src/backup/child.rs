//! The backup's own child processes (hooks, the drill's verify command): argv only, bounded in time, killed with their process group.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::adaptor::BackupError;
use crate::process_group::GroupKiller;

/// How a child that ran to its end ended.
pub(super) struct Exit {
    pub status: ExitStatus,
    pub stderr: String,
}

/// Runs `cmd` (program, arguments, environment and directory already set)
/// for at most `limit`. `label` names it in errors (`before hook `pg_ctl``),
/// `key` is the config key that sets the limit, so the message says what to raise.
pub(super) async fn run(
    mut cmd: tokio::process::Command,
    label: &str,
    key: &str,
    limit: Duration,
) -> Result<Exit, BackupError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Not for children: they must not speak to systemd as if they were lantern.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        // Its own process group, so a timeout also ends what a script started.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| BackupError::Other(format!("{label} cannot run: {e}")))?;
    // Armed until the child is reaped: dropped with this future on timeout
    // (or at shutdown), it kills the whole group.
    let mut group = child.id().map(GroupKiller::new);
    let mut stderr = child.stderr.take();
    let finished = tokio::time::timeout(limit, async {
        let mut buf = Vec::new();
        let read = async {
            if let Some(p) = stderr.as_mut() {
                let _ = p.read_to_end(&mut buf).await;
            }
        };
        let ((), status) = tokio::join!(read, child.wait());
        (status, buf)
    })
    .await;
    let Ok((status, buf)) = finished else {
        return Err(BackupError::Other(format!(
            "{label} timed out after {} ({key}) and was killed",
            humantime::format_duration(limit)
        )));
    };
    // Reaped: its group id may be reused once empty, so never signal it now.
    if let Some(g) = group.as_mut() {
        g.armed = false;
    }
    let status = status.map_err(|e| BackupError::Other(format!("waiting for {label}: {e}")))?;
    Ok(Exit {
        status,
        stderr: String::from_utf8_lossy(&buf).into_owned(),
    })
}
