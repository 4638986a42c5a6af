//! Unit tests of the throttle (beside the module, in their own file).
use super::*;
use crate::store::{GroupEntry, PartnerStatus};

fn rate(per_second: u32, burst: u32) -> Rate {
    Rate::new(per_second, burst).expect("rate")
}

fn partner(id: &str, own: Option<Rate>, group: Option<&str>) -> Arc<PartnerEntry> {
    Arc::new(PartnerEntry {
        partner_id: id.into(),
        name: id.into(),
        status: PartnerStatus::Active,
        group: group.map(str::to_string),
        country: None,
        keys: Vec::new(),
        allow: Vec::new(),
        grants: Vec::new(),
        rate: own,
        callback_rate: None,
        callback_url: None,
        callback_ca_pem: None,
        feature_defaults: None,
        client_auth: None,
    })
}

fn snapshot(partners: &[&Arc<PartnerEntry>], groups: &[(&str, Rate)]) -> Snapshot {
    let mut s = Snapshot::empty();
    for p in partners {
        s.partners.insert(p.partner_id.clone(), Arc::clone(p));
    }
    for (name, aggregate) in groups {
        s.groups.insert(
            (*name).to_string(),
            GroupEntry {
                name: (*name).to_string(),
                rate: None,
                aggregate: Some(*aggregate),
            },
        );
    }
    s
}

fn scope(r: Result<InFlight, Refused>) -> Option<Scope> {
    match r {
        Ok(_) => None,
        Err(Refused::Rate(t)) => Some(t.scope),
        Err(Refused::InFlight(e)) => panic!("{e}"),
    }
}

/// The partner's own limit has room for two; the group cap for one. Every call the group
/// refuses gives the partner's cell back, so the partner's limit never becomes the reason.
#[test]
fn a_rate_change_goes_on_from_the_spent_cells_not_a_fresh_burst() {
    let old = Gcra::continuing(rate(10, 2), None);
    assert!(old.take(0).is_ok() && old.take(0).is_ok());
    assert!(old.take(0).is_err());
    let changed = Gcra::continuing(rate(20, 2), Some(&old));
    assert!(
        changed.take(0).is_err(),
        "the burst was spent under the old rate"
    );
    assert!(changed.take(200_000_000).is_ok());
    let fresh = Gcra::continuing(rate(20, 2), None);
    assert!(fresh.take(0).is_ok());
}

#[test]
fn a_call_the_group_refuses_spends_no_partner_cell() {
    let t = Throttle::new(rate(1000, 1000));
    let a = partner("A", Some(rate(1, 2)), Some("g"));
    let s = snapshot(&[&a], &[("g", rate(1, 1))]);
    assert_eq!(scope(t.admit(&a, &s)), None);
    for _ in 0..5 {
        assert_eq!(scope(t.admit(&a, &s)), Some(Scope::Group));
    }
    // The group cap lifted: the partner still has its second cell.
    let s = snapshot(&[&a], &[]);
    assert_eq!(scope(t.admit(&a, &s)), None);
    assert_eq!(scope(t.admit(&a, &s)), Some(Scope::Partner));
}

/// A partner over its own limit does not drain the cap it shares with the other members.
#[test]
fn a_call_the_partner_limit_refuses_spends_no_group_cell() {
    let t = Throttle::new(rate(1000, 1000));
    let a = partner("A", Some(rate(1, 1)), Some("g"));
    let b = partner("B", Some(rate(1, 1)), Some("g"));
    let s = snapshot(&[&a, &b], &[("g", rate(1, 2))]);
    assert_eq!(scope(t.admit(&a, &s)), None);
    for _ in 0..5 {
        assert_eq!(scope(t.admit(&a, &s)), Some(Scope::Partner));
    }
    assert_eq!(
        scope(t.admit(&b, &s)),
        None,
        "the group's second cell is B's"
    );
    assert_eq!(scope(t.admit(&b, &s)), Some(Scope::Partner));
}

#[test]
fn gcra_admits_the_burst_then_one_per_interval() {
    let g = Gcra::continuing(rate(10, 3), None);
    let ms = 1_000_000;
    for _ in 0..3 {
        assert_eq!(g.take(0), Ok(()));
    }
    assert_eq!(g.take(0), Err(100 * ms));
    assert_eq!(g.take(100 * ms), Ok(()));
    assert!(g.take(100 * ms).is_err());
    g.give_back();
    assert_eq!(
        g.take(100 * ms),
        Ok(()),
        "a cell given back can be taken again"
    );
}

#[test]
fn in_flight_calls_are_counted_until_their_guard_drops() {
    let t = Throttle::new(rate(1000, 1000)).with_max_in_flight(2);
    let a = partner("A", None, None);
    let b = partner("B", None, None);
    let s = snapshot(&[&a, &b], &[]);
    let first = t.admit(&a, &s).expect("first");
    let second = t.admit(&a, &s).expect("second");
    assert_eq!(
        t.admit(&a, &s).err(),
        Some(Refused::InFlight(TooManyInFlight { limit: 2 }))
    );
    assert!(t.admit(&b, &s).is_ok(), "per partner");
    drop(first);
    let third = t.admit(&a, &s).expect("a place is free again");
    // A rate change replaces the limiter, not the count.
    let faster = partner("A", Some(rate(999, 999)), None);
    assert!(matches!(t.admit(&faster, &s), Err(Refused::InFlight(_))));
    drop((second, third));
    assert!(t.admit(&faster, &s).is_ok());
}

#[test]
fn the_in_flight_refusal_spends_no_cell() {
    let t = Throttle::new(rate(1000, 1000)).with_max_in_flight(1);
    let a = partner("A", Some(rate(1, 2)), None);
    let s = snapshot(&[&a], &[]);
    let held = t.admit(&a, &s).expect("first");
    for _ in 0..5 {
        assert!(matches!(t.admit(&a, &s), Err(Refused::InFlight(_))));
    }
    drop(held);
    assert!(t.admit(&a, &s).is_ok(), "the second cell is still there");
}

#[test]
fn retain_drops_partners_and_groups_a_snapshot_no_longer_has() {
    let t = Throttle::new(rate(1000, 1000));
    let a = partner("A", None, Some("g"));
    let b = partner("B", None, None);
    let s = snapshot(&[&a, &b], &[("g", rate(5, 5))]);
    drop(t.admit(&a, &s));
    drop(t.admit(&b, &s));
    assert_eq!(t.tracked(), (2, 1));
    t.retain(&snapshot(&[&b], &[("h", rate(5, 5))]));
    assert_eq!(t.tracked(), (1, 0));
}

/// Counted for the other nodes: only calls every limit admitted (a cell given back is not).
#[test]
fn drained_counts_are_the_admitted_calls_only() {
    let t = Throttle::new(rate(1000, 1000));
    let a = partner("A", Some(rate(100, 3)), Some("g"));
    let s = snapshot(&[&a], &[("g", rate(100, 2))]);
    for _ in 0..5 {
        drop(t.admit(&a, &s));
    }
    let mut out = Vec::new();
    t.drain_admitted(&mut out);
    out.sort();
    assert_eq!(
        out,
        vec![
            (Scope::Partner, "A".to_string(), 2),
            (Scope::Group, "g".to_string(), 2)
        ]
    );
    out.clear();
    t.drain_admitted(&mut out);
    assert!(out.is_empty(), "a drain starts the count again: {out:?}");
}

/// Calls admitted on other nodes spend this node's cells; an unknown limiter is left alone.
#[test]
fn charged_calls_spend_cells_and_the_debt_stops_at_every_nodes_burst() {
    let t = Throttle::new(rate(1000, 1000));
    let a = partner("A", Some(rate(10, 5)), None);
    let s = snapshot(&[&a], &[]);
    assert!(t.admit(&a, &s).is_ok());
    t.charge(Scope::Partner, "A", 3, 3);
    t.charge(Scope::Partner, "nobody", 3, 3);
    t.charge(Scope::Group, "none", 3, 3);
    assert!(t.admit(&a, &s).is_ok(), "5 - 1 - 3 = one cell left");
    assert!(matches!(t.admit(&a, &s), Err(Refused::Rate(_))));

    // A debt far beyond what three nodes could have admitted together stops at 3 · burst.
    let b = partner("B", Some(rate(1, 2)), None);
    let s = snapshot(&[&b], &[]);
    assert!(t.admit(&b, &s).is_ok());
    t.charge(Scope::Partner, "B", 1_000_000, 3);
    match t.admit(&b, &s) {
        Err(Refused::Rate(th)) => {
            assert!(
                th.retry_after <= Duration::from_secs(6) && th.retry_after > Duration::from_secs(4),
                "3 nodes × burst 2 at 1/s: about 5 s to wait, not days: {:?}",
                th.retry_after
            );
        }
        other => panic!("expected a refusal: {other:?}"),
    }
}

#[test]
fn a_charge_never_gives_cells_back() {
    let g = Gcra::continuing(rate(1, 10), None);
    for _ in 0..10 {
        assert!(g.take(0).is_ok());
    }
    // The arrival time is 10 s ahead; a charge with a ceiling below that leaves it there.
    g.charge(0, 1, 1_000_000_000);
    assert!(g.take(0).is_err());
    assert_eq!(g.take(1_000_000_000), Ok(()), "one cell per second again");
}

// === callbacks ===

fn with_callback_rate(id: &str, own: Option<Rate>) -> Arc<PartnerEntry> {
    let mut p = (*partner(id, None, None)).clone();
    p.callback_rate = own;
    Arc::new(p)
}

/// A partner's callbacks get their own limiter: its own callback rate, else the callback
/// default, never its inbound rate or its group's; a refused callback spends nothing.
#[test]
fn callbacks_have_their_own_limit_and_a_refusal_spends_nothing() {
    let t = Throttle::new(rate(1000, 1000)).with_callback_default(rate(1, 2));
    let own = with_callback_rate("A", Some(rate(1, 3)));
    let plain = with_callback_rate("B", None);
    for _ in 0..3 {
        assert_eq!(t.admit_callback(&own), Ok(()));
    }
    for _ in 0..2 {
        assert_eq!(t.admit_callback(&plain), Ok(()), "the default's burst");
    }
    for _ in 0..5 {
        let refused = t.admit_callback(&own).expect_err("burst spent");
        assert_eq!((refused.scope, refused.per_second), (Scope::Callback, 1));
        // At 1/s the next cell is at most a second away: Retry-After says 1.
        assert!(refused.retry_after <= Duration::from_secs(1));
        assert_eq!(refused.retry_after_secs(), 1);
        assert_eq!(
            t.admit_callback(&plain).map_err(|e| e.scope),
            Err(Scope::Callback)
        );
    }
    // The partner's calls are not touched by its callbacks, nor the other way round.
    let s = snapshot(&[&own], &[]);
    assert_eq!(scope(t.admit(&own, &s)), None);
    // Refusals spent nothing: exactly the admitted callbacks are counted for the cluster.
    let mut out = Vec::new();
    t.drain_admitted(&mut out);
    out.sort();
    assert_eq!(
        out,
        vec![
            (Scope::Partner, "A".to_string(), 1),
            (Scope::Callback, "A".to_string(), 3),
            (Scope::Callback, "B".to_string(), 2),
        ]
    );
}

/// Callbacks other nodes admitted spend this node's callback cells (the one cluster ledger);
/// a partner gone from the snapshot loses its callback limiter.
#[test]
fn callbacks_are_charged_across_the_cluster_and_dropped_with_their_partner() {
    let t = Throttle::new(rate(1000, 1000)).with_callback_default(rate(1, 10));
    let a = with_callback_rate("A", None);
    assert_eq!(t.admit_callback(&a), Ok(()));
    // Another node admitted 9 of A's callbacks: the burst of 10 is spent.
    t.charge(Scope::Callback, "A", 9, 2);
    assert_eq!(
        t.admit_callback(&a).map_err(|e| e.scope),
        Err(Scope::Callback)
    );
    // The inbound limiter of the same id is another limiter: not charged.
    let s = snapshot(&[&a], &[]);
    assert_eq!(scope(t.admit(&a, &s)), None);
    t.retain(&snapshot(&[], &[]));
    let left = t.callbacks.read().map_or(usize::MAX, |m| m.len());
    assert_eq!(left, 0, "the callback limiter of a partner gone is dropped");
}
