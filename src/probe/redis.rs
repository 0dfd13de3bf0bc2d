//! `redis` checks: a minimal RESP2 client: AUTH, PING, and optionally INFO parsed into fields.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Facts, ProbeContext, expand_self};
use crate::config::validate::Ctx;
use crate::config::{RawCheck, Secret};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub address: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub info_section: Option<String>,
}

/// The longest status, error or length line accepted from the server.
const MAX_LINE: u64 = 4096;
/// The largest bulk reply accepted: `INFO everything` is tens of KiB.
const MAX_BULK: usize = 1 << 20;

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        let address = super::address(cx, &format!("{key}.address"), raw.address.as_deref());
        let password = cx.secret(
            &format!("{key}.password"),
            raw.password.as_deref(),
            raw.password_file.as_deref(),
        );
        if raw.username.is_some() && raw.password.is_none() && raw.password_file.is_none() {
            cx.error(
                &format!("{key}.username"),
                "`username` needs `password` or `password-file`",
            );
        }
        if let Some(section) = &raw.info_section
            && (section.is_empty() || !section.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            cx.error(
                    &format!("{key}.info-section"),
                    format!(
                        "`{section}` is not an INFO section name (e.g. server, replication, memory, all)"
                    ),
                );
        }
        Some(Spec {
            address: address?,
            username: raw.username.clone(),
            password,
            info_section: raw.info_section.clone(),
        })
    }

    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        let addr = expand_self(&self.address, cx.self_addr);
        let stream = TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let mut conn = BufReader::new(stream);
        if let Some(password) = &self.password {
            let mut args = vec!["AUTH"];
            if let Some(user) = &self.username {
                args.push(user);
            }
            args.push(password.expose());
            match command(&mut conn, &args).await? {
                Reply::Simple(s) if s == "OK" => {}
                Reply::Error(e) => return Err(format!("authentication failed: {e}")),
                other => return Err(format!("AUTH: unexpected reply {}", other.describe())),
            }
        }
        match command(&mut conn, &["PING"]).await? {
            Reply::Simple(s) if s == "PONG" => {}
            Reply::Error(e) if is_auth_error(&e) => {
                return Err(format!("authentication failed: {e}"));
            }
            Reply::Error(e) => return Err(format!("PING: {e}")),
            other => return Err(format!("PING: expected PONG, got {}", other.describe())),
        }
        let mut facts = Facts {
            connected: Some(true),
            body: Some("PONG".into()),
            ..Facts::default()
        };
        if let Some(section) = &self.info_section {
            match command(&mut conn, &["INFO", section]).await? {
                Reply::Bulk(text) => facts.info = parse_info(&String::from_utf8_lossy(&text)),
                Reply::Error(e) => return Err(format!("INFO {section}: {e}")),
                other => {
                    return Err(format!(
                        "INFO {section}: unexpected reply {}",
                        other.describe()
                    ));
                }
            }
        }
        Ok(facts)
    }
}

fn is_auth_error(e: &str) -> bool {
    e.starts_with("NOAUTH") || e.starts_with("WRONGPASS")
}

/// One RESP2 reply; arrays are never asked for, so they count as unexpected.
#[derive(Debug, PartialEq)]
enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Null,
    Array,
}

impl Reply {
    fn describe(&self) -> String {
        match self {
            Reply::Simple(s) => format!("`+{s}`"),
            Reply::Error(e) => format!("`-{e}`"),
            Reply::Integer(i) => format!("`:{i}`"),
            Reply::Bulk(b) => format!("a {}-byte string", b.len()),
            Reply::Null => "a null".into(),
            Reply::Array => "an array".into(),
        }
    }
}

/// Sends `args` as a RESP array (binary-safe: no quoting, no injection) and reads one reply.
async fn command(conn: &mut BufReader<TcpStream>, args: &[&str]) -> Result<Reply, String> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    conn.get_mut()
        .write_all(&out)
        .await
        .map_err(|e| format!("send {}: {e}", args[0]))?;
    read_reply(conn)
        .await
        .map_err(|e| format!("reading the reply to {}: {e}", args[0]))
}

/// Reads one reply, never more than [`MAX_LINE`] per line or [`MAX_BULK`] per
/// string, so a hostile server cannot make the probe allocate without limit.
async fn read_reply<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Reply, String> {
    let line = read_line(r).await?;
    let (kind, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
    Ok(match kind {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Integer(
            rest.parse()
                .map_err(|_| format!("bad integer reply `{rest}`"))?,
        ),
        "$" => {
            let len: i64 = rest
                .parse()
                .map_err(|_| format!("bad bulk length `{rest}`"))?;
            if len < 0 {
                return Ok(Reply::Null);
            }
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= MAX_BULK)
                .ok_or_else(|| format!("bulk reply of {len} bytes exceeds {MAX_BULK}"))?;
            let mut buf = vec![0u8; len + 2];
            r.read_exact(&mut buf)
                .await
                .map_err(|e| format!("connection closed mid-reply: {e}"))?;
            if !buf.ends_with(b"\r\n") {
                return Err("bulk reply not terminated by CRLF".into());
            }
            buf.truncate(len);
            Reply::Bulk(buf)
        }
        "*" => Reply::Array,
        _ => {
            return Err(format!(
                "not a RESP reply: `{}`",
                line.chars().take(40).collect::<String>()
            ));
        }
    })
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<String, String> {
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(MAX_LINE)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("connection closed".into());
    }
    if !buf.ends_with(b"\r\n") {
        return Err(format!(
            "reply line longer than {MAX_LINE} bytes or cut off"
        ));
    }
    buf.truncate(buf.len() - 2);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `field:value` lines; `# Section` headers and blank lines are skipped.
fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    async fn reply(bytes: &[u8]) -> Result<Reply, String> {
        let mut r = bytes;
        read_reply(&mut r).await
    }

    #[tokio::test]
    async fn replies_of_each_kind_are_read() {
        assert_eq!(reply(b"+PONG\r\n").await, Ok(Reply::Simple("PONG".into())));
        assert_eq!(
            reply(b"-WRONGPASS invalid\r\n").await,
            Ok(Reply::Error("WRONGPASS invalid".into()))
        );
        assert_eq!(reply(b":42\r\n").await, Ok(Reply::Integer(42)));
        assert_eq!(
            reply(b"$3\r\nabc\r\n").await,
            Ok(Reply::Bulk(b"abc".to_vec()))
        );
        assert_eq!(reply(b"$-1\r\n").await, Ok(Reply::Null));
    }

    #[tokio::test]
    async fn a_hostile_server_cannot_make_the_probe_allocate_without_limit() {
        let huge = reply(b"$99999999999\r\n").await.unwrap_err();
        assert!(huge.contains("exceeds"), "{huge}");
        let long_line = vec![b'+'; 10_000];
        assert!(reply(&long_line).await.is_err());
        assert!(reply(b"$5\r\nab").await.is_err());
        assert!(reply(b"").await.is_err());
        assert!(reply(b"?what\r\n").await.is_err());
    }

    #[test]
    fn info_fields_are_split_at_the_first_colon() {
        let info = parse_info(
            "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:ab:cd\r\n\r\n",
        );
        assert_eq!(info.get("role").map(String::as_str), Some("master"));
        assert_eq!(info.get("connected_slaves").map(String::as_str), Some("0"));
        assert_eq!(info.get("master_replid").map(String::as_str), Some("ab:cd"));
        assert_eq!(info.len(), 3);
    }

    fn error_keys(check: &str) -> Vec<String> {
        let text = format!("[[checks]]\nname = \"c\"\n{check}\n");
        match Config::parse(Path::new("/etc/lantern/t.toml"), &text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().filter_map(|e| e.key).collect(),
        }
    }

    #[test]
    fn a_missing_address_is_an_error_naming_the_key() {
        let keys = error_keys("kind = \"redis\"\npassword = \"x\"");
        assert!(keys.contains(&"checks[0].address".to_string()), "{keys:?}");
        let keys = error_keys("kind = \"tls\"");
        assert!(keys.contains(&"checks[0].address".to_string()), "{keys:?}");
    }

    #[test]
    fn a_bad_info_section_is_an_error_naming_the_key() {
        let keys = error_keys(
            "kind = \"redis\"\naddress = \"127.0.0.1:6379\"\ninfo-section = \"role\\r\\nFLUSHALL\"",
        );
        assert_eq!(keys, vec!["checks[0].info-section".to_string()]);
    }

    #[test]
    fn a_username_without_a_password_is_an_error_naming_the_key() {
        let keys = error_keys("kind = \"redis\"\naddress = \"127.0.0.1:6379\"\nusername = \"u\"");
        assert_eq!(keys, vec!["checks[0].username".to_string()]);
    }
}
