//! partnergate: a SOAP/WSDL-first security gateway in front of a telephony service provider's
//! partner API. See ARCHITECTURE.md for the map of modules and the invariants.
//!
//! Modules are listed in request-path order.

pub mod generated;
pub mod published;
pub mod xs;

pub mod decode;
pub mod encode;
pub mod envelope;
