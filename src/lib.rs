//! partnergate: a SOAP/WSDL-first security gateway in front of a telephony service provider's
//! partner API. See ARCHITECTURE.md for the map of modules and the invariants.
//!
//! Modules are listed in request-path order.

pub mod access_format;
pub mod certificate;
pub mod generated;
pub mod latency;
pub mod log_output;
pub mod page_headers;
pub mod password;
pub mod pattern;
pub mod published;
pub mod secret;
pub mod store;
pub mod tls;
pub mod xml;
pub mod xs;

pub mod config;

pub mod allowlist;
pub mod authenticate;
pub mod authorize;
pub mod callback;
pub mod client_cert;
pub mod decode;
pub mod encode;
pub mod enroll;
pub mod envelope;
pub mod fault;
pub mod forward;
pub mod json;
pub mod limit;
pub mod pipeline;
pub mod rejection;
pub mod rest;
pub mod server;
pub mod stats;
pub mod telemetry;
pub mod throttle;
pub mod transport;

pub mod provision;

pub mod admin;

pub mod app;
pub mod clock;
pub mod node;
pub mod ticker;

/// Fuzz logic for the cargo-fuzz targets in `fuzz/` (the `fuzzing` feature; see the module doc
/// for why a feature and not `cfg(fuzzing)`).
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
