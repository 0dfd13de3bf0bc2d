//! `tcp` checks: connect, optionally send a line and read what comes back.

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Facts, ProbeContext, expand_self};
use crate::config::RawCheck;
use crate::config::validate::Ctx;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub address: String,
    pub send: Option<String>,
    /// Read until this substring arrives (or the timeout), then compare.
    pub expect: Option<String>,
}

/// The most read back from the peer; a banner or a PONG is far smaller.
const MAX_READ: usize = 1024;

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        let address = super::address(cx, &format!("{key}.address"), raw.address.as_deref())?;
        Some(Spec {
            address,
            send: raw.send.clone(),
            expect: raw.expect.clone(),
        })
    }

    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        // Stop reading just before the check's timeout, so a reply that never
        // matches `expect` is reported with what the peer said, not as a bare timeout.
        let read_until = tokio::time::Instant::now() + cx.timeout.saturating_sub(cx.timeout / 10);
        let addr = expand_self(&self.address, cx.self_addr);
        let mut stream = TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let mut facts = Facts {
            connected: Some(true),
            ..Facts::default()
        };
        if let Some(send) = &self.send {
            stream
                .write_all(send.as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
        }
        if self.send.is_some() || self.expect.is_some() {
            let mut buf = Vec::with_capacity(MAX_READ);
            let mut chunk = [0u8; 512];
            loop {
                let n = match tokio::time::timeout_at(read_until, stream.read(&mut chunk)).await {
                    Ok(read) => read.map_err(|e| format!("read: {e}"))?,
                    Err(_) => break,
                };
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                let done = match &self.expect {
                    Some(want) => text.contains(want.as_str()),
                    None => true,
                };
                if done || buf.len() >= MAX_READ {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(want) = &self.expect
                && !text.contains(want.as_str())
            {
                return Err(format!("expected `{want}`, got `{}`", text.trim()));
            }
            facts.body = Some(text);
        }
        Ok(facts)
    }
}
