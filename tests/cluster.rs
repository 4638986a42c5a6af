#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! The cluster shape (issue 15): real `partnergate serve` processes on one PostgreSQL database.
//!
//! - `revocations_reach_every_node_by_push_and_by_poll`: three nodes, 20 key revocations each
//!   measured until every node refuses the old key (authentication fault), with notifications
//!   (p50/p99 printed against the 100 ms target; each asserted within 1 s, and at least half the
//!   reloads on every node asserted to have come by push), then with the listening connections cut from
//!   PostgreSQL's side (every node still refuses within 1 s, by the poll; `/metrics` says push
//!   is disconnected), then reconnected (`/metrics` says so, and a revocation is pushed again).
//! - `nodes_are_listed_and_a_silent_one_is_gone`: `partnergate nodes --json` lists the three
//!   nodes with their addresses, revision and demand; a killed node is still `up` shortly after
//!   and `gone` once silent for longer than the stated time.
//! - `a_sqlite_node_polls_and_is_listed`: on SQLite, nothing is pushed, no throttle counts are
//!   exchanged, and the node is listed.
//!
//! Cluster-wide throttling is in `tests/cluster_throttle.rs`.
//!
//! Speed targets are printed, never asserted as timings (a shared 2-core machine runs these).

mod common;
#[path = "common/db.rs"]
#[allow(dead_code, reason = "only the PostgreSQL half is used here")]
mod db;
use db::Db;
#[path = "common/caller.rs"]
mod caller;
#[path = "common/serve.rs"]
mod serve;
use caller::Caller;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

use common::*;
use partnergate::generated::partner::FaultDetail;
use partnergate::generated::types::cmn::AccessDeniedReason as Reason;
use partnergate::secret::KeyKind;
use partnergate::store::{Store, GONE_AFTER, HEARTBEAT_INTERVAL, PUSH_APPLICATION_NAME};
use serve::Binary;

const NODES: usize = 3;
const REVOCATIONS: usize = 20;
/// The hard bound every revocation must meet on every node.
const BOUND: Duration = Duration::from_secs(1);
/// The target for pushed changes (printed, not asserted).
const TARGET: Duration = Duration::from_millis(100);

const PUSH_CONNECTED: &str = "partnergate_snapshot_push_connected";
const PUSH_ENABLED: &str = "partnergate_snapshot_push_enabled";
const PUSHED: &str = "partnergate_snapshot_refreshes_total{trigger=\"push\"}";
const POLLED: &str = "partnergate_snapshot_refreshes_total{trigger=\"poll\"}";

// === set-up ===

/// Every node's environment: a generous default rate (not about throttling); the refresh
/// interval stays at its default (250 ms), the poll being measured.
fn node_env() -> Vec<(&'static str, String)> {
    vec![
        (
            "PARTNERGATE_THROTTLE_DEFAULT_RATE_PER_SECOND",
            "100000".to_string(),
        ),
        ("PARTNERGATE_THROTTLE_DEFAULT_BURST", "100000".to_string()),
    ]
}

async fn start_nodes(url: &str, up: &StubUpstream) -> Vec<Binary> {
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Binary::serve_url(url, &up.url, &node_env()).await);
    }
    nodes
}

fn onboard_many(store: &Store, n: usize) -> Vec<Partner> {
    (0..n)
        .map(|_| onboard_partner(store, &["*"], &["127.0.0.0/8"], None))
        .collect()
}

/// Waits (bounded by `within`) until every node's `/metrics` shows `series` at `value`.
async fn wait_for_metric(nodes: &[Binary], series: &str, value: f64, within: Duration) {
    let deadline = Instant::now() + within;
    for node in nodes {
        loop {
            let text = metrics(node.addr).await;
            if metric(&text, series) == value {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never showed {series} {value} within {within:?}:\n{text}\n{}",
                node.addr,
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Per node, the reloads counted by push and by poll.
async fn refresh_counts(nodes: &[Binary]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for node in nodes {
        let text = metrics(node.addr).await;
        out.push((metric(&text, PUSHED), metric(&text, POLLED)));
    }
    out
}

// === calling a node ===

/// Whether `caller`'s node refused `partner` as unauthenticated (`false`: answered); any other
/// answer fails the test.
async fn refused(caller: &mut Caller, partner: &Partner) -> bool {
    let resp = caller
        .call(partner)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", caller.addr));
    if resp.status == 200 {
        return false;
    }
    let fault = parse_fault_body(&resp.body);
    match &fault.detail {
        Some(FaultDetail::AccessDenied(d)) if d.reason == Reason::AuthenticationFailed => true,
        _ => panic!("{}: unexpected answer {fault:?}", caller.addr),
    }
}

/// Waits (bounded) until every caller's node answers `partner`.
async fn accepted_everywhere(callers: &mut [Caller], partner: &Partner) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for c in callers.iter_mut() {
        while refused(c, partner).await {
            assert!(
                Instant::now() < deadline,
                "{} never accepted {}",
                c.addr,
                partner.id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Revokes `partner`'s key and returns how long until every node refused it (measured from
/// just before the write, to the answer of each node's first refusal).
async fn revoke_and_measure(
    store: &Store,
    callers: &mut Vec<Caller>,
    partner: &Partner,
) -> Duration {
    accepted_everywhere(callers, partner).await;
    let start = Instant::now();
    let (db, id) = (store.clone(), partner.id.clone());
    let revoked = tokio::task::spawn_blocking(move || db.revoke_key(&id, KeyKind::Partner))
        .await
        .expect("revoke task")
        .expect("revoke");
    assert_eq!(revoked, 1);
    let tasks: Vec<_> = callers
        .drain(..)
        .map(|mut c| {
            let partner = partner.clone();
            tokio::spawn(async move {
                loop {
                    if refused(&mut c, &partner).await {
                        return (c, start.elapsed());
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(10),
                        "{} still accepts a key revoked 10 s ago",
                        c.addr
                    );
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (c, took) = t.await.expect("caller task");
        slowest = slowest.max(took);
        callers.push(c);
    }
    slowest
}

/// Nearest-rank percentile.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs the revocations, prints p50/p99 and asserts each within [`BOUND`].
async fn revocations(
    label: &str,
    store: &Store,
    callers: &mut Vec<Caller>,
    partners: &[Partner],
) -> Vec<Duration> {
    let mut times = Vec::new();
    for p in partners {
        times.push(revoke_and_measure(store, callers, p).await);
    }
    let mut sorted = times.clone();
    sorted.sort();
    println!(
        "{label}: {} revocations, time until all {NODES} nodes refuse the key: p50 {:?}, p99 {:?}, \
         max {:?} (target with push: {TARGET:?}; bound asserted: {BOUND:?})",
        sorted.len(),
        percentile(&sorted, 0.50),
        percentile(&sorted, 0.99),
        sorted[sorted.len() - 1],
    );
    for (i, t) in times.iter().enumerate() {
        assert!(
            *t <= BOUND,
            "{label}: revocation {i} took {t:?} to reach every node (bound {BOUND:?}); all: {times:?}"
        );
    }
    times
}

/// Terminates the nodes' listening connections from PostgreSQL's side every 20 ms until
/// dropped, so that none stays up for long (each node retries with backoff).
struct Cutter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Cutter {
    fn start(url: &str) -> Cutter {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let mut conn = PgConnection::establish(url).expect("connect to cut");
        let sql = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{PUSH_APPLICATION_NAME}' AND datname = current_database()"
        );
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                conn.batch_execute(&sql).expect("terminate listeners");
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Cutter {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// === the tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_every_node_by_push_and_by_poll() {
    let db = Db::postgres_tagged("cluster_push");
    let url = db.url();
    let store = Store::open(&url).expect("store");
    let pushed_partners = onboard_many(&store, REVOCATIONS);
    let polled_partners = onboard_many(&store, REVOCATIONS);
    let again_partners = onboard_many(&store, 5);
    let up = StubUpstream::start(Reply::Fixture).await;
    let nodes = start_nodes(&url, &up).await;
    let mut callers: Vec<Caller> = nodes.iter().map(|n| Caller::new(n.addr)).collect();

    // With notifications.
    wait_for_metric(&nodes, PUSH_ENABLED, 1.0, Duration::from_secs(1)).await;
    wait_for_metric(&nodes, PUSH_CONNECTED, 1.0, Duration::from_secs(10)).await;
    let before = refresh_counts(&nodes).await;
    revocations("push", &store, &mut callers, &pushed_partners).await;
    let after = refresh_counts(&nodes).await;
    for ((node, b), a) in nodes.iter().zip(&before).zip(&after) {
        let (pushed, polled) = (a.0 - b.0, a.1 - b.1);
        println!(
            "push phase, node {}: {pushed} reloads by push, {polled} by poll",
            node.addr
        );
        assert_eq!(
            pushed + polled,
            REVOCATIONS as f64,
            "one reload per revocation on {}",
            node.addr
        );
        // The poll wins only when its tick falls between a commit and its notification (a few
        // ms of every 250): measured 0 or 1 of 20; without push, none come by push.
        assert!(
            pushed >= (REVOCATIONS / 2) as f64,
            "{}: only {pushed} of {REVOCATIONS} reloads came by push",
            node.addr
        );
    }

    // Notifications cut from PostgreSQL's side: the poll alone.
    let cutter = Cutter::start(&url);
    wait_for_metric(&nodes, PUSH_CONNECTED, 0.0, Duration::from_secs(5)).await;
    let before = refresh_counts(&nodes).await;
    revocations("poll only", &store, &mut callers, &polled_partners).await;
    let after = refresh_counts(&nodes).await;
    for ((node, b), a) in nodes.iter().zip(&before).zip(&after) {
        let (pushed, polled) = (a.0 - b.0, a.1 - b.1);
        println!(
            "poll phase, node {}: {pushed} reloads by push (a reconnect between two cuts), \
             {polled} by poll",
            node.addr
        );
        assert!(polled >= 1.0, "{}: nothing came by the poll", node.addr);
    }
    let log = nodes[0].log();
    assert!(
        log.contains("snapshot push lost"),
        "the loss is logged:\n{log}"
    );

    // Reconnected: /metrics says so, and changes are pushed again.
    drop(cutter);
    let cut_ended = Instant::now();
    wait_for_metric(&nodes, PUSH_CONNECTED, 1.0, Duration::from_secs(20)).await;
    println!(
        "every node reconnected {:?} after the cuts stopped",
        cut_ended.elapsed()
    );
    let before = refresh_counts(&nodes).await;
    for p in &again_partners {
        let took = revoke_and_measure(&store, &mut callers, p).await;
        assert!(took <= BOUND, "after reconnecting: {took:?}");
        let now = refresh_counts(&nodes).await;
        if now.iter().zip(&before).all(|(n, b)| n.0 > b.0) {
            return;
        }
    }
    panic!(
        "after reconnecting, some node got no change by push: before {before:?}, after {:?}",
        refresh_counts(&nodes).await
    );
}

/// `partnergate nodes --json` on `url`.
fn nodes_json(url: &str) -> serde_json::Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_partnergate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PARTNERGATE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .current_dir(std::env::temp_dir())
        .args(["nodes", "--json", "--database-url", url])
        .output()
        .expect("run partnergate nodes");
    assert!(
        out.status.success(),
        "partnergate nodes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The row of the node listening on `addr`.
fn row(list: &serde_json::Value, addr: SocketAddr) -> &serde_json::Value {
    list["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["listen"] == addr.to_string())
        .unwrap_or_else(|| panic!("no node {addr} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_listed_and_a_silent_one_is_gone() {
    let db = Db::postgres_tagged("cluster_nodes");
    let url = db.url();
    let store = Store::open(&url).expect("store");
    let partner = onboard_partner(&store, &["*"], &["127.0.0.0/8"], None);
    let up = StubUpstream::start(Reply::Fixture).await;
    let mut nodes = start_nodes(&url, &up).await;
    let revision = store.revision().expect("revision");

    // Every node, with its address, version, revision and push, as `up`.
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let list = nodes_json(&url);
        let rows = list["nodes"].as_array().expect("nodes").clone();
        let current = rows.len() == NODES
            && rows
                .iter()
                .all(|n| n["revision"] == revision && n["state"] == "up" && n["changes"] == "push");
        if current {
            break list;
        }
        assert!(Instant::now() < deadline, "nodes never all current: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("{list}");
    assert_eq!(list["heartbeat_seconds"], HEARTBEAT_INTERVAL.as_secs());
    assert_eq!(list["gone_after_seconds"], GONE_AFTER.as_secs());
    let mut ids = Vec::new();
    for node in &nodes {
        let n = row(&list, node.addr);
        assert_eq!(n["version"], env!("CARGO_PKG_VERSION"));
        assert!(n["silent_ms"].as_i64().expect("silent_ms") <= 3000, "{n}");
        let id = n["node_id"].as_str().expect("node_id").to_owned();
        assert!(id.starts_with("n-") && id.len() == 18, "{id}");
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), NODES, "distinct ids");

    // Demand: a node answering calls reports them.
    let mut caller = Caller::new(nodes[0].addr);
    let load_until = Instant::now() + Duration::from_millis(3500);
    let mut calls = 0;
    let mut busiest = 0.0_f64;
    let mut next_look = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < load_until {
        assert!(!refused(&mut caller, &partner).await);
        calls += 1;
        if Instant::now() >= next_look {
            let list = nodes_json(&url);
            busiest = busiest.max(
                row(&list, nodes[0].addr)["requests_per_second"]
                    .as_f64()
                    .expect("rps"),
            );
            next_look = Instant::now() + Duration::from_millis(700);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(HEARTBEAT_INTERVAL * 2).await;
    let list = nodes_json(&url);
    let total = row(&list, nodes[0].addr)["requests_total"]
        .as_i64()
        .expect("requests_total");
    println!("{calls} calls; the node reported {total} in total, at most {busiest:.1}/s");
    assert_eq!(total, calls, "requests_total");
    assert!(busiest > 0.0, "requests per second reported while busy");
    assert_eq!(
        row(&list, nodes[1].addr)["requests_total"],
        0,
        "an idle node"
    );

    // A killed node is gone once silent for longer than the stated time, not before.
    let killed_addr = nodes[NODES - 1].addr;
    nodes[NODES - 1].kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let list = nodes_json(&url);
    assert_eq!(
        row(&list, killed_addr)["state"],
        "up",
        "gone too early: {list}"
    );
    let deadline = killed + GONE_AFTER + HEARTBEAT_INTERVAL + Duration::from_secs(3);
    let list = loop {
        let list = nodes_json(&url);
        if row(&list, killed_addr)["state"] == "gone" {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "killed node still not gone {:?} after the kill: {list}",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "the killed node was shown gone {:?} after the kill (gone after {GONE_AFTER:?} of silence)",
        killed.elapsed()
    );
    let gone = row(&list, killed_addr);
    assert!(
        gone["silent_ms"].as_i64().expect("silent_ms") > GONE_AFTER.as_millis() as i64,
        "{gone}"
    );
    for node in &nodes[..NODES - 1] {
        assert_eq!(row(&list, node.addr)["state"], "up", "{list}");
    }
}

#[tokio::test]
async fn a_sqlite_node_polls_and_is_listed() {
    let db = temp_path("cluster", "db");
    let url = db.display().to_string();
    let store = Store::open(&url).expect("store");
    drop(store);
    let up = StubUpstream::start(Reply::Fixture).await;
    let node = Binary::serve(db, &up.url, &node_env()).await;
    let text = metrics(node.addr).await;
    assert_eq!(metric(&text, PUSH_ENABLED), 0.0);
    assert_eq!(metric(&text, PUSH_CONNECTED), 0.0);
    // One node on SQLite: its limiters are the local ones, nothing is exchanged.
    assert_eq!(metric(&text, "partnergate_throttle_cluster_enabled"), 0.0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let list = nodes_json(&url);
        if list["nodes"].as_array().is_some_and(|n| n.len() == 1) {
            let n = row(&list, node.addr);
            assert_eq!(n["state"], "up");
            assert_eq!(n["changes"], "poll");
            break;
        }
        assert!(Instant::now() < deadline, "node never listed: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
