//! `command` checks: run argv (never a shell), kill the whole process group on timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::{Facts, ProbeContext};
use crate::config::RawCheck;
use crate::config::validate::Ctx;
use crate::process_group::GroupKiller;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<PathBuf>,
}

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        let argv = raw.argv.clone().unwrap_or_default();
        if argv.is_empty() || argv[0].is_empty() {
            cx.error(
                &format!("{key}.argv"),
                "`argv` needs at least the program, e.g. [\"/usr/bin/df\", \"-P\", \"/\"]",
            );
            return None;
        }
        Some(Spec {
            argv,
            env: raw.env.clone().unwrap_or_default(),
            working_dir: raw.working_dir.as_deref().map(|p| cx.path(p)),
        })
    }

    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        let mut cmd = tokio::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .envs(&self.env)
            // What the command may want to know, as data, never spliced into a command line.
            .env("LANTERN_CHECK", &cx.check)
            // Not for children: they must not speak to systemd as if they were lantern.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills grandchildren too.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.working_dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.argv[0]))?;
        // Dropped with this future when the check's timeout fires: the group dies with it.
        let mut group = child.id().map(GroupKiller::new);
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let read = |pipe: Option<tokio::process::ChildStdout>| async move {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = (&mut p)
                    .take(super::facts::MAX_TEXT as u64)
                    .read_to_end(&mut buf)
                    .await;
            }
            buf
        };
        let read_err = |pipe: Option<tokio::process::ChildStderr>| async move {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = (&mut p).take(64 * 1024).read_to_end(&mut buf).await;
            }
            buf
        };
        let (out, err, status) =
            tokio::join!(read(stdout.take()), read_err(stderr.take()), child.wait());
        // Finished on its own: its group id may be reused once empty, so never signal it now.
        if let Some(g) = group.as_mut() {
            g.armed = false;
        }
        let status = status.map_err(|e| format!("waiting for {}: {e}", self.argv[0]))?;
        let mut output = String::from_utf8_lossy(&out).into_owned();
        output.push_str(&String::from_utf8_lossy(&err));
        Ok(Facts {
            exit_code: Some(status.code().unwrap_or(-1)),
            output: Some(Facts::cap(output)),
            ..Facts::default()
        })
    }
}
