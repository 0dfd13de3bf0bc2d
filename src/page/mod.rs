//! Paging: what a page says ([`Message`]), the channels that carry it, and what a delivery attempt came to ([`Outcome`]).

pub mod ack;
pub mod channel;
pub mod config;
pub mod escalation;
pub mod handover;
pub mod metrics;
pub mod outbox;
pub mod pager;
pub mod promise;
pub mod watcher;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Why a message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    /// An incident opened (or an escalation step fired).
    Trigger,
    /// Still down, nobody has acknowledged, or the ack timed out.
    Reminder,
    /// The incident is resolved.
    Resolve,
    /// A shift handover checklist.
    Handover,
    /// A response promise is close to or past its deadline.
    Promise,
    /// Several messages bundled because a destination's rate limit was reached.
    Summary,
    /// A test page from `lantern page test`.
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// Someone a message is for, with how each channel names them (for @mentions and e-mail).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mention {
    pub name: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub dingtalk_user_id: Option<String>,
    pub feishu_user_id: Option<String>,
    pub wecom_user_id: Option<String>,
    pub slack_user_id: Option<String>,
}

/// One page, as every channel renders it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub kind: MessageKind,
    /// Stable per incident (or handover, or promise): receivers deduplicate on it.
    pub dedup_key: String,
    pub incident_id: Option<i64>,
    pub severity: Severity,
    /// One line, e.g. "storefront is down".
    pub title: String,
    /// Plain text, several lines; channels may render it as markdown.
    pub text: String,
    /// The signed acknowledgement link, where there is something to acknowledge.
    pub ack_url: Option<String>,
    /// The people this message is for.
    pub mentions: Vec<Mention>,
    /// Pages from drills are tagged `[DRILL]` everywhere.
    pub drill: bool,
    #[serde(with = "crate::store::time_ms")]
    pub created_at: SystemTime,
    /// Where it comes from (lantern's host name).
    pub source: String,
    /// Extra fields for machine receivers (check, state, reason, …).
    pub details: BTreeMap<String, String>,
}

impl Message {
    /// The title as every channel shows it: `[DRILL] ` first for drills.
    pub fn display_title(&self) -> String {
        if self.drill {
            format!("[DRILL] {}", self.title)
        } else {
            self.title.clone()
        }
    }
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        /// The receiver's id for it, where it gives one (PagerDuty's dedup key, …).
        provider_id: Option<String>,
    },
    /// Worth retrying: 5xx, 429, throttling codes, network errors, timeouts.
    Temporary {
        reason: String,
        /// When the receiver said when (Retry-After).
        retry_after: Option<Duration>,
    },
    /// Retrying will not help: bad credentials, bad signature, a 400.
    Permanent { reason: String },
}
