//! SOAP faults: the body element of a scanned envelope read as a fault of its version (code,
//! reason, the one detail entry), through a small bounded element tree. Uses the envelope's types,
//! `tag.rs` and `crate::xml`.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

use super::tag::{declarations, local_name_slice, Others};
use super::{lossy, malformed, BodyElement, Envelope, EnvelopeError, SoapVersion};
use crate::xml::Binding;

/// The SOAP fault codes of both versions, mapped onto one set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultCode {
    /// The envelope namespace was not understood.
    VersionMismatch,
    /// A mandatory header block was not understood.
    MustUnderstand,
    /// SOAP 1.1 `Client`, SOAP 1.2 `Sender`: the request was at fault.
    Sender,
    /// SOAP 1.1 `Server`, SOAP 1.2 `Receiver`: the service was at fault.
    Receiver,
    /// SOAP 1.2 `DataEncodingUnknown`.
    DataEncodingUnknown,
}

impl FaultCode {
    /// The local name of the code in `version`.
    pub const fn local_name(self, version: SoapVersion) -> &'static str {
        match (self, version) {
            (FaultCode::VersionMismatch, _) => "VersionMismatch",
            (FaultCode::MustUnderstand, _) => "MustUnderstand",
            (FaultCode::Sender, SoapVersion::Soap11) => "Client",
            (FaultCode::Sender, SoapVersion::Soap12) => "Sender",
            (FaultCode::Receiver, SoapVersion::Soap11) => "Server",
            (FaultCode::Receiver, SoapVersion::Soap12) => "Receiver",
            (FaultCode::DataEncodingUnknown, _) => "DataEncodingUnknown",
        }
    }

    fn from_local(version: SoapVersion, local: &str) -> Option<Self> {
        // SOAP 1.1 allows dotted refinements such as `Client.Authentication`.
        let base = match version {
            SoapVersion::Soap11 => local.split('.').next().unwrap_or(local),
            SoapVersion::Soap12 => local,
        };
        Some(match (version, base) {
            (_, "VersionMismatch") => FaultCode::VersionMismatch,
            (_, "MustUnderstand") => FaultCode::MustUnderstand,
            (SoapVersion::Soap11, "Client") | (SoapVersion::Soap12, "Sender") => FaultCode::Sender,
            (SoapVersion::Soap11, "Server") | (SoapVersion::Soap12, "Receiver") => {
                FaultCode::Receiver
            }
            (SoapVersion::Soap12, "DataEncodingUnknown") => FaultCode::DataEncodingUnknown,
            _ => return None,
        })
    }
}

/// A parsed SOAP fault.
#[derive(Clone, Debug)]
pub struct SoapFault<'a> {
    /// The fault code.
    pub code: FaultCode,
    /// The human-readable reason (`faultstring`, or the first `Reason/Text`).
    pub reason: String,
    /// The one detail entry, if any.
    pub detail: Option<BodyElement<'a>>,
}

/// A fault element tree (faults are small; the tree is bounded by [`MAX_FAULT_NODES`]).
struct Node<'a> {
    namespace: Option<Vec<u8>>,
    local: String,
    text: String,
    children: Vec<Node<'a>>,
    element: BodyElement<'a>,
}

/// Faults larger than this many elements are refused.
pub const MAX_FAULT_NODES: usize = 64;

fn fault_tree<'a>(body: &BodyElement<'a>) -> Result<Node<'a>, EnvelopeError> {
    use quick_xml::name::{Namespace, NamespaceResolver, PrefixDeclaration};
    let text = body.text;
    let input = text.as_bytes();
    let mut reader = quick_xml::Reader::from_reader(input);
    reader.config_mut().check_end_names = true;
    let mut resolver = NamespaceResolver::default();
    for (prefix, ns) in &body.inherited {
        let decl = if prefix.is_empty() {
            PrefixDeclaration::Default
        } else {
            PrefixDeclaration::Named(prefix)
        };
        resolver.add(decl, Namespace(ns)).map_err(malformed)?;
    }
    // Open nodes: the node, where its start tag began, and the declarations in scope inside it.
    let mut stack: Vec<(Node<'a>, usize, Vec<Binding<'a>>)> = Vec::new();
    let mut count = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        let (start, empty) = match reader.read_event().map_err(malformed)? {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::End(_) => {
                let end = reader.buffer_position() as usize;
                if let Some(root) = close(&mut stack, &mut resolver, end, text)? {
                    return Ok(root);
                }
                continue;
            }
            Event::Text(t) => {
                let text = t.xml10_content().map_err(malformed)?;
                push_text(&mut stack, &text);
                continue;
            }
            Event::CData(c) => {
                let text = c.decode().map_err(malformed)?;
                push_text(&mut stack, &text);
                continue;
            }
            Event::GeneralRef(r) => {
                let c = crate::xml::reference_char(&r)
                    .ok_or_else(|| malformed("undefined entity in a fault"))?;
                push_text(&mut stack, c.encode_utf8(&mut [0u8; 4]));
                continue;
            }
            Event::Comment(_) => continue,
            Event::PI(_) | Event::Decl(_) => return Err(EnvelopeError::ProcessingInstruction),
            Event::DocType(_) => return Err(EnvelopeError::Doctype),
            Event::Eof => return Err(malformed("the fault ended early")),
        };
        count += 1;
        if count > MAX_FAULT_NODES {
            return Err(malformed("the fault has too many elements"));
        }
        resolver.push(&start).map_err(malformed)?;
        let namespace = match resolver.resolve_element(start.name()).0 {
            ResolveResult::Bound(ns) => Some(ns.0.to_vec()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(p) => {
                return Err(malformed(format!("undeclared prefix {}", lossy(&p))))
            }
        };
        let outer = stack
            .last()
            .map_or_else(|| body.inherited.clone(), |(_, _, d)| d.clone());
        let mut inner = outer.clone();
        declarations(input, &start, &mut inner, Others::Skip)?;
        let local_name = local_name_slice(input, &start, reader.buffer_position() as usize, empty);
        let node = Node {
            namespace: namespace.clone(),
            local: String::from_utf8_lossy(local_name).into_owned(),
            text: String::new(),
            children: Vec::new(),
            element: BodyElement {
                text: text
                    .get(before..)
                    .ok_or_else(|| malformed("fault bounds"))?,
                inherited: outer,
                namespace: namespace.unwrap_or_default(),
                local_name,
            },
        };
        stack.push((node, before, inner));
        if empty {
            let end = reader.buffer_position() as usize;
            if let Some(root) = close(&mut stack, &mut resolver, end, text)? {
                return Ok(root);
            }
        }
    }
}

fn push_text(stack: &mut [(Node<'_>, usize, Vec<Binding<'_>>)], text: &str) {
    if let Some((node, _, _)) = stack.last_mut() {
        node.text.push_str(text);
    }
}

/// Closes the top node: fixes its byte range, attaches it to its parent, or returns it when it
/// is the root.
fn close<'a>(
    stack: &mut Vec<(Node<'a>, usize, Vec<Binding<'a>>)>,
    resolver: &mut quick_xml::name::NamespaceResolver,
    end: usize,
    input: &'a str,
) -> Result<Option<Node<'a>>, EnvelopeError> {
    let (mut node, start, _) = stack.pop().ok_or_else(|| malformed("unbalanced fault"))?;
    resolver.pop();
    node.element.text = input
        .get(start..end)
        .ok_or_else(|| malformed("fault bounds"))?;
    match stack.last_mut() {
        Some((parent, _, _)) => {
            parent.children.push(node);
            Ok(None)
        }
        None => Ok(Some(node)),
    }
}

/// Parses the body element of `env` as a SOAP fault of its version.
pub fn parse_fault<'a>(env: &Envelope<'a>) -> Result<SoapFault<'a>, EnvelopeError> {
    let version = env.version;
    let soap = version.namespace().as_bytes();
    if !env.body.is(version.namespace(), "Fault") {
        return Err(EnvelopeError::UnexpectedElement(lossy(env.body.local_name)));
    }
    let root = fault_tree(&env.body)?;
    let is = |n: &Node<'_>, qualified: bool, local: &str| {
        n.local == local
            && if qualified {
                n.namespace.as_deref() == Some(soap)
            } else {
                n.namespace.is_none()
            }
    };
    let qname_code = |text: &str, node: &Node<'_>| -> Result<FaultCode, EnvelopeError> {
        let text = text.trim();
        let (prefix, local) = text.split_once(':').unwrap_or(("", text));
        let bound = node
            .element
            .inherited
            .iter()
            .any(|(p, ns)| p.as_ref() == prefix.as_bytes() && ns.as_ref() == soap);
        if !bound {
            return Err(EnvelopeError::UnexpectedElement(format!(
                "fault code {}",
                lossy(text.as_bytes())
            )));
        }
        FaultCode::from_local(version, local).ok_or_else(|| {
            EnvelopeError::UnexpectedElement(format!("fault code {}", lossy(text.as_bytes())))
        })
    };
    let mut code = None;
    let mut reason = None;
    let mut detail = None;
    for child in &root.children {
        match version {
            SoapVersion::Soap11 if is(child, false, "faultcode") && code.is_none() => {
                // The code's prefix is resolved in the scope of faultcode itself.
                let mut scope = child.element.clone();
                declarations_of(&mut scope)?;
                code = Some(qname_code(
                    &child.text,
                    &Node {
                        element: scope,
                        ..shallow(child)
                    },
                )?);
            }
            SoapVersion::Soap11 if is(child, false, "faultstring") && reason.is_none() => {
                reason = Some(child.text.clone());
            }
            SoapVersion::Soap11 if is(child, false, "faultactor") => {}
            SoapVersion::Soap11 if is(child, false, "detail") && detail.is_none() => {
                detail = Some(single_entry(child)?);
            }
            SoapVersion::Soap12 if is(child, true, "Code") && code.is_none() => {
                let value = child
                    .children
                    .first()
                    .filter(|v| is(v, true, "Value"))
                    .ok_or_else(|| EnvelopeError::UnexpectedElement("Code without Value".into()))?;
                let mut scope = value.element.clone();
                declarations_of(&mut scope)?;
                code = Some(qname_code(
                    &value.text,
                    &Node {
                        element: scope,
                        ..shallow(value)
                    },
                )?);
            }
            SoapVersion::Soap12 if is(child, true, "Reason") && reason.is_none() => {
                let text = child
                    .children
                    .iter()
                    .find(|t| is(t, true, "Text"))
                    .ok_or_else(|| {
                        EnvelopeError::UnexpectedElement("Reason without Text".into())
                    })?;
                reason = Some(text.text.clone());
            }
            SoapVersion::Soap12 if is(child, true, "Node") || is(child, true, "Role") => {}
            SoapVersion::Soap12 if is(child, true, "Detail") && detail.is_none() => {
                detail = Some(single_entry(child)?);
            }
            _ => {
                return Err(EnvelopeError::UnexpectedElement(format!(
                    "{} in the Fault",
                    child.local
                )))
            }
        }
    }
    Ok(SoapFault {
        code: code
            .ok_or_else(|| EnvelopeError::UnexpectedElement("Fault without a code".into()))?,
        reason: reason
            .ok_or_else(|| EnvelopeError::UnexpectedElement("Fault without a reason".into()))?,
        detail: detail.flatten(),
    })
}

fn shallow<'a>(n: &Node<'a>) -> Node<'a> {
    Node {
        namespace: n.namespace.clone(),
        local: n.local.clone(),
        text: n.text.clone(),
        children: Vec::new(),
        element: n.element.clone(),
    }
}

/// Adds the element's own declarations to its inherited ones (for resolving QName text).
fn declarations_of(element: &mut BodyElement<'_>) -> Result<(), EnvelopeError> {
    let input = element.bytes();
    let mut reader = quick_xml::Reader::from_reader(input);
    if let Event::Start(s) | Event::Empty(s) = reader.read_event().map_err(malformed)? {
        declarations(input, &s, &mut element.inherited, Others::Skip)?;
    }
    Ok(())
}

/// The one entry of a detail element (none is allowed; several are refused).
fn single_entry<'a>(detail: &Node<'a>) -> Result<Option<BodyElement<'a>>, EnvelopeError> {
    match detail.children.as_slice() {
        [] => Ok(None),
        [entry] => {
            if entry.namespace.is_none() {
                return Err(EnvelopeError::Unqualified(entry.local.clone()));
            }
            Ok(Some(entry.element.clone()))
        }
        _ => Err(EnvelopeError::UnexpectedElement(
            "more than one detail entry".into(),
        )),
    }
}
