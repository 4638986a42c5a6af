//! Heap allocations per request, counted by a counting global allocator (stats_alloc). Prints
//! a table; asserts nothing. Two views:
//!
//! 1. `pipeline::handle` for one request with the in-memory upstream of `benches/support` (as in
//!    `benches/pipeline.rs`), stage by stage and whole (handle + the response's canonical
//!    encode): CreateAccount, and FindAccounts answered with the bulk response of `support`.
//! 2. End to end in one process: the real `Server` (hyper, request id, tracing access line into a
//!    sink, statistics) and the real `HttpUpstream` (pooled hyper client) between a raw keep-alive
//!    TCP client and a raw fixed-response TCP upstream. Client and upstream are written not to
//!    allocate per request, so every allocation counted is the gateway's.
//!
//! `cargo bench --bench allocs` (CI smoke: `cargo bench --bench allocs -- --test`, fewer rounds).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmark code"
)]

mod support;

use std::alloc::System;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use partnergate::config::XmlLimits;
use partnergate::decode::{self, DecodeLimits};
use partnergate::envelope::{self, SoapVersion};
use partnergate::forward::{self, CallContext, HttpUpstream, UpstreamReply};
use partnergate::generated::partner::Operation;
use partnergate::pipeline::unix_now;
use partnergate::{authenticate, encode, limit};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

use support::{answer, bulk_response, fixture, gateway, headers, onboard, ready, request, Canned};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (alloc + realloc calls) and bytes requested per run of `f`, over `n` runs after
/// one unmeasured run.
fn per_run<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, f64) {
    black_box(f());
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        black_box(f());
    }
    let s = region.change();
    let allocs = (s.allocations + s.reallocations) as f64 / n as f64;
    let bytes = (s.bytes_allocated + s.bytes_reallocated.max(0) as usize) as f64 / n as f64;
    (allocs, bytes)
}

fn row(what: &str, (allocs, bytes): (f64, f64)) {
    println!("{what:<52} {allocs:>10.1} {bytes:>12.0}");
}

fn stages(n: usize) {
    let who = onboard();
    let body = request(Operation::CreateAccount, &who);
    let answer_bytes = fixture("CreateAccount/response.canonical.xml");
    let h = headers(Operation::CreateAccount);
    let now = unix_now();
    println!(
        "{:<52} {:>10} {:>12}",
        "CreateAccount, per request", "allocs", "bytes"
    );
    row(
        "  limit::check_xml",
        per_run(n, || {
            limit::check_xml(&body, &XmlLimits::default()).unwrap()
        }),
    );
    row(
        "  envelope::scan",
        per_run(n, || envelope::scan(&body).unwrap().headers.len()),
    );
    let env = envelope::scan(&body).unwrap();
    row(
        "  authenticate (header decode, SHA-256, compare)",
        per_run(n, || {
            authenticate::authenticate(&env, &who.snapshot, now)
                .unwrap()
                .key_id
        }),
    );
    row(
        "  decode::partner_request",
        per_run(n, || {
            decode::partner_request(&env.body, DecodeLimits::default()).unwrap()
        }),
    );
    let req = decode::partner_request(&env.body, DecodeLimits::default()).unwrap();
    let ctx = CallContext {
        trace: None,
        partner_id: &who.partner_id,
        request_id: "gw-0123456789abcdef0123456789abcdef",
    };
    row(
        "  forward::encode_upstream_request",
        per_run(n, || forward::encode_upstream_request(ctx, &req).unwrap()),
    );
    row(
        "  forward::decode_upstream_reply",
        per_run(n, || {
            forward::decode_upstream_reply(Operation::CreateAccount, 200, &answer_bytes).unwrap()
        }),
    );
    let Ok(UpstreamReply::Response(resp)) =
        forward::decode_upstream_reply(Operation::CreateAccount, 200, &answer_bytes)
    else {
        panic!("canned answer does not decode");
    };
    row(
        "  encode response for the partner",
        per_run(n, || {
            let mut out = Vec::with_capacity(2048);
            encode::body_only(SoapVersion::Soap11, &mut out, |w| Ok(resp.encode(w)?)).unwrap();
            out
        }),
    );
    let gw = gateway(
        who.snapshot.clone(),
        Arc::new(Canned {
            answer: answer_bytes.clone(),
        }),
    );
    row(
        "  whole: pipeline::handle + response encode",
        per_run(n, || ready(answer(&gw, &h, &body))),
    );
    let body = request(Operation::FindAccounts, &who);
    let h = headers(Operation::FindAccounts);
    let gw = gateway(
        who.snapshot,
        Arc::new(Canned {
            answer: bulk_response(),
        }),
    );
    row(
        "FindAccounts + bulk response (267 KB): whole",
        per_run(n.div_ceil(20), || ready(answer(&gw, &h, &body))),
    );
}

/// A fixed-response HTTP/1.1 upstream on 127.0.0.1 that does not allocate per request.
fn raw_upstream(body: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let response: &'static [u8] = response.leak();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || serve_raw(stream, response));
        }
    });
    addr
}

fn serve_raw(mut stream: TcpStream, response: &[u8]) {
    let mut buf = vec![0u8; 1 << 20];
    let _ = stream.set_nodelay(true);
    while read_message(&mut stream, &mut buf).is_some() {
        if stream.write_all(response).is_err() {
            return;
        }
    }
}

/// Reads one HTTP message (headers + Content-Length body) into `buf`; its length, or `None` at
/// the end of the stream.
fn read_message(stream: &mut TcpStream, buf: &mut [u8]) -> Option<usize> {
    let mut have = 0;
    loop {
        if let Some(end) = find(&buf[..have], b"\r\n\r\n") {
            let head = &buf[..end];
            let length = content_length(head).unwrap_or(0);
            let total = end + 4 + length;
            while have < total {
                let n = stream.read(&mut buf[have..]).ok()?;
                if n == 0 {
                    return None;
                }
                have += n;
            }
            return Some(total);
        }
        let n = stream.read(&mut buf[have..]).ok()?;
        if n == 0 {
            return None;
        }
        have += n;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|b| *b == b'\n').find_map(|line| {
        let colon = line.iter().position(|b| *b == b':')?;
        if !line[..colon].eq_ignore_ascii_case(b"content-length") {
            return None;
        }
        let value = &line[colon + 1..];
        let mut n = 0usize;
        for b in value {
            if b.is_ascii_digit() {
                n = n * 10 + usize::from(b - b'0');
            }
        }
        Some(n)
    })
}

fn end_to_end(n: usize) {
    let who = onboard();
    let body = request(Operation::CreateAccount, &who);
    let upstream = raw_upstream(fixture("CreateAccount/response.canonical.xml"));
    let mut config = partnergate::config::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Default::default()
    };
    config.upstream.url = Some(format!("http://{upstream}/soap/partner/v1"));
    // The access line goes through the same subscriber as `partnergate serve`, into a sink.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("partnergate=info"))
        .with_writer(std::io::sink)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = runtime.block_on(async {
        let http = Arc::new(HttpUpstream::new(&config.upstream).unwrap());
        let gw = Arc::new(gateway(who.snapshot, http));
        let server = partnergate::server::Server::new(&config, gw).unwrap();
        let listener = partnergate::server::Server::bind(config.listen)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        std::mem::forget(stop);
        tokio::spawn(server.serve(listener, rx, std::time::Duration::from_secs(1)));
        addr
    });
    let mut req = format!(
        "POST /soap/partner/v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n\
SOAPAction: \"{}\"\r\nContent-Length: {}\r\n\r\n",
        Operation::CreateAccount.soap_action(),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut one = || {
        stream.write_all(&req).unwrap();
        let len = read_message(&mut stream, &mut buf).unwrap();
        assert!(
            buf.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            &buf[..len.min(400)]
        );
        len
    };
    // Warm up: connections to the upstream pooled, limiter and statistics entries created.
    for _ in 0..50 {
        one();
    }
    let (allocs, bytes) = per_run(n, &mut one);
    println!();
    row(
        "End to end (server + HttpUpstream), per request",
        (allocs, bytes),
    );
    drop(runtime);
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let n = if smoke { 20 } else { 2000 };
    stages(n);
    end_to_end(n);
}
