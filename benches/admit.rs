//! What admitting a connection costs (`server::admit`): the accept gate's lookup in the union of
//! 1,000 partners' allowlists (2,000 networks) for an address it refuses and one it admits (the
//! per-source count and the new-connection rate check included), and following one request's
//! raw head (`server::framing::HeadTracker`, run on every byte read). Paid once per connection,
//! not per request on a keep-alive connection; bench/load.sh measures the request path.
//!
//! `cargo bench --bench admit`; CI: `cargo bench --bench admit -- --test` (runs each once).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark code"
)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use partnergate::config::Config;
use partnergate::server::admit::Admission;
use partnergate::server::framing::HeadTracker;
use partnergate::store::{PartnerEntry, PartnerStatus, Snapshot};

/// 1,000 active partners with two allowlist networks each, spread over 10.0.0.0/8.
fn snapshot() -> Snapshot {
    let mut s = Snapshot::empty();
    s.revision = 1;
    for i in 0..1000u32 {
        let net = |n: u32| -> ipnet::IpNet {
            let a = Ipv4Addr::from(0x0a00_0000 | (n << 8));
            ipnet::IpNet::new(IpAddr::V4(a), 28).unwrap()
        };
        let id = format!("PARTNER-{i:04}");
        s.partners.insert(
            id.clone(),
            Arc::new(PartnerEntry {
                partner_id: id.clone(),
                name: id,
                status: PartnerStatus::Active,
                group: None,
                country: None,
                keys: Vec::new(),
                allow: vec![net(2 * i), net(2 * i + 1)],
                grants: Vec::new(),
                rate: None,
                callback_rate: None,
                callback_url: None,
                callback_ca_pem: None,
                feature_defaults: None,
                client_auth: None,
            }),
        );
    }
    s
}

fn admit(c: &mut Criterion) {
    let snapshot = snapshot();
    let mut config = Config::default();
    config.limits.new_connections_per_address =
        partnergate::store::Rate::new(1_000_000_000, 1_000_000_000).unwrap();
    let admission = Admission::new(&config);
    let refused: IpAddr = "203.0.113.7".parse().unwrap();
    let admitted: IpAddr = "10.0.3.2".parse().unwrap();
    assert!(admission.admit(refused, &snapshot).is_err());
    assert!(admission.admit(admitted, &snapshot).is_ok());
    c.bench_function("admit/gate-refuses (1,000 partners)", |b| {
        b.iter(|| black_box(admission.admit(black_box(refused), &snapshot).is_err()))
    });
    c.bench_function(
        "admit/gate-admits + per-source slot (1,000 partners)",
        |b| b.iter(|| black_box(admission.admit(black_box(admitted), &snapshot).is_ok())),
    );
    let request = b"POST /soap/partner/v1 HTTP/1.1\r\nHost: gw.example.net\r\n\
Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"urn:partnergate:partner:v1/CreateAccount\"\r\n\
Content-Length: 1641\r\n\r\n";
    let mut whole = request.to_vec();
    whole.extend(std::iter::repeat_n(b'x', 1641));
    c.bench_function("framing/head-tracker (one 1.6 KB request)", |b| {
        let mut t = HeadTracker::new(16 * 1024);
        b.iter(|| {
            t.feed(black_box(&whole));
            black_box(t.take())
        })
    });
}

criterion_group!(benches, admit);
criterion_main!(benches);
