//! The REST face's routes: one per partner operation (method, path template under
//! [`super::PREFIX`], the query members it takes), read from the one table in
//! `route_table.rs`, and the matching of a
//! request's method, path and query to an operation and its URL members. Path segments and query
//! values are percent-decoded here; their types and facets are the decoder's to check.

use std::borrow::Cow;
use std::sync::LazyLock;

use http::Method;

use crate::decode::{DecodeError, Rule};
use crate::generated::partner::Operation;
use crate::rejection::{Rejection, RouteError};

use super::route_table::{path_members, ROUTE_TABLE};

/// One route: `method` on `path` (`{Member}` segments are URL members) is `op`.
#[derive(Debug)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path template below the prefix, e.g. `/accounts/{AccountNumber}`.
    pub path: &'static str,
    /// The operation.
    pub op: Operation,
    /// The members this route takes in its query string (the rest of a `GET` route's members
    /// are path segments; other routes take a JSON body).
    pub query: &'static [&'static str],
}

/// Every route of the REST face, from [`ROUTE_TABLE`] (a row naming no operation or method is
/// left out, and the unit test below fails).
pub static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(|| {
    ROUTE_TABLE
        .iter()
        .filter_map(|(method, path, op, query)| {
            Some(Route {
                method: Method::from_bytes(method.as_bytes()).ok()?,
                path,
                op: Operation::from_name(op)?,
                query,
            })
        })
        .collect()
});

impl Route {
    /// Whether this route takes a JSON body (every method but `GET`).
    pub fn has_body(&self) -> bool {
        self.method != Method::GET
    }

    /// The `{Member}` names of the path, in order.
    pub fn path_members(&self) -> impl Iterator<Item = &'static str> {
        path_members(self.path)
    }

    /// The route of `op`.
    pub fn of(op: Operation) -> Option<&'static Route> {
        ROUTES.iter().find(|r| r.op == op)
    }

    /// The URL members of `path` (below the prefix) when it matches the template.
    fn matches(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        let mut members = Vec::new();
        let mut given = path.split('/');
        for want in self.path.split('/') {
            let seg = given.next()?;
            match want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) if !seg.is_empty() => members.push((name, decode_segment(seg))),
                Some(_) => return None,
                None if want == seg => {}
                None => return None,
            }
        }
        given.next().is_none().then_some(members)
    }
}

fn decode_segment(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into_owned()
}

/// A request matched to its route.
#[derive(Debug)]
pub struct Matched {
    /// The route.
    pub route: &'static Route,
    /// The members the URL carries: path segments, then query members, percent-decoded.
    pub members: Vec<(&'static str, String)>,
}

impl Matched {
    /// The members as the decoder takes them.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.members.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// The methods of the routes on `path`, for `Allow` (`None` when there is none).
fn allowed(path: &str) -> Option<&'static str> {
    let mut get = false;
    let mut post = false;
    let mut patch = false;
    for r in ROUTES.iter().filter(|r| r.matches(path).is_some()) {
        match r.method {
            Method::GET => get = true,
            Method::PATCH => patch = true,
            _ => post = true,
        }
    }
    Some(match (get, post, patch) {
        (false, false, false) => return None,
        (true, false, false) => "GET",
        (false, true, false) => "POST",
        (false, false, true) => "PATCH",
        (true, true, false) => "GET, POST",
        (true, false, true) => "GET, PATCH",
        (false, true, true) => "POST, PATCH",
        (true, true, true) => "GET, POST, PATCH",
    })
}

/// Matches `method` on `path` (below the prefix) with `query` to its route. A query member
/// the route does not take is refused as an unknown member, a repeated one as a duplicate.
pub fn resolve(method: &Method, path: &str, query: Option<&str>) -> Result<Matched, Rejection> {
    let Some((route, mut members)) = ROUTES
        .iter()
        .filter(|r| r.method == method)
        .find_map(|r| r.matches(path).map(|m| (r, m)))
    else {
        return Err(Rejection::Route(match allowed(path) {
            Some(allow) => RouteError::MethodNotAllowed { allow },
            None => RouteError::NotFound,
        }));
    };
    let query = query.unwrap_or("");
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let refuse = |rule, detail: &str| {
            Rejection::Decode(DecodeError {
                path: format!("/{}", name.chars().take(100).collect::<String>()),
                rule,
                detail: detail.to_string(),
            })
        };
        let Some(known) = route.query.iter().find(|q| **q == name) else {
            return Err(refuse(
                Rule::UnknownElement,
                "not a query member of this route",
            ));
        };
        if members.iter().any(|(k, _)| k == known) {
            return Err(refuse(Rule::DuplicateElement, "query member given twice"));
        }
        members.push((known, Cow::into_owned(value)));
    }
    Ok(Matched { route, members })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_exactly_one_route_and_no_two_routes_overlap() {
        for op in Operation::ALL {
            let n = ROUTES.iter().filter(|r| r.op == op).count();
            assert_eq!(n, 1, "{op:?} has {n} routes");
        }
        assert_eq!(
            ROUTES.len(),
            ROUTE_TABLE.len(),
            "a row names no operation or method"
        );
        assert_eq!(ROUTES.len(), Operation::ALL.len());
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                let same_shape = a.method == b.method
                    && a.path.split('/').count() == b.path.split('/').count()
                    && a.path
                        .split('/')
                        .zip(b.path.split('/'))
                        .all(|(x, y)| x == y || x.starts_with('{') || y.starts_with('{'));
                assert!(
                    !same_shape,
                    "{} {} and {} overlap",
                    a.method, a.path, b.path
                );
            }
        }
    }

    #[test]
    fn paths_resolve_with_their_members_and_refusals_name_the_route_problem() {
        let m = resolve(&Method::GET, "/accounts/AC-1%2F2", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.route.op, Operation::GetAccount);
        assert_eq!(m.pairs(), vec![("AccountNumber", "AC-1/2")]);
        let m = resolve(
            &Method::GET,
            "/accounts/A/services",
            Some("ServiceType=voice+line"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m.pairs(),
            vec![("AccountNumber", "A"), ("ServiceType", "voice line")]
        );
        let m = resolve(
            &Method::POST,
            "/services/S/features/CALL_FORWARDING/status",
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.route.op, Operation::ChangeFeatureStatus);
        let err =
            |m: &Method, p: &str, q: Option<&str>| resolve(m, p, q).err().map(|e| e.to_string());
        assert_eq!(
            err(&Method::DELETE, "/accounts/A", None),
            Some("method not allowed here (allowed: GET, PATCH)".into())
        );
        assert_eq!(
            err(&Method::PUT, "/accounts", None),
            Some("method not allowed here (allowed: GET, POST)".into())
        );
        assert_eq!(
            err(&Method::GET, "/accounts/", None),
            Some("no resource at this path".into())
        );
        assert_eq!(
            err(&Method::GET, "/nothing", None),
            Some("no resource at this path".into())
        );
        assert_eq!(
            err(
                &Method::GET,
                "/accounts",
                Some("CustomerReference=a&CustomerReference=b")
            ),
            Some("/CustomerReference: duplicate-element: query member given twice".into())
        );
        assert_eq!(
            err(&Method::GET, "/accounts/A", Some("AccountNumber=B")),
            Some("/AccountNumber: unknown-element: not a query member of this route".into())
        );
    }
}
