//! `tls` checks: TCP connect and a TLS handshake, reporting the leaf's and the whole chain's earliest expiry.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;
use tokio::net::TcpStream;

use super::http::cert_not_after;
use super::{Facts, ProbeContext, expand_self};
use crate::config::RawCheck;
use crate::config::validate::Ctx;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Spec {
    pub address: String,
    /// The name sent as SNI and verified against the certificate; when not
    /// set, the host part of `address`.
    pub server_name: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub skip_verify: bool,
}

impl Spec {
    pub(crate) fn from_raw(cx: &mut Ctx, key: &str, raw: &RawCheck) -> Option<Spec> {
        let address = super::address(cx, &format!("{key}.address"), raw.address.as_deref());
        let server_name = raw.server_name.clone();
        match (&server_name, &address) {
            (Some(name), _) => {
                if ServerName::try_from(name.as_str()).is_err() {
                    cx.error(
                        &format!("{key}.server-name"),
                        format!("`{name}` is not a DNS name or IP address"),
                    );
                }
            }
            (None, Some(a)) => {
                let host = host_of(&expand_self(a, SocketAddr::from(([127, 0, 0, 1], 1))));
                if ServerName::try_from(host.as_str()).is_err() {
                    cx.error(
                        &format!("{key}.address"),
                        format!(
                            "`{host}` cannot be verified as a name; set `server-name` to the certificate's name"
                        ),
                    );
                }
            }
            (None, None) => {}
        }
        let ca_file = raw.ca_file.as_deref().map(|p| cx.path(p));
        if let Some(ca) = &ca_file
            && let Err(e) = read_ca_file(ca)
        {
            cx.error(&format!("{key}.ca-file"), e);
        }
        Some(Spec {
            address: address?,
            server_name,
            ca_file,
            skip_verify: raw.skip_verify.unwrap_or(false),
        })
    }

    pub async fn probe(&self, cx: &ProbeContext) -> Result<Facts, String> {
        let addr = expand_self(&self.address, cx.self_addr);
        let name_text = self.server_name.clone().unwrap_or_else(|| host_of(&addr));
        let name = ServerName::try_from(name_text.clone())
            .map_err(|_| format!("`{name_text}` is not a DNS name or IP address"))?;
        let config = self.client_config()?;
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| handshake_error(&e))?;
        let (_, conn) = tls.get_ref();
        let chain = conn.peer_certificates().unwrap_or_default();
        let expiries: Vec<Option<SystemTime>> =
            chain.iter().map(|c| cert_not_after(c.as_ref())).collect();
        Ok(Facts {
            connected: Some(true),
            cert_expiry: expiries.first().copied().flatten(),
            chain_expiry: expiries.iter().flatten().min().copied(),
            ..Facts::default()
        })
    }

    fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let config = if self.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = native_roots().clone();
            if let Some(ca) = &self.ca_file {
                for cert in read_ca_file(ca)? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(config)
    }
}

/// The system's trust store, read once: it is large and changes only with the OS.
fn native_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        // Unreadable system certificates are skipped: a `ca-file` may still cover the peer.
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        roots
    })
}

fn read_ca_file(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// "example.com" from "example.com:443", "::1" from "[::1]:443".
fn host_of(address: &str) -> String {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

/// "certificate verify failed: UnknownIssuer" rather than rustls's nested wording.
fn handshake_error(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(ce)) => {
            format!("certificate verify failed: {}", cert_error_name(ce))
        }
        Some(other) => format!("TLS handshake failed: {other}"),
        None => format!("TLS handshake failed: {e}"),
    }
}

/// The variant's name without its context fields (`ExpiredContext { … }` → `Expired`).
fn cert_error_name(e: &CertificateError) -> String {
    let debug = format!("{e:?}");
    let name = debug.split([' ', '(', '{']).next().unwrap_or(&debug);
    match name.strip_suffix("Context") {
        Some(base) if !base.is_empty() => base.to_string(),
        _ if name == "Other" => debug,
        _ => name.to_string(),
    }
}

/// For `skip-verify = true`: trusts any certificate so its dates can still be
/// read, but still checks the handshake signatures so the session is real TLS.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_taken_from_the_address() {
        assert_eq!(host_of("example.com:443"), "example.com");
        assert_eq!(host_of("[::1]:8443"), "::1");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
    }

    #[test]
    fn certificate_errors_are_named_without_their_context() {
        assert_eq!(
            cert_error_name(&CertificateError::UnknownIssuer),
            "UnknownIssuer"
        );
        let expired = CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(2)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1)),
        };
        assert_eq!(cert_error_name(&expired), "Expired");
    }
}
