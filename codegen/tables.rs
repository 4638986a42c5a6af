//! The operation tables of each WSDL (`Operation`, `Request`, `Response`, `FaultKind`,
//! `FaultDetail`): lookup by body element and SOAPAction, permission names, typed decode/encode
//! dispatch.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use crate::names::{domain_of, permission_of};
use crate::shared::{blit, lit, root_name, type_path, QN};
use crate::wsdl_rules::Wsdl;

/// The operation tables of `wsdl` over the generated `types`.
pub(crate) fn operation_table(
    wsdl: &Wsdl,
    ns_modules: &BTreeMap<String, String>,
    types: &syn::File,
) -> TokenStream {
    let ops = &wsdl.operations;
    let n = ops.len();
    let soap11 = wsdl
        .bindings
        .iter()
        .find(|b| !b.soap12)
        .expect("SOAP 1.1 binding");
    let variants: Vec<Ident> = ops.iter().map(|o| format_ident!("{}", o.name)).collect();
    let names: Vec<_> = ops.iter().map(|o| lit(&o.name)).collect();
    let docs: Vec<_> = ops.iter().map(|o| lit(&format!(" `{}`", o.name))).collect();
    let req: Vec<QN> = ops
        .iter()
        .map(|o| wsdl.messages[&o.input].clone())
        .collect();
    let resp: Vec<QN> = ops
        .iter()
        .map(|o| wsdl.messages[&o.output].clone())
        .collect();
    let permissions: Vec<_> = ops
        .iter()
        .zip(&req)
        .map(|(o, q)| lit(&permission_of(&domain_of(&q.0), &o.name)))
        .collect();
    let domains: Vec<String> = req.iter().map(|q| domain_of(&q.0)).collect();
    let domain_set: BTreeSet<&String> = domains.iter().collect();
    let domain_lits: Vec<_> = domain_set.iter().map(|d| lit(d)).collect();
    let actions: Vec<_> = ops.iter().map(|o| lit(&soap11.actions[&o.name])).collect();
    let action_bytes: Vec<_> = ops.iter().map(|o| blit(&soap11.actions[&o.name])).collect();
    let Elements {
        ns: req_ns,
        local: req_local,
        ns_b: req_ns_b,
        local_b: req_local_b,
        ty: req_ty,
        root: req_root,
    } = Elements::of(&req, ns_modules, types);
    let Elements {
        ns: resp_ns,
        local: resp_local,
        ns_b: resp_ns_b,
        local_b: resp_local_b,
        ty: resp_ty,
        root: resp_root,
    } = Elements::of(&resp, ns_modules, types);
    let request = body_enum(
        &BodyDocs {
            name: "Request",
            what: "A decoded request body",
            operation: "The operation this request calls.",
            decode: "Decodes the body element of `op` from a reader positioned at it.",
            decode_fast: &[
                "The fast path of [`Request::decode`] (see `crate::decode::fast`): the value, or",
                "`None` when the strict decoder must read the body.",
            ],
            encode: "Writes the body element with its namespace declarations.",
        },
        &variants,
        &docs,
        &req_ty,
        &req_root,
    );
    let response = body_enum(
        &BodyDocs {
            name: "Response",
            what: "A decoded response body",
            operation: "The operation this response answers.",
            decode: "Decodes the response element of `op` from a reader positioned at it.",
            decode_fast: &["The fast path of [`Response::decode`] (see `crate::decode::fast`)."],
            encode: "Writes the response element with its namespace declarations.",
        },
        &variants,
        &docs,
        &resp_ty,
        &resp_root,
    );

    let auth = wsdl
        .header_message()
        .map(|m| auth_header(&wsdl.messages[m], ns_modules, types));

    let faults: Vec<(String, QN)> = wsdl
        .fault_messages()
        .into_iter()
        .map(|m| {
            let qn = wsdl.messages[&m].clone();
            (qn.1.strip_suffix("Fault").unwrap_or(&qn.1).to_string(), qn)
        })
        .collect();
    let fault_variants: Vec<Ident> = faults.iter().map(|(v, _)| format_ident!("{}", v)).collect();
    let fault_qns: Vec<QN> = faults.iter().map(|(_, q)| q.clone()).collect();
    let Elements {
        ns: fault_ns,
        local: fault_local,
        ns_b: fault_ns_b,
        local_b: fault_local_b,
        ty: fault_ty,
        root: fault_root,
    } = Elements::of(&fault_qns, ns_modules, types);
    let nf = faults.len();

    let ns_lits: Vec<_> = wsdl.schema_namespaces().iter().map(|n| lit(n)).collect();
    let target_ns = lit(&wsdl.target_ns);
    let wsdl_file = lit(&wsdl.file);

    let mut doc = String::new();
    let _ = write!(
        doc,
        " The operations of `wsdl/{}`, in portType order.",
        wsdl.file
    );

    quote! {
        use quick_xml::Writer;
        use xsd_parser_types::quick_xml::{DeserializeSync, Error, SerializeSync, XmlReaderSync};

        /// The WSDL these tables were generated from.
        pub const WSDL_FILE: &str = #wsdl_file;
        /// The WSDL's target namespace.
        pub const TARGET_NAMESPACE: &str = #target_ns;
        /// Every namespace an element of this contract can be in.
        pub const NAMESPACES: &[&str] = &[#(#ns_lits),*];
        /// The permission domains (`accounts`, …): the prefixes of `domain.*` grants.
        pub const DOMAINS: &[&str] = &[#(#domain_lits),*];

        #[doc = #doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Operation {
            #(#[doc = #docs] #variants,)*
        }

        impl Operation {
            /// Every operation, in portType order.
            pub const ALL: [Operation; #n] = [#(Operation::#variants),*];

            /// The WSDL operation name.
            pub const fn name(self) -> &'static str {
                match self { #(Operation::#variants => #names,)* }
            }

            /// The permission that allows calling it, e.g. `accounts.create`.
            pub const fn permission(self) -> &'static str {
                match self { #(Operation::#variants => #permissions,)* }
            }

            /// The binding's soapAction (the same in the SOAP 1.1 and 1.2 bindings).
            pub const fn soap_action(self) -> &'static str {
                match self { #(Operation::#variants => #actions,)* }
            }

            /// The request body element: (namespace, local name).
            pub const fn request_element(self) -> (&'static str, &'static str) {
                match self { #(Operation::#variants => (#req_ns, #req_local),)* }
            }

            /// The response body element: (namespace, local name).
            pub const fn response_element(self) -> (&'static str, &'static str) {
                match self { #(Operation::#variants => (#resp_ns, #resp_local),)* }
            }

            /// The operation whose request body element this is.
            pub fn from_request_element(ns: &[u8], local: &[u8]) -> Option<Self> {
                match (ns, local) {
                    #((#req_ns_b, #req_local_b) => Some(Operation::#variants),)*
                    _ => None,
                }
            }

            /// The operation whose response body element this is.
            pub fn from_response_element(ns: &[u8], local: &[u8]) -> Option<Self> {
                match (ns, local) {
                    #((#resp_ns_b, #resp_local_b) => Some(Operation::#variants),)*
                    _ => None,
                }
            }

            /// The operation a SOAPAction (without quotes) names.
            pub fn from_soap_action(action: &[u8]) -> Option<Self> {
                match action {
                    #(#action_bytes => Some(Operation::#variants),)*
                    _ => None,
                }
            }

            /// The operation with this WSDL name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    #(#names => Some(Operation::#variants),)*
                    _ => None,
                }
            }
        }

        #request

        #response

        #auth

        /// The declared fault kinds (`soap:fault`), the same for every operation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FaultKind {
            #(#fault_variants,)*
        }

        impl FaultKind {
            /// Every declared fault kind.
            pub const ALL: [FaultKind; #nf] = [#(FaultKind::#fault_variants),*];

            /// The fault detail element: (namespace, local name).
            pub const fn element(self) -> (&'static str, &'static str) {
                match self { #(FaultKind::#fault_variants => (#fault_ns, #fault_local),)* }
            }

            /// The fault kind whose detail element this is.
            pub fn from_element(ns: &[u8], local: &[u8]) -> Option<Self> {
                match (ns, local) {
                    #((#fault_ns_b, #fault_local_b) => Some(FaultKind::#fault_variants),)*
                    _ => None,
                }
            }
        }

        /// A typed fault detail.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum FaultDetail {
            #(#fault_variants(Box<#fault_ty>),)*
        }

        impl FaultDetail {
            /// Which declared fault this is.
            pub fn kind(&self) -> FaultKind {
                match self { #(FaultDetail::#fault_variants(_) => FaultKind::#fault_variants,)* }
            }

            /// Decodes the detail element of `kind` from a reader positioned at it.
            pub fn decode<'a, R: XmlReaderSync<'a>>(kind: FaultKind, reader: &mut R) -> Result<Self, Error> {
                Ok(match kind {
                    #(FaultKind::#fault_variants => FaultDetail::#fault_variants(Box::new(<#fault_ty as DeserializeSync<'a, R>>::deserialize(reader)?)),)*
                })
            }

            /// The fast path of [`FaultDetail::decode`] (see `crate::decode::fast`).
            pub fn decode_fast(kind: FaultKind, reader: &mut crate::decode::fast::FastReader<'_>) -> Option<Self> {
                Some(match kind {
                    #(FaultKind::#fault_variants => FaultDetail::#fault_variants(Box::new(reader.root::<#fault_ty>()?)),)*
                })
            }

            /// Writes the detail element with its namespace declarations.
            pub fn encode(&self, writer: &mut Writer<&mut Vec<u8>>) -> Result<(), Error> {
                match self { #(FaultDetail::#fault_variants(v) => crate::encode::fast::encode_root(&**v, #fault_root, writer, |w| v.serialize(#fault_root, w)),)* }
            }

            /// Decodes the JSON object of a detail element of `kind` (see `crate::json`).
            pub fn decode_json(kind: FaultKind, r: &mut crate::json::JsonReader<'_>) -> Result<Self, crate::decode::DecodeError> {
                Ok(match kind {
                    #(FaultKind::#fault_variants => FaultDetail::#fault_variants(Box::new(<#fault_ty as crate::json::JsonDecode>::json_object(r, &[])?)),)*
                })
            }

            /// Writes the JSON object of the detail element's content (see `crate::json`).
            pub fn encode_json(&self, w: &mut crate::json::JsonWriter<'_>) -> Result<(), crate::json::JsonEncodeError> {
                match self { #(FaultDetail::#fault_variants(v) => crate::json::JsonEncode::json(&**v, w),)* }
            }
        }
    }
}

/// The literals and paths the tables need of a list of body elements, in order.
struct Elements {
    /// Namespaces as string literals.
    ns: Vec<Literal>,
    /// Local names as string literals.
    local: Vec<Literal>,
    /// Namespaces as byte string literals.
    ns_b: Vec<Literal>,
    /// Local names as byte string literals.
    local_b: Vec<Literal>,
    /// The generated types' paths.
    ty: Vec<TokenStream>,
    /// The qualified names the serializer writes (`prefix:local`).
    root: Vec<Literal>,
}

impl Elements {
    fn of(qns: &[QN], ns_modules: &BTreeMap<String, String>, types: &syn::File) -> Self {
        Elements {
            ns: qns.iter().map(|q| lit(&q.0)).collect(),
            local: qns.iter().map(|q| lit(&q.1)).collect(),
            ns_b: qns.iter().map(|q| blit(&q.0)).collect(),
            local_b: qns.iter().map(|q| blit(&q.1)).collect(),
            ty: qns
                .iter()
                .map(|q| type_path(ns_modules, types, q))
                .collect(),
            root: qns.iter().map(|q| lit(&root_name(ns_modules, q))).collect(),
        }
    }
}

/// The doc lines that tell `Request` from `Response` (each line without its leading space).
struct BodyDocs {
    name: &'static str,
    what: &'static str,
    operation: &'static str,
    decode: &'static str,
    decode_fast: &'static [&'static str],
    encode: &'static str,
}

/// `Request` or `Response`: the decoded body, one variant per operation, with its typed
/// decode/encode dispatch.
fn body_enum(
    docs_of: &BodyDocs,
    variants: &[Ident],
    docs: &[Literal],
    ty: &[TokenStream],
    root: &[Literal],
) -> TokenStream {
    let doc = |line: &str| lit(&format!(" {line}"));
    let name = format_ident!("{}", docs_of.name);
    let what = doc(&format!("{}, one variant per operation.", docs_of.what));
    let operation = doc(docs_of.operation);
    let decode = doc(docs_of.decode);
    let decode_fast: Vec<_> = docs_of.decode_fast.iter().map(|l| doc(l)).collect();
    let encode = doc(docs_of.encode);
    quote! {
        #[doc = #what]
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum #name {
            #(#[doc = #docs] #variants(Box<#ty>),)*
        }

        impl #name {
            #[doc = #operation]
            pub fn operation(&self) -> Operation {
                match self { #(#name::#variants(_) => Operation::#variants,)* }
            }

            #[doc = #decode]
            pub fn decode<'a, R: XmlReaderSync<'a>>(op: Operation, reader: &mut R) -> Result<Self, Error> {
                Ok(match op {
                    #(Operation::#variants => #name::#variants(Box::new(<#ty as DeserializeSync<'a, R>>::deserialize(reader)?)),)*
                })
            }

            #(#[doc = #decode_fast])*
            pub fn decode_fast(op: Operation, reader: &mut crate::decode::fast::FastReader<'_>) -> Option<Self> {
                Some(match op {
                    #(Operation::#variants => #name::#variants(Box::new(reader.root::<#ty>()?)),)*
                })
            }

            #[doc = #encode]
            pub fn encode(&self, writer: &mut Writer<&mut Vec<u8>>) -> Result<(), Error> {
                match self { #(#name::#variants(v) => crate::encode::fast::encode_root(&**v, #root, writer, |w| v.serialize(#root, w)),)* }
            }

            /// Writes the element with the fast encoder only; `false` (nothing written) when it
            /// gives up (see `crate::encode::fast`).
            pub fn write_fast(&self, out: &mut Vec<u8>) -> bool {
                match self { #(#name::#variants(v) => crate::encode::fast::write_root(&**v, #root, out),)* }
            }

            /// Decodes the JSON object of `op`'s element (see `crate::json`); `url` holds
            /// members given as text.
            pub fn decode_json<'b>(op: Operation, r: &mut crate::json::JsonReader<'b>, url: &[(&'b str, &'b str)]) -> Result<Self, crate::decode::DecodeError> {
                Ok(match op {
                    #(Operation::#variants => #name::#variants(Box::new(<#ty as crate::json::JsonDecode>::json_object(r, url)?)),)*
                })
            }

            /// Writes the JSON object of the element's content (see `crate::json`).
            pub fn encode_json(&self, w: &mut crate::json::JsonWriter<'_>) -> Result<(), crate::json::JsonEncodeError> {
                match self { #(#name::#variants(v) => crate::json::JsonEncode::json(&**v, w),)* }
            }
        }
    }
}

/// The credential header's type alias and typed decode/encode functions (a contract whose
/// operations declare a `soap:header`; an anonymous one has none).
fn auth_header(
    header: &QN,
    ns_modules: &BTreeMap<String, String>,
    types: &syn::File,
) -> TokenStream {
    let header_ty = type_path(ns_modules, types, header);
    let header_ns = lit(&header.0);
    let header_local = lit(&header.1);
    let header_root = lit(&root_name(ns_modules, header));
    quote! {
        /// The credential header every operation's input carries.
        pub type AuthHeader = #header_ty;
        /// The credential header element: (namespace, local name).
        pub const AUTH_HEADER_ELEMENT: (&str, &str) = (#header_ns, #header_local);

        /// Decodes the credential header from a reader positioned at it.
        pub fn decode_auth_header<'a, R: XmlReaderSync<'a>>(reader: &mut R) -> Result<AuthHeader, Error> {
            <AuthHeader as DeserializeSync<'a, R>>::deserialize(reader)
        }

        /// The fast path of [`decode_auth_header`] (see `crate::decode::fast`).
        pub fn decode_auth_header_fast(reader: &mut crate::decode::fast::FastReader<'_>) -> Option<AuthHeader> {
            reader.root::<AuthHeader>()
        }

        /// Writes the credential header element.
        pub fn encode_auth_header(header: &AuthHeader, writer: &mut Writer<&mut Vec<u8>>) -> Result<(), Error> {
            crate::encode::fast::encode_root(header, #header_root, writer, |w| header.serialize(#header_root, w))
        }
    }
}
