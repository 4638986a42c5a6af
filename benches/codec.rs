//! The codec's speed, beside the ceiling: raw quick-xml event reading over the same bytes.
//! For every golden request fixture and for a ~200 KB bulk message: the XML limit pass, the
//! envelope scan, the strict typed decode, the canonical encode, and everything together; and
//! the JSON face beside the SOAP face (group `json`: CreateAccount in and out, the 200 KB
//! answer as JSON). Reported as bytes/s (criterion's throughput) and per message.
//!
//! `cargo bench --bench codec` (full run); CI runs it as a smoke only: `cargo bench --bench codec
//! -- --test` compiles and runs each benchmark once, asserting nothing about speed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark code"
)]

mod support;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use partnergate::config::XmlLimits;
use partnergate::decode::{self, DecodeLimits};
use partnergate::encode;
use partnergate::envelope;
use partnergate::generated::partner::Operation;
use partnergate::json;

use support::{bulk_response, fixture};

/// The allocator the `partnergate` binary uses (src/main.rs), so these figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn raw_events(bytes: &[u8]) -> usize {
    let mut reader = quick_xml::NsReader::from_reader(bytes);
    let mut n = 0;
    loop {
        match reader.read_resolved_event() {
            Ok((_, quick_xml::events::Event::Eof)) | Err(_) => return n,
            Ok(_) => n += 1,
        }
    }
}

fn full_request(bytes: &[u8]) -> Vec<u8> {
    partnergate::limit::check_xml(bytes, &XmlLimits::default()).unwrap();
    let env = envelope::scan(bytes).unwrap();
    let request = decode::partner_request(&env.body, DecodeLimits::default()).unwrap();
    let mut out = Vec::with_capacity(bytes.len());
    encode::body_only(env.version, &mut out, |w| Ok(request.encode(w)?)).unwrap();
    out
}

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    for op in Operation::ALL {
        let bytes = fixture(&format!("{}/request.xml", op.name()));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("raw-quick-xml", op.name()),
            &bytes,
            |b, x| b.iter(|| raw_events(black_box(x))),
        );
        group.bench_with_input(BenchmarkId::new("limits", op.name()), &bytes, |b, x| {
            b.iter(|| partnergate::limit::check_xml(black_box(x), &XmlLimits::default()).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("envelope", op.name()), &bytes, |b, x| {
            b.iter(|| envelope::scan(black_box(x)).unwrap().body.bytes().len())
        });
        let env = envelope::scan(&bytes).unwrap();
        group.bench_with_input(
            BenchmarkId::new("decode", op.name()),
            &env.body,
            |b, body| {
                b.iter(|| {
                    decode::partner_request(black_box(body), DecodeLimits::default()).unwrap()
                })
            },
        );
        let request = decode::partner_request(&env.body, DecodeLimits::default()).unwrap();
        group.bench_with_input(BenchmarkId::new("encode", op.name()), &request, |b, r| {
            b.iter(|| {
                let mut out = Vec::with_capacity(2048);
                encode::body_only(env.version, &mut out, |w| Ok(r.encode(w)?)).unwrap();
                out
            })
        });
        group.bench_with_input(BenchmarkId::new("all", op.name()), &bytes, |b, x| {
            b.iter(|| full_request(black_box(x)))
        });
    }
    group.finish();
}

fn bulk(c: &mut Criterion) {
    let bytes = bulk_response();
    let mut group = c.benchmark_group("bulk-200k");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(20);
    group.bench_function("raw-quick-xml", |b| {
        b.iter(|| raw_events(black_box(&bytes)))
    });
    group.bench_function("limits", |b| {
        b.iter(|| partnergate::limit::check_xml(black_box(&bytes), &XmlLimits::default()).unwrap())
    });
    group.bench_function("envelope", |b| {
        b.iter(|| {
            envelope::scan(black_box(&bytes))
                .unwrap()
                .body
                .bytes()
                .len()
        })
    });
    let env = envelope::scan(&bytes).unwrap();
    group.bench_function("decode", |b| {
        b.iter(|| {
            decode::partner_response(
                Operation::FindAccounts,
                black_box(&env.body),
                DecodeLimits::default(),
            )
            .unwrap()
        })
    });
    let response =
        decode::partner_response(Operation::FindAccounts, &env.body, DecodeLimits::default())
            .unwrap();
    group.bench_function("encode", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(bytes.len());
            encode::body_only(env.version, &mut out, |w| Ok(response.encode(w)?)).unwrap();
            out
        })
    });
    group.finish();
}

/// The JSON face beside the SOAP face, CreateAccount: a request in (JSON or SOAP) decoded and
/// written as the canonical SOAP envelope for the upstream; the upstream's SOAP answer decoded
/// and written as JSON or SOAP; the JSON codec alone; and the 200 KB answer written as JSON.
fn json(c: &mut Criterion) {
    let mut group = c.benchmark_group("json");
    let xml = fixture("CreateAccount/request.xml");
    let json_body = fixture("CreateAccount/request.json");
    let l = DecodeLimits::default();
    let upstream = |r: &partnergate::generated::partner::Request| {
        let mut out = Vec::with_capacity(2048);
        encode::body_only(
            envelope::SoapVersion::Soap11,
            &mut out,
            |w| Ok(r.encode(w)?),
        )
        .unwrap();
        out
    };
    group.bench_function("request-soap-in-soap-out/CreateAccount", |b| {
        b.iter(|| {
            let env = envelope::scan(black_box(&xml)).unwrap();
            upstream(&decode::partner_request(&env.body, l).unwrap())
        })
    });
    group.bench_function("request-json-in-soap-out/CreateAccount", |b| {
        b.iter(|| {
            let r = json::decode_partner_request(
                Operation::CreateAccount,
                black_box(&json_body),
                &[],
                &l,
            )
            .unwrap();
            upstream(&r)
        })
    });
    group.bench_function("json-decode/CreateAccount", |b| {
        b.iter(|| {
            json::decode_partner_request(Operation::CreateAccount, black_box(&json_body), &[], &l)
                .unwrap()
        })
    });
    let request =
        json::decode_partner_request(Operation::CreateAccount, &json_body, &[], &l).unwrap();
    group.bench_function("json-encode/CreateAccount", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(1024);
            json::encode_partner_request(black_box(&request), &mut out).unwrap();
            out
        })
    });
    let answer = fixture("CreateAccount/response.xml");
    group.bench_function("response-soap-in-soap-out/CreateAccount", |b| {
        b.iter(|| {
            let env = envelope::scan(black_box(&answer)).unwrap();
            let r = decode::partner_response(Operation::CreateAccount, &env.body, l).unwrap();
            let mut out = Vec::with_capacity(2048);
            encode::body_only(env.version, &mut out, |w| Ok(r.encode(w)?)).unwrap();
            out
        })
    });
    group.bench_function("response-soap-in-json-out/CreateAccount", |b| {
        b.iter(|| {
            let env = envelope::scan(black_box(&answer)).unwrap();
            let r = decode::partner_response(Operation::CreateAccount, &env.body, l).unwrap();
            let mut out = Vec::with_capacity(2048);
            json::encode_partner_response(&r, &mut out).unwrap();
            out
        })
    });
    let bulk = bulk_response();
    let env = envelope::scan(&bulk).unwrap();
    let response = decode::partner_response(Operation::FindAccounts, &env.body, l).unwrap();
    group.sample_size(20);
    group.bench_function("bulk-200k-encode-json", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(bulk.len());
            json::encode_partner_response(black_box(&response), &mut out).unwrap();
            out
        })
    });
    let mut bulk_json = Vec::new();
    json::encode_partner_response(&response, &mut bulk_json).unwrap();
    group.bench_function("bulk-200k-decode-json", |b| {
        b.iter(|| {
            json::decode_partner_response(Operation::FindAccounts, black_box(&bulk_json), &l)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, requests, bulk, json);
criterion_main!(benches);
