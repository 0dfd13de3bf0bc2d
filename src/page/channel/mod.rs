//! Channels: one file per kind, each with its validated spec, its payload and how it reads the receiver's answer.

use serde::{Deserialize, Serialize};

use crate::config::validate::Ctx;

/// `[[channels]]` as written (being filled in).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawChannel {
    pub name: Option<String>,
    pub kind: Option<String>,
}

/// A validated channel.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChannelSpec {
    pub name: String,
}

pub(crate) fn validate_channels(cx: &mut Ctx, raw: Vec<RawChannel>) -> Vec<ChannelSpec> {
    if !raw.is_empty() {
        cx.error("channels", "channels are being written");
    }
    Vec::new()
}
