//! `xs:pattern` compilation: every pattern of the schemas compiled the way the generated code
//! will, and the translation of the regexes xsd-parser emits from XML Schema to regex crate syntax.

use std::collections::BTreeSet;
use std::path::PathBuf;

use syn::visit_mut::VisitMut;

use crate::pattern;
use crate::shared::{walk_xsd, XsEvent};

/// Compiles every `xs:pattern` the way the generated code will (translated by
/// `pattern::to_rust`, anchored, with the regex crate),
/// so that a pattern the regex crate rejects fails the build rather than panicking at run time.
pub(crate) fn check_patterns(xsd_files: &BTreeSet<PathBuf>) {
    for path in xsd_files {
        walk_xsd(path, |e| {
            let XsEvent::Start(t) = e else { return };
            if t.local != "pattern" {
                return;
            }
            let value = t.get("value").expect("pattern value");
            let rust = pattern::to_rust(value).unwrap_or_else(|e| {
                panic!("{}: pattern {value}: {e}", path.display());
            });
            if let Err(e) = regex::Regex::new(&format!("^(?:{rust})$")) {
                panic!("{}: pattern {value} does not compile: {e}", path.display());
            }
        });
    }
}

/// Translates the pattern of every `Regex::new("^(?:…)$")` xsd-parser emits from XML Schema to
/// regex crate syntax, and records the XML Schema patterns.
#[derive(Default)]
pub(crate) struct Patterns {
    /// The XML Schema patterns found, in order.
    pub(crate) xsd: Vec<String>,
}

impl VisitMut for Patterns {
    fn visit_expr_call_mut(&mut self, call: &mut syn::ExprCall) {
        let is_regex_new = matches!(&*call.func, syn::Expr::Path(p)
            if p.path.segments.len() >= 2
                && p.path.segments[p.path.segments.len() - 2].ident == "Regex"
                && p.path.segments[p.path.segments.len() - 1].ident == "new");
        if is_regex_new {
            if let Some(syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(lit),
                ..
            })) = call.args.first_mut()
            {
                let anchored = lit.value();
                let xsd = anchored
                    .strip_prefix("^(?:")
                    .and_then(|p| p.strip_suffix(")$"))
                    .unwrap_or_else(|| panic!("unexpected generated pattern {anchored}"));
                let rust = pattern::to_rust(xsd).unwrap_or_else(|e| panic!("pattern {xsd}: {e}"));
                *lit = syn::LitStr::new(&format!("^(?:{rust})$"), lit.span());
                self.xsd.push(xsd.to_string());
            }
        }
        syn::visit_mut::visit_expr_call_mut(self, call);
    }
}
