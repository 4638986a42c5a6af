//! Usage statistics, `/metrics`, graceful shutdown, and two gateway nodes on one PostgreSQL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use partnergate::envelope::SoapVersion;
use partnergate::generated::partner::Operation;
use partnergate::store::Store;

fn wrong_key(p: &Partner) -> Partner {
    Partner {
        key: format!("pgk_{}", "0".repeat(64)),
        ..p.clone()
    }
}

fn unknown_partner(p: &Partner) -> Partner {
    Partner {
        id: "PARTNER-9999".into(),
        ..p.clone()
    }
}

async fn call(addr: std::net::SocketAddr, op: Operation, p: &Partner) -> u16 {
    let body = request_fixture(op, SoapVersion::Soap11, p);
    post_soap(addr, SoapVersion::Soap11, Some(op.soap_action()), &body)
        .await
        .status
}

/// Waits (bounded) until `f` holds.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every stored total has a latency histogram holding exactly its calls (per outcome); returns
/// how many rows were checked.
fn assert_buckets_hold_every_call(store: &Store, partner: &str) -> usize {
    let totals = store.usage(0, Some(partner)).unwrap();
    for t in &totals {
        assert_eq!(
            i64::try_from(t.latency.total()).unwrap(),
            t.count,
            "latency buckets of {} {}: {:?}",
            t.operation,
            t.outcome,
            t.latency
        );
    }
    totals.len()
}

fn count(store: &Store, partner: &str, op: &str, outcome: &str) -> i64 {
    store
        .usage(0, Some(partner))
        .unwrap()
        .iter()
        .filter(|t| t.operation == op && t.outcome == outcome)
        .map(|t| t.count)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_mix_of_calls_is_counted_per_partner_operation_and_outcome() {
    let mut config = test_config();
    config.stats_flush_interval = Duration::from_millis(50);
    let gw = start_gateway(config).await;
    let p = gw.partner(&["accounts.*"], &["127.0.0.0/8"]).await;
    for _ in 0..3 {
        assert_eq!(call(gw.addr, Operation::CreateAccount, &p).await, 200);
    }
    assert_eq!(
        call(gw.addr, Operation::GetAccount, &p).await,
        500,
        "unknown account: NotFound"
    );
    for _ in 0..2 {
        assert_eq!(
            call(gw.addr, Operation::GetAccount, &wrong_key(&p)).await,
            500
        );
    }
    assert_eq!(
        call(gw.addr, Operation::AddDevice, &p).await,
        500,
        "not granted"
    );
    assert_eq!(
        call(gw.addr, Operation::GetAccount, &unknown_partner(&p)).await,
        500
    );
    // A SOAPAction that names another operation than the body: refused before authentication,
    // and still counted against the partner the credentials name (issue 16 item 11) — with a
    // wrong key too — or under "-" when no such partner exists.
    for who in [p.clone(), wrong_key(&p), unknown_partner(&p)] {
        let body = request_fixture(Operation::GetAccount, SoapVersion::Soap11, &who);
        let status = post_soap(
            gw.addr,
            SoapVersion::Soap11,
            Some(Operation::CreateAccount.soap_action()),
            &body,
        )
        .await
        .status;
        assert_eq!(status, 500, "SOAP 1.1 faults are 500");
    }

    let store = &gw.store;
    eventually("the flush", || {
        count(store, &p.id, "CreateAccount", "ok") == 3
    })
    .await;
    eventually("the rest", || {
        count(store, &p.id, "AddDevice", "denied-operation") == 1
    })
    .await;
    // The last call (the unknown partner) may land in a later flush than the ones above.
    eventually("the last call", || {
        count(store, "-", "GetAccount", "denied-authentication") >= 1
    })
    .await;
    assert_eq!(count(store, &p.id, "GetAccount", "upstream-not-found"), 1);
    // Refused calls are counted against the partner they claimed to be…
    assert_eq!(
        count(store, &p.id, "GetAccount", "denied-authentication"),
        2
    );
    // …unless it does not exist: then under "-", so callers cannot grow the table.
    assert_eq!(count(store, "-", "GetAccount", "denied-authentication"), 1);
    assert!(store.usage(0, Some("PARTNER-9999")).unwrap().is_empty());
    eventually("the action mismatches", || {
        count(store, "-", "GetAccount", "soap-action-mismatch") == 1
    })
    .await;
    assert_eq!(
        count(store, &p.id, "GetAccount", "soap-action-mismatch"),
        2,
        "the mismatches of the real partner's id (right and wrong key) count against it"
    );
    // Latency is summed.
    let ok = store
        .usage(0, Some(&p.id))
        .unwrap()
        .into_iter()
        .find(|t| t.outcome == "ok")
        .unwrap();
    assert!(ok.total_micros > 0);
    // Each call is in exactly one latency bucket of its row: per outcome, buckets add up to the
    // call count (5 rows for this partner: CreateAccount ok, GetAccount upstream-not-found,
    // denied-authentication and soap-action-mismatch, AddDevice denied-operation; 2 under "-").
    assert_eq!(assert_buckets_hold_every_call(store, &p.id), 5);
    assert_eq!(assert_buckets_hold_every_call(store, "-"), 2);
    assert!(ok.latency.percentile(0.99).is_some());

    // The key's last use is recorded (through the snapshot: KeyEntry has no last use, so read
    // it through the admin-facing store query when there is one; here: the metrics instead).
    let metrics = get(gw.addr, "/metrics", None).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(
        text.contains(&format!(
        "partnergate_requests_total{{partner=\"{}\",operation=\"CreateAccount\",outcome=\"ok\",face=\"soap\"}} 3",
        p.id
    )),
        "{text}"
    );
    assert!(
        text.contains("partnergate_refusals_total{reason=\"denied-authentication\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("partnergate_refusals_total{reason=\"denied-operation\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("partnergate_request_duration_seconds_count 11"),
        "{text}"
    );
    assert!(
        text.contains("partnergate_stage_duration_seconds_count{stage=\"decode\"} 4"),
        "{text}"
    );
    assert!(text.contains("partnergate_open_connections "), "{text}");
    assert!(text.contains("partnergate_snapshot_revision "), "{text}");

    // The same figures through `partnergate stats`.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_partnergate"))
        .args(["stats", "--since", "1h", "--json", "--database-url"])
        .arg(&gw.db_path)
        .args(["--partner", &p.id])
        .output()
        .expect("stats");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows = v["rows"].as_array().expect("rows");
    let calls = |op: &str, outcome: &str| {
        rows.iter()
            .filter(|r| r["operation"] == op && r["outcome"] == outcome)
            .map(|r| r["count"].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    assert_eq!(calls("CreateAccount", "ok"), 3);
    assert_eq!(calls("GetAccount", "denied-authentication"), 2);
    // p50/p95/p99 beside the count and the average, and the buckets they come from.
    for r in rows {
        let in_buckets: i64 = r["latency_buckets"]
            .as_array()
            .expect("latency_buckets")
            .iter()
            .map(|b| b["count"].as_i64().unwrap())
            .sum();
        assert_eq!(in_buckets, r["count"].as_i64().unwrap(), "{r}");
        let (p50, p95, p99) = (
            r["p50_ms"].as_f64().expect("p50_ms"),
            r["p95_ms"].as_f64().expect("p95_ms"),
            r["p99_ms"].as_f64().expect("p99_ms"),
        );
        assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "{r}");
        assert!(r["avg_ms"].as_f64().unwrap() > 0.0, "{r}");
    }
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_partnergate"))
        .args(["stats", "--database-url"])
        .arg(&gw.db_path)
        .output()
        .expect("stats");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("denied-operation") && table.contains("11 calls"),
        "{table}"
    );
    assert!(
        table.contains("AVG MS") && table.contains("P50 MS") && table.contains("P99 MS"),
        "{table}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_only_for_allowed_addresses() {
    let mut config = test_config();
    config.metrics_allow = vec!["10.0.0.0/8".parse().unwrap()];
    let gw = start_gateway(config).await;
    assert_eq!(get(gw.addr, "/metrics", None).await.status, 403);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_are_flushed_at_shutdown() {
    let mut config = test_config();
    // Far longer than the test: only the shutdown flush can write them.
    config.stats_flush_interval = Duration::from_secs(3600);
    let gw = start_gateway(config).await;
    let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    assert_eq!(call(gw.addr, Operation::CreateAccount, &p).await, 200);
    let store = gw.store.clone();
    let id = p.id.clone();
    // The interval's first tick fires at once; whatever it wrote, the call above is either in
    // it or left for the shutdown flush. Stop, then every call must be in the table.
    gw.stop().await;
    assert_eq!(count(&store, &id, "CreateAccount", "ok"), 1);
}

/// Calls through an upstream that answers after 120 ms land in latency buckets above 100 ms, so
/// their stored percentiles are above 100 ms; refusals next to them are counted in their own
/// row's buckets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_latency_buckets_hold_known_delays() {
    let stub = StubUpstream::start(Reply::Delay(Duration::from_millis(120))).await;
    let mut config = test_config();
    config.upstream.url = Some(stub.url.clone());
    config.stats_flush_interval = Duration::from_millis(50);
    let gw = start_gateway(config).await;
    let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    for _ in 0..4 {
        assert_eq!(call(gw.addr, Operation::GetAccount, &p).await, 200);
    }
    for _ in 0..3 {
        assert_eq!(
            call(gw.addr, Operation::GetAccount, &wrong_key(&p)).await,
            500
        );
    }
    let store = &gw.store;
    eventually("the flush", || {
        count(store, &p.id, "GetAccount", "ok") == 4
            && count(store, &p.id, "GetAccount", "denied-authentication") == 3
    })
    .await;
    assert_eq!(assert_buckets_hold_every_call(store, &p.id), 2);
    let rows = store
        .usage_rows(0, Some(&p.id), Some("GetAccount"))
        .unwrap();
    let mut ok = partnergate::latency::Counts::default();
    for r in rows.iter().filter(|r| r.outcome == "ok") {
        ok.add(&r.latency);
    }
    assert_eq!(ok.total(), 4);
    // No call that waited 120 ms upstream is in a bucket ending at or below 100 ms.
    assert!(
        ok.stored().all(|(le_micros, _)| le_micros > 100_000),
        "{:?}",
        ok.stored().collect::<Vec<_>>()
    );
    for (name, q) in partnergate::latency::SHOWN {
        match ok.percentile(q) {
            Some(partnergate::latency::Estimate::Micros(us)) => {
                assert!(us > 100_000.0, "{name} = {us} µs")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    gw.stop().await;
}

/// Two gateway nodes on one PostgreSQL: a key revoked through the store is refused by both within
/// a second, and their statistics add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgresql_share_revocation_and_statistics() {
    let (url, name, db) = fresh_postgres_database("nodes");

    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut config = test_config();
        config.database_url = db.clone();
        config.stats_flush_interval = Duration::from_millis(50);
        nodes.push(partnergate::app::start(config).await.expect("node starts"));
    }
    let store = Store::open(&db).expect("store");
    let p = onboard_partner(&store, &["*"], &["127.0.0.0/8"], None);
    // Both nodes pick the partner up.
    for node in &nodes {
        let addr = node.addr;
        let deadline = Instant::now() + Duration::from_secs(3);
        while call(addr, Operation::CreateAccount, &p).await != 200 {
            assert!(
                Instant::now() < deadline,
                "node {addr} never accepted the new partner"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for node in &nodes {
        for _ in 0..2 {
            assert_eq!(call(node.addr, Operation::CreateAccount, &p).await, 200);
        }
    }
    // Revoked once, through the CLI, refused by both within a second.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_partnergate"))
        .args([
            "key",
            "revoke",
            &p.id,
            "--kind",
            "partner",
            "--database-url",
            &db,
        ])
        .output()
        .expect("partnergate key revoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked = Instant::now();
    for node in &nodes {
        loop {
            if call(node.addr, Operation::GetAccount, &p).await == 500 {
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "node {} still accepts a revoked key",
                node.addr
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(revoked.elapsed() < Duration::from_secs(1));
    // 3 accepted calls per node (1 during pick-up + 2), at least; both nodes add to the same rows.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ok = count(&store, &p.id, "CreateAccount", "ok");
        if ok >= 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "statistics of both nodes did not add up: {ok}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in nodes {
        let _ = node.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), node.done).await;
    }
    // Both nodes stopped (and flushed): their latency buckets added up in the same rows, one
    // bucket count per call of each outcome.
    assert!(assert_buckets_hold_every_call(&store, &p.id) >= 2);
    let ok = store
        .usage(0, Some(&p.id))
        .unwrap()
        .into_iter()
        .find(|t| t.operation == "CreateAccount" && t.outcome == "ok")
        .unwrap();
    assert!(ok.count >= 6 && ok.latency.total() == u64::try_from(ok.count).unwrap());
    drop(store);
    psql(&url, &format!("DROP DATABASE {name} WITH (FORCE)"));
}

/// SIGTERM-style shutdown while a request waits for a slow upstream: the request is answered,
/// new connections are refused, and the server task ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    let stub = StubUpstream::start(Reply::Delay(Duration::from_millis(600))).await;
    let mut config = test_config();
    config.upstream.url = Some(stub.url.clone());
    let gw = start_gateway(config).await;
    let p = gw.partner(&["*"], &["127.0.0.0/8"]).await;
    let addr = gw.addr;
    let in_flight = tokio::spawn(async move { call(addr, Operation::GetAccount, &p).await });
    // Wait until the request has reached the upstream, then shut down.
    let deadline = Instant::now() + Duration::from_secs(3);
    while stub.count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = tokio::spawn(gw.stop());
    assert_eq!(
        in_flight.await.expect("client task"),
        200,
        "the request in flight is answered"
    );
    stopping.await.expect("stopped in time");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections after shutdown"
    );
}
