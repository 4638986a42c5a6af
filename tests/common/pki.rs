//! Certificates for the mutual-TLS tests, made per run with rcgen: CAs, leaves with chosen
//! subjects and dates, written as PEM files; a TLS client that presents one (or none) and
//! reports the server's leaf.

#![allow(
    dead_code,
    reason = "shared by several test files; each uses a part of it"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::TcpStream;

use super::{temp_path, Conn};

/// A CA that issues leaves.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, DER.
    pub der: CertificateDer<'static>,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A certificate and its key, also as files (removed on drop).
pub struct Leaf {
    /// DER of the certificate.
    pub der: CertificateDer<'static>,
    /// PEM of the certificate.
    pub pem: String,
    /// PEM of the key.
    pub key_pem: String,
    key_der: Vec<u8>,
    /// The certificate file.
    pub cert_path: PathBuf,
    /// The key file.
    pub key_path: PathBuf,
}

impl Drop for Leaf {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.cert_path);
        let _ = std::fs::remove_file(&self.key_path);
    }
}

/// What a leaf says about itself.
pub struct Spec<'a> {
    /// `(CN, O)`.
    pub cn: &'a str,
    /// Organisation, if any.
    pub o: Option<&'a str>,
    /// DNS names / IPs.
    pub names: &'a [&'a str],
    /// Valid in the past only (not_after a year ago).
    pub expired: bool,
}

impl<'a> Spec<'a> {
    /// A client certificate for `cn`, valid now.
    pub fn client(cn: &'a str) -> Spec<'a> {
        Spec {
            cn,
            o: None,
            names: &[],
            expired: false,
        }
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server() -> Spec<'static> {
        Spec {
            cn: "localhost",
            o: None,
            names: &["localhost", "127.0.0.1"],
            expired: false,
        }
    }
}

fn params(spec: &Spec<'_>) -> CertificateParams {
    let names: Vec<String> = spec.names.iter().map(|n| (*n).to_string()).collect();
    let mut p = CertificateParams::new(names).expect("params");
    p.distinguished_name.push(DnType::CommonName, spec.cn);
    if let Some(o) = spec.o {
        p.distinguished_name.push(DnType::OrganizationName, o);
    }
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    if spec.expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    p
}

fn write(cert: &rcgen::Certificate, key: &KeyPair) -> Leaf {
    let cert_path = temp_path("mtls-cert", "pem");
    let key_path = temp_path("mtls-key", "pem");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    Leaf {
        der: cert.der().clone(),
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
        cert_path,
        key_path,
    }
}

impl Ca {
    /// A new CA named `cn`.
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).expect("CA cert");
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf it signs.
    pub fn leaf(&self, spec: &Spec<'_>) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let cert = params(spec).signed_by(&key, &self.issuer).expect("leaf");
        write(&cert, &key)
    }

    /// Its certificate as a PEM file (the caller removes it).
    pub fn pem_file(&self) -> PathBuf {
        let path = temp_path("mtls-ca", "pem");
        std::fs::write(&path, &self.pem).expect("write CA");
        path
    }
}

/// A self-signed leaf.
pub fn self_signed(spec: &Spec<'_>) -> Leaf {
    let key = KeyPair::generate().expect("key");
    let cert = params(spec).self_signed(&key).expect("self-signed");
    write(&cert, &key)
}

impl Leaf {
    /// The chain and key rustls presents.
    pub fn identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
        )
    }
}

/// Connects with TLS to `addr` (server name `localhost`), trusting `server_ca`, presenting
/// `client` if given; also returns the leaf the server presented.
pub async fn connect_as(
    addr: SocketAddr,
    server_ca: &CertificateDer<'static>,
    client: Option<&Leaf>,
) -> (
    Conn<tokio_rustls::client::TlsStream<TcpStream>>,
    CertificateDer<'static>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca.clone()).expect("add CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => {
            let (chain, key) = leaf.identity();
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert")
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let served = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .expect("server certificate");
    (Conn::new(tls), served)
}
