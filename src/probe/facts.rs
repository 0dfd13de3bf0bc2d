//! What one probe attempt saw: the facts conditions are evaluated against.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The largest body or output kept for conditions; the rest is dropped.
pub const MAX_TEXT: usize = 1 << 20;

/// Everything a probe learned. Each kind fills the fields that mean something
/// for it; a condition on an unfilled field fails with a clear reason.
#[derive(Debug, Default)]
pub struct Facts {
    pub connected: Option<bool>,
    pub status: Option<u16>,
    /// Lower-cased names.
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// The body parsed as JSON, filled on first use by [`Facts::json`]; leave it default.
    pub json_cache: OnceLock<Option<serde_json::Value>>,
    /// Expiry of the certificate the peer presented (the leaf).
    pub cert_expiry: Option<SystemTime>,
    /// Earliest expiry anywhere in the presented chain.
    pub chain_expiry: Option<SystemTime>,
    pub exit_code: Option<i32>,
    pub output: Option<String>,
    /// A query's result: first column of the first row, or a PromQL sample.
    pub value: Option<Scalar>,
    pub rows: Option<u64>,
    /// Redis INFO fields.
    pub info: BTreeMap<String, String>,
    pub rcode: Option<String>,
    pub answers: Vec<String>,
    /// Heartbeat: seconds since the last successful ping.
    pub age_seconds: Option<f64>,
}

/// A single value from a database or Prometheus.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Number(f64),
    Text(String),
    Null,
}

impl Scalar {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Scalar::Number(n) => Some(*n),
            Scalar::Text(t) => t.trim().parse().ok(),
            Scalar::Null => None,
        }
    }

    pub fn as_text(&self) -> String {
        match self {
            Scalar::Number(n) => format_number(*n),
            Scalar::Text(t) => t.clone(),
            Scalar::Null => "null".into(),
        }
    }
}

/// Prints 200.0 as "200" so numbers read as they were written.
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

impl Facts {
    /// The body parsed as JSON, once, on first use.
    pub fn json(&self) -> Option<&serde_json::Value> {
        self.json_cache
            .get_or_init(|| {
                self.body
                    .as_deref()
                    .and_then(|b| serde_json::from_str(b).ok())
            })
            .as_ref()
    }

    /// Keeps at most [`MAX_TEXT`] bytes, cut at a character boundary.
    pub fn cap(mut text: String) -> String {
        if text.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }
}
