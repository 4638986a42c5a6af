#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! Cluster-wide throttling (issue 15 part 1): three real `partnergate serve` processes on one
//! PostgreSQL database, exchanging counts every [`SYNC_MS`].
//!
//! `one_partner_limit_and_one_group_cap_hold_across_three_nodes`: a partner at 50/s burst 50
//! and a group whose aggregate cap is 50/s burst 50 (two members, each called on two nodes) are
//! called by [`LOOPS_PER_NODE`] clients per node and limiter, every client far above the limit,
//! for [`RUN`]; one node is killed halfway. Asserted, from the answers the clients counted
//! (every answer is either the stub upstream's 200 or a ThrottledFault; anything else fails):
//! - over the whole run, per limiter, admitted ≤ `r·W + b + (N−1)·(b + r·L)` and
//!   ≥ `r·W − N·r·L` (the bounds README states, `L` = two sync intervals plus
//!   [`EXCHANGE_ALLOWANCE`]; the floor is above the 90 % of `r·W`);
//! - after the kill (from `L` after it to the end), the two survivors admit within the same
//!   bounds for two nodes over that window: they have taken over the killed node's share
//!   within `L`;
//! - the stub upstream received exactly the calls the clients saw admitted.
//!
//! Without the exchange (`throttle.cluster_sync_ms = 0`) the same run admits about three
//! times the rate and the upper assertions fail (checked by hand; not run in the suite).

#[path = "common/caller.rs"]
mod caller;
mod common;
#[path = "common/db.rs"]
#[allow(dead_code, reason = "only the PostgreSQL half is used here")]
mod db;
#[path = "common/serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use caller::Caller;
use common::*;
use db::Db;
use partnergate::generated::partner::FaultDetail;
use partnergate::store::{Rate, Store};
use serve::Binary;

const NODES: usize = 3;
const RATE: u32 = 50;
const BURST: u32 = 50;
const RUN: Duration = Duration::from_secs(20);
/// When the third node is killed.
const KILL_AT: Duration = Duration::from_secs(10);
/// `throttle.cluster_sync_ms` of every node (the default).
const SYNC_MS: u64 = 50;
/// What one exchange (write and read) may take on a loaded 2-core test machine, added to the
/// lag `L` of the bound.
const EXCHANGE_ALLOWANCE: f64 = 0.1;
/// Clients per node and limiter.
const LOOPS_PER_NODE: usize = 2;
/// Each client's pause between calls: with 2 clients per node on 3 nodes, a demand of up to
/// 600 calls per second per limiter, twelve times the rate.
const PAUSE: Duration = Duration::from_millis(10);

/// `L`: until every node has charged another's admission.
fn lag() -> f64 {
    2.0 * SYNC_MS as f64 / 1000.0 + EXCHANGE_ALLOWANCE
}

/// The stated bound on what `nodes` nodes admit in `window` seconds.
fn upper(nodes: usize, window: f64) -> f64 {
    let (r, b) = (f64::from(RATE), f64::from(BURST));
    r * window + b + (nodes as f64 - 1.0) * (b + r * lag())
}

/// The stated floor under a demand above the limit.
fn lower(nodes: usize, window: f64) -> f64 {
    let r = f64::from(RATE);
    r * window - nodes as f64 * r * lag()
}

fn node_env() -> Vec<(&'static str, String)> {
    vec![("PARTNERGATE_THROTTLE_CLUSTER_SYNC_MS", SYNC_MS.to_string())]
}

async fn metric(addr: SocketAddr, series: &str) -> f64 {
    common::metric(&common::metrics(addr).await, series)
}

/// Calls `partner` on `addr` until `until` (or until the node is gone), pausing [`PAUSE`]
/// between calls; returns when each admitted call was answered. A refusal other than the
/// ThrottledFault fails the test.
async fn hammer(addr: SocketAddr, partner: Partner, until: Instant) -> Vec<Instant> {
    let mut caller = Caller::new(addr);
    let mut admitted = Vec::new();
    while Instant::now() < until {
        let Ok(resp) = caller.call(&partner).await else {
            return admitted; // the killed node
        };
        if resp.status == 200 {
            admitted.push(Instant::now());
        } else {
            let fault = parse_fault_body(&resp.body);
            assert!(
                matches!(fault.detail, Some(FaultDetail::Throttled(_))),
                "{addr}: {} {fault:?}",
                resp.status
            );
        }
        tokio::time::sleep(PAUSE).await;
    }
    admitted
}

/// Admitted calls in `[from, to)`.
fn within(times: &[Instant], from: Instant, to: Instant) -> usize {
    times.iter().filter(|t| **t >= from && **t < to).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partner_limit_and_one_group_cap_hold_across_three_nodes() {
    let db = Db::postgres_tagged("cluster_throttle");
    let url = db.url();
    let store = Store::open(&url).expect("store");
    let limit = Rate::new(RATE, BURST).expect("rate");
    let solo = onboard_partner(&store, &["*"], &["127.0.0.0/8"], None);
    store.set_partner_rate(&solo.id, Some(limit)).expect("rate");
    store
        .create_group(
            "shared-cap",
            Some(Rate::new(100_000, 100_000).expect("rate")),
            Some(limit),
        )
        .expect("group");
    let members = [
        onboard_partner(&store, &["*"], &["127.0.0.0/8"], Some("shared-cap")),
        onboard_partner(&store, &["*"], &["127.0.0.0/8"], Some("shared-cap")),
    ];
    let up = StubUpstream::start(Reply::Fixture).await;
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Binary::serve_url(&url, &up.url, &node_env()).await);
    }
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(10);
        while metric(node.addr, "partnergate_throttle_cluster_synced").await != 1.0 {
            assert!(Instant::now() < deadline, "{} never exchanged", node.addr);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let start = Instant::now();
    let end = start + RUN;
    let mut solo_tasks = Vec::new();
    let mut group_tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..LOOPS_PER_NODE {
            solo_tasks.push(tokio::spawn(hammer(node.addr, solo.clone(), end)));
            // Member 0 on nodes 0 and 1, member 1 on nodes 1 and 2: the cap is shared by two
            // partners and three nodes.
            let member = match i {
                0 => &members[0],
                1 => &members[j % 2],
                _ => &members[1],
            };
            group_tasks.push(tokio::spawn(hammer(node.addr, member.clone(), end)));
        }
    }
    tokio::time::sleep_until((start + KILL_AT).into()).await;
    let killed_at = Instant::now();
    nodes[NODES - 1].kill();
    let mut solo_times = Vec::new();
    for t in solo_tasks {
        solo_times.extend(t.await.expect("client"));
    }
    let mut group_times = Vec::new();
    for t in group_tasks {
        group_times.extend(t.await.expect("client"));
    }
    let finished = Instant::now().max(end);
    let w = finished.duration_since(start).as_secs_f64();

    let after_from = killed_at + Duration::from_secs_f64(lag());
    let after_w = finished.duration_since(after_from).as_secs_f64();
    for (name, times) in [("partner", &solo_times), ("group aggregate", &group_times)] {
        let total = times.len() as f64;
        let after = within(times, after_from, finished) as f64;
        println!(
            "{name}: {total} admitted in {w:.2} s by {NODES} nodes ({:.1}/s for a limit of \
             {RATE}/s burst {BURST}; bound {:.0}, floor {:.0}); after the kill {after} in \
             {after_w:.2} s ({:.1}/s, bound {:.0}, floor {:.0})",
            total / w,
            upper(NODES, w),
            lower(NODES, w),
            after / after_w,
            upper(NODES - 1, after_w),
            lower(NODES - 1, after_w),
        );
        assert!(
            total <= upper(NODES, w),
            "{name}: {total} admitted in {w:.2} s is above the stated bound {:.0}",
            upper(NODES, w)
        );
        assert!(
            total >= lower(NODES, w),
            "{name}: {total} admitted in {w:.2} s: below the stated floor {:.0}",
            lower(NODES, w)
        );
        assert!(
            after >= lower(NODES - 1, after_w),
            "{name}: the survivors admitted {after} in {after_w:.2} s after the kill: below \
             the two-node floor {:.0}",
            lower(NODES - 1, after_w)
        );
        assert!(
            after <= upper(NODES - 1, after_w),
            "{name}: the survivors admitted {after} in {after_w:.2} s: above the two-node bound"
        );
    }
    assert_eq!(
        up.count(),
        solo_times.len() + group_times.len(),
        "the upstream received exactly the admitted calls"
    );
}
