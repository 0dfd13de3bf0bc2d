//! `postgres` checks: log in for real (md5 or SCRAM-SHA-256), run one query, report its first value and row count.
//!
//! A TCP connect proves little about a database: Gatus's PGSQL check "passes"
//! against a server that would refuse every login. This kind authenticates,
//! runs `query` (default `SELECT 1`) with the simple-query protocol, so every
//! column type comes back as text, and hands conditions `value` (the first
//! column of the first row) and `rows`.
//!
//! TLS to the database is not supported yet: the connection is plain TCP
//! (`sslmode=disable`), which suits loopback and private networks only.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::{NoTls, SimpleQueryMessage};

use super::{Facts, ProbeContext, Scalar, expand_self};
use crate::config::validate::Ctx;
use crate::config::{RawCheck, Secret};

/// What both database kinds (`postgres`, `mysql`) are given: they share their keys.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    /// `host:port`; `{self}` is allowed, as for every address.
    pub address: String,
    pub user: String,
    pub password: Option<Secret>,
    pub database: Option<String>,
    pub query: String,
}

/// What runs when the config names no `query`: it proves a login and a round trip.
pub const DEFAULT_QUERY: &str = "SELECT 1";

impl Spec {
    /// Validates `address`, `user`, `password`/`password-file`, `database` and
    /// `query`; shared with `mysql`, which accepts the same keys.
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        let address = super::address(cx, &format!("{key}.address"), raw.address.as_deref());
        let user = match raw.user.as_deref() {
            Some(u) if !u.trim().is_empty() => Some(u.to_string()),
            Some(_) => {
                cx.error(&format!("{key}.user"), "`user` is empty");
                None
            }
            None => {
                // No implicit default: lantern's own OS user is rarely the
                // database role meant, and a guess fails late and confusingly.
                cx.error(&format!("{key}.user"), "a `user` to log in as is required");
                None
            }
        };
        let password = cx.secret(
            &format!("{key}.password"),
            raw.password.as_deref(),
            raw.password_file.as_deref(),
        );
        let database = match raw.database.as_deref() {
            Some(d) if d.trim().is_empty() => {
                cx.error(&format!("{key}.database"), "`database` is empty");
                None
            }
            d => d.map(str::to_string),
        };
        let query = match raw.query.as_deref() {
            Some(q) if q.trim().is_empty() => {
                cx.error(&format!("{key}.query"), "`query` is empty");
                None
            }
            Some(q) => Some(q.to_string()),
            None => Some(DEFAULT_QUERY.to_string()),
        };
        Some(Spec {
            address: address?,
            user: user?,
            password,
            database,
            query: query?,
        })
    }

    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        let addr = expand_self(&self.address, cx.self_addr);
        let (host, port) = split_address(&addr)?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user(&self.user)
            .application_name("lantern")
            // The caller's timeout bounds the whole attempt; this one makes a
            // black-holed SYN end with "timed out" from the connect itself.
            .connect_timeout(cx.timeout.max(Duration::from_millis(1)))
            // If the check gives up mid-query the socket closes, but a busy
            // backend notices only when it next writes; this stops it too.
            .options(format!(
                "-c statement_timeout={}",
                cx.timeout.as_millis().max(1)
            ));
        if let Some(p) = &self.password {
            config.password(p.expose());
        }
        if let Some(db) = &self.database {
            config.dbname(db);
        }
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| connect_error(&e, &addr, &self.user))?;
        // The connection is driven here rather than spawned: it lives exactly
        // as long as this probe, so a timed-out or cancelled probe can never
        // leave a task (or a server backend) behind.
        let mut connection = std::pin::pin!(connection);
        let messages = tokio::select! {
            r = client.simple_query(&self.query) => r.map_err(|e| query_error(&e))?,
            r = &mut connection => {
                return Err(match r {
                    Err(e) => format!("connection lost: {}", chain(&e)),
                    Ok(()) => "connection closed by the server".into(),
                });
            }
        };
        // Dropping the client makes the connection send Terminate and finish,
        // so the server logs a clean disconnect, not an EOF.
        drop(client);
        let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
        Ok(facts_from(&messages))
    }
}

/// `value` and `rows` from the messages of a simple query: the first column
/// of the first row, and every row of every statement counted.
fn facts_from(messages: &[SimpleQueryMessage]) -> Facts {
    let mut rows = 0u64;
    let mut value = None;
    for m in messages {
        if let SimpleQueryMessage::Row(row) = m {
            rows += 1;
            if value.is_none() {
                value = Some(match row.try_get(0) {
                    Ok(v) => scalar_from_text(v),
                    // A row with no columns (`SELECT FROM t`) has no value.
                    Err(_) => Scalar::Null,
                });
            }
        }
    }
    Facts {
        connected: Some(true),
        value: Some(value.unwrap_or(Scalar::Null)),
        rows: Some(rows),
        ..Facts::default()
    }
}

/// A column's text as a number when it reads as one (`42`, `-1.5`, `1e3`),
/// else as text; SQL NULL is [`Scalar::Null`]. `NaN` and `Infinity` stay text,
/// since no threshold means anything against them.
pub(crate) fn scalar_from_text(text: Option<&str>) -> Scalar {
    let Some(t) = text else { return Scalar::Null };
    let numeric_start = t
        .trim()
        .starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'));
    match t.trim().parse::<f64>() {
        Ok(n) if numeric_start && n.is_finite() => Scalar::Number(n),
        _ => Scalar::Text(super::facts::Facts::cap(t.to_string())),
    }
}

/// Splits `host:port`, accepting `[::1]:5432`; validated at load, so an error
/// here means a `{self}` expansion went wrong.
pub(crate) fn split_address(addr: &str) -> Result<(&str, u16), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` is not host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("`{addr}` is not host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host, port))
}

/// "authentication failed for user `x`: …", "connect 127.0.0.1:1: connection refused".
fn connect_error(e: &tokio_postgres::Error, addr: &str, user: &str) -> String {
    use tokio_postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return format!("authentication failed for user `{user}`: {}", db.message());
        }
        return format!("login to {addr} refused: {}", db.message());
    }
    let text = chain(e);
    if text.contains("password missing") {
        return format!(
            "authentication failed for user `{user}`: the server wants a password and none is configured"
        );
    }
    if let Some(io) = io_source(e) {
        return format!("connect {addr}: {}", io_reason(io));
    }
    format!("connect {addr}: {text}")
}

fn query_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("query failed: {}", db.message()),
        None => format!("query failed: {}", chain(e)),
    }
}

fn io_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur = e.source();
    while let Some(s) = cur {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = s.source();
    }
    None
}

/// The common socket failures in the same words on every kind, lower case.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::TimedOut => "timed out".into(),
        ErrorKind::ConnectionReset => "connection reset".into(),
        ErrorKind::UnexpectedEof => "connection closed by the server".into(),
        _ => e.to_string(),
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    super::http::error_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn errors(kind: &str, keys: &str) -> String {
        let text = format!("[[checks]]\nname = \"db\"\nkind = \"{kind}\"\n{keys}\n");
        match Config::parse(Path::new("t.toml"), &text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn numbers_become_numbers_and_everything_else_stays_text() {
        assert_eq!(scalar_from_text(Some("3")), Scalar::Number(3.0));
        assert_eq!(scalar_from_text(Some("-1.5")), Scalar::Number(-1.5));
        assert_eq!(scalar_from_text(Some("12.50")), Scalar::Number(12.5));
        assert_eq!(scalar_from_text(Some("NaN")), Scalar::Text("NaN".into()));
        assert_eq!(
            scalar_from_text(Some("Infinity")),
            Scalar::Text("Infinity".into())
        );
        assert_eq!(scalar_from_text(Some("t")), Scalar::Text("t".into()));
        assert_eq!(scalar_from_text(None), Scalar::Null);
    }

    #[test]
    fn addresses_split_with_and_without_brackets() {
        assert_eq!(
            split_address("127.0.0.1:5432").unwrap(),
            ("127.0.0.1", 5432)
        );
        assert_eq!(split_address("[::1]:5432").unwrap(), ("::1", 5432));
        assert!(split_address("nope").is_err());
    }

    #[test]
    fn a_missing_address_or_user_is_named_by_its_key() {
        for kind in ["postgres", "mysql"] {
            let e = errors(kind, "");
            assert!(e.contains("checks[0].address"), "{e}");
            assert!(e.contains("checks[0].user"), "{e}");
        }
    }

    #[test]
    fn a_bad_address_is_named_by_its_key() {
        for kind in ["postgres", "mysql"] {
            let e = errors(kind, "address = \"localhost\"\nuser = \"u\"");
            assert!(e.contains("checks[0].address"), "{e}");
            assert!(e.contains("localhost"), "{e}");
        }
    }

    #[test]
    fn password_and_password_file_together_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "x\n").unwrap();
        for kind in ["postgres", "mysql"] {
            let e = errors(
                kind,
                &format!(
                    "address = \"127.0.0.1:1\"\nuser = \"u\"\npassword = \"hunter2\"\npassword-file = \"{}\"",
                    file.display()
                ),
            );
            assert!(e.contains("checks[0].password-file"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn an_empty_query_is_refused_and_a_missing_one_defaults_to_select_1() {
        let e = errors(
            "postgres",
            "address = \"127.0.0.1:1\"\nuser = \"u\"\nquery = \" \"",
        );
        assert!(e.contains("checks[0].query"), "{e}");
        let text = "[[checks]]\nname = \"db\"\nkind = \"postgres\"\naddress = \"127.0.0.1:1\"\nuser = \"u\"\npassword = \"hunter2\"\n";
        let config = Config::parse(Path::new("t.toml"), text).unwrap();
        let debug = format!("{:?}", config.checks[0]);
        assert!(debug.contains("SELECT 1"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
