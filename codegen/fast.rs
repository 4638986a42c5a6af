//! The fast decoders and encoders: `FastDecode`/`FastEncode` impls for the Rust type of every
//! content model, checked field by field against xsd-parser's output.

use std::collections::BTreeMap;

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::models::{Child, Models};
use crate::names::same_name;
use crate::shared::{blit, root_name};

/// `impl crate::decode::fast::FastDecode` for the Rust type of every content model: straight-line
/// code that reads exactly the model's children in order (a sequence) or one of them (a choice)
/// and builds the value, or gives up (`None`) at the first thing it does not expect, leaving the
/// message to the strict decoder, which then decodes it or names the error. The field of each
/// child is found by position and its name is checked, so a change in xsd-parser's output fails
/// the build here instead of decoding into the wrong field.
pub(crate) fn fast_decoders(
    file: &mut syn::File,
    models: &Models,
    ns_modules: &BTreeMap<String, String>,
) {
    for (key, (choice, children)) in models {
        let (items, ident, def) = model_type(file, key, ns_modules);
        let ty = Ident::new(&ident, Span::call_site());
        let (body, content) = match &def {
            syn::Item::Struct(s) => {
                assert!(!choice, "{key}: a choice model became a struct");
                let fields = sequence_fields(key, &s.fields, children);
                (
                    fast_sequence(&fields),
                    fast_encode_sequence(&fields, ns_modules),
                )
            }
            syn::Item::Enum(e) => {
                assert!(choice, "{key}: a sequence model became an enum");
                (
                    fast_choice(key, e, children),
                    fast_encode_choice(e, children, ns_modules),
                )
            }
            _ => unreachable!(),
        };
        let xmlns = root_xmlns(items, &ident, ns_modules)
            .into_iter()
            .map(|(p, ns)| {
                let (p, ns) = (blit(&p), blit(&ns));
                quote!((#p, #ns))
            });
        items.push(syn::parse_quote! {
            impl crate::decode::fast::FastDecode for #ty {
                fn fast(r: &mut crate::decode::fast::FastReader<'_>) -> Option<Self> {
                    #body
                }
            }
        });
        items.push(syn::parse_quote! {
            impl crate::encode::fast::FastEncode for #ty {
                const ROOT_XMLNS: &'static [(&'static [u8], &'static [u8])] = &[#(#xmlns),*];
                fn content(&self, w: &mut crate::encode::fast::FastWriter<'_>) -> Option<()> {
                    #content
                }
            }
        });
    }
}

/// The items of the generated module holding the Rust type of the content model `key`, the
/// type's name and its definition (a struct for a sequence, an enum for a choice).
pub(crate) fn model_type<'f>(
    file: &'f mut syn::File,
    key: &str,
    ns_modules: &BTreeMap<String, String>,
) -> (&'f mut Vec<syn::Item>, String, syn::Item) {
    let (ns, name) = key.split_once(' ').expect("model key is \"ns name\"");
    let ident = match name.strip_prefix("element:") {
        Some(element) => format!("{element}ElementType"),
        None => name.to_string(),
    };
    let module = ns_modules
        .get(ns)
        .unwrap_or_else(|| panic!("no generated module for namespace {ns}"));
    let items = file
        .items
        .iter_mut()
        .find_map(|item| match item {
            syn::Item::Mod(m) if m.ident == module => m.content.as_mut().map(|(_, i)| i),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no generated module {module}"));
    let def = items
        .iter()
        .find_map(|item| match item {
            syn::Item::Struct(s) if s.ident == ident => Some(syn::Item::Struct(s.clone())),
            syn::Item::Enum(e) if e.ident == ident => Some(syn::Item::Enum(e.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("xsd-parser generated no type {module}::{ident} for {key}"));
    (items, ident, def)
}

/// The namespace declarations xsd-parser's serializer for `ident` writes when the value is the
/// root (the `write_xmlns` calls in its `if self.is_root { … }` block), as (prefix, namespace).
fn root_xmlns(
    items: &[syn::Item],
    ident: &str,
    ns_modules: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let serializer = format!("{ident}Serializer");
    let code = items
        .iter()
        .find_map(|item| match item {
            syn::Item::Mod(m) if m.ident == "quick_xml_serialize" => m.content.as_ref(),
            _ => None,
        })
        .and_then(|(_, items)| {
            items.iter().find_map(|item| match item {
                syn::Item::Impl(i)
                    if i.trait_.is_none()
                        && matches!(&*i.self_ty, syn::Type::Path(p)
                            if p.path.segments.last().is_some_and(|s| s.ident == serializer)) =>
                {
                    Some(quote!(#i).to_string())
                }
                _ => None,
            })
        })
        .unwrap_or_else(|| panic!("no serializer impl for {ident}"));
    let Some(at) = code.find("if self . is_root {") else {
        return Vec::new();
    };
    let block = &code[at..];
    let block = &block[..block.find('}').expect("is_root block ends")];
    let mut out = Vec::new();
    for piece in block.split("PREFIX_").skip(1) {
        let module: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
            .to_lowercase();
        let ns = ns_modules
            .iter()
            .find(|(_, m)| **m == module)
            .map(|(ns, _)| ns.clone())
            .unwrap_or_else(|| panic!("{ident}: no namespace for prefix {module}"));
        out.push((module, ns));
    }
    out
}

/// The qualified name the serializer writes for a child (as for a root: the namespace's module
/// is its prefix).
fn child_qname(ns_modules: &BTreeMap<String, String>, child: &Child) -> proc_macro2::Literal {
    blit(&root_name(ns_modules, &(child.0.clone(), child.1.clone())))
}

fn fast_encode_write(
    child: &Child,
    value: TokenStream,
    name: &proc_macro2::Literal,
) -> TokenStream {
    if child.2.is_some() {
        quote!(w.child(#value, #name)?;)
    } else {
        quote!(w.leaf(#value, #name)?;)
    }
}

fn fast_encode_sequence(
    fields: &[SequenceField<'_>],
    ns_modules: &BTreeMap<String, String>,
) -> TokenStream {
    let stmts = fields.iter().map(|f| {
        let (fname, child) = (&f.name, f.child);
        let name = child_qname(ns_modules, child);
        match f.shape {
            "Option" => {
                let write = fast_encode_write(child, quote!(v), &name);
                quote!(if let Some(v) = &self.#fname { #write })
            }
            "Vec" => {
                let write = fast_encode_write(child, quote!(v), &name);
                quote!(for v in &self.#fname { #write })
            }
            _ => fast_encode_write(child, quote!(&self.#fname), &name),
        }
    });
    quote! {
        #(#stmts)*
        Some(())
    }
}

fn fast_encode_choice(
    item: &syn::ItemEnum,
    children: &[Child],
    ns_modules: &BTreeMap<String, String>,
) -> TokenStream {
    let arms = item.variants.iter().zip(children).map(|(variant, child)| {
        let v = &variant.ident;
        let name = child_qname(ns_modules, child);
        let write = fast_encode_write(child, quote!(v), &name);
        quote!(Self::#v(v) => { #write })
    });
    quote! {
        match self { #(#arms)* }
        Some(())
    }
}

/// How a field holds its child: (`Option`, `Vec` or plain, the child's type).
fn field_shape(key: &str, ty: &syn::Type) -> (&'static str, syn::Type) {
    if let syn::Type::Path(p) = ty {
        if let Some(last) = p.path.segments.last() {
            let wrapper = last.ident.to_string();
            if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                if let (true, Some(syn::GenericArgument::Type(inner))) = (
                    matches!(wrapper.as_str(), "Option" | "Vec"),
                    args.args.first(),
                ) {
                    let shape = if wrapper == "Option" { "Option" } else { "Vec" };
                    return (shape, inner.clone());
                }
                panic!("{key}: unexpected field type {}", quote!(#ty));
            }
        }
    }
    ("plain", ty.clone())
}

/// The read of one child: a nested model or a leaf.
fn fast_read(child: &Child, inner: &syn::Type) -> TokenStream {
    if child.2.is_some() {
        quote!(r.child::<#inner>()?)
    } else {
        quote!(r.leaf::<#inner>()?)
    }
}

/// One field of a sequence's struct with the child element it holds.
pub(crate) struct SequenceField<'c> {
    pub(crate) name: Ident,
    /// `Option`, `Vec` or `plain`.
    pub(crate) shape: &'static str,
    /// The child's type (inside the `Option`/`Vec`).
    pub(crate) inner: syn::Type,
    pub(crate) child: &'c Child,
}

/// Matches a sequence's struct fields to its children by position, checking names and
/// occurrences, so that a change in xsd-parser's output fails the build instead of decoding
/// into (or encoding from) the wrong field.
pub(crate) fn sequence_fields<'c>(
    key: &str,
    fields: &syn::Fields,
    children: &'c [Child],
) -> Vec<SequenceField<'c>> {
    let fields: Vec<&syn::Field> = match fields {
        syn::Fields::Named(n) => n.named.iter().collect(),
        syn::Fields::Unit => Vec::new(),
        syn::Fields::Unnamed(_) => panic!("{key}: a sequence became a tuple struct"),
    };
    assert_eq!(
        fields.len(),
        children.len(),
        "{key}: fields and children differ"
    );
    fields
        .iter()
        .zip(children)
        .map(|(field, child)| {
            let (_, element, _, min, max) = child;
            let name = field.ident.clone().expect("named field");
            assert!(
                same_name(&name.to_string(), element),
                "{key}: field {name} holds element {element}?"
            );
            let (shape, inner) = field_shape(key, &field.ty);
            let fits = match shape {
                "plain" => (*min, *max) == (1, 1),
                "Option" => (*min, *max) == (0, 1),
                _ => *max > 1,
            };
            assert!(fits, "{key}: {element} is {shape} but occurs {min}..{max}");
            SequenceField {
                name,
                shape,
                inner,
                child,
            }
        })
        .collect()
}

fn fast_sequence(fields: &[SequenceField<'_>]) -> TokenStream {
    let stmts = fields.iter().map(|f| {
        let (fname, (ns, element, _, min, max)) = (&f.name, f.child);
        let read = fast_read(f.child, &f.inner);
        let (nsb, nb) = (blit(ns), blit(element));
        match f.shape {
            "plain" => quote! {
                let #fname = if r.next_is(#nsb, #nb)? { #read } else { return None; };
            },
            "Option" => quote! {
                let #fname = if r.next_is(#nsb, #nb)? { Some(#read) } else { None };
            },
            _ => {
                let (min, max) = (*min as usize, *max as usize);
                let at_least = (min > 0).then(|| quote!(if #fname.len() < #min { return None; }));
                quote! {
                    let mut #fname = Vec::new();
                    while #fname.len() < #max && r.next_is(#nsb, #nb)? {
                        #fname.push(#read);
                    }
                    #at_least
                }
            }
        }
    });
    let names = fields.iter().map(|f| &f.name);
    quote! {
        #(#stmts)*
        r.end()?;
        Some(Self { #(#names),* })
    }
}

/// A choice's enum variants matched to its children (each a one-field tuple named for its
/// element, occurring exactly once), checked like [`sequence_fields`]: (variant, inner type,
/// child).
pub(crate) fn choice_variants<'e, 'c>(
    key: &str,
    item: &'e syn::ItemEnum,
    children: &'c [Child],
) -> Vec<(&'e Ident, &'e syn::Type, &'c Child)> {
    assert_eq!(
        item.variants.len(),
        children.len(),
        "{key}: variants and children differ"
    );
    item.variants
        .iter()
        .zip(children)
        .map(|(variant, child)| {
            let (_, element, _, min, max) = child;
            assert!(
                variant.ident == element.as_str() && (*min, *max) == (1, 1),
                "{key}: variant {} for element {element} ({min}..{max})",
                variant.ident
            );
            let syn::Fields::Unnamed(f) = &variant.fields else {
                panic!("{key}: variant {} is not a one-field tuple", variant.ident)
            };
            let inner = &f.unnamed.first().expect("variant field").ty;
            (&variant.ident, inner, child)
        })
        .collect()
}

fn fast_choice(key: &str, item: &syn::ItemEnum, children: &[Child]) -> TokenStream {
    let mut arms = Vec::new();
    for (v, inner, child) in choice_variants(key, item, children) {
        let (ns, element, ..) = child;
        let read = fast_read(child, inner);
        let (nsb, nb) = (blit(ns), blit(element));
        arms.push(quote!(if r.next_is(#nsb, #nb)? { Self::#v(#read) } else));
    }
    quote! {
        let value = #(#arms)* { return None; };
        r.end()?;
        Some(value)
    }
}
