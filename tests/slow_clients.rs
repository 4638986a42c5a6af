//! The door under a hostile crowd: the accept gate, the per-source connection limits, the
//! receive-rate floor and idle reclaim, each with its exact refusal, and one run of the real
//! binary under thousands of slow connections from several loopback addresses while a partner
//! keeps calling.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so a client socket bound to
//! 127.0.0.x is a distinct source address to the gateway.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;
#[path = "common/serve.rs"]
mod serve;
use serve::Binary;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use partnergate::envelope::SoapVersion::Soap11;
use partnergate::generated::partner::Operation;
use partnergate::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

fn lo(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Connects to `addr` from `from` (port chosen by the kernel).
async fn connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Everything the peer sends until it closes (or `limit` passes: `None`); a reset counts as a
/// close after what arrived before it.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn metric(text: &str, series: &str) -> u64 {
    common::metric(text, series) as u64
}

const GATE: &str = "partnergate_connections_refused_total{reason=\"gate\"}";
const PER_ADDRESS: &str =
    "partnergate_connections_refused_total{reason=\"limits.max_connections_per_address\"}";
const RATE: &str =
    "partnergate_connections_refused_total{reason=\"limits.new_connections_per_second_per_address\"}";
const RECLAIMED: &str = "partnergate_connections_closed_total{reason=\"idle-reclaimed\"}";
const CUT_SLOW: &str =
    "partnergate_connections_closed_total{reason=\"limits.min_receive_bytes_per_second\"}";

/// The head of a SOAP request whose body never comes in full.
fn stalled_request(declared: usize) -> Vec<u8> {
    let mut r = format!(
        "POST /soap/partner/v1 HTTP/1.1\r\nHost: gw\r\nContent-Type: text/xml; charset=utf-8\r\n\
         SOAPAction: \"urn:partnergate:partner:v1/GetAccount\"\r\nContent-Length: {declared}\r\n\r\n"
    )
    .into_bytes();
    r.extend_from_slice(b"<soap");
    r
}

async fn healthz_from(from: IpAddr, addr: SocketAddr) -> Option<Vec<u8>> {
    let mut s = connect_from(from, addr).await.ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    read_until_closed(&mut s, Duration::from_secs(5)).await
}

#[tokio::test]
async fn the_gate_closes_connections_that_cannot_succeed_before_reading_a_byte() {
    let gw = start_gateway(test_config()).await;
    let _p = gw.partner(&["*"], &["127.0.0.1/32"]).await;
    // 127.0.0.9 is on no allowlist, not a callback caller, metrics reader or proxy.
    let got = healthz_from(lo(9), gw.addr).await.expect("closed in time");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let got = healthz_from(lo(1), gw.addr).await.expect("answered");
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(metric(&metrics(gw.addr).await, GATE), 1);
    // A partner whose allowlist covers it opens the door for that address (next snapshot).
    let _q = gw.partner(&["*"], &["127.0.0.8/29"]).await;
    let got = healthz_from(lo(9), gw.addr).await.expect("answered");
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // gate.also_allow admits load balancers' health checks; gate.enabled = false, anyone.
    let mut c = test_config();
    c.gate.also_allow = vec!["127.0.0.20/32".parse().unwrap()];
    let gw2 = start_gateway(c).await;
    assert!(healthz_from(lo(20), gw2.addr)
        .await
        .unwrap()
        .starts_with(b"HTTP/1.1 200"));
    assert!(healthz_from(lo(21), gw2.addr).await.unwrap().is_empty());
    let mut c = test_config();
    c.gate.enabled = false;
    let gw3 = start_gateway(c).await;
    assert!(healthz_from(lo(21), gw3.addr)
        .await
        .unwrap()
        .starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_connections() {
    let mut c = test_config();
    c.limits.max_connections_per_address = 3;
    let gw = start_gateway(c).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(lo(1), gw.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = connect_from(lo(1), gw.addr).await.unwrap();
    let got = read_until_closed(&mut fourth, Duration::from_secs(5))
        .await
        .expect("closed");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "\r\n\r\ntoo many connections from this address (limits.max_connections_per_address)\n"
        ),
        "{text}"
    );
    assert!(text.contains("\r\nretry-after: 1\r\n"), "{text}");
    // A slot given back is free again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = healthz_from(lo(1), gw.addr).await.expect("answered");
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let m = metrics(gw.addr).await;
    // The metrics request itself needed a slot: two held + it.
    assert_eq!(metric(&m, PER_ADDRESS), 1);
}

#[tokio::test]
async fn new_connections_from_one_address_are_rate_limited() {
    let mut c = test_config();
    c.limits.new_connections_per_address = partnergate::store::Rate::new(1, 3).unwrap();
    let gw = start_gateway(c).await;
    let mut answers = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from(lo(1), gw.addr).await.unwrap();
        answers.push(read_until_closed(&mut s, Duration::from_millis(300)).await);
    }
    // Three within the burst stay open (nothing sent, nothing answered yet); the fourth is
    // refused with the key.
    assert_eq!(&answers[..3], &[None, None, None]);
    let text = String::from_utf8_lossy(answers[3].as_deref().expect("closed"));
    assert!(
        text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("(limits.new_connections_per_second_per_address)\n"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let m = metrics(gw.addr).await;
    assert_eq!(metric(&m, RATE), 1);
}

#[tokio::test]
async fn headers_and_bodies_below_the_receive_rate_are_cut_after_one_window() {
    let mut c = test_config();
    c.limits.min_receive_bytes_per_second = 512;
    c.limits.min_receive_window = Duration::from_millis(1000);
    c.limits.header_read_timeout = Duration::from_secs(30);
    c.limits.body_read_timeout = Duration::from_secs(30);
    let up = StubUpstream::start(Reply::Fixture).await;
    c.upstream.url = Some(up.url.clone());
    let gw = start_gateway(c).await;
    let p = gw.partner(&["*"], &["127.0.0.1/32"]).await;

    // A header that stops: closed after the window (not the 30 s header timeout).
    let mut s = connect_from(lo(1), gw.addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"POST /soap/partner/v1 HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("cut");
    let took = started.elapsed();
    println!(
        "stalled header cut after {took:?}: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(!got.starts_with(b"HTTP/1.1 200"));

    // A body that stops: the SOAP fault names the limit, after one window.
    let mut s = connect_from(lo(1), gw.addr).await.unwrap();
    let started = Instant::now();
    s.write_all(&stalled_request(2000)).await.unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("cut");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(text.starts_with("HTTP/1.1 500"), "{text}");
    assert!(
        text.contains("<cmn:Rule>limits.min_receive_bytes_per_second</cmn:Rule>"),
        "{text}"
    );

    // A header and a body that keep coming at twice the floor take several windows and are
    // answered.
    let body = request_fixture(Operation::GetAccount, Soap11, &p);
    let (ct, headers) = soap_headers(Soap11, Some(Operation::GetAccount.soap_action()));
    let mut h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let pad = "x".repeat(1500);
    h.push(("X-Pad", &pad));
    h.push(("Connection", "close"));
    let request = post_bytes("gw", &ct, &h, &body);
    let mut s = connect_from(lo(1), gw.addr).await.unwrap();
    let started = Instant::now();
    for piece in request.chunks(100) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = read_until_closed(&mut s, Duration::from_secs(10))
        .await
        .expect("answered");
    println!(
        "{} bytes at 1000 B/s answered after {:?}",
        request.len(),
        started.elapsed()
    );
    assert!(started.elapsed() > Duration::from_secs(2));
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    let m = metrics(gw.addr).await;
    assert_eq!(metric(&m, CUT_SLOW), 1, "the stalled header");
}

#[tokio::test]
async fn idle_keep_alive_connections_make_room_near_the_cap() {
    let mut c = test_config();
    c.limits.max_connections = 10;
    // hyper's header timer also runs on an idle keep-alive connection waiting for its next
    // request: both long, so only reclaim can make room within the test.
    c.limits.keepalive_idle_timeout = Duration::from_secs(60);
    c.limits.header_read_timeout = Duration::from_secs(60);
    let up = StubUpstream::start(Reply::Fixture).await;
    c.upstream.url = Some(up.url.clone());
    let gw = start_gateway(c).await;
    let p = gw.partner(&["*"], &["127.0.0.1/32"]).await;
    let body = request_fixture(Operation::GetAccount, Soap11, &p);
    let (ct, headers) = soap_headers(Soap11, Some(Operation::GetAccount.soap_action()));
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let request = post_bytes("gw", &ct, &h, &body);
    let mut idle = Vec::new();
    for _ in 0..10 {
        let mut conn = Conn::connect(gw.addr).await;
        conn.send(&request).await.unwrap();
        assert_eq!(conn.read_response().await.unwrap().status, 200);
        idle.push(conn);
    }
    // All ten slots held by idle keep-alive connections (idle timeout 60 s): a newcomer is
    // served once idle ones (idle ≥ 1 s) are closed to make room.
    let started = Instant::now();
    let mut newcomer = Conn::connect(gw.addr).await;
    newcomer.send(&request).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), newcomer.read_response())
        .await
        .expect("served within 5 s, not after the 60 s idle timeout")
        .unwrap();
    assert_eq!(resp.status, 200);
    println!("newcomer served after {:?}", started.elapsed());
    // Each connection accepted at the cap (the newcomer, the metrics reader) may reclaim one
    // more idle connection: the counter before the client looks bounds what it sees from
    // below, the counter after from above.
    let before = metric(&metrics(gw.addr).await, RECLAIMED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut closed = 0;
    for conn in &mut idle {
        if tokio::time::timeout(Duration::from_millis(50), conn.read_to_close())
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    let after = metric(&metrics(gw.addr).await, RECLAIMED);
    println!("reclaimed: {before} counted, {closed} seen closed, {after} counted after");
    assert!(before >= 1, "no idle connection was reclaimed");
    assert!(
        before <= closed && closed <= after,
        "{before} <= {closed} <= {after}"
    );
}

// === the real binary under a crowd ===

async fn serve_with_defaults(up: &StubUpstream, allow: &[&str]) -> (Binary, Vec<Partner>) {
    let db = temp_path("crowd", "db");
    let store = Store::open(&db.display().to_string()).expect("store");
    let partners = allow
        .iter()
        .map(|net| onboard_partner(&store, &["*"], &[net], None))
        .collect();
    drop(store);
    // Every listener limit at its default; only the throttle is raised (the crowd is not
    // about throttling).
    let env = [
        (
            "PARTNERGATE_THROTTLE_DEFAULT_RATE_PER_SECOND",
            "10000".to_string(),
        ),
        ("PARTNERGATE_THROTTLE_DEFAULT_BURST", "10000".to_string()),
    ];
    (Binary::serve(db, &up.url, &env).await, partners)
}

/// What the crowd's clients saw.
#[derive(Default)]
struct Seen {
    connected: AtomicU64,
    connect_failed: AtomicU64,
    closed_empty: AtomicU64,
    refused_429: AtomicU64,
    cut_by_floor: AtomicU64,
    other: AtomicU64,
    longest_ms: AtomicU64,
}

/// One hostile client for `until`: connect from `from`, send a request head and 5 bytes of a
/// 2,000-byte body, wait for the gateway to close, pause, again.
async fn hostile(
    from: IpAddr,
    addr: SocketAddr,
    until: Instant,
    seen: Arc<Seen>,
) -> Vec<TcpStream> {
    let request = stalled_request(2000);
    let mut open = Vec::new();
    while Instant::now() < until {
        let Ok(mut s) = connect_from(from, addr).await else {
            seen.connect_failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        seen.connected.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let _ = s.write_all(&request).await;
        // The last connection gets a moment past the end for a refusal still in the backlog.
        let left = until.saturating_duration_since(Instant::now()) + Duration::from_millis(1500);
        match read_until_closed(&mut s, left).await {
            None => {
                // Still open when the crowd goes home: not counted as closed by the gateway.
                open.push(s);
                break;
            }
            Some(got) => {
                let ms = started.elapsed().as_millis() as u64;
                seen.longest_ms.fetch_max(ms, Ordering::Relaxed);
                let text = String::from_utf8_lossy(&got);
                let counter = if got.is_empty() {
                    &seen.closed_empty
                } else if text.starts_with("HTTP/1.1 429 ") && text.contains("(limits.") {
                    &seen.refused_429
                } else if text.starts_with("HTTP/1.1 500")
                    && text.contains("<cmn:Rule>limits.min_receive_bytes_per_second</cmn:Rule>")
                {
                    &seen.cut_by_floor
                } else {
                    &seen.other
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    open
}

/// The attack, against the real binary with every listener default: thousands of
/// connections that send a request head and 5 bytes of the body and go silent, from one address
/// an allowlist admits (127.0.0.2: a partner's network, say) and from eight it does not
/// (127.0.0.10–17), while a partner at 127.0.0.1 calls every 100 ms on fresh connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_of_slow_connections_cannot_starve_a_partner() {
    const ADMITTED_CLIENTS: usize = 1_500;
    const GATED_CLIENTS_PER_ADDRESS: usize = 100;
    const GATED: std::ops::RangeInclusive<u8> = 10..=17;
    let attack = Duration::from_secs(14);
    let up = StubUpstream::start(Reply::Fixture).await;
    // The partner calls from 127.0.0.1; another partner's network is 127.0.0.2.
    let (serve, partners) = serve_with_defaults(&up, &["127.0.0.1/32", "127.0.0.2/32"]).await;
    let addr = serve.addr;
    let p = partners[0].clone();
    let rss_before = serve.memory().0 / 1024;

    let admitted = Arc::new(Seen::default());
    let gated = Arc::new(Seen::default());
    let until = Instant::now() + attack;
    let mut crowd = tokio::task::JoinSet::new();
    for _ in 0..ADMITTED_CLIENTS {
        crowd.spawn(hostile(lo(2), addr, until, Arc::clone(&admitted)));
    }
    for last in GATED {
        for _ in 0..GATED_CLIENTS_PER_ADDRESS {
            crowd.spawn(hostile(lo(last), addr, until, Arc::clone(&gated)));
        }
    }

    // The partner: a GetAccount every 100 ms on a fresh connection, after the crowd is in.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let body = request_fixture(Operation::GetAccount, Soap11, &p);
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    while Instant::now() + Duration::from_millis(500) < until {
        let started = Instant::now();
        let call = post_soap(
            addr,
            Soap11,
            Some(Operation::GetAccount.soap_action()),
            &body,
        );
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(resp) if resp.status == 200 => latencies.push(started.elapsed()),
            Ok(resp) => failures.push(format!("status {}", resp.status)),
            Err(_) => failures.push("no answer within 5 s".into()),
        }
        tokio::time::sleep(Duration::from_millis(100).saturating_sub(started.elapsed())).await;
    }
    let mut still_open = Vec::new();
    while let Some(open) = crowd.join_next().await {
        still_open.extend(open.unwrap());
    }
    let rss_peak = serve.memory().0 / 1024;
    // Let the gateway account for the last connections before reading its counters.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = metrics(addr).await;
    drop(still_open);

    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "partner: {} calls, {} failed; latency p50 {:?} p99 {:?} max {:?}",
        latencies.len() + failures.len(),
        failures.len(),
        pct(0.5),
        pct(0.99),
        latencies.last().unwrap()
    );
    println!(
        "127.0.0.2 (admitted by an allowlist): {} connections, {} refused with 429, {} cut by the \
         rate floor, {} closed empty, {} other, {} connect failures; longest {} ms",
        load(&admitted.connected),
        load(&admitted.refused_429),
        load(&admitted.cut_by_floor),
        load(&admitted.closed_empty),
        load(&admitted.other),
        load(&admitted.connect_failed),
        load(&admitted.longest_ms),
    );
    println!(
        "127.0.0.10-17 (gated): {} connections, {} closed empty, {} other, {} connect failures",
        load(&gated.connected),
        load(&gated.closed_empty),
        load(&gated.other),
        load(&gated.connect_failed),
    );
    println!(
        "gateway: refused at the gate {}, per address {}, by rate {}; peak RSS {} KiB -> {} KiB",
        metric(&m, GATE),
        metric(&m, PER_ADDRESS),
        metric(&m, RATE),
        rss_before,
        rss_peak
    );

    assert!(
        failures.is_empty(),
        "the partner's calls failed: {failures:?}"
    );
    assert!(latencies.len() >= 10, "{} calls", latencies.len());
    // Every gated connection was closed without a byte (a reset that can beat the connect's
    // own completion: then the client's connect fails), and counted once.
    assert_eq!(load(&gated.other), 0);
    assert_eq!(load(&gated.connected), load(&gated.closed_empty));
    assert_eq!(
        metric(&m, GATE),
        load(&gated.connected) + load(&gated.connect_failed)
    );
    // Every admitted-address connection the gateway closed was a refusal naming its limit (a
    // 429, or a reset that beat it to the client) or a body cut by the rate floor.
    assert_eq!(load(&admitted.other), 0);
    assert_eq!(
        load(&admitted.refused_429) + load(&admitted.closed_empty),
        metric(&m, PER_ADDRESS) + metric(&m, RATE)
    );
    assert!(load(&admitted.cut_by_floor) > 0);
    // No stalled body outlived the floor's window (5 s) by more than the pause of a busy host.
    assert!(
        load(&admitted.longest_ms) < 8_000,
        "{} ms",
        load(&admitted.longest_ms)
    );
    // The issue measured 126.7 MB under the same crowd before.
    assert!(rss_peak < 100 * 1024, "peak RSS {rss_peak} KiB");
}
