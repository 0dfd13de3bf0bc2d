//! `mysql` checks (MySQL and MariaDB): log in for real, run one query, report its first value and row count.
//!
//! Same keys and facts as `postgres` (`value` = first column of the first
//! row, `rows`); logins use `mysql_native_password` or
//! `caching_sha2_password` (its full exchange RSA-encrypts the password, so
//! it works without TLS). TLS to the database is not supported yet, nor
//! MariaDB's `ed25519` plugin.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, Value};
use serde::Serialize;

use super::postgres::{io_reason, scalar_from_text, split_address};
use super::{Facts, ProbeContext, Scalar, expand_self};
use crate::config::RawCheck;
use crate::config::validate::Ctx;

/// The keys are exactly those of `postgres`, validated the same way.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Spec(pub super::postgres::Spec);

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        super::postgres::Spec::from_raw(cx, key, raw).map(Spec)
    }

    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        let spec = &self.0;
        let addr = expand_self(&spec.address, cx.self_addr);
        let (host, port) = split_address(&addr)?;
        let opts = OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            .user(Some(&spec.user))
            .pass(spec.password.as_ref().map(|p| p.expose()))
            .db_name(spec.database.as_deref())
            // Otherwise a loopback address is swapped for the server's unix
            // socket, and the check would not prove the TCP port works.
            .prefer_socket(false)
            // The probe runs one query; caching statements is wasted work.
            .stmt_cache_size(0);
        let mut conn = Conn::new(opts)
            .await
            .map_err(|e| connect_error(&e, &addr, &spec.user))?;
        let result = query(&mut conn, &spec.query, cx.timeout).await;
        // COM_QUIT so the server logs a clean disconnect rather than
        // "aborted connection"; a failure here changes nothing observed.
        let _ = conn.disconnect().await;
        result
    }
}

async fn query(conn: &mut Conn, query: &str, timeout: Duration) -> Result<Facts, String> {
    // If the check's timeout cancels this probe mid-query, mysql_async finishes
    // the query on a background task before it hangs up; a server-side limit
    // makes that task end when the check gives up. MariaDB and MySQL name it
    // differently, and each refuses the other's name, so both are tried and
    // errors ignored.
    let secs = timeout.as_secs_f64().max(0.001);
    let _ = conn
        .query_drop(format!("SET SESSION max_statement_time = {secs:.3}"))
        .await;
    let _ = conn
        .query_drop(format!(
            "SET SESSION max_execution_time = {}",
            timeout.as_millis().max(1)
        ))
        .await;
    let mut rows = 0u64;
    let mut value = None;
    let result = conn.query_iter(query).await.map_err(|e| query_error(&e))?;
    // Streamed: only the first row is kept, however many the query returns.
    result
        .for_each_and_drop(|row| {
            rows += 1;
            if value.is_none() {
                value = Some(first_value(&row));
            }
        })
        .await
        .map_err(|e| query_error(&e))?;
    Ok(Facts {
        connected: Some(true),
        value: Some(value.unwrap_or(Scalar::Null)),
        rows: Some(rows),
        ..Facts::default()
    })
}

/// The first column as a number for numeric column types, else as text.
fn first_value(row: &Row) -> Scalar {
    let numeric = row
        .columns_ref()
        .first()
        .is_some_and(|c| c.column_type().is_numeric_type());
    match row.as_ref(0) {
        None | Some(Value::NULL) => Scalar::Null,
        Some(Value::Bytes(b)) => {
            let text = String::from_utf8_lossy(b);
            match scalar_from_text(Some(&text)) {
                n @ Scalar::Number(_) if numeric => n,
                _ => Scalar::Text(Facts::cap(text.into_owned())),
            }
        }
        Some(Value::Int(i)) => Scalar::Number(*i as f64),
        Some(Value::UInt(u)) => Scalar::Number(*u as f64),
        Some(Value::Float(f)) => Scalar::Number(f64::from(*f)),
        Some(Value::Double(d)) => Scalar::Number(*d),
        // The text protocol sends dates as text; these only come from the
        // binary protocol, which this probe does not use.
        Some(other) => Scalar::Text(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// Server error codes that mean the login itself was refused.
const ACCESS_DENIED: &[u16] = &[
    1045, // ER_ACCESS_DENIED_ERROR
    1698, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
    1251, // ER_NOT_SUPPORTED_AUTH_MODE
];

fn connect_error(e: &mysql_async::Error, addr: &str, user: &str) -> String {
    match e {
        mysql_async::Error::Server(s) if ACCESS_DENIED.contains(&s.code) => {
            format!("authentication failed for user `{user}`: {}", s.message)
        }
        mysql_async::Error::Server(s) => format!("login to {addr} refused: {}", s.message),
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => {
            format!("connect {addr}: {}", io_reason(io))
        }
        mysql_async::Error::Driver(mysql_async::DriverError::UnknownAuthPlugin { name }) => {
            format!(
                "authentication failed for user `{user}`: the server asks for `{name}`, which lantern does not support"
            )
        }
        other => format!("connect {addr}: {other}"),
    }
}

fn query_error(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("query failed: {}", s.message),
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => {
            format!("query failed: {}", io_reason(io))
        }
        other => format!("query failed: {other}"),
    }
}
