//! `file` channels: one JSON line per message (the webhook schema) appended to a local file and fsynced.
//!
//! For the demo on a fresh machine and for drills: delivered once the line is
//! on disk; a failed write is temporary (a full disk may clear). The file is
//! created mode 0600 with its directory: ack links are credentials.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::RawChannel;
use super::webhook::Payload;
use crate::config::validate::Ctx;
use crate::page::{Message, Outcome};

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub path: PathBuf,
}

impl Spec {
    pub(super) fn from_raw(cx: &mut Ctx, base: &str, r: &RawChannel) -> Option<Spec> {
        let Some(raw) = r.path.as_deref().filter(|p| !p.is_empty()) else {
            cx.error(&format!("{base}.path"), "a file channel needs `path`");
            return None;
        };
        let path = cx.path(raw);
        if path.is_dir() {
            cx.error(
                &format!("{base}.path"),
                format!("{} is a directory", path.display()),
            );
            return None;
        }
        Some(Spec { path })
    }

    pub(super) async fn send(&self, msg: &Message) -> Outcome {
        let mut line = match serde_json::to_vec(&Payload::of(msg)) {
            Ok(l) => l,
            Err(e) => {
                return Outcome::Permanent {
                    reason: format!("cannot encode the message: {e}"),
                };
            }
        };
        line.push(b'\n');
        let path = self.path.clone();
        let result = tokio::task::spawn_blocking(move || append(&path, &line)).await;
        match result {
            Ok(Ok(())) => Outcome::Delivered { provider_id: None },
            Ok(Err(e)) => Outcome::Temporary {
                reason: format!("cannot append to {}: {e}", self.path.display()),
                retry_after: None,
            },
            Err(e) => Outcome::Temporary {
                reason: format!("the write did not finish: {e}"),
                retry_after: None,
            },
        }
    }
}

/// One `write` of the whole line with O_APPEND, so concurrent senders never
/// interleave within a line, then fsync so a delivered page survives a crash.
fn append(path: &Path, line: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(line)?;
    f.sync_all()
}
