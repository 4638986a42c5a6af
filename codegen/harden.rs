//! The syn hardening pass over xsd-parser's output: facets checked by constructors, private tuple
//! fields, character lengths, translated patterns, borrowed string serialization.

use std::collections::BTreeSet;

use quote::quote;
use syn::visit_mut::VisitMut;

use crate::pattern;
use crate::patterns::Patterns;

/// Tightens xsd-parser's output where it does not enforce the schema:
/// - `new()` of a restricted string type also checks the pattern (`validate_str`), so a value
///   that violates a facet cannot be constructed;
/// - the tuple field of such a newtype is private, so it cannot be built around `new()`;
/// - maxLength/minLength count characters (XSD semantics), not UTF-8 bytes;
/// - patterns are XML Schema regular expressions, translated to the regex crate's syntax
///   (`\s`, `.`, `^`, `$` differ: src/pattern.rs), and the "no whitespace at either end"
///   patterns are checked directly (`crate::pattern::trimmed`) instead of by a regex;
/// - a string type serializes as a borrow of its value (xsd-parser-types' `SerializeBytes for
///   String` copies it into a new `String`: one allocation per value encoded).
pub(crate) struct Harden {
    /// The types that are a `String` newtype (`struct X(String);`).
    string_newtypes: BTreeSet<String>,
}

impl Harden {
    pub(crate) fn of(file: &syn::File) -> Self {
        let mut string_newtypes = BTreeSet::new();
        let mut items: Vec<&syn::Item> = file.items.iter().collect();
        while let Some(item) = items.pop() {
            match item {
                syn::Item::Mod(m) => items.extend(m.content.iter().flat_map(|(_, i)| i)),
                syn::Item::Struct(s) => {
                    if let syn::Fields::Unnamed(f) = &s.fields {
                        let ty = f.unnamed.iter().map(|f| &f.ty);
                        if quote!(#(#ty)*).to_string() == "String" {
                            string_newtypes.insert(s.ident.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        Harden { string_newtypes }
    }
}

impl VisitMut for Harden {
    fn visit_item_struct_mut(&mut self, item: &mut syn::ItemStruct) {
        if let syn::Fields::Unnamed(fields) = &mut item.fields {
            for field in &mut fields.unnamed {
                field.vis = syn::Visibility::Inherited;
            }
        }
        syn::visit_mut::visit_item_struct_mut(self, item);
    }

    fn visit_item_impl_mut(&mut self, item: &mut syn::ItemImpl) {
        let has_validate_str = item
            .items
            .iter()
            .any(|i| matches!(i, syn::ImplItem::Fn(f) if f.sig.ident == "validate_str"));
        let self_ty = &item.self_ty;
        let string_newtype = self.string_newtypes.contains(&quote!(#self_ty).to_string());
        for impl_item in &mut item.items {
            let syn::ImplItem::Fn(f) = impl_item else {
                continue;
            };
            if string_newtype && f.sig.ident == "serialize_bytes" {
                let body = &f.block;
                assert_eq!(
                    quote!(#body).to_string(),
                    "{ self . 0 . serialize_bytes (helper) }",
                    "serialize_bytes of a String newtype changed in xsd-parser: review the rewrite"
                );
                f.block = syn::parse_quote!({
                    let _ = helper;
                    Ok(Some(::std::borrow::Cow::Borrowed(self.0.as_str())))
                });
            }
            if f.sig.ident == "new" && has_validate_str {
                let check: syn::Stmt = syn::parse_quote!(Self::validate_str(&inner)?;);
                f.block.stmts.insert(0, check);
            }
            if f.sig.ident == "validate_value" {
                CharLength.visit_block_mut(&mut f.block);
            }
            // `deserialize_bytes` checks the pattern, then builds the value with `new()`, which
            // (above) checks the pattern again first: the second run was every pattern twice
            // per value (regexes included). The first goes; the result and its error are the
            // same, `new()` checking the pattern before the lengths as before.
            if f.sig.ident == "deserialize_bytes"
                && quote!(#f).to_string().contains("Self :: new (inner)")
            {
                f.block.stmts.retain(|stmt| {
                    !quote!(#stmt)
                        .to_string()
                        .starts_with("Self :: validate_str (s)")
                });
            }
            if f.sig.ident == "validate_str" {
                let mut patterns = Patterns::default();
                patterns.visit_block_mut(&mut f.block);
                if let [xsd] = patterns.xsd.as_slice() {
                    if let Some(shape) = pattern::Shape::of(xsd) {
                        let single_line = shape == pattern::Shape::TrimmedLine;
                        let xsd = xsd.as_str();
                        f.block = syn::parse_quote!({
                            if !crate::pattern::trimmed(s, #single_line) {
                                return Err(ValidateError::Pattern(#xsd));
                            }
                            Ok(())
                        });
                    }
                }
            }
        }
        syn::visit_mut::visit_item_impl_mut(self, item);
    }
}

/// Rewrites `value.len()` to `value.chars().count()` inside `validate_value` of string types.
struct CharLength;

impl VisitMut for CharLength {
    fn visit_expr_mut(&mut self, expr: &mut syn::Expr) {
        if let syn::Expr::MethodCall(call) = expr {
            let on_value =
                matches!(&*call.receiver, syn::Expr::Path(p) if p.path.is_ident("value"));
            if on_value && call.method == "len" && call.args.is_empty() {
                *expr = syn::parse_quote!(value.chars().count());
                return;
            }
        }
        syn::visit_mut::visit_expr_mut(self, expr);
    }
}
