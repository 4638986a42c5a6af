#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! A database outage and a shutdown without the database (issue 15, parts 5 and 6): a real
//! `partnergate serve` on a private PostgreSQL cluster of its own (`common/pg_server.rs`), which
//! the test stops and starts again (the shared test server cannot be stopped).
//!
//! - `an_outage_under_load_fails_no_call_and_loses_no_count`: an external (stub) partner API
//!   layer, clients calling all the time; PostgreSQL stopped for [`outage`] (30 s, or
//!   `PARTNERGATE_TEST_OUTAGE_SECS`), then started again. Asserts: every call answered 200 (none
//!   failed), nothing dropped, and after recovery the stored statistics (`usage_stats`) reach
//!   exactly the number of calls the clients made. Prints latency before and during the outage.
//! - `the_embedded_layer_fails_fast_without_the_database`: no upstream URL; with PostgreSQL
//!   stopped a call answers `UpstreamUnavailableFault` within 2 s each (the first within the
//!   checkout timeout; the next ones at once: their median under 250 ms; figures printed), and
//!   calls work again after restart.
//! - `statistics_beyond_the_bound_are_dropped_counted_and_logged_once`: `stats.max_pending_rows`
//!   = 2 and four series during the outage: `/metrics` counts the dropped calls, the log says so
//!   once, and after recovery stored + dropped = made.
//! - `sigterm_with_the_database_down_finishes_in_flight_calls_and_exits_in_time`: clients
//!   calling (the upstream takes 300 ms), PostgreSQL stopped, SIGTERM: every request sent before
//!   SIGTERM is answered 200 and the process exits within the 10 s drain limit (+ 0.5 s).

mod common;
#[path = "common/pg_server.rs"]
mod pg_server;
#[path = "common/serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use common::*;
use partnergate::envelope::SoapVersion::Soap11;
use partnergate::generated::partner::{FaultDetail, Operation};
use partnergate::store::Store;
use pg_server::PgServer;
use serve::Binary;

/// How long PostgreSQL is down in the outage test: 30 s (the figure) unless
/// `PARTNERGATE_TEST_OUTAGE_SECS` says otherwise.
fn outage() -> Duration {
    let secs = std::env::var("PARTNERGATE_TEST_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// Clients calling at once.
const CLIENTS: usize = 4;
/// The drain limit the process must exit within after SIGTERM (`app::SHUTDOWN_GRACE`).
const DRAIN_LIMIT: Duration = partnergate::app::SHUTDOWN_GRACE;
/// What the exit may take beyond it (process start-up of `kill`, scheduling on a busy machine).
const EXIT_SLACK: Duration = Duration::from_millis(500);

fn node_env(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        (
            "PARTNERGATE_THROTTLE_DEFAULT_RATE_PER_SECOND",
            "100000".to_string(),
        ),
        ("PARTNERGATE_THROTTLE_DEFAULT_BURST", "100000".to_string()),
        ("PARTNERGATE_STATS_FLUSH_INTERVAL_MS", "200".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_string())));
    env
}

/// A private cluster with one partner allowed from loopback and granted everything.
async fn cluster_with_partner() -> (Arc<PgServer>, Partner) {
    tokio::task::spawn_blocking(|| {
        let pg = PgServer::start();
        let store = Store::open(&pg.url()).expect("open the private database");
        let partner = onboard_partner(&store, &["*"], &["127.0.0.0/8"], None);
        let closing = store.closing();
        drop(store);
        assert!(closing.wait(Duration::from_secs(15)));
        (Arc::new(pg), partner)
    })
    .await
    .unwrap()
}

async fn stop(pg: &Arc<PgServer>) {
    let pg = Arc::clone(pg);
    tokio::task::spawn_blocking(move || pg.stop())
        .await
        .unwrap();
}

async fn start_again(pg: &Arc<PgServer>) {
    let pg = Arc::clone(pg);
    tokio::task::spawn_blocking(move || pg.start_again())
        .await
        .unwrap();
}

/// The calls stored for `partner` in `usage_stats` (every operation and outcome).
async fn stored_calls(url: &str, partner: &str) -> Option<i64> {
    let (url, partner) = (url.to_string(), partner.to_string());
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&url).ok()?;
        let closing = store.closing();
        let total = store
            .usage(0, Some(&partner))
            .ok()
            .map(|rows| rows.iter().map(|r| r.count).sum());
        drop(store);
        let _ = closing.wait(Duration::from_secs(15));
        total
    })
    .await
    .unwrap()
}

/// Polls until the stored count reaches `want` (bounded); returns the last count seen.
async fn wait_stored(url: &str, partner: &str, want: i64, within: Duration) -> Option<i64> {
    let deadline = Instant::now() + within;
    loop {
        let seen = stored_calls(url, partner).await;
        if seen == Some(want) || Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// === calling ===

/// What one call got.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "the fields are read through Debug, in failure messages"
)]
enum Answer {
    /// HTTP 200.
    Ok,
    /// A SOAP fault.
    Fault(u16, Option<FaultDetail>),
    /// No answer (the connection failed with the request sent).
    Failed(String),
}

/// A keep-alive connection to the node (reopened when the node closes an idle one).
struct Caller {
    addr: SocketAddr,
    conn: Option<Conn<TcpStream>>,
    /// Requests sent again on a new connection because a kept-alive one was found closed.
    resent: usize,
}

impl Caller {
    fn new(addr: SocketAddr) -> Caller {
        Caller {
            addr,
            conn: None,
            resent: 0,
        }
    }

    /// Calls `op` for `partner`; `sent` is set once the request is on the wire.
    async fn call(
        &mut self,
        op: Operation,
        partner: &Partner,
        sent: &mut Option<Instant>,
    ) -> Answer {
        let body = request_fixture(op, Soap11, partner);
        let (ct, headers) = soap_headers(Soap11, Some(op.soap_action()));
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let request = post_bytes(&self.addr.to_string(), &ct, &headers, &body);
        let mut reused = self.conn.is_some();
        loop {
            if self.conn.is_none() {
                match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(self.addr))
                    .await
                {
                    Ok(Ok(s)) => self.conn = Some(Conn::new(s)),
                    Ok(Err(e)) => return Answer::Failed(format!("connect: {e}")),
                    Err(_) => return Answer::Failed("connect timed out".into()),
                }
            }
            let conn = self.conn.as_mut().expect("connected");
            let result = match conn.send(&request).await {
                Ok(()) => {
                    *sent = Some(Instant::now());
                    match tokio::time::timeout(Duration::from_secs(15), conn.read_response()).await
                    {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(_) => Err("no answer within 15 s".into()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(r) => {
                    if r.header("connection")
                        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                    {
                        self.conn = None;
                    }
                    if r.status == 200 {
                        return Answer::Ok;
                    }
                    return Answer::Fault(r.status, parse_fault_body(&r.body).detail);
                }
                // A kept-alive connection the node had closed: once more on a new one (what
                // HTTP clients do); on a fresh connection it is a failure.
                Err(e) => {
                    self.conn = None;
                    if !reused {
                        return Answer::Failed(e);
                    }
                    reused = false;
                    self.resent += 1;
                }
            }
        }
    }
}

/// One call as the clients saw it.
#[derive(Debug)]
struct Made {
    phase: u8,
    /// When the call started.
    start: Instant,
    took: Duration,
    /// When the request was on the wire (None: never sent).
    sent: Option<Instant>,
    answer: Answer,
}

/// `CLIENTS` tasks calling GetAccount back to back until `stop`, each call tagged with the
/// `phase` current when it started.
fn spawn_clients(
    addr: SocketAddr,
    partner: &Partner,
    phase: &Arc<AtomicU8>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(Vec<Made>, usize)>> {
    (0..CLIENTS)
        .map(|_| {
            let (partner, phase, stop) = (partner.clone(), Arc::clone(phase), Arc::clone(stop));
            tokio::spawn(async move {
                let mut caller = Caller::new(addr);
                let mut made = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let at = phase.load(Ordering::Relaxed);
                    let start = Instant::now();
                    let mut sent = None;
                    let answer = caller
                        .call(Operation::GetAccount, &partner, &mut sent)
                        .await;
                    made.push(Made {
                        phase: at,
                        start,
                        took: start.elapsed(),
                        sent,
                        answer,
                    });
                }
                (made, caller.resent)
            })
        })
        .collect()
}

async fn collect(clients: Vec<tokio::task::JoinHandle<(Vec<Made>, usize)>>) -> (Vec<Made>, usize) {
    let mut all = Vec::new();
    let mut resent = 0;
    for c in clients {
        let (made, r) = c.await.unwrap();
        all.extend(made);
        resent += r;
    }
    (all, resent)
}

/// p50 / p99 / max of the calls of `phase`, for printing.
fn latency(made: &[Made], phase: u8) -> String {
    let mut t: Vec<Duration> = made
        .iter()
        .filter(|m| m.phase == phase)
        .map(|m| m.took)
        .collect();
    if t.is_empty() {
        return "no calls".into();
    }
    t.sort();
    let at = |p: f64| t[((p * t.len() as f64).ceil() as usize).clamp(1, t.len()) - 1];
    format!(
        "{} calls, p50 {:?}, p99 {:?}, max {:?}",
        t.len(),
        at(0.50),
        at(0.99),
        t[t.len() - 1]
    )
}

// === the tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_under_load_fails_no_call_and_loses_no_count() {
    let (pg, partner) = cluster_with_partner().await;
    let up = StubUpstream::start(Reply::Fixture).await;
    let node = Binary::serve_url(&pg.url(), &up.url, &node_env(&[])).await;
    let phase = Arc::new(AtomicU8::new(0));
    let stop_clients = Arc::new(AtomicBool::new(false));
    let clients = spawn_clients(node.addr, &partner, &phase, &stop_clients);

    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped_at = Instant::now();
    stop(&pg).await;
    phase.store(1, Ordering::Relaxed);
    let down = outage();
    tokio::time::sleep(down).await;
    let during = metrics(node.addr).await;
    start_again(&pg).await;
    phase.store(2, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_clients.store(true, Ordering::Relaxed);
    let (made, resent) = collect(clients).await;

    let failed: Vec<&Made> = made
        .iter()
        .filter(|m| !matches!(m.answer, Answer::Ok))
        .collect();
    println!(
        "outage of {down:?} under load ({CLIENTS} clients, external upstream): {} calls, {} failed, \
         {resent} resent on a new connection\n  before:  {}\n  during:  {}\n  after:   {}",
        made.len(),
        failed.len(),
        latency(&made, 0),
        latency(&made, 1),
        latency(&made, 2),
    );
    let mut slowest: Vec<&Made> = made.iter().filter(|m| m.phase == 1).collect();
    slowest.sort_by_key(|m| std::cmp::Reverse(m.took));
    let slowest: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|m| {
            let at = m.start.saturating_duration_since(stopped_at).as_secs_f64();
            format!("{:?} at +{at:.2} s", m.took)
        })
        .collect();
    println!(
        "  slowest during the outage (from the stop's start): {}",
        slowest.join(", ")
    );
    assert!(
        failed.is_empty(),
        "{} calls failed, e.g. {:?}\n{}",
        failed.len(),
        failed.first(),
        node.log()
    );
    assert!(
        made.iter().filter(|m| m.phase == 1).count() > 0,
        "no call was made during the outage"
    );
    assert!(
        metric(&during, "partnergate_stats_pending_rows") > 0.0,
        "statistics were waiting during the outage:\n{during}"
    );
    // Every call made is counted once the database is back.
    let want = i64::try_from(made.len()).unwrap();
    let stored = wait_stored(&pg.url(), &partner.id, want, Duration::from_secs(30)).await;
    assert_eq!(
        stored,
        Some(want),
        "stored statistics after recovery vs calls made\n{}",
        node.log()
    );
    let after = metrics(node.addr).await;
    assert_eq!(metric(&after, "partnergate_stats_dropped_total"), 0.0);
    assert_eq!(metric(&after, "partnergate_stats_pending_rows"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_layer_fails_fast_without_the_database() {
    let (pg, partner) = cluster_with_partner().await;
    // No upstream URL: the partner API layer runs in process, on the database.
    let node = Binary::serve_url(&pg.url(), "", &node_env(&[])).await;
    let mut caller = Caller::new(node.addr);
    let mut sent = None;
    // With the database: the layer answers (the fixture's account does not exist).
    let answer = caller
        .call(Operation::GetAccount, &partner, &mut sent)
        .await;
    assert!(
        matches!(answer, Answer::Fault(_, Some(FaultDetail::NotFound(_)))),
        "{answer:?}"
    );

    stop(&pg).await;
    let mut took = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let answer = caller
            .call(Operation::GetAccount, &partner, &mut sent)
            .await;
        let t = start.elapsed();
        assert!(
            matches!(
                answer,
                Answer::Fault(_, Some(FaultDetail::UpstreamUnavailable(_)))
            ),
            "{answer:?}"
        );
        assert!(
            t < Duration::from_secs(2),
            "a call took {t:?} to fail with the database down (bound 2 s; target: the checkout \
             timeout, 500 ms)"
        );
        took.push(t);
    }
    println!(
        "embedded layer, database down: UpstreamUnavailableFault after {:?} (first call), then {:?} \
         (checkout timeout 500 ms, then failing fast)",
        took[0],
        &took[1..]
    );
    // The first call waits for the checkout timeout; the store then knows the database
    // unreachable and the next calls fail at once (median well under the 500 ms timeout).
    let mut rest = took[1..].to_vec();
    rest.sort();
    let median = rest[rest.len() / 2];
    assert!(
        median < Duration::from_millis(250),
        "calls after the first still wait for the checkout: {rest:?}"
    );

    start_again(&pg).await;
    let back = Instant::now();
    loop {
        let answer = caller
            .call(Operation::GetAccount, &partner, &mut sent)
            .await;
        if matches!(answer, Answer::Fault(_, Some(FaultDetail::NotFound(_)))) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "the layer did not come back after the database: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "embedded layer answers again {:?} after PostgreSQL is back",
        back.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_beyond_the_bound_are_dropped_counted_and_logged_once() {
    let (pg, partner) = cluster_with_partner().await;
    let up = StubUpstream::start(Reply::Fixture).await;
    let node = Binary::serve_url(
        &pg.url(),
        &up.url,
        &node_env(&[("PARTNERGATE_STATS_MAX_PENDING_ROWS", "2")]),
    )
    .await;
    let mut caller = Caller::new(node.addr);
    let mut sent = None;
    stop(&pg).await;
    // Four series (operations) in the outage: two rows fit, two are dropped.
    let ops = [
        Operation::GetAccount,
        Operation::GetService,
        Operation::GetDevice,
        Operation::GetFeature,
    ];
    let mut made = 0;
    for round in 0..3 {
        for op in ops {
            for _ in 0..2 {
                let answer = caller.call(op, &partner, &mut sent).await;
                assert!(matches!(answer, Answer::Ok), "{op:?}: {answer:?}");
                made += 1;
            }
        }
        // Let a flush (every 200 ms) fail on this round before the next.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let text = metrics(node.addr).await;
        println!(
            "round {round}: pending rows {}, dropped {}, folded {}",
            metric(&text, "partnergate_stats_pending_rows"),
            metric(&text, "partnergate_stats_dropped_total"),
            metric(&text, "partnergate_stats_folded_total"),
        );
    }
    let text = metrics(node.addr).await;
    let dropped = metric(&text, "partnergate_stats_dropped_total");
    assert!(dropped > 0.0, "{text}");
    assert!(
        metric(&text, "partnergate_stats_pending_rows") <= 2.0,
        "{text}"
    );
    assert_eq!(metric(&text, "partnergate_stats_pending_rows_max"), 2.0);
    let log = node.log();
    assert_eq!(
        log.matches("statistics dropped").count(),
        1,
        "logged once per outage, though drops happened in several flushes:\n{log}"
    );

    start_again(&pg).await;
    let want = made - dropped as i64;
    let stored = wait_stored(&pg.url(), &partner.id, want, Duration::from_secs(30)).await;
    println!("made {made}, dropped {dropped}, stored {stored:?}");
    assert_eq!(
        stored,
        Some(want),
        "stored + dropped = made\n{}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_the_database_down_finishes_in_flight_calls_and_exits_in_time() {
    let (pg, partner) = cluster_with_partner().await;
    // Every call is in flight for 300 ms, so SIGTERM finds some.
    let up = StubUpstream::start(Reply::Delay(Duration::from_millis(300))).await;
    let mut node = Binary::serve_url(&pg.url(), &up.url, &node_env(&[])).await;
    let phase = Arc::new(AtomicU8::new(0));
    let stop_clients = Arc::new(AtomicBool::new(false));
    let clients = spawn_clients(node.addr, &partner, &phase, &stop_clients);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(&pg).await;
    // Long enough for the flusher, the refresher and the heartbeat to find it gone.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let at = Instant::now();
    node.terminate();
    let status = tokio::task::spawn_blocking(move || {
        let status = node.wait_exit(Duration::from_secs(30));
        (status, node.log())
    })
    .await
    .unwrap();
    let exit = at.elapsed();
    stop_clients.store(true, Ordering::Relaxed);
    let (made, _) = collect(clients).await;
    let (status, log) = status;

    // In flight at SIGTERM: sent before it. Every one must be answered.
    let in_flight: Vec<&Made> = made
        .iter()
        .filter(|m| m.sent.is_some_and(|s| s < at))
        .collect();
    let failed: Vec<&&Made> = in_flight
        .iter()
        .filter(|m| !matches!(m.answer, Answer::Ok))
        .collect();
    let answered_after = in_flight
        .iter()
        .filter(|m| m.sent.is_some_and(|s| s + m.took > at))
        .count();
    println!(
        "SIGTERM with the database down: exit after {exit:?} (limit {DRAIN_LIMIT:?}); {} calls \
         sent before SIGTERM, {answered_after} of them answered after it, {} failed",
        in_flight.len(),
        failed.len()
    );
    let status = status.unwrap_or_else(|| panic!("still running 30 s after SIGTERM\n{log}"));
    assert!(status.success(), "{status}\n{log}");
    assert!(
        exit <= DRAIN_LIMIT + EXIT_SLACK,
        "exit took {exit:?} after SIGTERM (limit {DRAIN_LIMIT:?} + {EXIT_SLACK:?})\n{log}"
    );
    assert!(answered_after > 0, "no call was in flight at SIGTERM");
    assert!(
        failed.is_empty(),
        "{} in-flight calls failed, e.g. {:?}\n{log}",
        failed.len(),
        failed.first()
    );
}
