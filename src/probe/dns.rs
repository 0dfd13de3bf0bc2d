//! `dns` checks: one query over UDP (TCP when the reply is truncated), reporting the rcode and the answers' text.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use serde::{Serialize, Serializer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::{Facts, ProbeContext};
use crate::config::RawCheck;
use crate::config::validate::Ctx;

/// The record types a check may ask for; others are refused at load.
const TYPES: &[&str] = &[
    "A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "PTR", "CAA",
];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    /// host:port, port 53 filled in when absent.
    pub server: String,
    #[serde(serialize_with = "as_text")]
    pub query_name: Name,
    #[serde(serialize_with = "as_text")]
    pub record_type: RecordType,
}

fn as_text<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        let server = match raw.server.as_deref() {
            None => {
                cx.error(
                    &format!("{key}.server"),
                    "a `server` (host or host:port) is required",
                );
                None
            }
            Some(s) => match server_address(s) {
                Ok(a) => Some(a),
                Err(e) => {
                    cx.error(&format!("{key}.server"), e);
                    None
                }
            },
        };
        let query_name = match raw.query_name.as_deref() {
            None => {
                cx.error(&format!("{key}.query-name"), "a `query-name` is required");
                None
            }
            Some(q) => match Name::from_utf8(q) {
                Ok(mut n) if !q.trim().is_empty() => {
                    n.set_fqdn(true);
                    Some(n)
                }
                Ok(_) => {
                    cx.error(&format!("{key}.query-name"), "the name is empty");
                    None
                }
                Err(e) => {
                    cx.error(
                        &format!("{key}.query-name"),
                        format!("`{q}` is not a domain name: {e}"),
                    );
                    None
                }
            },
        };
        let rt_text = raw
            .record_type
            .as_deref()
            .unwrap_or("A")
            .to_ascii_uppercase();
        let record_type = if TYPES.contains(&rt_text.as_str()) {
            rt_text.parse::<RecordType>().ok()
        } else {
            None
        };
        if record_type.is_none() {
            cx.error(
                &format!("{key}.record-type"),
                format!("`{rt_text}` is not one of {}", TYPES.join(", ")),
            );
        }
        Some(Spec {
            server: server?,
            query_name: query_name?,
            record_type: record_type?,
        })
    }

    pub async fn probe(&self, _cx: &ProbeContext) -> Result<Facts, String> {
        let server = tokio::net::lookup_host(&self.server)
            .await
            .map_err(|e| format!("resolve {}: {e}", self.server))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", self.server))?;
        let id = query_id();
        let mut query = Message::new();
        query
            .set_id(id)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(self.query_name.clone(), self.record_type));
        let wire = query
            .to_vec()
            .map_err(|e| format!("cannot encode the query: {e}"))?;
        let mut reply = over_udp(server, &wire, id).await?;
        if reply.truncated() {
            reply = over_tcp(server, &wire, id).await?;
        }
        let answers = reply
            .answers()
            .iter()
            .filter(|r| r.record_type() == self.record_type)
            .map(|r| r.data().to_string())
            .collect();
        Ok(Facts {
            rcode: Some(rcode_text(reply.response_code())),
            answers,
            ..Facts::default()
        })
    }
}

/// "127.0.0.1" → "127.0.0.1:53", "[::1]" / "::1" → "[::1]:53", "ns1.test:5353" kept.
fn server_address(s: &str) -> Result<String, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a.to_string());
    }
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53).to_string());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) if p != 0 => (h, p),
            _ => return Err(format!("`{s}`: `{p}` is not a port")),
        },
        None => (s, 53),
    };
    let hostname_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !hostname_ok {
        return Err(format!("`{s}` is not host or host:port"));
    }
    Ok(format!("{host}:{port}"))
}

/// A fresh, unpredictable query id (std's hasher keys are random per process
/// and change per call), so a stale or spoofed reply is not taken for ours.
fn query_id() -> u16 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() & 0xffff) as u16
}

/// Sends the query and waits for the reply that carries our id; the caller's
/// timeout bounds the wait, as with every probe.
async fn over_udp(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, String> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("bind UDP socket: {e}"))?;
    // Connected, so only the server's datagrams arrive and a closed port is reported.
    socket
        .connect(server)
        .await
        .map_err(|e| format!("connect {server}: {e}"))?;
    socket
        .send(wire)
        .await
        .map_err(|e| format!("send to {server}: {e}"))?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| format!("no reply from {server}: {e}"))?;
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.id() == id && m.message_type() == MessageType::Response => return Ok(m),
            // Not ours (late reply to an earlier attempt) or garbage: keep waiting.
            _ => continue,
        }
    }
}

/// RFC 1035 4.2.2: the same message with a two-byte length prefix.
async fn over_tcp(server: SocketAddr, wire: &[u8], id: u16) -> Result<Message, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|e| format!("connect {server} (TCP, after a truncated reply): {e}"))?;
    let len = u16::try_from(wire.len()).map_err(|_| "query too long".to_string())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(wire);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| format!("send to {server} (TCP): {e}"))?;
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| format!("read from {server} (TCP): {e}"))?;
    // At most 64 KiB, as the prefix says: the allocation is bounded.
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| format!("read from {server} (TCP): {e}"))?;
    let m = Message::from_vec(&buf).map_err(|e| format!("bad reply from {server}: {e}"))?;
    if m.id() != id {
        return Err(format!("reply from {server} (TCP) answers another query"));
    }
    Ok(m)
}

/// The mnemonic as dig prints it (NOERROR, NXDOMAIN), which conditions compare against.
fn rcode_text(code: ResponseCode) -> String {
    let n = u16::from(code);
    let name = match n {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        _ => return format!("RCODE{n}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn errors(check: &str) -> Vec<(Option<String>, String)> {
        let text = format!("[[checks]]\nname = \"c\"\n{check}\n");
        match Config::parse(Path::new("/etc/lantern/t.toml"), &text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| (e.key, e.message)).collect(),
        }
    }

    fn has_key(errs: &[(Option<String>, String)], key: &str) -> bool {
        errs.iter().any(|(k, _)| k.as_deref() == Some(key))
    }

    #[test]
    fn servers_get_port_53_unless_they_name_one() {
        assert_eq!(server_address("127.0.0.1").unwrap(), "127.0.0.1:53");
        assert_eq!(server_address("127.0.0.1:5353").unwrap(), "127.0.0.1:5353");
        assert_eq!(server_address("::1").unwrap(), "[::1]:53");
        assert_eq!(server_address("[::1]:54").unwrap(), "[::1]:54");
        assert_eq!(server_address("ns1.test").unwrap(), "ns1.test:53");
        assert!(server_address("127.0.0.1:dns").is_err());
        assert!(server_address("bad host:53").is_err());
        assert!(server_address("").is_err());
    }

    #[test]
    fn rcodes_read_as_dig_prints_them() {
        assert_eq!(rcode_text(ResponseCode::NoError), "NOERROR");
        assert_eq!(rcode_text(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_text(ResponseCode::ServFail), "SERVFAIL");
    }

    #[test]
    fn a_valid_dns_check_loads() {
        let errs = errors(
            "kind = \"dns\"\nserver = \"127.0.0.1:5353\"\nquery-name = \"shop.test\"\nrecord-type = \"mx\"",
        );
        assert!(errs.is_empty(), "{errs:?}");
    }

    #[test]
    fn an_unknown_record_type_is_an_error_naming_the_key() {
        let errs = errors(
            "kind = \"dns\"\nserver = \"127.0.0.1\"\nquery-name = \"shop.test\"\nrecord-type = \"AXFR\"",
        );
        assert!(has_key(&errs, "checks[0].record-type"), "{errs:?}");
    }

    #[test]
    fn a_bad_server_address_is_an_error_naming_the_key() {
        let errs =
            errors("kind = \"dns\"\nserver = \"127.0.0.1:port\"\nquery-name = \"shop.test\"");
        assert!(has_key(&errs, "checks[0].server"), "{errs:?}");
        let errs = errors("kind = \"dns\"\nquery-name = \"shop.test\"");
        assert!(has_key(&errs, "checks[0].server"), "{errs:?}");
    }
}
