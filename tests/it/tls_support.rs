//! A throwaway test PKI (rcgen): a CA, a server leaf for 127.0.0.1 and a client certificate, as DER for rustls servers and PEM files for lantern.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

fn unix_seconds_from_now(days: u64) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    now.as_secs() + days * 86_400
}

/// A CA and what it signed: a leaf for 127.0.0.1 and localhost expiring in
/// ~200 days (plus 17 s, so expiry is checked to the second) and a client
/// certificate. PEM files lie in a temp dir: `ca.pem`, `cert.pem`, `key.pem`,
/// `client.pem`, `client-key.pem`.
pub struct Pki {
    ca_der: CertificateDer<'static>,
    /// Leaf first, then the CA.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub leaf_not_after: u64,
    pub ca_not_after: u64,
    dir: tempfile::TempDir,
}

impl Pki {
    /// The CA expires in `ca_days`; under 200 makes the chain expire before the leaf.
    pub fn new(ca_days: u64) -> Pki {
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let ca_not_after = unix_seconds_from_now(ca_days);
        let leaf_not_after = unix_seconds_from_now(200) + 17;

        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "lantern test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca.not_after = epoch + Duration::from_secs(ca_not_after);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        leaf.not_after = epoch + Duration::from_secs(leaf_not_after);
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "lantern probe");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();

        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("ca.pem", ca_cert.pem()),
            ("cert.pem", leaf_cert.pem()),
            ("key.pem", leaf_key.serialize_pem()),
            ("client.pem", client_cert.pem()),
            ("client-key.pem", client_key.serialize_pem()),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Pki {
            ca_der: ca_cert.der().clone(),
            chain: vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            leaf_not_after,
            ca_not_after,
            dir,
        }
    }

    /// One of the PEM files named above.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A rustls server presenting leaf + CA; with `require_client_cert`, only
    /// clients presenting a certificate signed by this CA get through.
    pub fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .unwrap();
        Arc::new(config)
    }
}
