//! The WSDL model and its conventions: reads a published WSDL (messages, portType, SOAP 1.1 and
//! 1.2 bindings, soapActions, header and fault messages) and checks the document/literal wrapped
//! rules the toolkits depend on, the fault message names included; a violation fails the build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use quick_xml::events::Event;
use quick_xml::name::{QName, ResolveResult};
use quick_xml::reader::NsReader;

use crate::shared::{walk_xsd, XsEvent, NS_SOAP11, NS_SOAP12, NS_WSDL, NS_XS, QN};

#[derive(Debug)]
pub(crate) struct OperationDecl {
    pub(crate) name: String,
    pub(crate) input: String,
    pub(crate) output: String,
    pub(crate) faults: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub(crate) struct Binding {
    pub(crate) name: String,
    pub(crate) soap12: bool,
    /// operation → soapAction
    pub(crate) actions: BTreeMap<String, String>,
    /// operation → header message names
    headers: BTreeMap<String, Vec<String>>,
    /// operation → fault names with a soap:fault
    faults: BTreeMap<String, BTreeSet<String>>,
    /// The binding operation being read.
    current: String,
}

#[derive(Debug)]
pub(crate) struct Wsdl {
    pub(crate) file: String,
    dir: PathBuf,
    pub(crate) target_ns: String,
    /// xs:import (namespace, schemaLocation) inside wsdl:types
    pub(crate) imports: Vec<(String, String)>,
    /// message name → the element of its single part
    pub(crate) messages: BTreeMap<String, QN>,
    pub(crate) operations: Vec<OperationDecl>,
    pub(crate) bindings: Vec<Binding>,
    /// port name → binding name
    ports: BTreeMap<String, String>,
}

impl Wsdl {
    pub(crate) fn read(dir: &Path, file: &str) -> Wsdl {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut reader = NsReader::from_str(&text);
        let mut wsdl = Wsdl {
            file: file.into(),
            dir: dir.to_path_buf(),
            target_ns: String::new(),
            imports: Vec::new(),
            messages: BTreeMap::new(),
            operations: Vec::new(),
            bindings: Vec::new(),
            ports: BTreeMap::new(),
        };
        // Path of (namespace, local) of open elements.
        let mut stack: Vec<QN> = Vec::new();
        let mut current_message: Option<(String, Vec<QN>)> = None;
        loop {
            let event = reader.read_event().expect("WSDL is well-formed XML");
            let (start, empty) = match &event {
                Event::Start(s) => (Some(s.clone()), false),
                Event::Empty(s) => (Some(s.clone()), true),
                Event::End(_) => {
                    let closed = stack.pop().expect("balanced");
                    if closed == (NS_WSDL.into(), "message".into()) {
                        let (name, parts) = current_message.take().expect("message open");
                        assert!(
                            parts.len() == 1,
                            "{file}: message {name} must have exactly one part (WS-I R2210, wrapped style)"
                        );
                        wsdl.messages
                            .insert(name, parts.into_iter().next().expect("one part"));
                    }
                    (None, false)
                }
                Event::Eof => break,
                _ => (None, false),
            };
            let Some(start) = start else { continue };
            let (ns, local) = {
                let (res, local) = reader.resolve_element(start.name());
                let ns = match res {
                    ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.0).into_owned(),
                    _ => String::new(),
                };
                (ns, String::from_utf8_lossy(local.as_ref()).into_owned())
            };
            let attr = |name: &str| -> Option<String> {
                start
                    .try_get_attribute(name)
                    .expect("attribute")
                    .map(|a| String::from_utf8_lossy(&a.value).into_owned())
            };
            let qname_attr = |name: &str| -> Option<QN> {
                attr(name).map(|v| {
                    let (res, local) = reader.resolve_element(QName(v.as_bytes()));
                    let ns = match res {
                        ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.0).into_owned(),
                        other => panic!("{file}: cannot resolve QName {v}: {other:?}"),
                    };
                    (ns, String::from_utf8_lossy(local.as_ref()).into_owned())
                })
            };
            let parent = stack.last().cloned().unwrap_or_default();
            let grand = stack
                .len()
                .checked_sub(2)
                .and_then(|i| stack.get(i))
                .cloned()
                .unwrap_or_default();
            let is = |q: &QN, n: &str, l: &str| q.0 == n && q.1 == l;
            match (ns.as_str(), local.as_str()) {
                (NS_WSDL, "definitions") => {
                    wsdl.target_ns = attr("targetNamespace").expect("targetNamespace");
                }
                (NS_XS, "import") => {
                    let namespace = attr("namespace").expect("xs:import namespace");
                    let location = attr("schemaLocation").expect("xs:import schemaLocation");
                    wsdl.imports.push((namespace, location));
                }
                (NS_WSDL, "message") => {
                    current_message = Some((attr("name").expect("message name"), Vec::new()));
                }
                (NS_WSDL, "part") => {
                    let element = qname_attr("element").unwrap_or_else(|| {
                        panic!("{file}: every part must reference an element (document/literal)")
                    });
                    if let Some((_, parts)) = current_message.as_mut() {
                        parts.push(element);
                    }
                }
                (NS_WSDL, "operation") if is(&parent, NS_WSDL, "portType") => {
                    wsdl.operations.push(OperationDecl {
                        name: attr("name").expect("operation name"),
                        input: String::new(),
                        output: String::new(),
                        faults: Vec::new(),
                    });
                }
                (NS_WSDL, "input" | "output" | "fault")
                    if is(&grand, NS_WSDL, "portType") && is(&parent, NS_WSDL, "operation") =>
                {
                    let message = qname_attr("message").expect("message attribute").1;
                    let op = wsdl.operations.last_mut().expect("operation open");
                    match local.as_str() {
                        "input" => op.input = message,
                        "output" => op.output = message,
                        _ => op.faults.push((attr("name").expect("fault name"), message)),
                    }
                }
                (NS_WSDL, "binding") => wsdl.bindings.push(Binding {
                    name: attr("name").expect("binding name"),
                    ..Binding::default()
                }),
                (NS_SOAP11 | NS_SOAP12, "binding") => {
                    let b = wsdl.bindings.last_mut().expect("binding open");
                    b.soap12 = ns == NS_SOAP12;
                    assert_eq!(
                        attr("style").as_deref(),
                        Some("document"),
                        "{file}: document style"
                    );
                }
                (NS_WSDL, "operation") if is(&parent, NS_WSDL, "binding") => {
                    let name = attr("name").expect("binding operation name");
                    let b = wsdl.bindings.last_mut().expect("binding open");
                    b.actions.insert(name.clone(), String::new());
                    b.current = name;
                }
                (NS_SOAP11 | NS_SOAP12, "operation") => {
                    let b = wsdl.bindings.last_mut().expect("binding open");
                    let action = b.actions.get_mut(&b.current).expect("operation open");
                    *action = attr("soapAction").unwrap_or_default();
                }
                (NS_SOAP11 | NS_SOAP12, "header") => {
                    let message = qname_attr("message").expect("soap:header message").1;
                    let b = wsdl.bindings.last_mut().expect("binding open");
                    b.headers
                        .entry(b.current.clone())
                        .or_default()
                        .push(message);
                }
                (NS_SOAP11 | NS_SOAP12, "body") => {
                    assert_eq!(
                        attr("use").as_deref(),
                        Some("literal"),
                        "{file}: use=literal"
                    );
                }
                (NS_SOAP11 | NS_SOAP12, "fault") => {
                    assert_eq!(
                        attr("use").as_deref(),
                        Some("literal"),
                        "{file}: use=literal"
                    );
                    let fault = attr("name").expect("soap:fault name");
                    let b = wsdl.bindings.last_mut().expect("binding open");
                    b.faults.entry(b.current.clone()).or_default().insert(fault);
                }
                (NS_WSDL, "port") => {
                    let binding = qname_attr("binding").expect("port binding").1;
                    wsdl.ports.insert(attr("name").expect("port name"), binding);
                }
                _ => {}
            }
            if !empty {
                stack.push((ns, local));
            }
        }
        wsdl.check();
        wsdl
    }

    /// The document/literal wrapped rules that toolkits need (JAX-WS falls back to "bare" style
    /// or generates code that does not compile when one is broken).
    fn check(&self) {
        let file = &self.file;
        let mut elements = BTreeSet::new();
        for op in &self.operations {
            let input = &self.messages[&op.input];
            let output = &self.messages[&op.output];
            assert_eq!(
                input.1, op.name,
                "{file}: request wrapper must be named as the operation"
            );
            assert_eq!(
                output.1,
                format!("{}Response", op.name),
                "{file}: response wrapper must be the operation name + Response"
            );
            assert!(
                elements.insert(input.clone()),
                "{file}: {} body element is not distinct",
                op.name
            );
            for (fault, message) in &op.faults {
                let detail = self
                    .messages
                    .get(message)
                    .unwrap_or_else(|| panic!("{file}: fault message {message}"));
                // Some Java generators rename the class of a detail element whose name equals its
                // fault message's, then refer to the old name: the generated code does not compile.
                assert_ne!(
                    message, &detail.1,
                    "{file}: fault message {message} has the name of its detail element; give it its own (e.g. {message}Message)"
                );
                for b in &self.bindings {
                    assert!(
                        b.faults.get(&op.name).is_some_and(|f| f.contains(fault)),
                        "{file}: binding {} lacks soap:fault {fault} for {}",
                        b.name,
                        op.name
                    );
                }
            }
            for b in &self.bindings {
                let action = b.actions.get(&op.name).unwrap_or_else(|| {
                    panic!("{file}: binding {} lacks operation {}", b.name, op.name)
                });
                assert!(!action.is_empty(), "{file}: {} needs a soapAction", op.name);
                let headers = b.headers.get(&op.name).map(Vec::len).unwrap_or(0);
                assert!(
                    headers == 1 || (headers == 0 && b.headers.is_empty()),
                    "{file}: {} in {} must declare one soap:header (or no operation of the WSDL one: an anonymous contract)",
                    op.name, b.name
                );
            }
        }
        let actions: Vec<_> = self.bindings.iter().map(|b| &b.actions).collect();
        assert!(
            actions.windows(2).all(|w| w[0] == w[1]),
            "{file}: both bindings must use the same soapAction per operation"
        );
        assert!(
            self.bindings.iter().any(|b| !b.soap12),
            "{file}: a SOAP 1.1 binding"
        );
        assert!(
            self.bindings.iter().any(|b| b.soap12),
            "{file}: a SOAP 1.2 binding"
        );
    }

    /// Namespaces of every schema the WSDL imports, followed through the schemas' own imports.
    pub(crate) fn schema_namespaces(&self) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<(String, PathBuf)> = self
            .imports
            .iter()
            .map(|(ns, loc)| (ns.clone(), self.dir.join(loc)))
            .collect();
        while let Some((ns, path)) = todo.pop() {
            if !seen.insert(ns) {
                continue;
            }
            let dir = path.parent().expect("schema dir").to_path_buf();
            walk_xsd(&path, |e| {
                if let XsEvent::Start(t) = e {
                    if let ("import", Some(ns), Some(loc)) = (
                        t.local.as_str(),
                        t.get("namespace"),
                        t.get("schemaLocation"),
                    ) {
                        todo.push((ns.to_string(), dir.join(loc)));
                    }
                }
            });
        }
        seen
    }

    /// The credential header message every operation declares; `None` for an anonymous
    /// contract (no operation declares one: the enrollment contract).
    pub(crate) fn header_message(&self) -> Option<&str> {
        let b = &self.bindings[0];
        let first = b.headers.values().next()?;
        assert!(
            b.headers.values().all(|h| h == first),
            "{}: one header message for every operation",
            self.file
        );
        Some(&first[0])
    }

    /// Fault message names, in declaration order of the first operation; every operation must
    /// declare the same set.
    pub(crate) fn fault_messages(&self) -> Vec<String> {
        let first: Vec<String> = self.operations[0]
            .faults
            .iter()
            .map(|f| f.1.clone())
            .collect();
        for op in &self.operations {
            let these: Vec<String> = op.faults.iter().map(|f| f.1.clone()).collect();
            assert_eq!(
                these, first,
                "{}: {} declares different faults",
                self.file, op.name
            );
        }
        first
    }
}
