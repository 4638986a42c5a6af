//! The bindings build.rs generates from the contract in `wsdl/` (compiled from `OUT_DIR`; the
//! reviewed mirror is `generated/`).
//!
//! - [`types`]: one module per schema namespace (xsd-parser): the request, response, header and
//!   fault element types with their quick-xml deserializers and serializers.
//! - [`partner`]: the operation table of `wsdl/partner-api.wsdl`.
//! - [`callback`]: the operation table of `wsdl/partner-callback.wsdl`.
//! - [`enrollment`]: the operation table of `wsdl/partner-enrollment.wsdl` (no credential header).

/// Schema types, one module per namespace.
///
/// The generated code compiles each `xs:pattern` with `Regex::new(..).unwrap()` on first use;
/// build.rs compiles every pattern of the contract with the same regex crate, so a pattern that
/// would panic fails the build instead.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    dead_code,
    unused_mut,
    unused_imports,
    unused_variables,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]
#[rustfmt::skip]
pub mod types {
    include!(concat!(env!("OUT_DIR"), "/types.rs"));
}

/// Operations of the partner API (`wsdl/partner-api.wsdl`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
#[rustfmt::skip]
pub mod partner {
    include!(concat!(env!("OUT_DIR"), "/partner_operations.rs"));
}

/// Operations of the callback API (`wsdl/partner-callback.wsdl`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
#[rustfmt::skip]
pub mod callback {
    include!(concat!(env!("OUT_DIR"), "/callback_operations.rs"));
}

/// Operations of the enrollment API (`wsdl/partner-enrollment.wsdl`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
#[rustfmt::skip]
pub mod enrollment {
    include!(concat!(env!("OUT_DIR"), "/enrollment_operations.rs"));
}
