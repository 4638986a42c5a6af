//! The whole request path per request, without sockets: `pipeline::handle` (content type and
//! SOAPAction, XML limits, envelope scan, authentication, allowlist, authorization, throttle,
//! strict typed decode) with an in-memory upstream that encodes the canonical upstream envelope
//! and strictly decodes a canned answer, then the canonical encode of the response for the
//! partner — everything the gateway computes for one request besides HTTP. Plus the key check
//! on its own (credential header decode, SHA-256, constant-time compare against every key).
//!
//! `cargo bench --bench pipeline`; CI: `cargo bench --bench pipeline -- --test` (runs each once).
//!
//! Profiling: `PARTNERGATE_PROFILE=small|large:N` runs N whole requests outside criterion and
//! exits (for `valgrind --tool=callgrind --toggle-collect='*profile_loop*'`; see bench/README.md).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark code"
)]

mod support;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, Criterion, Throughput};
use partnergate::authenticate;
use partnergate::envelope;
use partnergate::generated::partner::Operation;
use partnergate::pipeline::{unix_now, Gateway};
use partnergate::secret;

use support::{answer, bulk_response, fixture, gateway, headers, onboard, ready, request, Canned};

/// The allocator the `partnergate` binary uses (src/main.rs), so these figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The small case: CreateAccount (1.7 KB request, 1.3 KB canonical response).
fn small() -> (Gateway, Vec<u8>) {
    let who = onboard();
    let body = request(Operation::CreateAccount, &who);
    let upstream = Arc::new(Canned {
        answer: fixture("CreateAccount/response.canonical.xml"),
    });
    (gateway(who.snapshot, upstream), body)
}

/// The large case: FindAccounts (0.6 KB request) answered with the bulk response (267 KB as generated).
fn large() -> (Gateway, Vec<u8>) {
    let who = onboard();
    let body = request(Operation::FindAccounts, &who);
    let upstream = Arc::new(Canned {
        answer: bulk_response(),
    });
    (gateway(who.snapshot, upstream), body)
}

fn whole(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline");
    let (gw, body) = small();
    let h = headers(Operation::CreateAccount);
    group.throughput(Throughput::Elements(1));
    group.bench_function("CreateAccount", |b| {
        b.iter(|| ready(answer(&gw, &h, black_box(&body))))
    });
    let (gw, body) = large();
    let h = headers(Operation::FindAccounts);
    group.sample_size(20);
    group.bench_function("FindAccounts-200k-response", |b| {
        b.iter(|| ready(answer(&gw, &h, black_box(&body))))
    });
    group.finish();
}

fn keys(c: &mut Criterion) {
    let who = onboard();
    let body = request(Operation::CreateAccount, &who);
    let env = envelope::scan(&body).unwrap();
    let mut group = c.benchmark_group("key");
    group.bench_function("sha256", |b| b.iter(|| secret::hash(black_box(&who.key))));
    let now = unix_now();
    group.bench_function("authenticate", |b| {
        b.iter(|| authenticate::authenticate(black_box(&env), &who.snapshot, now).unwrap())
    });
    // A wrong key: the same work (hash, compare with every key), refused.
    let wrong = String::from_utf8(body.clone())
        .unwrap()
        .replace(&who.key[..12], "pgk_00000000");
    let wrong_env = envelope::scan(wrong.as_bytes()).unwrap();
    group.bench_function("authenticate-wrong-key", |b| {
        b.iter(|| {
            authenticate::authenticate(black_box(&wrong_env), &who.snapshot, now).unwrap_err()
        })
    });
    group.finish();
}

#[inline(never)]
fn profile_loop(gw: &Gateway, h: &http::HeaderMap, body: &[u8], n: usize) -> usize {
    let mut total = 0;
    for _ in 0..n {
        total += ready(answer(gw, h, black_box(body))).len();
    }
    total
}

criterion_group!(benches, whole, keys);

fn main() {
    if let Ok(spec) = std::env::var("PARTNERGATE_PROFILE") {
        let (case, n) = spec.split_once(':').unwrap_or((spec.as_str(), "1000"));
        let n: usize = n.parse().expect("PARTNERGATE_PROFILE=small|large:N");
        let ((gw, body), op) = match case {
            "small" => (small(), Operation::CreateAccount),
            "large" => (large(), Operation::FindAccounts),
            other => panic!("PARTNERGATE_PROFILE: unknown case {other:?}"),
        };
        let h = headers(op);
        // One request outside the loop: lazily built state (regexes, limiters) is not counted.
        ready(answer(&gw, &h, &body));
        let bytes = profile_loop(&gw, &h, &body, n);
        println!("{case}: {n} requests, {bytes} response bytes");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
