//! The REST face's OpenAPI document with real tools, against the real binary:
//! `GET /rest/partner/v1/openapi.json` is the generated document (`generated/`) with this
//! deployment's address as `servers[0].url`; `openapi-spec-validator` accepts it; every golden
//! JSON file (requests without their URL members, responses, fault details) validates against
//! its schema and some values the codec refuses do not (`tests/clients/rest_schemas.py`);
//! `openapi-python-client` generates a client from it, and that client runs CreateAccount →
//! GetAccount → AddService → a refused call answered with a problem
//! (`tests/clients/rest_scenario.py`). Also the docs page: HTML rendered on the server, no
//! script, its CSP, its stylesheet.
//!
//! The Python tools are installed by `.ci/setup` in the venv (`PARTNERGATE_VENV`, default
//! `/opt/partnergate/venv`); a missing tool is a FAILURE, never a skip.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;
#[path = "common/serve.rs"]
mod serve;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use partnergate::store::Store;
use serve::Binary;

fn venv() -> PathBuf {
    std::env::var_os("PARTNERGATE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/partnergate/venv"))
}

fn tool(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.is_file(),
        "{name} not installed: run `sudo .ci/setup` ({} missing)",
        path.display()
    );
    path
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_served_openapi_document_runs_the_scenario() {
    let db = temp_path("rest-client", "db");
    let store = Store::open(&db.display().to_string()).expect("store");
    let p = onboard_partner(&store, &["*"], &["127.0.0.0/8"], None);
    drop(store);
    let up = StubUpstream::start(Reply::Fixture).await;
    let binary = Binary::serve(db, &up.url, &[]).await;
    let addr = binary.addr;

    // The served document: the generated one, with this deployment's address.
    let r = get(addr, "/rest/partner/v1/openapi.json", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let generated = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("generated/partner-openapi.json"),
    )
    .expect("generated/partner-openapi.json");
    let base = format!("http://{addr}/rest/partner/v1");
    assert_eq!(
        r.text(),
        generated.replacen("__PARTNERGATE_PUBLIC_URL__", &format!("http://{addr}"), 1)
    );
    let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(doc["servers"][0]["url"], base.as_str());
    assert_eq!(doc["openapi"], "3.1.0");

    let dir = temp_path("rest-client", "d");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec = dir.join("openapi.json");
    std::fs::write(&spec, &r.body).expect("write");

    // A maintained validator accepts it.
    let out = run(Command::new(tool("openapi-spec-validator")).arg(&spec));
    assert!(out.contains(": OK"), "{out}");

    // Every golden JSON file of the codec validates against its schema, and values the codec
    // refuses are refused by the schemas too: the document describes the mapping the codec has.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let out = run(Command::new(venv().join("bin/python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/rest_schemas.py"))
        .arg(&spec)
        .arg(&data));
    assert!(out.contains("SCHEMAS-OK 62"), "{out}");

    // A real generator makes a client of it, and the client runs the scenario.
    let config = dir.join("config.yaml");
    std::fs::write(&config, "post_hooks: []\n").expect("write");
    run(Command::new(tool("openapi-python-client"))
        .args(["generate", "--meta", "none", "--path"])
        .arg(&spec)
        .arg("--config")
        .arg(&config)
        .arg("--output-path")
        .arg(dir.join("pg_rest_client")));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/rest_scenario.py");
    let out = run(Command::new(venv().join("bin/python"))
        .arg(&script)
        .env("PYTHONPATH", &dir)
        .env(
            "PG_REST_BASE",
            doc["servers"][0]["url"].as_str().unwrap_or_default(),
        )
        .env("PG_REST_PARTNER", &p.id)
        .env("PG_REST_KEY", &p.key)
        .env("PG_REST_DATA", &data));
    assert!(
        out.contains("REST-CLIENT-OK ACC-0000001001 SVC-")
            && out.contains("urn:partnergate:problem:authentication-failed"),
        "{out}"
    );
    assert_eq!(
        up.count(),
        3,
        "the three admitted calls reached the upstream, the refused one not"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // The docs page: rendered here, no script, a CSP that allows none.
    let r = get(addr, "/rest/partner/v1/docs", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        r.header("content-security-policy"),
        Some(partnergate::rest::docs::CSP)
    );
    let html = r.text();
    assert!(html.contains(&format!("<code>{base}</code>")), "{html}");
    assert!(html.contains("<td class=\"t\">/rest/partner/v1/accounts/{AccountNumber}/services</td><td>AddService</td>"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    let css = get(addr, "/rest/partner/v1/docs.css", None).await;
    assert_eq!(
        (css.status, css.header("content-type")),
        (200, Some("text/css; charset=utf-8"))
    );
}
