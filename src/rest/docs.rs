//! The REST face's readable page (`GET /rest/partner/v1/docs`), rendered on the server with
//! askama from the one route table, the generated OpenAPI document's schemas and the problem
//! types (`fault::PROBLEM_TYPES`): no script, no CDN; its stylesheet served beside it, the CSP
//! allowing nothing else. Off the request path: the document is read with `serde_json::Value`.

use askama::Template;
use serde_json::Value;

use super::routes::ROUTES;
use crate::fault::{PROBLEM_TYPES, TYPE_PREFIX};

/// The page's Content-Security-Policy: its own stylesheet, nothing else (no script at all).
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// Where the stylesheet is served.
pub const CSS_PATH: &str = "/rest/partner/v1/docs.css";

/// The stylesheet.
pub const CSS: &str = include_str!("static/docs.css");

struct RouteRow {
    method: String,
    path: String,
    op: &'static str,
    url_members: String,
    body: String,
    response: String,
}

struct ProblemRow {
    ty: String,
    statuses: String,
    when: &'static str,
}

struct Member {
    name: String,
    ty: String,
    link: String,
    required: bool,
}

struct SchemaView {
    name: String,
    summary: String,
    members: Vec<Member>,
}

#[derive(Template)]
#[template(path = "rest_docs.html")]
struct DocsPage {
    server: String,
    openapi: &'static str,
    css: &'static str,
    routes: Vec<RouteRow>,
    problems: Vec<ProblemRow>,
    schemas: Vec<SchemaView>,
}

/// The name a `$ref` points at.
fn ref_name(v: &Value) -> Option<&str> {
    v.get("$ref")?.as_str()?.rsplit('/').next()
}

/// The facets of a simple schema, as one line.
fn facets(v: &Value) -> String {
    let mut out = Vec::new();
    if let Some(t) = v.get("type").and_then(Value::as_str) {
        out.push(t.to_string());
    }
    for key in [
        "format",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "pattern",
    ] {
        if let Some(x) = v.get(key) {
            let x = x.as_str().map_or_else(|| x.to_string(), str::to_string);
            out.push(format!("{key} {x}"));
        }
    }
    if let Some(e) = v.get("enum").and_then(Value::as_array) {
        let values: Vec<&str> = e.iter().filter_map(Value::as_str).collect();
        out.push(format!("one of {}", values.join(", ")));
    }
    out.join("; ")
}

/// A member's type: a link to its schema, or its facets; arrays with their bounds.
fn member_type(v: &Value) -> (String, String) {
    if let Some(name) = ref_name(v) {
        return (name.to_string(), name.to_string());
    }
    if v.get("type").and_then(Value::as_str) == Some("array") {
        let items = v.get("items").unwrap_or(&Value::Null);
        let (ty, link) = member_type(items);
        let min = v.get("minItems").and_then(Value::as_u64).unwrap_or(0);
        let max = v.get("maxItems").and_then(Value::as_u64).unwrap_or(0);
        return (format!("array of {ty} ({min}–{max})"), link);
    }
    (facets(v), String::new())
}

fn members(schema: &Value) -> Vec<Member> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, v)| {
            let (ty, link) = member_type(v);
            Member {
                name: name.clone(),
                ty,
                link,
                required: required.contains(&name.as_str()),
            }
        })
        .collect()
}

fn schema_view(name: &str, schema: &Value) -> SchemaView {
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        return SchemaView {
            name: name.to_string(),
            summary: "exactly one of these members".into(),
            members: options
                .iter()
                .flat_map(members)
                .map(|m| Member {
                    required: false,
                    ..m
                })
                .collect(),
        };
    }
    let is_object = schema.get("type").and_then(Value::as_str) == Some("object");
    SchemaView {
        name: name.to_string(),
        summary: if is_object {
            "object; no other members".into()
        } else {
            facets(schema)
        },
        members: members(schema),
    }
}

/// The page for a deployment whose base URL (scheme and authority) is `base`.
pub fn page(base: &str) -> Result<String, askama::Error> {
    let doc: Value = serde_json::from_str(super::openapi::GENERATED).unwrap_or(Value::Null);
    let paths = doc.get("paths");
    let routes = ROUTES
        .iter()
        .map(|r| {
            let op = paths
                .and_then(|p| p.get(r.path))
                .and_then(|p| p.get(r.method.as_str().to_ascii_lowercase()));
            let body = op
                .and_then(|o| o.pointer("/requestBody/content/application~1json/schema"))
                .and_then(ref_name)
                .unwrap_or("")
                .to_string();
            let response = op
                .and_then(|o| o.pointer("/responses/200/content/application~1json/schema"))
                .and_then(ref_name)
                .unwrap_or("")
                .to_string();
            let mut url: Vec<String> = r.path_members().map(|m| format!("{m} (path)")).collect();
            url.extend(r.query.iter().map(|q| format!("{q} (query)")));
            RouteRow {
                method: r.method.to_string(),
                path: format!("{}{}", super::PREFIX, r.path),
                op: r.op.name(),
                url_members: url.join(", "),
                body,
                response,
            }
        })
        .collect();
    let problems = PROBLEM_TYPES
        .iter()
        .map(|p| ProblemRow {
            ty: format!("{TYPE_PREFIX}{}", p.slug),
            statuses: p
                .statuses
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            when: p.when,
        })
        .collect();
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|s| s.iter().map(|(n, v)| schema_view(n, v)).collect())
        .unwrap_or_default();
    DocsPage {
        server: format!("{base}{}", super::PREFIX),
        openapi: super::OPENAPI_PATH,
        css: CSS_PATH,
        routes,
        problems,
        schemas,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_lists_every_route_problem_and_schema_and_escapes_the_address() {
        let html = page("https://api.example<x>").unwrap_or_default();
        assert!(
            html.contains("https://api.example&#60;x&#62;/rest/partner/v1")
                || html.contains("https://api.example&lt;x&gt;/rest/partner/v1"),
            "{html}"
        );
        for r in ROUTES.iter() {
            assert!(
                html.contains(&format!("<td>{}</td>", r.op.name())),
                "{}",
                r.op.name()
            );
        }
        for p in PROBLEM_TYPES {
            assert!(html.contains(&format!("{TYPE_PREFIX}{}", p.slug)));
        }
        assert!(html.contains("id=\"schema-CreateAccountRequest\""));
        assert!(html.contains("href=\"#schema-PostalAddress\""));
        assert!(!html.contains("<script"));
    }
}
