//! One bounded HTTP POST for the HTTP channels, and the usual reading of its status code.

use std::time::{Duration, SystemTime};

use crate::page::Outcome;

/// The most of a receiver's answer that is read: enough for any error JSON,
/// and a broken receiver streaming forever cannot fill memory.
pub const MAX_REPLY: usize = 64 * 1024;

/// What the receiver answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

impl Reply {
    /// The start of the body, for a failure's reason.
    pub fn excerpt(&self) -> String {
        let body = self.body.trim();
        let cut: String = body.chars().take(200).collect();
        if cut.is_empty() {
            "(empty body)".into()
        } else {
            cut
        }
    }

    /// The usual contract: 2xx done; 408, 429 and 5xx worth retrying (with the
    /// receiver's Retry-After); any other status will fail again.
    pub fn by_status(&self, provider_id: Option<String>) -> Outcome {
        match self.status {
            200..=299 => Outcome::Delivered { provider_id },
            408 | 429 | 500..=599 => {
                self.temporary(format!("HTTP {}: {}", self.status, self.excerpt()))
            }
            s => Outcome::Permanent {
                reason: format!("HTTP {s}: {}", self.excerpt()),
            },
        }
    }

    pub fn temporary(&self, reason: String) -> Outcome {
        Outcome::Temporary {
            reason,
            retry_after: self.retry_after,
        }
    }
}

/// POSTs `body` as JSON to `url` with `headers`, all within `timeout`, and
/// reads at most [`MAX_REPLY`] of the answer. A failure to get an answer is
/// the temporary `Outcome` to return; its reason never contains the URL.
pub async fn post_json(
    http: &reqwest::Client,
    url: reqwest::Url,
    headers: &[(String, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Reply, Outcome> {
    let mut req = http
        .post(url)
        .timeout(timeout)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )
        .header(
            reqwest::header::USER_AGENT,
            concat!("lantern/", env!("CARGO_PKG_VERSION")),
        )
        .body(body);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    // reqwest's own timeout covers connect to last byte; the outer one also
    // bounds the capped body read below, whatever the client was built with.
    let attempt = async {
        let mut resp = req.send().await.map_err(network)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut buf = Vec::new();
        while buf.len() < MAX_REPLY {
            match resp.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return Err(network(e)),
            }
        }
        buf.truncate(MAX_REPLY);
        Ok(Reply {
            status,
            retry_after,
            body: String::from_utf8_lossy(&buf).into_owned(),
        })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(timeout)),
    }
}

fn timed_out(timeout: Duration) -> Outcome {
    Outcome::Temporary {
        reason: format!("no answer within {}", humantime::format_duration(timeout)),
        retry_after: None,
    }
}

/// A transport error as a temporary outcome, without the URL (a credential).
fn network(e: reqwest::Error) -> Outcome {
    let e = e.without_url();
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut reason = format!("{what}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        reason.push_str(&format!(": {s}"));
        source = s.source();
    }
    Outcome::Temporary {
        reason,
        retry_after: None,
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date; capped at a day so a
/// broken receiver cannot park a page for ever.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let day = Duration::from_secs(86_400);
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(day));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at: SystemTime = at.with_timezone(&chrono::Utc).into();
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        let earlier = now - Duration::from_secs(30);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", earlier),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("99999999", now),
            Some(Duration::from_secs(86_400))
        );
    }
}
