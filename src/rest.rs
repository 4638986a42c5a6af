//! The REST/JSON face of the partner contract: the same 18 operations under [`PREFIX`], one
//! route each (`routes.rs`, the table as data), credentials in headers, JSON bodies decoded by
//! `crate::json` into the same generated types the SOAP face decodes into, and refusals as
//! `application/problem+json` (`crate::fault`). This module names the routes and checks what a
//! route needs of the HTTP request (its media type, a body or none); `server/rest.rs` frames
//! the exchange and `pipeline::handle_json` runs the stages. Uses the generated operation table
//! and `rejection`, nothing of the request path.

use http::HeaderMap;

use crate::rejection::{Rejection, RouteError};

pub mod docs;
pub mod openapi;
pub mod route_table;
pub mod routes;

pub use routes::{resolve, Matched, Route, ROUTES};

/// Where the REST face lives.
pub const PREFIX: &str = "/rest/partner/v1";

/// The OpenAPI document of the face.
pub const OPENAPI_PATH: &str = "/rest/partner/v1/openapi.json";

/// The readable page rendered from it.
pub const DOCS_PATH: &str = "/rest/partner/v1/docs";

/// What a route's request must be: `application/json` (any parameters) with a body, nothing
/// for a `GET`. The body passed on is `{}` for a route without one.
pub fn body_of<'b>(
    route: &Route,
    headers: &HeaderMap,
    body: &'b [u8],
) -> Result<&'b [u8], Rejection> {
    if !route.has_body() {
        if !body.is_empty() {
            return Err(Rejection::Route(RouteError::UnexpectedBody));
        }
        return Ok(b"{}");
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Rejection::Route(RouteError::UnsupportedMediaType(
            content_type.chars().take(100).collect(),
        )));
    }
    Ok(body)
}
