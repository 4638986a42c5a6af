//! The schemas' content models (which children each complex type allows, in which order and how
//! often), read from the XSDs, and their table in the generated types for the decoder's errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use quote::quote;

use crate::shared::{lit, walk_xsd, XsEvent};

/// A child element of a content model: (namespace, name, type key, minOccurs, maxOccurs).
pub(crate) type Child = (String, String, Option<String>, u32, u32);

/// Content models by key ("ns Name" for named types, "ns element:Name" for the anonymous type of
/// a global element): (is a choice, children in order).
pub(crate) type Models = BTreeMap<String, (bool, Vec<Child>)>;

/// The content model of every complex type (named, or anonymous on a global element), and each
/// global element's model key. Children typed by a simple type have no model key.
pub(crate) fn read_models(xsd_files: &BTreeSet<PathBuf>) -> (Models, BTreeMap<String, String>) {
    // key → (is_choice, children); key is "ns Name" for named types, "ns element:Name" for the
    // anonymous type of a global element.
    let mut models: BTreeMap<String, (bool, Vec<Child>)> = BTreeMap::new();
    let mut roots: BTreeMap<String, String> = BTreeMap::new();
    let mut complex_names = BTreeSet::new();
    for path in xsd_files {
        // The complex type being read: a named one, or a global element's anonymous one.
        let mut current: Option<String> = None;
        walk_xsd(path, |e| {
            let t = match e {
                XsEvent::Start(t) => t,
                XsEvent::End(local) => {
                    if local == "complexType" {
                        current = None;
                    }
                    return;
                }
            };
            let tns = &t.tns;
            match (t.local.as_str(), t.depth) {
                ("complexType", 1) => {
                    let name = t.get("name").expect("top-level complexType has a name");
                    let key = format!("{tns} {name}");
                    complex_names.insert(key.clone());
                    models.entry(key.clone()).or_default();
                    current = Some(key);
                }
                ("element", 1) => {
                    let name = t.get("name").expect("global element name");
                    assert!(
                        t.get("type").is_none(),
                        "global element {name} must have an anonymous type"
                    );
                    let key = format!("{tns} element:{name}");
                    roots.insert(format!("{tns} {name}"), key.clone());
                    models.entry(key.clone()).or_default();
                    current = Some(key);
                }
                ("choice", _) => {
                    if let Some(key) = &current {
                        models.entry(key.clone()).or_default().0 = true;
                    }
                }
                ("element", _) => {
                    let key = current.clone().expect("element inside a complex type");
                    let name = t.get("name").expect("local element name").to_string();
                    let ty_key = t
                        .type_key
                        .clone()
                        .unwrap_or_else(|| panic!("local element {name} needs a named type"));
                    let min = t
                        .get("minOccurs")
                        .map_or(1, |v| v.parse().expect("minOccurs"));
                    let max = t.get("maxOccurs").map_or(1, |v| {
                        assert!(
                            v != "unbounded",
                            "element {name}: maxOccurs must be bounded"
                        );
                        v.parse().expect("maxOccurs")
                    });
                    models.entry(key).or_default().1.push((
                        tns.clone(),
                        name,
                        Some(ty_key),
                        min,
                        max,
                    ));
                }
                _ => {}
            }
        });
    }
    // Children typed by a simple type have no model.
    for (_, children) in models.values_mut() {
        for child in children.iter_mut() {
            if child.2.as_ref().is_some_and(|t| !complex_names.contains(t)) {
                child.2 = None;
            }
        }
    }
    (models, roots)
}

/// The content models as a table the decoder reads on its error path to name exactly what is
/// wrong: which required element is missing, which one is out of order, which repeats too often.
pub(crate) fn content_models(models: &Models, roots: &BTreeMap<String, String>) -> Vec<syn::Item> {
    let model_items = models.iter().map(|(key, (choice, children))| {
        let key = lit(key);
        let kids = children.iter().map(|(ns, name, ty, min, max)| {
            let ns = lit(ns);
            let name = lit(name);
            let ty = match ty {
                Some(t) => {
                    let t = lit(t);
                    quote!(Some(#t))
                }
                None => quote!(None),
            };
            quote!(ModelChild { namespace: #ns, name: #name, model: #ty, min: #min, max: #max })
        });
        quote!((#key, ContentModel { choice: #choice, children: &[#(#kids),*] }))
    });
    let root_items = roots.iter().map(|(el, key)| {
        let el = lit(el);
        let key = lit(key);
        quote!((#el, #key))
    });
    let file: syn::File = syn::parse_quote! {
        /// One child element of a content model.
        #[derive(Debug)]
        pub struct ModelChild {
            /// The child's namespace.
            pub namespace: &'static str,
            /// The child's local name.
            pub name: &'static str,
            /// The key of the child's own content model, if it is of a complex type.
            pub model: Option<&'static str>,
            /// minOccurs.
            pub min: u32,
            /// maxOccurs.
            pub max: u32,
        }
        /// The children a complex type allows, in order (a sequence) or one of them (a choice).
        #[derive(Debug)]
        pub struct ContentModel {
            /// `xs:choice` rather than `xs:sequence`.
            pub choice: bool,
            /// The allowed children.
            pub children: &'static [ModelChild],
        }
        /// Every content model, sorted by key (`"namespace Type"` or `"namespace element:Name"`).
        pub const CONTENT_MODELS: &[(&str, ContentModel)] = &[#(#model_items),*];
        /// Global element (`"namespace local"`) → the key of its content model, sorted.
        pub const ROOT_MODELS: &[(&str, &str)] = &[#(#root_items),*];
    };
    file.items
}
