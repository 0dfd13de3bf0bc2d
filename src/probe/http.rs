//! `http` checks: one request, conditions on status, headers, body, JSON, time and certificate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::facts::MAX_TEXT;
use super::{Facts, ProbeContext, expand_self};
use crate::config::validate::Ctx;
use crate::config::{RawCheck, Secret};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub url: String,
    pub method: String,
    /// Values may hold credentials, so all are kept as secrets.
    pub headers: Vec<(String, Secret)>,
    pub body: Option<String>,
    pub bearer_token: Option<Secret>,
    pub client: ClientKey,
}

/// What makes two checks able to share one HTTP client (and so one TLS
/// configuration): ten thousand checks need a handful of clients, not ten thousand.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClientKey {
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub skip_verify: bool,
    pub follow_redirects: bool,
    /// Off by default: a fresh connection per probe is what proves the server
    /// still accepts connections, as blackbox_exporter does.
    pub reuse_connections: bool,
}

impl ClientKey {
    /// Validates the TLS keys shared by `http` and `flow` checks.
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> ClientKey {
        let ca_file = raw.ca_file.as_deref().map(|p| cx.path(p));
        if let Some(ca) = &ca_file {
            match std::fs::read(ca) {
                Ok(pem)
                    if reqwest::Certificate::from_pem_bundle(&pem).is_ok_and(|c| !c.is_empty()) => {
                }
                Ok(_) => cx.error(
                    &format!("{key}.ca-file"),
                    format!("{} holds no PEM certificate", ca.display()),
                ),
                Err(e) => cx.error(
                    &format!("{key}.ca-file"),
                    format!("cannot read {}: {e}", ca.display()),
                ),
            }
        }
        let client_cert = raw.client_cert.as_deref().map(|p| cx.path(p));
        let client_key = raw.client_key.as_deref().map(|p| cx.path(p));
        match (&client_cert, &client_key) {
            (Some(c), Some(k)) => {
                if let Err(e) = identity(c, k) {
                    cx.error(&format!("{key}.client-cert"), e);
                }
            }
            (Some(_), None) => cx.error(
                &format!("{key}.client-key"),
                "`client-cert` needs `client-key`",
            ),
            (None, Some(_)) => cx.error(
                &format!("{key}.client-cert"),
                "`client-key` needs `client-cert`",
            ),
            (None, None) => {}
        }
        ClientKey {
            ca_file,
            client_cert,
            client_key,
            skip_verify: raw.skip_verify.unwrap_or(false),
            follow_redirects: raw.follow_redirects.unwrap_or(false),
            reuse_connections: raw.reuse_connections.unwrap_or(false),
        }
    }

    fn build(&self) -> Result<reqwest::Client, String> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_info(true)
            .user_agent(concat!("lantern/", env!("CARGO_PKG_VERSION")))
            .redirect(if self.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            })
            .danger_accept_invalid_certs(self.skip_verify);
        if !self.reuse_connections {
            b = b.pool_max_idle_per_host(0);
        } else {
            b = b.pool_idle_timeout(Duration::from_secs(90));
        }
        if let Some(ca) = &self.ca_file {
            let pem =
                std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())? {
                b = b.add_root_certificate(cert);
            }
        }
        if let (Some(c), Some(k)) = (&self.client_cert, &self.client_key) {
            b = b.identity(identity(c, k)?);
        }
        b.build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))
    }
}

fn identity(cert: &PathBuf, key: &PathBuf) -> Result<reqwest::Identity, String> {
    let mut pem =
        std::fs::read(cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    pem.push(b'\n');
    pem.extend(std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?);
    reqwest::Identity::from_pem(&pem)
        .map_err(|e| format!("client certificate or key is not usable PEM: {e}"))
}

/// HTTP clients shared by every check with the same [`ClientKey`], built on first use.
#[derive(Clone, Default)]
pub struct Clients {
    inner: Arc<Mutex<HashMap<ClientKey, reqwest::Client>>>,
}

impl Clients {
    pub fn get(&self, key: &ClientKey) -> Result<reqwest::Client, String> {
        // Held only to look up or insert: building a client is quick and rare.
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(key) {
            return Ok(c.clone());
        }
        let c = key.build()?;
        map.insert(key.clone(), c.clone());
        Ok(c)
    }
}

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Validates a URL that may contain `{self}`.
pub(crate) fn url(cx: &mut Ctx, key: &str, raw: Option<&str>) -> Option<String> {
    let Some(u) = raw else {
        cx.error(key, "a `url` is required");
        return None;
    };
    match reqwest::Url::parse(&u.replace("{self}", "127.0.0.1:1")) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Some(u.to_string()),
        Ok(parsed) => {
            cx.error(
                key,
                format!(
                    "`{}` URLs are not HTTP; use http:// or https://",
                    parsed.scheme()
                ),
            );
            None
        }
        Err(e) => {
            cx.error(key, format!("`{u}` is not a URL: {e}"));
            None
        }
    }
}

pub(crate) fn method(cx: &mut Ctx, key: &str, raw: Option<&str>) -> String {
    let m = raw.unwrap_or("GET").to_ascii_uppercase();
    if !METHODS.contains(&m.as_str()) {
        cx.error(key, format!("`{m}` is not one of {}", METHODS.join(", ")));
    }
    m
}

pub(crate) fn headers(
    cx: &mut Ctx,
    key: &str,
    raw: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<(String, Secret)> {
    let mut out = Vec::new();
    for (name, value) in raw.into_iter().flatten() {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            cx.error(key, format!("`{name}` is not a header name"));
            continue;
        }
        match crate::config::validate::expand(value) {
            Ok(v) => out.push((name.clone(), Secret::new(v))),
            Err(e) => cx.error(key, format!("header `{name}`: {e}")),
        }
    }
    out
}

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        let url = url(cx, &format!("{key}.url"), raw.url.as_deref());
        let method = method(cx, &format!("{key}.method"), raw.method.as_deref());
        let headers = headers(cx, &format!("{key}.headers"), raw.headers.as_ref());
        let bearer_token = cx.secret(
            &format!("{key}.bearer-token"),
            raw.bearer_token.as_deref(),
            raw.bearer_token_file.as_deref(),
        );
        let client = ClientKey::from_raw(cx, key, raw);
        Some(Spec {
            url: url?,
            method,
            headers,
            body: raw.body.clone(),
            bearer_token,
            client,
        })
    }

    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        let client = cx.http.get(&self.client)?;
        let url = expand_self(&self.url, cx.self_addr);
        let req = request(
            &client,
            &self.method,
            &url,
            &self.headers,
            self.bearer_token.as_ref(),
            self.body.clone(),
        );
        let resp = req
            .send()
            .await
            // Without the URL: it is in the config, and may carry credentials.
            .map_err(|e| error_chain(&e.without_url()))?;
        response_facts(resp).await
    }
}

/// Builds a request; shared with `flow` steps.
pub(crate) fn request(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(String, Secret)],
    bearer: Option<&Secret>,
    body: Option<String>,
) -> reqwest::RequestBuilder {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.header(k, v.expose());
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t.expose());
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    req
}

/// Reads status, headers, certificate expiry and up to 1 MiB of body.
pub(crate) async fn response_facts(mut resp: reqwest::Response) -> Result<Facts, String> {
    let mut facts = Facts {
        connected: Some(true),
        status: Some(resp.status().as_u16()),
        ..Facts::default()
    };
    for (k, v) in resp.headers() {
        facts.headers.insert(
            k.as_str().to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        );
    }
    if let Some(info) = resp.extensions().get::<reqwest::tls::TlsInfo>() {
        facts.cert_expiry = info.peer_certificate().and_then(cert_not_after);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading body: {}", error_chain(&e)))?
    {
        let room = MAX_TEXT.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    facts.body = Some(String::from_utf8_lossy(&body).into_owned());
    Ok(facts)
}

/// A certificate's notAfter, from its DER encoding.
pub fn cert_not_after(der: &[u8]) -> Option<std::time::SystemTime> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let ts = cert.validity().not_after.timestamp();
    u64::try_from(ts)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// "error sending request: connection refused", not just the outermost layer.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
