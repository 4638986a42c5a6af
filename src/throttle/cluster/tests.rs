//! Unit tests of the ledger (the exchange's bookkeeping, without a database).
use super::*;
use crate::store::PeerCount;

fn peer(node: &str, key: &str, admitted: i64, created_ms: i64, updated_ms: i64) -> PeerCount {
    PeerCount {
        node_id: node.into(),
        scope: "partner".into(),
        key: key.into(),
        admitted,
        created_ms,
        updated_ms,
    }
}

fn exchanged(now_ms: i64, peers: Vec<PeerCount>) -> Exchanged {
    Exchanged { now_ms, peers }
}

fn charge(key: &str, cells: u64) -> Charge {
    Charge {
        scope: Scope::Partner,
        key: key.into(),
        cells,
    }
}

const T0: i64 = 1_000_000_000;

#[test]
fn the_first_exchange_charges_nothing_then_differences_are_charged() {
    let start = Instant::now();
    let mut l = Ledger::new(start);
    assert_eq!(l.since(), None, "the first read asks for every row");
    let (c, nodes) = l.succeeded(
        start,
        exchanged(T0, vec![peer("n-b", "P", 500, T0 - 60_000, T0 - 10)]),
    );
    assert!(
        c.is_empty(),
        "history before this node started is not charged: {c:?}"
    );
    assert_eq!(nodes, 2);
    assert_eq!(l.since(), Some(T0 - READ_MARGIN_MS));

    let at = start + Duration::from_millis(50);
    let (c, _) = l.succeeded(
        at,
        exchanged(
            T0 + 50,
            vec![
                peer("n-b", "P", 530, T0 - 60_000, T0 + 40),
                // the same row again (read twice within the margin): nothing new
                peer("n-b", "P", 530, T0 - 60_000, T0 + 40),
                // a row created since the last read: all of it is new
                peer("n-c", "P", 7, T0 + 20, T0 + 20),
                // an older row this node never saw: a starting point
                peer("n-d", "P", 900, T0 - 600_000, T0 + 30),
            ],
        ),
    );
    assert_eq!(c, vec![charge("P", 30), charge("P", 7)]);
    let (c, nodes) = l.succeeded(
        at + Duration::from_millis(50),
        exchanged(T0 + 100, vec![peer("n-d", "P", 905, T0 - 600_000, T0 + 90)]),
    );
    assert_eq!(c, vec![charge("P", 5)], "the starting point then counts");
    assert_eq!(nodes, 4, "b, c, d and this one");
}

#[test]
fn own_counts_are_written_as_totals_and_kept_when_an_exchange_fails_briefly() {
    let start = Instant::now();
    let mut l = Ledger::new(start);
    l.collect([(Scope::Partner, "P".to_string(), 3)]);
    l.collect([
        (Scope::Partner, "P".to_string(), 2),
        (Scope::Group, "g".to_string(), 1),
    ]);
    let mut rows = l.rows();
    rows.sort_by(|a, b| a.scope.cmp(b.scope));
    assert_eq!(
        rows,
        vec![
            OwnCount {
                scope: "group",
                key: "g".into(),
                admitted: 1
            },
            OwnCount {
                scope: "partner",
                key: "P".into(),
                admitted: 5
            },
        ]
    );
    assert_eq!(
        l.failed(start + Duration::from_millis(300)),
        0,
        "kept: still recent"
    );
    l.succeeded(
        start + Duration::from_millis(400),
        exchanged(T0, Vec::new()),
    );
    assert!(l.rows().is_empty(), "written");
    l.collect([(Scope::Partner, "P".to_string(), 4)]);
    assert_eq!(l.rows()[0].admitted, 9, "the total goes on");
}

#[test]
fn counts_older_than_the_resync_time_are_dropped_and_not_charged() {
    let start = Instant::now();
    let mut l = Ledger::new(start);
    l.succeeded(
        start,
        exchanged(T0, vec![peer("n-b", "P", 10, T0 - 5, T0 - 5)]),
    );
    l.collect([(Scope::Partner, "P".to_string(), 40)]);
    let late = start + RESYNC_AFTER + Duration::from_millis(1);
    assert_eq!(l.failed(late), 40, "the outage's own counts are dropped");
    assert!(l.rows().is_empty());
    // Back after the gap: the other node's outage-time admissions are a new starting point.
    let (c, _) = l.succeeded(
        late + Duration::from_millis(50),
        exchanged(
            T0 + 30_000,
            vec![
                peer("n-b", "P", 1_500, T0 - 5, T0 + 29_990),
                peer("n-c", "P", 700, T0 + 29_000, T0 + 29_990),
            ],
        ),
    );
    assert!(c.is_empty(), "nothing of the outage is paid back: {c:?}");
    let (c, _) = l.succeeded(
        late + Duration::from_millis(100),
        exchanged(
            T0 + 30_050,
            vec![peer("n-b", "P", 1_503, T0 - 5, T0 + 30_040)],
        ),
    );
    assert_eq!(c, vec![charge("P", 3)]);
}

#[test]
fn a_node_silent_for_the_gone_time_no_longer_shares_the_limits() {
    let start = Instant::now();
    let mut l = Ledger::new(start);
    let (_, nodes) = l.succeeded(
        start,
        exchanged(
            T0,
            vec![
                peer("n-b", "P", 1, T0 - 9, T0 - 9),
                peer("n-c", "P", 1, T0 - 9, T0 - 9),
            ],
        ),
    );
    assert_eq!(nodes, 3);
    let (_, nodes) = l.succeeded(
        start + Duration::from_millis(50),
        exchanged(
            T0 + LIVE_WITHIN_MS,
            vec![peer("n-b", "P", 2, T0 - 9, T0 + LIVE_WITHIN_MS - 5)],
        ),
    );
    assert_eq!(nodes, 2, "n-c wrote nothing for {LIVE_WITHIN_MS} ms");
}

#[test]
fn unknown_scopes_are_ignored() {
    let start = Instant::now();
    let mut l = Ledger::new(start);
    l.succeeded(start, exchanged(T0, Vec::new()));
    let mut odd = peer("n-b", "P", 9, T0 + 10, T0 + 10);
    odd.scope = "operation".into();
    let (c, nodes) = l.succeeded(
        start + Duration::from_millis(50),
        exchanged(T0 + 50, vec![odd]),
    );
    assert!(c.is_empty());
    assert_eq!(nodes, 1);
}

/// Callback limiters go through the same ledger: written under scope `callback` and charged
/// back as [`Scope::Callback`], apart from the partner limiter of the same id.
#[test]
fn callback_counts_are_exchanged_under_their_own_scope() {
    let start = Instant::now();
    let mut l = Ledger::new(start);
    l.collect([
        (Scope::Callback, "P".to_string(), 4),
        (Scope::Partner, "P".to_string(), 1),
    ]);
    let mut rows: Vec<(&str, String, i64)> = l
        .rows()
        .into_iter()
        .map(|r| (r.scope, r.key, r.admitted))
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![("callback", "P".into(), 4), ("partner", "P".into(), 1)]
    );
    let callback = |admitted, updated_ms| PeerCount {
        scope: "callback".into(),
        ..peer("n-b", "P", admitted, T0 - 60_000, updated_ms)
    };
    let _ = l.succeeded(start, exchanged(T0, vec![callback(10, T0 - 10)]));
    let (c, _) = l.succeeded(
        start + Duration::from_millis(50),
        exchanged(T0 + 50, vec![callback(13, T0 + 40)]),
    );
    assert_eq!(
        c,
        vec![Charge {
            scope: Scope::Callback,
            key: "P".into(),
            cells: 3
        }]
    );
}
