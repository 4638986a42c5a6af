//! Why a request was refused: one [`Rejection`] variant per stage of the request path, made by
//! `pipeline` and turned into a SOAP fault by `fault`. Below both, so that neither imports the
//! other for it; uses the stages' own error types.

use crate::allowlist::AllowError;
use crate::authenticate::AuthError;
use crate::authorize::AuthorizeError;
use crate::client_cert::ClientCertError;
use crate::decode::DecodeError;
use crate::envelope::EnvelopeError;
use crate::forward::ForwardError;
use crate::limit::LimitError;
use crate::throttle::{Refused, Throttled, TooManyInFlight};
use crate::transport::TransportError;

/// The SOAPAction names another operation than the body, or none of the contract.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("SOAPAction {action:?} does not match the body element {body}")]
pub struct ActionError {
    /// The action the client sent (bounded).
    pub action: String,
    /// The operation the body element names.
    pub body: &'static str,
}

/// A REST face request that names no operation: its path, method or media type (`crate::rest`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No route has this path.
    #[error("no resource at this path")]
    NotFound,
    /// The path is known, the method is not one of its routes'.
    #[error("method not allowed here (allowed: {allow})")]
    MethodNotAllowed {
        /// The methods the path has, for `Allow`.
        allow: &'static str,
    },
    /// A body whose content type is not `application/json` (bounded).
    #[error("content type {0:?} is not application/json")]
    UnsupportedMediaType(String),
    /// A body on a route that takes none (`GET`).
    #[error("this route takes no request body")]
    UnexpectedBody,
}

impl RouteError {
    /// The rule name in the problem (and the fault, were one ever rendered).
    pub fn rule(&self) -> &'static str {
        match self {
            RouteError::NotFound => "route",
            RouteError::MethodNotAllowed { .. } => "method",
            RouteError::UnsupportedMediaType(_) => "content-type",
            RouteError::UnexpectedBody => "body",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> http::StatusCode {
        match self {
            RouteError::NotFound => http::StatusCode::NOT_FOUND,
            RouteError::MethodNotAllowed { .. } => http::StatusCode::METHOD_NOT_ALLOWED,
            RouteError::UnsupportedMediaType(_) => http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RouteError::UnexpectedBody => http::StatusCode::BAD_REQUEST,
        }
    }
}

/// Why a request was refused: one variant per stage.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// HTTP framing.
    #[error(transparent)]
    Transport(TransportError),
    /// The REST face's route, method or media type.
    #[error(transparent)]
    Route(RouteError),
    /// Size, time or XML structure limits.
    #[error(transparent)]
    Limit(LimitError),
    /// Not an acceptable SOAP envelope.
    #[error(transparent)]
    Envelope(EnvelopeError),
    /// SOAPAction and body disagree.
    #[error(transparent)]
    Action(ActionError),
    /// Authentication.
    #[error(transparent)]
    Auth(AuthError),
    /// The partner's client certificate (mutual TLS).
    #[error(transparent)]
    ClientCert(ClientCertError),
    /// Calling-server allowlist.
    #[error(transparent)]
    Allow(AllowError),
    /// Per-operation permission.
    #[error(transparent)]
    Authorize(AuthorizeError),
    /// Throttling.
    #[error(transparent)]
    Throttle(Throttled),
    /// Too many of the partner's requests in flight (`limits.max_in_flight_per_partner`).
    #[error(transparent)]
    InFlight(TooManyInFlight),
    /// Strict typed decode.
    #[error(transparent)]
    Decode(DecodeError),
    /// The upstream.
    #[error(transparent)]
    Forward(ForwardError),
}

impl From<Refused> for Rejection {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Rate(t) => Rejection::Throttle(t),
            Refused::InFlight(e) => Rejection::InFlight(e),
        }
    }
}

impl Rejection {
    /// The stage that refused, for logs and metrics.
    pub fn stage(&self) -> &'static str {
        match self {
            Rejection::Transport(_) => "transport",
            Rejection::Route(_) => "route",
            Rejection::Limit(_) => "limit",
            Rejection::Envelope(_) => "envelope",
            Rejection::Action(_) => "action",
            Rejection::Auth(_) => "authenticate",
            Rejection::ClientCert(_) => "client-certificate",
            Rejection::Allow(_) => "allowlist",
            Rejection::Authorize(_) => "authorize",
            Rejection::Throttle(_) | Rejection::InFlight(_) => "throttle",
            Rejection::Decode(_) => "decode",
            Rejection::Forward(_) => "forward",
        }
    }
}

/// Why the enrollment endpoint refused a call (`crate::enroll`): its own refusals, or a stage
/// it shares with the partner path. `fault::render_enrollment` turns it into a fault.
#[derive(Debug, thiserror::Error)]
pub enum EnrollRefusal {
    /// `enrollment.enabled` is false.
    #[error("enrollment is disabled")]
    Disabled,
    /// The caller is outside `enrollment.allow` (empty by default: closed).
    #[error("enrollment is closed to {0}")]
    Closed(std::net::IpAddr),
    /// The caller's address exceeded `enrollment.rate_per_minute`.
    #[error("too many enrollment calls from this address")]
    Rate {
        /// Seconds until the next call is admitted.
        retry_after_secs: u64,
    },
    /// `enrollment.max_pending` requests wait for an operator already.
    #[error("too many pending enrollments")]
    Full,
    /// An unknown enrollment id or a wrong pickup secret: one refusal for both.
    #[error("enrollment id or pickup secret not recognised")]
    Denied,
    /// The request is well-formed but cannot be accepted (a network with host bits, an
    /// unknown operation, other terms, a callback URL of a scheme not allowed).
    #[error("{path}: {message}")]
    Invalid {
        /// The element path.
        path: String,
        /// The rule (`enrollment-network`, …).
        rule: &'static str,
        /// Why.
        message: String,
    },
    /// The database failed.
    #[error("enrollment store: {0}")]
    Unavailable(String),
    /// A stage shared with the partner path (transport, limits, envelope, action, decode).
    #[error(transparent)]
    Path(Rejection),
}
