//! The JSON codec of every content model: `JsonDecode`/`JsonEncode` impls (`crate::json`) for
//! the Rust type of each model, fields matched to children by position and name exactly as for
//! the fast XML codec (`fast.rs`), each leaf written as the JSON type its XSD type maps to.

use std::collections::BTreeMap;

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;

use crate::fast::{choice_variants, model_type, sequence_fields, SequenceField};
use crate::models::{Child, Models};
use crate::shared::lit;

/// How a leaf is written in JSON (also for the OpenAPI schemas: one rule for both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leaf {
    /// `xs:boolean` and types restricted from it: `true`/`false`.
    Boolean,
    /// The integer types and types restricted from them: a number without fraction.
    Integer,
    /// Everything else: a string holding the lexical form.
    String,
}

/// What a leaf type name is, found in the generated modules: the inner type of a newtype (with
/// the module it is in), or an enumeration.
pub(crate) enum Named {
    Newtype(String, Box<syn::Type>),
    Enum,
}

/// Adds the JSON decoder and encoder of every content model to the generated types.
pub(crate) fn json_codecs(
    file: &mut syn::File,
    models: &Models,
    ns_modules: &BTreeMap<String, String>,
) {
    let named = named_types(file);
    for (key, (choice, children)) in models {
        let (ns, _) = key.split_once(' ').expect("model key is \"ns name\"");
        let module = ns_modules[ns].clone();
        let (items, ident, def) = model_type(file, key, ns_modules);
        let ty = Ident::new(&ident, Span::call_site());
        let leaf = |inner: &syn::Type, child: &Child| {
            child
                .2
                .is_none()
                .then(|| leaf_kind(&named, &module, inner, key))
        };
        let (decode, encode) = match &def {
            syn::Item::Struct(s) => {
                assert!(!choice, "{key}: a choice model became a struct");
                let fields = sequence_fields(key, &s.fields, children);
                let leaves: Vec<Option<Leaf>> =
                    fields.iter().map(|f| leaf(&f.inner, f.child)).collect();
                (
                    decode_sequence(&fields, &leaves),
                    encode_sequence(&fields, &leaves),
                )
            }
            syn::Item::Enum(e) => {
                assert!(choice, "{key}: a sequence model became an enum");
                let variants = choice_variants(key, e, children);
                let arms: Vec<(Ident, &Child, Option<Leaf>)> = variants
                    .iter()
                    .map(|(v, inner, child)| ((*v).clone(), *child, leaf(inner, child)))
                    .collect();
                (decode_choice(&arms), encode_choice(&arms))
            }
            _ => unreachable!(),
        };
        items.push(syn::parse_quote! {
            impl crate::json::JsonDecode for #ty {
                fn json_object<'b>(
                    r: &mut crate::json::JsonReader<'b>,
                    url: &[(&'b str, &'b str)],
                ) -> Result<Self, crate::decode::DecodeError> {
                    #decode
                }
            }
        });
        items.push(syn::parse_quote! {
            impl crate::json::JsonEncode for #ty {
                fn json(&self, w: &mut crate::json::JsonWriter<'_>) -> Result<(), crate::json::JsonEncodeError> {
                    #encode
                }
            }
        });
    }
}

/// Every newtype (`struct X(Inner);`) and enum of the generated modules, by (module, name).
pub(crate) fn named_types(file: &syn::File) -> BTreeMap<(String, String), Named> {
    let mut out = BTreeMap::new();
    for item in &file.items {
        let syn::Item::Mod(m) = item else { continue };
        let module = m.ident.to_string();
        for item in m.content.iter().flat_map(|(_, items)| items) {
            match item {
                syn::Item::Struct(s) => {
                    if let syn::Fields::Unnamed(f) = &s.fields {
                        if let (1, Some(field)) = (f.unnamed.len(), f.unnamed.first()) {
                            out.insert(
                                (module.clone(), s.ident.to_string()),
                                Named::Newtype(module.clone(), Box::new(field.ty.clone())),
                            );
                        }
                    }
                }
                syn::Item::Enum(e) => {
                    out.insert((module.clone(), e.ident.to_string()), Named::Enum);
                }
                _ => {}
            }
        }
    }
    out
}

/// The JSON form of a leaf of Rust type `ty`, used in `module` (`named`: [`named_types`]): what
/// the type is, or for a newtype (a restriction), what its base is; `key` names the content
/// model in a build error.
pub(crate) fn leaf_kind(
    named: &BTreeMap<(String, String), Named>,
    module: &str,
    ty: &syn::Type,
    key: &str,
) -> Leaf {
    let syn::Type::Path(p) = ty else {
        panic!("{key}: leaf type {} is not a path", quote!(#ty))
    };
    let segments: Vec<String> = p
        .path
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    let last = segments.last().expect("a path has a segment").as_str();
    match last {
        "bool" => return Leaf::Boolean,
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => return Leaf::Integer,
        // Strings, and the lexical types crate::xs holds as their text.
        "String" | "DateTime" | "Date" => return Leaf::String,
        _ => {}
    }
    let in_module = match segments.len() {
        1 => module.to_string(),
        n => segments[n - 2].clone(),
    };
    match named.get(&(in_module.clone(), last.to_string())) {
        Some(Named::Newtype(m, inner)) => leaf_kind(named, m, inner, key),
        Some(Named::Enum) => Leaf::String,
        None => panic!(
            "{key}: leaf type {in_module}::{last} is not a known scalar, newtype or enum: \
             say in codegen/json.rs how JSON writes it"
        ),
    }
}

/// The reader call for one value of a child.
fn read(leaf: Option<Leaf>) -> TokenStream {
    match leaf {
        None => quote!(r.child()?),
        Some(Leaf::String) => quote!(r.string()?),
        Some(Leaf::Integer) => quote!(r.integer()?),
        Some(Leaf::Boolean) => quote!(r.boolean()?),
    }
}

/// The writer call for one value `v` of a child.
fn write(leaf: Option<Leaf>, v: TokenStream) -> TokenStream {
    match leaf {
        None => quote!(w.child(#v)?),
        Some(Leaf::String) => quote!(w.string(#v)?),
        Some(Leaf::Integer) => quote!(w.integer(#v)?),
        Some(Leaf::Boolean) => quote!(w.boolean(#v)?),
    }
}

fn decode_sequence(fields: &[SequenceField<'_>], leaves: &[Option<Leaf>]) -> TokenStream {
    let names = fields.iter().map(|f| lit(&f.child.1));
    let slots = fields.iter().map(|f| {
        let (name, inner) = (&f.name, &f.inner);
        if f.shape == "Vec" {
            quote!(let mut #name: Option<Vec<#inner>> = None;)
        } else {
            quote!(let mut #name: Option<#inner> = None;)
        }
    });
    let arms = fields.iter().zip(leaves).enumerate().map(|(i, (f, leaf))| {
        let name = &f.name;
        let one = read(*leaf);
        let value = if f.shape == "Vec" {
            let max = f.child.4 as usize;
            quote!(r.list(#max, |r| Ok(#one))?)
        } else {
            one
        };
        quote!(#i => {
            r.unique(#name.is_none())?;
            #name = Some(#value);
        })
    });
    let values = fields.iter().map(|f| {
        let name = &f.name;
        let element = lit(&f.child.1);
        match f.shape {
            "Option" => quote!(#name),
            "Vec" => {
                let min = f.child.3 as usize;
                quote!(#name: r.at_least(#name, #min, #element)?)
            }
            _ => quote!(#name: r.required(#name, #element)?),
        }
    });
    quote! {
        const NAMES: &[&str] = &[#(#names),*];
        #(#slots)*
        let mut m = r.object(url)?;
        while let Some(i) = r.member(&mut m, NAMES)? {
            match i {
                #(#arms)*
                _ => return Err(r.no_such_member()),
            }
        }
        Ok(Self { #(#values),* })
    }
}

fn encode_sequence(fields: &[SequenceField<'_>], leaves: &[Option<Leaf>]) -> TokenStream {
    let stmts = fields.iter().zip(leaves).map(|(f, leaf)| {
        let name = &f.name;
        let element = lit(&f.child.1);
        match f.shape {
            "Option" => {
                let one = write(*leaf, quote!(v));
                quote!(if let Some(v) = &self.#name { w.key(#element); #one; })
            }
            "Vec" => {
                let one = write(*leaf, quote!(v));
                quote!(if !self.#name.is_empty() {
                    w.key(#element);
                    w.list(&self.#name, |w, v| { #one; Ok(()) })?;
                })
            }
            _ => {
                let one = write(*leaf, quote!(&self.#name));
                quote!(w.key(#element); #one;)
            }
        }
    });
    quote! {
        w.begin();
        #(#stmts)*
        w.end();
        Ok(())
    }
}

fn decode_choice(arms: &[(Ident, &Child, Option<Leaf>)]) -> TokenStream {
    let names = arms.iter().map(|(_, child, _)| lit(&child.1));
    let one_of = lit(&arms
        .iter()
        .map(|(_, child, _)| child.1.as_str())
        .collect::<Vec<_>>()
        .join(", "));
    let reads = arms.iter().enumerate().map(|(i, (v, _, leaf))| {
        let one = read(*leaf);
        quote!(#i => Self::#v(#one),)
    });
    quote! {
        const NAMES: &[&str] = &[#(#names),*];
        let mut m = r.object(url)?;
        let mut value: Option<(usize, Self)> = None;
        while let Some(i) = r.member(&mut m, NAMES)? {
            if let Some((first, _)) = &value {
                r.unique(*first != i)?;
                return Err(r.error(
                    crate::decode::Rule::NotAllowedHere,
                    concat!("a choice holds exactly one of ", #one_of),
                ));
            }
            value = Some((i, match i {
                #(#reads)*
                _ => return Err(r.no_such_member()),
            }));
        }
        match value {
            Some((_, value)) => Ok(value),
            None => Err(r.error(
                crate::decode::Rule::MissingElement,
                concat!("one of ", #one_of, " is required"),
            )),
        }
    }
}

fn encode_choice(arms: &[(Ident, &Child, Option<Leaf>)]) -> TokenStream {
    let arms = arms.iter().map(|(v, child, leaf)| {
        let element = lit(&child.1);
        let one = write(*leaf, quote!(v));
        quote!(Self::#v(v) => { w.key(#element); #one; })
    });
    quote! {
        w.begin();
        match self { #(#arms)* }
        w.end();
        Ok(())
    }
}
