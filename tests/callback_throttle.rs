//! Callback throttling, black-box: the real binary (`partnergate serve` on a SQLite file of its
//! own), a partner whose callback rate is set through the binary's own CLI, a stub partner BSS
//! that records what reaches it, and the TSP's partner API layer played by this test. A burst
//! of callbacks beyond the partner's callback burst: exactly the burst reaches the BSS, every
//! other callback is a `CallbackFault` with reason `throttled`, `RetryAfterSeconds` and a
//! `Retry-After` header, counted in `/metrics` and in the statistics rows as
//! `callback-throttled`; after the retry delay callbacks flow again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;
#[path = "common/serve.rs"]
mod serve;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use partnergate::generated::callback::Operation;
use partnergate::generated::types::cb;
use partnergate::store::{PartnerChanges, Store};
use serve::Binary;

/// The partner's callback rate and burst, as the CLI sets them.
const RATE: u64 = 1;
const BURST: u64 = 4;
/// Callbacks sent at once: well beyond the burst.
const SENT: usize = 12;

/// `partnergate <args> --database-url <db>` as the operating-system user (the admin role).
fn cli(db: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_partnergate"))
        .args(args)
        .args(["--database-url", &db.display().to_string()])
        .env("USER", "ops")
        .env_remove("PARTNERGATE_DATABASE_URL")
        .output()
        .expect("run partnergate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_callback_rate_reaches_the_bss_only_up_to_the_burst() {
    let db = temp_path("callback-throttle", "db");
    let store = Store::open(&db.display().to_string()).expect("store");
    let p = onboard_partner(&store, &["*"], &["127.0.0.0/8"], None);
    let bss = StubUpstream::start(Reply::Fixture).await;
    store
        .update_partner(
            "test",
            &p.id,
            &PartnerChanges {
                callback_url: Some(Some(bss.url.clone())),
                ..PartnerChanges::default()
            },
        )
        .expect("callback URL");
    // The callback rate through the binary's CLI, as an operator would set it.
    let out = cli(
        &db,
        &[
            "throttle",
            "set",
            "--partner",
            &p.id,
            "--callback-rate",
            &RATE.to_string(),
            "--callback-burst",
            &BURST.to_string(),
        ],
    );
    assert!(out.contains("callbacks to partner"), "{out}");
    let shown = cli(&db, &["partner", "show", &p.id]);
    assert!(shown.contains("callback_rate:    1/s burst 4"), "{shown}");
    let env = [
        ("PARTNERGATE_CALLBACK_ALLOW_HTTP", "true".to_string()),
        (
            "PARTNERGATE_CALLBACK_ALLOWED_NETWORKS",
            "127.0.0.0/8".to_string(),
        ),
        ("PARTNERGATE_STATS_FLUSH_INTERVAL_MS", "100".to_string()),
    ];
    let binary = Binary::serve(db.clone(), &closed_port_url(), &env).await;
    let op = Operation::NotifyProvisioningEvent;
    let body = callback_fixture(op, &p);

    // The burst, all at once.
    let started = Instant::now();
    let sending: Vec<_> = (0..SENT)
        .map(|_| {
            let body = body.clone();
            let addr = binary.addr;
            tokio::spawn(async move { post_callback(addr, op, &body).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(SENT);
    for s in sending {
        answers.push(s.await.expect("callback task"));
    }
    let window = started.elapsed();
    let (ok, refused): (Vec<_>, Vec<_>) = answers.into_iter().partition(|r| r.status == 200);
    let reached = bss.count();
    assert_eq!(ok.len(), reached, "every admitted callback reached the BSS");
    // At most R·W + B in the window; with the window under one emission interval (1/R s, the
    // usual case: 12 local callbacks take milliseconds) exactly the burst.
    let bound = BURST as f64 + RATE as f64 * window.as_secs_f64();
    assert!(
        (reached as f64) <= bound,
        "{reached} reached the BSS in {window:?}; at most {bound}"
    );
    if window < Duration::from_secs(1) {
        assert_eq!(reached, BURST as usize, "exactly the burst, in {window:?}");
        assert_eq!(refused.len(), SENT - BURST as usize);
    }
    for r in &refused {
        // SOAP 1.1 faults are 500 by default (WS-I), Retry-After either way.
        assert_eq!(r.status, 500, "{}", r.text());
        assert_eq!(r.header("retry-after"), Some("1"), "{}", r.text());
        let f = callback_fault(r);
        assert_eq!(f.reason, cb::CallbackFaultReason::Throttled);
        assert_eq!(f.retry_after_seconds, Some(1));
        assert!(f.message.as_str().starts_with("Throttled:"), "{f:?}");
    }

    // Counted as callback refusals, with the partner and the operation.
    let text = metrics(binary.addr).await;
    let throttled = refused.len() as f64;
    assert_eq!(
        metric(
            &text,
            &format!(
                "partnergate_requests_total{{partner=\"{}\",operation=\"NotifyProvisioningEvent\",outcome=\"callback-throttled\",face=\"soap\"}}",
                p.id
            )
        ),
        throttled
    );
    assert_eq!(
        metric(
            &text,
            "partnergate_refusals_total{reason=\"callback-throttled\"}"
        ),
        throttled
    );

    // After the retry delay, callbacks flow again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = post_callback(binary.addr, op, &body).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(bss.count(), reached + 1);

    // The statistics rows (flushed every 100 ms) hold the same counts.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = store.usage(0, Some(&p.id)).expect("usage");
        let count = |outcome: &str| {
            rows.iter()
                .filter(|r| r.operation == "NotifyProvisioningEvent" && r.outcome == outcome)
                .map(|r| r.count)
                .sum::<i64>()
        };
        let got = (count("ok"), count("callback-throttled"));
        let want = (reached as i64 + 1, refused.len() as i64);
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "usage rows {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(store);
    drop(binary);
}
