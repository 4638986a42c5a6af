//! The OpenAPI 3.1 document of the REST face, from the same content models the decoders are
//! generated from (`models.rs`), the simple types' facets read here from the XSDs, and the one
//! route table (`src/rest/route_table.rs`). The JSON mapping it describes (README, "REST/JSON
//! face"): a message is an object of its wrapper's members (local names as keys), a list an
//! array bounded by maxOccurs, an optional element an optional member, a choice one member of
//! several (`oneOf`), `xs:boolean` a boolean, integer types integers with their range,
//! everything else a string in its XSD lexical form with the facets (`pattern` anchored and
//! translated by `src/pattern.rs`, `minLength`/`maxLength`, `enum`), `format: date-time` for
//! `xs:dateTime`; `additionalProperties: false` everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::models::Models;
use crate::route_table::{path_members, ROUTE_TABLE};
use crate::shared::{walk_xsd, XsEvent};
use crate::wsdl_rules::Wsdl;

const NS_XS: &str = "http://www.w3.org/2001/XMLSchema";

/// Where the served document puts the gateway's public address (`rest::openapi::document`).
pub(crate) const SERVER_PLACEHOLDER: &str = "__PARTNERGATE_PUBLIC_URL__";

/// The HTTP statuses a refusal can have (`fault::problem::PROBLEM_TYPES`).
const PROBLEM_STATUSES: [&str; 13] = [
    "400", "401", "403", "404", "405", "408", "409", "413", "415", "429", "500", "502", "503",
];

/// A JSON value, written in a fixed order with two-space indentation.
enum J {
    S(String),
    N(i64),
    B(bool),
    A(Vec<J>),
    O(Vec<(String, J)>),
}

fn s(text: &str) -> J {
    J::S(text.to_string())
}

fn o(members: Vec<(&str, J)>) -> J {
    J::O(
        members
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn quote(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl J {
    fn write(&self, indent: usize, out: &mut String) {
        let pad = |n: usize, out: &mut String| out.extend(std::iter::repeat_n(' ', n));
        match self {
            J::S(t) => quote(t, out),
            J::N(n) => out.push_str(&n.to_string()),
            J::B(b) => out.push_str(if *b { "true" } else { "false" }),
            J::A(items) if items.is_empty() => out.push_str("[]"),
            J::A(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    pad(indent + 2, out);
                    item.write(indent + 2, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                pad(indent, out);
                out.push(']');
            }
            J::O(members) if members.is_empty() => out.push_str("{}"),
            J::O(members) => {
                out.push_str("{\n");
                for (i, (k, v)) in members.iter().enumerate() {
                    pad(indent + 2, out);
                    quote(k, out);
                    out.push_str(": ");
                    v.write(indent + 2, out);
                    out.push_str(if i + 1 < members.len() { ",\n" } else { "\n" });
                }
                pad(indent, out);
                out.push('}');
            }
        }
    }
}

/// A named simple type: its built-in base (`string`, `int`, …) and facets.
#[derive(Default)]
struct Simple {
    base: String,
    facets: Vec<(String, String)>,
    enums: Vec<String>,
}

/// Simple types by key (`"namespace Name"`), and every complex child's type key by (model key,
/// child name) — `models.rs` keeps only complex children's.
fn read_types(
    xsd_files: &BTreeSet<PathBuf>,
) -> (BTreeMap<String, Simple>, BTreeMap<(String, String), String>) {
    let mut simple: BTreeMap<String, Simple> = BTreeMap::new();
    let mut child_types = BTreeMap::new();
    for path in xsd_files {
        let mut current_simple: Option<String> = None;
        let mut current_model: Option<String> = None;
        walk_xsd(path, |e| {
            let t = match e {
                XsEvent::Start(t) => t,
                XsEvent::End(local) => {
                    match local.as_str() {
                        "simpleType" => current_simple = None,
                        "complexType" => current_model = None,
                        _ => {}
                    }
                    return;
                }
            };
            let tns = &t.tns;
            match (t.local.as_str(), t.depth) {
                ("simpleType", 1) => {
                    let key = format!("{tns} {}", t.get("name").expect("simpleType name"));
                    simple.entry(key.clone()).or_default();
                    current_simple = Some(key);
                }
                ("simpleType", _) => panic!("anonymous simple types are not mapped to JSON"),
                ("complexType", 1) => {
                    current_model = Some(format!("{tns} {}", t.get("name").expect("name")));
                }
                ("element", 1) => {
                    current_model = Some(format!("{tns} element:{}", t.get("name").expect("name")));
                }
                ("element", _) => {
                    if let (Some(model), Some(ty)) = (&current_model, &t.type_key) {
                        let name = t.get("name").expect("element name").to_string();
                        child_types.insert((model.clone(), name), ty.clone());
                    }
                }
                ("restriction", _) => {
                    let key = current_simple
                        .as_ref()
                        .expect("restriction in a simpleType");
                    let base = t.get("base").expect("restriction base");
                    let base = base.strip_prefix("xs:").unwrap_or_else(|| {
                        panic!("{key}: a restriction of {base} is not mapped (only xs:* bases)")
                    });
                    simple.entry(key.clone()).or_default().base = base.to_string();
                }
                ("enumeration", _) => {
                    let key = current_simple
                        .as_ref()
                        .expect("enumeration in a simpleType");
                    let v = t.get("value").expect("value").to_string();
                    simple.entry(key.clone()).or_default().enums.push(v);
                }
                (facet, _) if current_simple.is_some() && t.get("value").is_some() => {
                    let key = current_simple.as_ref().expect("checked");
                    let v = t.get("value").expect("checked").to_string();
                    simple
                        .entry(key.clone())
                        .or_default()
                        .facets
                        .push((facet.to_string(), v));
                }
                _ => {}
            }
        });
    }
    (simple, child_types)
}

/// The name of a schema in `components/schemas`: the type's or element's local name.
fn schema_name(key: &str) -> String {
    let local = key.rsplit(' ').next().expect("key");
    local.strip_prefix("element:").unwrap_or(local).to_string()
}

fn reference(key: &str) -> J {
    o(vec![(
        "$ref",
        J::S(format!("#/components/schemas/{}", schema_name(key))),
    )])
}

/// The range of an XML Schema integer type.
fn integer_range(base: &str) -> Option<(i64, i64, Option<&'static str>)> {
    Some(match base {
        "int" => (i64::from(i32::MIN), i64::from(i32::MAX), Some("int32")),
        "short" => (i64::from(i16::MIN), i64::from(i16::MAX), Some("int32")),
        "byte" => (i64::from(i8::MIN), i64::from(i8::MAX), Some("int32")),
        "unsignedInt" => (0, i64::from(u32::MAX), Some("int64")),
        "unsignedShort" => (0, i64::from(u16::MAX), Some("int32")),
        "unsignedByte" => (0, i64::from(u8::MAX), Some("int32")),
        "long" => (i64::MIN, i64::MAX, Some("int64")),
        _ => return None,
    })
}

/// An XML Schema pattern in ECMA-262 syntax (what JSON Schema's `pattern` is), unanchored: `\s`
/// is XML Schema's four whitespace characters, `.` anything but CR and LF, `^` and `$` literal.
/// Inside a class, `\s` is spelled out; `[\s\S]` (any character) is kept, its meaning the
/// same in both; any other `\S` inside a class fails the build.
fn ecma(xsd: &str) -> String {
    const SPACE: &str = r"\x20\t\n\r";
    let mut out = String::new();
    let mut in_class = false;
    let mut chars = xsd.chars().peekable();
    let rest = |from: usize| &xsd[from..];
    let mut at = 0;
    while let Some(c) = chars.next() {
        at += c.len_utf8();
        match c {
            '\\' => {
                let e = chars.next().expect("checked by to_rust");
                at += e.len_utf8();
                match (e, in_class) {
                    ('s', false) => out.push_str(&format!("[{SPACE}]")),
                    ('S', false) => out.push_str(&format!("[^{SPACE}]")),
                    ('s', true) => out.push_str(SPACE),
                    ('S', true)
                        if out.ends_with(&format!("[{SPACE}")) && rest(at).starts_with(']') =>
                    {
                        out.truncate(out.len() - SPACE.len());
                        out.push_str(r"\s\S");
                    }
                    ('S', true) => panic!("{xsd}: \\S inside a class is not mapped to ECMA-262"),
                    (e, _) => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' => {
                in_class = true;
                out.push('[');
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '.' if !in_class => out.push_str(r"[^\n\r]"),
            '^' | '$' if !in_class => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The JSON schema of a value of built-in type `base` with `facets` and `enums`.
fn simple_schema(base: &str, facets: &[(String, String)], enums: &[String]) -> J {
    if base == "boolean" {
        return o(vec![("type", s("boolean"))]);
    }
    if let Some((mut min, mut max, format)) = integer_range(base) {
        for (facet, v) in facets {
            let n: i64 = v.parse().expect("integer facet");
            match facet.as_str() {
                "minInclusive" => min = min.max(n),
                "maxInclusive" => max = max.min(n),
                other => panic!("facet {other} of an integer is not mapped"),
            }
        }
        let mut m = vec![("type", s("integer"))];
        if let Some(f) = format {
            m.push(("format", s(f)));
        }
        m.push(("minimum", J::N(min)));
        m.push(("maximum", J::N(max)));
        return o(m);
    }
    let mut m = vec![("type", s("string"))];
    match base {
        "string" => {}
        "dateTime" => m.push(("format", s("date-time"))),
        "date" => m.push(("format", s("date"))),
        other => panic!("built-in type xs:{other} is not mapped to JSON"),
    }
    let mut patterns = 0;
    for (facet, v) in facets {
        match facet.as_str() {
            "minLength" => m.push(("minLength", J::N(v.parse().expect("minLength")))),
            "maxLength" => m.push(("maxLength", J::N(v.parse().expect("maxLength")))),
            "pattern" => {
                patterns += 1;
                // src/pattern.rs refuses what neither translation supports.
                crate::pattern::to_rust(v).unwrap_or_else(|e| panic!("pattern {v}: {e}"));
                m.push(("pattern", J::S(format!("^(?:{})$", ecma(v)))));
            }
            other => panic!("facet {other} of a string is not mapped"),
        }
    }
    assert!(patterns <= 1, "more than one pattern on one type");
    if !enums.is_empty() {
        m.push(("enum", J::A(enums.iter().map(|e| s(e)).collect())));
    }
    o(m)
}

/// What the schemas are built from.
struct Contract<'a> {
    models: &'a Models,
    simple: BTreeMap<String, Simple>,
    child_types: BTreeMap<(String, String), String>,
}

impl Contract<'_> {
    /// The schema of a value of type `ty` (a key): a `$ref` to a named schema (collected into
    /// `wanted`), or the built-in type's schema inline.
    fn type_schema(&self, ty: &str, wanted: &mut BTreeSet<String>) -> J {
        if let Some(builtin) = ty.strip_prefix(&format!("{NS_XS} ")) {
            return simple_schema(builtin, &[], &[]);
        }
        assert!(
            self.models.contains_key(ty) || self.simple.contains_key(ty),
            "type {ty} is unknown"
        );
        wanted.insert(ty.to_string());
        reference(ty)
    }

    fn child_schema(
        &self,
        model: &str,
        name: &str,
        max: u32,
        min: u32,
        wanted: &mut BTreeSet<String>,
    ) -> J {
        let ty = self
            .child_types
            .get(&(model.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("{model}: child {name} has no type"));
        let one = self.type_schema(ty, wanted);
        if max > 1 {
            let mut m = vec![("type", s("array")), ("items", one)];
            if min > 0 {
                m.push(("minItems", J::N(i64::from(min))));
            }
            m.push(("maxItems", J::N(i64::from(max))));
            o(m)
        } else {
            one
        }
    }

    /// The object schema of content model `key`, without the members in `leave_out`.
    fn model_schema(&self, key: &str, leave_out: &[&str], wanted: &mut BTreeSet<String>) -> J {
        let (choice, children) = &self.models[key];
        if *choice {
            let options = children
                .iter()
                .map(|(_, name, _, min, max)| {
                    let one = self.child_schema(key, name, *max, *min, wanted);
                    o(vec![
                        ("type", s("object")),
                        ("properties", J::O(vec![(name.clone(), one)])),
                        ("required", J::A(vec![s(name)])),
                        ("additionalProperties", J::B(false)),
                    ])
                })
                .collect();
            return o(vec![("oneOf", J::A(options))]);
        }
        let mut properties = Vec::new();
        let mut required = Vec::new();
        for (_, name, _, min, max) in children {
            if leave_out.contains(&name.as_str()) {
                continue;
            }
            properties.push((
                name.clone(),
                self.child_schema(key, name, *max, *min, wanted),
            ));
            if *min > 0 {
                required.push(s(name));
            }
        }
        let mut m = vec![("type", s("object")), ("properties", J::O(properties))];
        if !required.is_empty() {
            m.push(("required", J::A(required)));
        }
        m.push(("additionalProperties", J::B(false)));
        o(m)
    }

    /// The schema of named type `key` (complex or simple).
    fn named_schema(&self, key: &str, wanted: &mut BTreeSet<String>) -> J {
        if self.models.contains_key(key) {
            return self.model_schema(key, &[], wanted);
        }
        let t = &self.simple[key];
        simple_schema(&t.base, &t.facets, &t.enums)
    }

    /// The child `name` of `model`: (its type key, minOccurs).
    fn child(&self, model: &str, name: &str) -> (String, u32) {
        let (_, children) = &self.models[model];
        let (_, _, _, min, _) = children
            .iter()
            .find(|c| c.1 == name)
            .unwrap_or_else(|| panic!("route member {name} is not a member of {model}"));
        let ty = self.child_types[&(model.to_string(), name.to_string())].clone();
        (ty, *min)
    }
}

fn problem_schema(faults: &[(String, String)]) -> J {
    let mut properties = vec![
        (
            "type".to_string(),
            o(vec![
                ("type", s("string")),
                ("description", s("urn:partnergate:problem:<kind>: one of the problem types the README lists.")),
            ]),
        ),
        ("title".to_string(), o(vec![("type", s("string"))])),
        ("status".to_string(), o(vec![("type", s("integer"))])),
        ("detail".to_string(), o(vec![("type", s("string"))])),
        ("requestId".to_string(), o(vec![("type", s("string"))])),
        (
            "rule".to_string(),
            o(vec![("type", s("string")), ("description", s("The rule broken (invalid-request)."))]),
        ),
        (
            "path".to_string(),
            o(vec![("type", s("string")), ("description", s("Where: a JSON Pointer into the request (invalid-request)."))]),
        ),
        (
            "reason".to_string(),
            o(vec![("type", s("string")), ("description", s("Why access was denied (access-denied, authentication-failed)."))]),
        ),
    ];
    for (element, key) in faults {
        properties.push((element.clone(), reference(key)));
    }
    o(vec![
        ("type", s("object")),
        ("properties", J::O(properties)),
        (
            "required",
            J::A(vec![
                s("type"),
                s("title"),
                s("status"),
                s("detail"),
                s("requestId"),
            ]),
        ),
        ("additionalProperties", J::B(false)),
    ])
}

/// The OpenAPI document of the partner contract's REST face (`wsdl` is the partner WSDL).
pub(crate) fn openapi(
    wsdl: &Wsdl,
    xsd_files: &BTreeSet<PathBuf>,
    models: &Models,
    roots: &BTreeMap<String, String>,
) -> String {
    let (simple, child_types) = read_types(xsd_files);
    let c = Contract {
        models,
        simple,
        child_types,
    };
    let mut wanted = BTreeSet::new();
    let mut schemas: Vec<(String, J)> = Vec::new();
    let root_of = |message: &str| -> String {
        let qn = &wsdl.messages[message];
        roots[&format!("{} {}", qn.0, qn.1)].clone()
    };
    let mut paths: BTreeMap<&str, Vec<(String, J)>> = BTreeMap::new();
    let mut fault_elements = BTreeMap::new();
    for (method, path, op, query) in ROUTE_TABLE {
        let decl = wsdl
            .operations
            .iter()
            .find(|d| d.name == *op)
            .unwrap_or_else(|| panic!("route {method} {path}: no operation {op}"));
        let request = root_of(&decl.input);
        let response = root_of(&decl.output);
        for (_, message) in &decl.faults {
            let qn = &wsdl.messages[message];
            fault_elements.insert(qn.1.clone(), root_of(message));
        }
        let mut parameters = Vec::new();
        let in_path: Vec<&str> = path_members(path).collect();
        for (name, place) in in_path
            .iter()
            .map(|n| (*n, "path"))
            .chain(query.iter().map(|n| (*n, "query")))
        {
            let (ty, min) = c.child(&request, name);
            parameters.push(o(vec![
                ("name", s(name)),
                ("in", s(place)),
                ("required", J::B(place == "path" || min > 0)),
                ("schema", c.type_schema(&ty, &mut wanted)),
            ]));
        }
        let mut operation = vec![
            ("operationId", s(op)),
            ("summary", J::S(format!("{op} (SOAP operation {op})"))),
        ];
        let tag = path.split('/').nth(1).unwrap_or("partner");
        operation.push(("tags", J::A(vec![s(tag)])));
        if !parameters.is_empty() {
            operation.push(("parameters", J::A(parameters)));
        }
        if *method != "GET" {
            let body_name = format!("{op}Request");
            let mut leave_out = in_path.clone();
            leave_out.extend(query.iter());
            schemas.push((
                body_name.clone(),
                c.model_schema(&request, &leave_out, &mut wanted),
            ));
            operation.push((
                "requestBody",
                o(vec![
                    ("required", J::B(true)),
                    (
                        "content",
                        o(vec![(
                            "application/json",
                            o(vec![(
                                "schema",
                                o(vec![(
                                    "$ref",
                                    J::S(format!("#/components/schemas/{body_name}")),
                                )]),
                            )]),
                        )]),
                    ),
                ]),
            ));
        }
        wanted.insert(response.clone());
        let mut responses = vec![(
            "200".to_string(),
            o(vec![
                ("description", J::S(format!("The {op} response."))),
                (
                    "content",
                    o(vec![(
                        "application/json",
                        o(vec![("schema", reference(&response))]),
                    )]),
                ),
            ]),
        )];
        for status in PROBLEM_STATUSES {
            responses.push((
                status.to_string(),
                o(vec![
                    ("description", s("A problem (RFC 9457).")),
                    (
                        "content",
                        o(vec![(
                            "application/problem+json",
                            o(vec![(
                                "schema",
                                o(vec![("$ref", s("#/components/schemas/Problem"))]),
                            )]),
                        )]),
                    ),
                ]),
            ));
        }
        operation.push(("responses", J::O(responses)));
        paths
            .entry(path)
            .or_default()
            .push((method.to_ascii_lowercase(), o(operation)));
    }
    let faults: Vec<(String, String)> = fault_elements.into_iter().collect();
    for (_, key) in &faults {
        wanted.insert(key.clone());
    }
    // Every schema reachable from the routes, each once, by name.
    let mut done = BTreeSet::new();
    let mut names = BTreeMap::new();
    while let Some(key) = wanted.iter().find(|k| !done.contains(*k)).cloned() {
        done.insert(key.clone());
        let name = schema_name(&key);
        if let Some(other) = names.insert(name.clone(), key.clone()) {
            panic!("two schemas would be named {name}: {other} and {key}");
        }
        let schema = c.named_schema(&key, &mut wanted);
        schemas.push((name, schema));
    }
    schemas.push(("Problem".to_string(), problem_schema(&faults)));
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    let doc = o(vec![
        ("x-generated", s("@generated by build.rs from wsdl/ (codegen/openapi.rs, src/rest/route_table.rs) — do not edit.")),
        ("openapi", s("3.1.0")),
        (
            "info",
            o(vec![
                ("title", s("partnergate partner API — REST/JSON face")),
                ("version", s("1")),
                ("description", s("The partner contract of wsdl/partner-api.wsdl as JSON: the same operations, types and facets, decoded as strictly as the SOAP face. Refusals are RFC 9457 problem documents (application/problem+json).")),
            ]),
        ),
        (
            "servers",
            J::A(vec![o(vec![("url", J::S(format!("{SERVER_PLACEHOLDER}/rest/partner/v1")))])]),
        ),
        (
            "security",
            J::A(vec![o(vec![("bearer", J::A(vec![])), ("partnerId", J::A(vec![]))])]),
        ),
        (
            "paths",
            J::O(
                paths
                    .into_iter()
                    .map(|(p, ops)| (p.to_string(), J::O(ops)))
                    .collect(),
            ),
        ),
        (
            "components",
            o(vec![
                ("schemas", J::O(schemas)),
                (
                    "securitySchemes",
                    o(vec![
                        (
                            "bearer",
                            o(vec![
                                ("type", s("http")),
                                ("scheme", s("bearer")),
                                ("description", s("The partner's API key (pgk_…).")),
                            ]),
                        ),
                        (
                            "partnerId",
                            o(vec![
                                ("type", s("apiKey")),
                                ("in", s("header")),
                                ("name", s("X-Partner-Id")),
                                ("description", s("The partner id (PARTNER-0042).")),
                            ]),
                        ),
                    ]),
                ),
            ]),
        ),
    ]);
    let mut out = String::with_capacity(256 * 1024);
    doc.write(0, &mut out);
    out.push('\n');
    out
}
