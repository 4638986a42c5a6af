//! TLS identities and configurations for every listener and client: a certificate chain and
//! key read from PEM files with errors that name the file and what is wrong
//! ([`TlsFileError`]), kept in an [`Identity`] that hands the current one to each new
//! handshake and can be reloaded from its files without a restart (SIGHUP: [`Reloader`]); the
//! partner listener's client-certificate verifier ([`AnyClientCert`]); and the rustls server
//! and client configurations built on them. No private key is ever logged or put in an error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

/// A certificate or key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not PEM, or has no block of the kind expected.
    #[error("{}: not PEM: {what}", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What was expected or went wrong.
        what: String,
    },
    /// The key's algorithm is not supported.
    #[error("{}: unusable private key: {reason}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What rustls said (never the key).
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("{}: the private key does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider of every TLS configuration (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Unreadable {
        path: path.to_owned(),
        source,
    })
}

/// Every certificate in a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsFileError::NotPem {
            path: path.to_owned(),
            what: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsFileError::NotPem {
            path: path.to_owned(),
            what: "no -----BEGIN CERTIFICATE----- block".into(),
        });
    }
    Ok(certs)
}

/// A certificate chain (leaf first) and its private key, checked to belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsFileError> {
    let chain = load_certs(cert)?;
    let key_bytes = read(key)?;
    let der = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|_| TlsFileError::NotPem {
        path: key.to_owned(),
        // The parser's message is not quoted: it could describe the key's bytes.
        what: "no private key block (PKCS#8, PKCS#1 or SEC1)".into(),
    })?;
    let signing =
        provider()
            .key_provider
            .load_private_key(der)
            .map_err(|e| TlsFileError::BadKey {
                path: key.to_owned(),
                reason: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(_) => Err(TlsFileError::KeyMismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }),
    }
}

// === impl Identity ===

/// A certificate and key from two files, current for every new handshake; [`Identity::reload`]
/// reads the files again and swaps the new pair in only if it is good (connections open
/// before keep theirs).
pub struct Identity {
    /// For the log: `partner listener`, `admin listener`, `upstream client`, …
    label: &'static str,
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("label", &self.label)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads `cert` and `key` (the errors name the file and what is wrong).
    pub fn load(label: &'static str, cert: &Path, key: &Path) -> Result<Identity, TlsFileError> {
        let first = load_certified_key(cert, key)?;
        Ok(Identity {
            label,
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: ArcSwap::from_pointee(first),
        })
    }

    /// Reads the files again; on success new handshakes use the new certificate, on failure
    /// the old one stays and the error says why.
    pub fn reload(&self) -> Result<(), TlsFileError> {
        let next = load_certified_key(&self.cert, &self.key)?;
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// The certificate and key in force.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// What it is, for the log.
    pub fn label(&self) -> &'static str {
        self.label
    }
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

// === impl Reloader ===

/// Every identity of the process, reloaded together on SIGHUP.
#[derive(Debug, Default)]
pub struct Reloader {
    identities: Mutex<Vec<Arc<Identity>>>,
}

impl Reloader {
    /// Loads an identity and registers it for reloading.
    pub fn load(
        &self,
        label: &'static str,
        cert: &Path,
        key: &Path,
    ) -> Result<Arc<Identity>, TlsFileError> {
        let identity = Arc::new(Identity::load(label, cert, key)?);
        if let Ok(mut all) = self.identities.lock() {
            all.push(Arc::clone(&identity));
        }
        Ok(identity)
    }

    /// Reloads every identity; logs each result (a failure keeps the old certificate). Returns
    /// how many failed.
    pub fn reload_all(&self) -> usize {
        let all: Vec<Arc<Identity>> = match self.identities.lock() {
            Ok(all) => all.clone(),
            Err(_) => return 0,
        };
        let mut failed = 0;
        for identity in all {
            match identity.reload() {
                Ok(()) => tracing::info!(
                    identity = identity.label(),
                    cert = %identity.cert.display(),
                    "certificate reloaded"
                ),
                Err(e) => {
                    failed += 1;
                    tracing::warn!(
                        identity = identity.label(),
                        error = %e,
                        "certificate not reloaded: keeping the one in use"
                    );
                }
            }
        }
        failed
    }

    /// How many identities are registered.
    pub fn len(&self) -> usize {
        self.identities.lock().map_or(0, |all| all.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reloads every identity of `reloader` on each SIGHUP until `shutdown` (installing the handler
/// also keeps SIGHUP from ending the process).
pub fn reload_on_sighup(reloader: Arc<Reloader>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP: certificates reload only on restart");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                got = hangups.recv() => {
                    if got.is_none() {
                        break;
                    }
                    let failed = reloader.reload_all();
                    tracing::info!(
                        identities = reloader.len(),
                        failed,
                        "SIGHUP: certificates reloaded"
                    );
                }
                _ = shutdown.changed() => break,
            }
        }
    });
}

// === configurations ===

/// A server configuration presenting `identity` (HTTP/1.1 via ALPN); with `client_certs`,
/// clients are asked for a certificate that they may send or not ([`AnyClientCert`]).
pub fn server_config(
    identity: Arc<Identity>,
    client_certs: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsFileError> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError::Config(e.to_string()))?;
    let builder = if client_certs {
        builder.with_client_cert_verifier(Arc::new(AnyClientCert::new(&provider)))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(identity);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration trusting `roots`, presenting `identity` when the server asks.
pub fn client_config(
    roots: rustls::RootCertStore,
    identity: Option<Arc<Identity>>,
) -> Result<rustls::ClientConfig, TlsFileError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsFileError::Config(e.to_string()))?
        .with_root_certificates(roots);
    Ok(match identity {
        Some(identity) => builder.with_client_cert_resolver(identity),
        None => builder.with_no_client_auth(),
    })
}

// === impl AnyClientCert ===

/// The partner listener's client-certificate verifier: asks every client for a certificate,
/// requires none, and accepts any well-formed chain whose key signs the handshake. Which
/// certificate a partner must present is known only once the request has authenticated it:
/// `client_cert::check` decides there (pinned fingerprint, or the partner's CA and subject).
/// Trusting one CA for everyone at the handshake would not do: a pinned certificate may be
/// self-signed, and partners' CAs must not vouch for each other's partners.
#[derive(Debug)]
pub struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCert {
    /// With `provider`'s signature algorithms.
    pub fn new(provider: &CryptoProvider) -> AnyClientCert {
        AnyClientCert {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        webpki::EndEntityCert::try_from(end_entity)
            .map(|_| ClientCertVerified::assertion())
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
