//! The xsd-parser run: the imported schemas → one `syn::File` of types (quick-xml serializers and
//! deserializers, facets kept), hardened (`harden`), with the contract's element list, the fast
//! decoders/encoders (`fast`), the JSON codec (`json`) and the content models (`models`) added; every `xs:pattern` is
//! compiled once here (`patterns`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use syn::visit_mut::VisitMut;
use xsd_parser::config::{GeneratorFlags, Namespace, OptimizerFlags, RendererFlags, Schema};
use xsd_parser::models::meta::CustomMeta;
use xsd_parser::{Config, IdentType};

use crate::fast::fast_decoders;
use crate::harden::Harden;
use crate::json::json_codecs;
use crate::models::{content_models, read_models};
use crate::patterns::check_patterns;
use crate::shared::{lit, namespace_modules, walk_xsd, xml_attr, xmlns_decls, XsEvent, QN};

/// The Rust types of every schema in `xsd_files`, generating the global elements in `roots`.
pub(crate) fn generate_types(xsd_files: &BTreeSet<PathBuf>, roots: &BTreeSet<QN>) -> syn::File {
    // xsd-parser names roots by prefix:local; find each namespace's prefix in its schema file.
    let mut prefixes = BTreeMap::new();
    for file in xsd_files {
        let text = std::fs::read_to_string(file).expect("read xsd");
        let tns = xml_attr(&text, "targetNamespace").expect("targetNamespace");
        for (prefix, ns) in xmlns_decls(&text) {
            if ns == tns {
                prefixes.insert(ns, prefix);
            }
        }
    }
    let generate: Vec<(IdentType, String)> = roots
        .iter()
        .map(|(ns, local)| {
            let prefix = prefixes
                .get(ns)
                .unwrap_or_else(|| panic!("no schema declares a prefix for {ns}"));
            (IdentType::Element, format!("{prefix}:{local}"))
        })
        .collect();

    let config = Config::default()
        .with_schemas(xsd_files.iter().cloned().map(Schema::File))
        .with_optimizer_flags(OptimizerFlags::RESOLVE_TYPEDEFS)
        // The default collapses restricted simple types to their base and drops every facet.
        .without_optimizer_flags(OptimizerFlags::USE_UNRESTRICTED_BASE_TYPE_SIMPLE)
        .with_generator_flags(
            GeneratorFlags::FLATTEN_CONTENT | GeneratorFlags::USE_NAMESPACE_MODULES,
        )
        .with_renderer_flags(RendererFlags::RENDER_DOCS)
        // Named types keep their schema names (the default "Type" postfix makes the complex type
        // `Account` clash with the simple type `AccountType`).
        .with_type_postfix("")
        .with_derive(["Debug", "Clone", "PartialEq", "Eq"])
        .with_generate(generate)
        .with_type(
            (IdentType::Type, Namespace::XS, "dateTime"),
            CustomMeta::new("DateTime").include_from("crate::xs::DateTime"),
        )
        .with_type(
            (IdentType::Type, Namespace::XS, "date"),
            CustomMeta::new("Date").include_from("crate::xs::Date"),
        )
        .with_quick_xml_serialize()
        // Boxed deserializers: the generated `next(self)` moves its deserializer by value on
        // every event; boxed, that is a pointer instead of a few hundred bytes (measured: the
        // memcpy was a third of the decode time).
        .with_quick_xml_deserialize_config(true);
    let tokens = xsd_parser::generate(config).unwrap_or_else(|e| panic!("xsd-parser: {e:#}"));
    let mut file: syn::File = syn::parse2(tokens).expect("xsd-parser output parses");
    Harden::of(&file).visit_file_mut(&mut file);

    // Every element the contract declares, as "namespace local" (elementFormDefault is qualified,
    // so local elements are in their schema's namespace): tells an unknown element from a known
    // one in the wrong place or namespace when decoding fails.
    let mut names = BTreeSet::new();
    for path in xsd_files {
        walk_xsd(path, |e| {
            if let XsEvent::Start(t) = e {
                if let (true, Some(name)) = (t.local == "element", t.get("name")) {
                    names.insert(format!("{} {name}", t.tns));
                }
            }
        });
    }
    let names = names.iter().map(|n| lit(n));
    file.items.push(syn::parse_quote! {
        /// Every element the contract's schemas declare, as `"namespace local-name"`, sorted.
        pub const CONTRACT_ELEMENTS: &[&str] = &[#(#names),*];
    });
    let (models, model_roots) = read_models(xsd_files);
    let ns_modules = namespace_modules(&file);
    fast_decoders(&mut file, &models, &ns_modules);
    json_codecs(&mut file, &models, &ns_modules);
    file.items.extend(content_models(&models, &model_roots));
    check_patterns(xsd_files);
    file
}
