//! Stage: client certificate. Takes the authenticated partner and the certificate chain the
//! TLS connection presented (if any) and returns `Ok` when the partner has no client
//! certificates registered — one branch, no other work — or when the presented leaf is one of
//! its pinned certificates (by SHA-256 of the DER, inside its validity dates) or chains to its
//! CA with the expected subject; otherwise a [`ClientCertError`], which `fault.rs` turns into
//! `AccessDeniedFault` with reason `client-certificate`.
//!
//! The TLS listener asks every client for a certificate without requiring one and accepts any
//! well-formed chain whose key signed the handshake (`tls::AnyClientCert`): at the handshake
//! the partner is not known yet, so the decision is taken here.

use rustls_pki_types::UnixTime;

use crate::authenticate::Authenticated;
use crate::certificate::{fingerprint_hex, ChainError, Presented};

/// Why the connection's certificate does not admit the partner.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertError {
    /// The partner has client certificates, and the call came without one (plain HTTP, or TLS
    /// without a certificate).
    #[error("no client certificate presented")]
    Missing,
    /// A certificate that is none of the partner's and does not chain to its CA.
    #[error("client certificate {0} is not registered for the partner")]
    NotRegistered(String),
    /// One of the partner's pinned certificates, outside its validity dates.
    #[error("client certificate {0} is expired or not yet valid")]
    OutsideValidity(String),
    /// The partner's CA refuses the chain, or the subject is another.
    #[error("client certificate {sha256} refused by the partner's CA: {reason}")]
    Chain {
        /// The leaf's fingerprint.
        sha256: String,
        /// Why.
        reason: ChainError,
    },
}

/// Checks the presented certificate against the partner's client-certificate settings at
/// `now` (Unix seconds).
pub fn check(
    auth: &Authenticated,
    presented: Option<&Presented>,
    now: i64,
) -> Result<(), ClientCertError> {
    let Some(settings) = auth.partner.client_auth.as_deref() else {
        return Ok(());
    };
    let presented = presented.ok_or(ClientCertError::Missing)?;
    let sha256 = presented.sha256();
    if let Some(pinned) = settings.pinned.iter().find(|p| &p.sha256 == sha256) {
        if pinned.not_before <= now && now <= pinned.not_after {
            return Ok(());
        }
        if settings.ca.is_none() {
            return Err(ClientCertError::OutsideValidity(fingerprint_hex(sha256)));
        }
    }
    match &settings.ca {
        Some(ca) => {
            let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                u64::try_from(now).unwrap_or(0),
            ));
            ca.verify(presented, at)
                .map_err(|reason| ClientCertError::Chain {
                    sha256: fingerprint_hex(sha256),
                    reason,
                })
        }
        None => Err(ClientCertError::NotRegistered(fingerprint_hex(sha256))),
    }
}
