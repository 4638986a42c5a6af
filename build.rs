//! Build-time code generation from the published contract in `wsdl/`: the entry point that runs
//! the generator's modules in `codegen/`, one job each, and writes their output.
//!
//! 1. Reads `wsdl/partner-api.wsdl`, `wsdl/partner-callback.wsdl` and
//!    `wsdl/partner-enrollment.wsdl` with quick-xml (messages,
//!    portType, SOAP 1.1 and 1.2 bindings, soapActions, header and fault messages) and checks the
//!    document/literal wrapped conventions the toolkits depend on; a violation fails the build
//!    (`codegen/wsdl_rules.rs`).
//! 2. Feeds the imported XSDs to xsd-parser (quick-xml serializer + deserializer, facets kept) and
//!    tightens what it emits (see `harden`): constructors check every facet, tuple fields are
//!    private, string lengths count characters, not bytes (`codegen/schema.rs`, `harden.rs`,
//!    `patterns.rs`), and adds the fast decoders/encoders (`fast.rs`), the JSON codec of every
//!    content model (`json.rs`) and the content models (`models.rs`).
//! 3. Emits, with quote + prettyplease, the operation tables (`Operation`, `Request`, `Response`,
//!    `FaultDetail` per WSDL): lookup by body element and SOAPAction, permission names, typed
//!    decode/encode dispatch (`codegen/tables.rs`).
//! 4. Derives the SOAP 1.1-only view of each WSDL for toolkits that reject SOAP 1.2
//!    (`codegen/soap11.rs`).
//! 5. Writes the OpenAPI 3.1 document of the REST face from the partner contract's content
//!    models, the simple types' facets and the route table `src/rest/route_table.rs`
//!    (`codegen/openapi.rs`).
//!
//! Shared helpers (namespaces, the schema walker, literals, paths) are in `codegen/shared.rs`.
//! The naming rules are in `codegen/names.rs` (std only: `tests/codegen_names.rs` tests them).
//!
//! Everything is written to `OUT_DIR` only. `generated/` holds a reviewed mirror of the same
//! files; `tests/generated_fresh.rs` fails when it is stale and refreshes it with
//! `PARTNERGATE_UPDATE_GENERATED=1 cargo test --test generated_fresh`.
//!
//! Trusted input only (our own contract), so failures panic with a message: that is a build error.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "build.rs reads our own contract: a broken contract must stop the build with a message"
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use shared::{env, global_elements, namespace_modules, render_rust};
use wsdl_rules::Wsdl;

/// XML Schema regex → regex crate syntax, shared with the crate (src/pattern.rs).
#[allow(dead_code)]
#[path = "src/pattern.rs"]
mod pattern;

/// The REST face's route table, shared with the crate (src/rest/route_table.rs).
#[path = "src/rest/route_table.rs"]
mod route_table;

#[path = "codegen/fast.rs"]
mod fast;
#[path = "codegen/harden.rs"]
mod harden;
#[path = "codegen/json.rs"]
mod json;
#[path = "codegen/models.rs"]
mod models;
#[path = "codegen/names.rs"]
mod names;
#[path = "codegen/openapi.rs"]
mod openapi;
#[path = "codegen/patterns.rs"]
mod patterns;
#[path = "codegen/schema.rs"]
mod schema;
#[path = "codegen/shared.rs"]
mod shared;
#[path = "codegen/soap11.rs"]
mod soap11;
#[path = "codegen/tables.rs"]
mod tables;
#[path = "codegen/wsdl_rules.rs"]
mod wsdl_rules;

/// The short commit id for `partnergate_build_info{commit}` (`PARTNERGATE_COMMIT` in the
/// crate): `PARTNERGATE_COMMIT` from the environment when set (a build from a source tarball or
/// a container context without `.git`), else `git rev-parse --short HEAD` when the source is a
/// git checkout, else `unknown`. The script reruns only when HEAD moves — the files git changes
/// on a commit, checkout or fetch (`HEAD`, the branch's ref, `packed-refs`) — not on every build.
fn commit_id() {
    println!("cargo:rerun-if-env-changed=PARTNERGATE_COMMIT");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let from_env = std::env::var("PARTNERGATE_COMMIT")
        .ok()
        .filter(|s| !s.is_empty());
    let from_git = || {
        let head = git(&["rev-parse", "--short", "HEAD"])?;
        let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(branch);
        }
        for path in watched {
            // A watched path that does not exist would rerun the script on every build.
            // (A branch ref kept only in packed-refs: its folder, where a commit writes it.)
            let Some(file) = git(&["rev-parse", "--git-path", &path]) else {
                continue;
            };
            let file = std::path::PathBuf::from(file);
            let watch = if file.exists() {
                Some(file.as_path())
            } else {
                file.parent().filter(|d| d.exists())
            };
            if let Some(watch) = watch {
                println!("cargo:rerun-if-changed={}", watch.display());
            }
        }
        Some(head)
    };
    let id = from_env
        .or_else(from_git)
        .unwrap_or_else(|| "unknown".into());
    // Only what a label may hold unescaped.
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(40)
        .collect();
    println!("cargo:rustc-env=PARTNERGATE_COMMIT={id}");
}

/// The published WSDLs and the name of the table generated from each.
const CONTRACTS: [(&str, &str); 3] = [
    ("partner-api.wsdl", "partner"),
    ("partner-callback.wsdl", "callback"),
    ("partner-enrollment.wsdl", "enrollment"),
];

fn main() {
    println!("cargo:rerun-if-changed=wsdl");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=codegen");
    println!("cargo:rerun-if-changed=src/pattern.rs");
    println!("cargo:rerun-if-changed=src/rest/route_table.rs");
    commit_id();
    let root = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env("OUT_DIR"));
    let wsdl_dir = root.join("wsdl");

    let contracts: Vec<(Wsdl, &str)> = CONTRACTS
        .iter()
        .map(|(file, table)| (Wsdl::read(&wsdl_dir, file), *table))
        .collect();

    // One xsd-parser run over every imported schema, so shared types (common.xsd) exist once.
    let mut xsd_files = BTreeSet::new();
    let mut roots = BTreeSet::new();
    for (wsdl, _) in &contracts {
        for (_, location) in &wsdl.imports {
            xsd_files.insert(wsdl_dir.join(location));
        }
        for element in wsdl.messages.values() {
            roots.insert(element.clone());
        }
    }
    // Every global element of the schemas, also those no WSDL message names (GatewayAssertion,
    // the header partnergate adds toward the upstream).
    for file in &xsd_files {
        roots.extend(global_elements(file));
    }
    let types = schema::generate_types(&xsd_files, &roots);
    let ns_modules = namespace_modules(&types);

    let mut files: Vec<(String, String)> = Vec::new();
    files.push(("types.rs".into(), render_rust("wsdl/*.xsd", &types)));
    for (wsdl, table) in &contracts {
        let tokens = tables::operation_table(wsdl, &ns_modules, &types);
        let file: syn::File = syn::parse2(tokens).expect("operation table parses");
        files.push((
            format!("{table}_operations.rs"),
            render_rust(&format!("wsdl/{}", wsdl.file), &file),
        ));
    }
    for (wsdl, _) in &contracts {
        let name = wsdl.file.replace(".wsdl", "-soap11.wsdl");
        files.push((name, soap11::soap11_view(&wsdl_dir.join(&wsdl.file), wsdl)));
    }

    // The REST face's OpenAPI document, from the partner contract's content models.
    let (models, model_roots) = models::read_models(&xsd_files);
    let partner = contracts
        .iter()
        .find(|(_, table)| *table == "partner")
        .map(|(wsdl, _)| wsdl)
        .expect("the partner contract");
    files.push((
        "partner-openapi.json".into(),
        openapi::openapi(partner, &xsd_files, &models, &model_roots),
    ));

    for (name, text) in files {
        std::fs::write(out.join(&name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
}
