//! The published contract: `GET /soap/partner/v1?wsdl`, `GET /soap/callback/v1?wsdl` and
//! `GET /soap/enrollment/v1?wsdl` (each with `?wsdl=soap11` and `?xsd=NAME`), with their
//! addresses pointing at this deployment.
//!
//! Where the addresses point: `public_url` when configured (production sets it); otherwise a
//! `Host` the request names that is listed in `public_hosts`; otherwise the listener's own
//! address as the client reached it. Never an arbitrary `Host`: a forged one would put an
//! attacker's address into every `soap:address`, and any shared cache would hand that document
//! to partners who generate clients from it (and send their keys there). Documents whose address
//! is not configured are sent with `Cache-Control: no-cache` and `Vary: Host`.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderMap, Response, StatusCode};
use http_body_util::Full;

use crate::published;

use super::respond::text;
use super::{CALLBACK_PATH, ENROLLMENT_PATH, PARTNER_PATH};

/// Where the published documents point.
#[derive(Clone, Debug, Default)]
pub struct PublicAddress {
    /// `public_url`.
    pub url: Option<String>,
    /// `public_hosts` (lower case).
    pub hosts: Vec<String>,
}

/// How a request reached the listener.
#[derive(Clone, Copy, Debug)]
pub struct Reached {
    /// The listener's address of the connection (the local end).
    pub local: SocketAddr,
    /// Over TLS.
    pub tls: bool,
}

impl PublicAddress {
    /// The base URL (scheme and authority) for a request with `headers` that reached `reached`.
    pub fn base_url(&self, headers: &HeaderMap, reached: Reached) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let scheme = if reached.tls { "https" } else { "http" };
        let named = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase)
            .filter(|h| self.hosts.iter().any(|allowed| allowed == h));
        match named {
            Some(host) => format!("{scheme}://{host}"),
            None => format!("{scheme}://{}", reached.local),
        }
    }

    fn cache_control(&self) -> &'static str {
        if self.url.is_some() {
            "public, max-age=300"
        } else {
            "no-cache"
        }
    }

    fn document(&self, body: String) -> Response<Full<Bytes>> {
        self.published(body.into_bytes(), "text/xml; charset=utf-8")
    }

    /// A published document (contract, OpenAPI document, docs page) of `content_type`: cached
    /// for 5 minutes when its addresses come from `public_url`, else revalidated and varying by
    /// `Host`.
    pub(super) fn published(
        &self,
        body: Vec<u8>,
        content_type: &'static str,
    ) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static(self.cache_control()),
        );
        if self.url.is_none() {
            h.insert(header::VARY, header::HeaderValue::from_static("Host"));
        }
        r
    }

    /// `?wsdl`, `?wsdl=soap11` and `?xsd=NAME` of `contract` ([`PARTNER`], [`CALLBACK`]), its
    /// addresses pointing at this deployment; else the 404 that says what exists.
    pub fn contract(
        &self,
        contract: &Contract,
        headers: &HeaderMap,
        query: Option<&str>,
        reached: Reached,
    ) -> Response<Full<Bytes>> {
        let endpoint = format!("{}{}", self.base_url(headers, reached), contract.path);
        let usage = "use ?wsdl, ?wsdl=soap11 or ?xsd=NAME\n";
        match published_document(query, &contract.views, usage) {
            Ok(doc) => self.document(rewrite(doc.text, &endpoint, contract.addresses)),
            Err(usage) => text(StatusCode::NOT_FOUND, usage),
        }
    }
}

/// One published contract: where it is served, its two WSDL views (`?wsdl`, `?wsdl=soap11`),
/// and whether its service addresses are rewritten to point here (schema locations always are).
pub struct Contract {
    path: &'static str,
    views: [(&'static str, published::Document); 2],
    addresses: bool,
}

/// The partner contract.
pub const PARTNER: Contract = Contract {
    path: PARTNER_PATH,
    views: [
        ("", published::PARTNER_WSDL),
        ("soap11", published::PARTNER_WSDL_SOAP11),
    ],
    addresses: true,
};

/// The callback contract, for partners to generate their server side (its `soap:address` is the
/// partner's own, left as published).
pub const CALLBACK: Contract = Contract {
    path: CALLBACK_PATH,
    views: [
        ("", published::CALLBACK_WSDL),
        ("soap11", published::CALLBACK_WSDL_SOAP11),
    ],
    addresses: false,
};

/// The enrollment contract, served where it is called.
pub const ENROLLMENT: Contract = Contract {
    path: ENROLLMENT_PATH,
    views: [
        ("", published::ENROLLMENT_WSDL),
        ("soap11", published::ENROLLMENT_WSDL_SOAP11),
    ],
    addresses: true,
};

/// The document a query names: `?wsdl[=VIEW]` one of `views`, `?xsd=NAME` a published schema;
/// otherwise the text of the 404 to answer (`usage` says what exists).
fn published_document(
    query: Option<&str>,
    views: &[(&str, published::Document)],
    usage: &'static str,
) -> Result<published::Document, &'static str> {
    match split_query(query) {
        ("wsdl", view) => views
            .iter()
            .find(|(name, _)| *name == view)
            .map(|(_, doc)| *doc)
            .ok_or(usage),
        ("xsd", name) => published::schema(name).copied().ok_or("no such schema\n"),
        _ => Err(usage),
    }
}

fn split_query(query: Option<&str>) -> (&str, &str) {
    let q = query.unwrap_or("");
    q.split_once('=').unwrap_or((q, ""))
}

/// Rewrites `soap:address`/`soap12:address` locations and every `schemaLocation` to `endpoint`.
pub fn rewrite_addresses(doc: &str, endpoint: &str) -> String {
    rewrite(doc, endpoint, true)
}

/// Rewrites every `schemaLocation` to `endpoint?xsd=NAME` and leaves service addresses alone.
pub fn rewrite_schema_locations(doc: &str, endpoint: &str) -> String {
    rewrite(doc, endpoint, false)
}

fn rewrite(doc: &str, endpoint: &str, addresses: bool) -> String {
    let mut out = String::with_capacity(doc.len() + 256);
    let mut rest = doc;
    loop {
        let next_loc = rest.find("location=\"");
        let next_schema = rest.find("schemaLocation=\"");
        let (at, is_schema) = match (next_loc, next_schema) {
            (Some(l), Some(s)) if s < l => (s, true),
            (Some(l), _) => (l, false),
            (None, Some(s)) => (s, true),
            (None, None) => break,
        };
        let attr_len = if is_schema {
            "schemaLocation=\"".len()
        } else {
            "location=\"".len()
        };
        let value_start = at + attr_len;
        let Some(value_len) = rest[value_start..].find('"') else {
            break;
        };
        let value = &rest[value_start..value_start + value_len];
        out.push_str(&rest[..value_start]);
        if is_schema {
            let file = value.rsplit('/').next().unwrap_or(value);
            out.push_str(&format!("{endpoint}?xsd={file}"));
        } else if addresses {
            out.push_str(endpoint);
        } else {
            out.push_str(value);
        }
        rest = &rest[value_start + value_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_rewritten() {
        let doc = published::PARTNER_WSDL.text;
        let out = rewrite_addresses(doc, "https://gw.example.net/soap/partner/v1");
        assert!(!out.contains("localhost:8080"));
        assert_eq!(
            out.matches("location=\"https://gw.example.net/soap/partner/v1\"")
                .count(),
            2
        );
        assert!(out.contains(
            "schemaLocation=\"https://gw.example.net/soap/partner/v1?xsd=accounts.xsd\""
        ));
        let xsd = rewrite_addresses(published::SCHEMAS[1].text, "http://h/soap/partner/v1");
        assert!(xsd.contains("schemaLocation=\"http://h/soap/partner/v1?xsd=common.xsd\""));
    }

    fn host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::HOST, h.parse().unwrap());
        m
    }

    #[test]
    fn the_base_url_never_comes_from_an_unlisted_host() {
        let reached = Reached {
            local: "192.0.2.10:8443".parse().unwrap(),
            tls: true,
        };
        let open = PublicAddress::default();
        assert_eq!(
            open.base_url(&host("evil.example"), reached),
            "https://192.0.2.10:8443"
        );
        assert_eq!(
            open.base_url(&HeaderMap::new(), reached),
            "https://192.0.2.10:8443"
        );
        let listed = PublicAddress {
            url: None,
            hosts: vec!["gw.example.net".into(), "gw.example.net:8443".into()],
        };
        assert_eq!(
            listed.base_url(&host("GW.example.net:8443"), reached),
            "https://gw.example.net:8443"
        );
        assert_eq!(
            listed.base_url(&host("gw.example.net.evil.example"), reached),
            "https://192.0.2.10:8443"
        );
        let v6 = Reached {
            local: "[2001:db8::1]:8080".parse().unwrap(),
            tls: false,
        };
        assert_eq!(open.base_url(&host("x"), v6), "http://[2001:db8::1]:8080");
        let configured = PublicAddress {
            url: Some("https://partners.tsp.example".into()),
            hosts: Vec::new(),
        };
        assert_eq!(
            configured.base_url(&host("evil.example"), reached),
            "https://partners.tsp.example"
        );
    }
}
