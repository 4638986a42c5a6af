//! Stage: throttling. Takes the authenticated, permitted partner and admits the call — returning
//! an [`InFlight`] guard that counts it until the request is finished — or refuses it
//! ([`Refused`]): too many of the partner's requests in flight, or a rate exceeded, with the time
//! after which a retry can succeed.
//!
//! Each partner has its own rate limiter with its own quota: its own rate, else its group's
//! per-member rate, else the configured default. A group may also carry an aggregate cap shared
//! by all its members. Limiters are keyed only by authenticated partner ids and group names from
//! the database, never by anything an anonymous caller controls, so their number is bounded by
//! the number of partners; [`Throttle::retain`] drops those of partners and groups a new snapshot
//! no longer has. A quota change replaces the limiter.
//!
//! **A refused call spends nothing.** The limiters are GCRA (the algorithm governor implements:
//! one atomic "theoretical arrival time" per limiter), written here because governor cannot give
//! a cell back: the partner's limiter takes a cell, then the group's; when the group refuses, the
//! partner's cell is returned (its arrival time moved back by one emission interval, which is
//! exactly the state before). When the partner's limiter refuses, the group's is not touched.
//! When the in-flight limit refuses, no limiter is touched. The one window left: between taking
//! and returning the partner's cell (a few instructions), a concurrent call of the same partner
//! sees one cell fewer.
//!
//! **In flight:** each partner has one atomic counter (kept across quota changes), raised on
//! admission and lowered when the [`InFlight`] guard drops — at the end of the request, on every
//! path, early returns and unwinding included. At `limits.max_in_flight_per_partner` (default
//! 256) the next call is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::store::{GroupEntry, PartnerEntry, Rate, Snapshot};

/// Default of `limits.max_in_flight_per_partner`: far above what a real partner has open (its
/// calls take milliseconds), low enough that one partner cannot hold every connection's worth
/// of upstream capacity.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// A GCRA rate limiter: `tat` is the theoretical arrival time of the next cell, in nanoseconds
/// since the throttle's epoch. A cell is admitted at `now` when `tat - tau <= now`; admitting it
/// moves `tat` to `max(tat, now) + t`.
struct Gcra {
    rate: Rate,
    /// Emission interval: one cell per `t` nanoseconds.
    t: u64,
    /// Tolerance: `t * (burst - 1)`.
    tau: u64,
    tat: AtomicU64,
}

impl Gcra {
    /// A limiter of `rate` that goes on from `previous` (a rate change carries the theoretical
    /// arrival time over instead of handing out a fresh burst).
    fn continuing(rate: Rate, previous: Option<&Gcra>) -> Gcra {
        let t = (1_000_000_000 / u64::from(rate.per_second.get())).max(1);
        Gcra {
            rate,
            t,
            tau: t.saturating_mul(u64::from(rate.burst.get()) - 1),
            tat: AtomicU64::new(previous.map_or(0, |p| p.tat.load(Ordering::Acquire))),
        }
    }

    /// Takes one cell at `now`, or returns the earliest time one can be taken.
    fn take(&self, now: u64) -> Result<(), u64> {
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let earliest = tat.saturating_sub(self.tau);
            if now < earliest {
                return Err(earliest);
            }
            let next = tat.max(now).saturating_add(self.t);
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }

    /// Returns a cell taken by [`Gcra::take`] (the call was refused by another limit).
    fn give_back(&self) {
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(tat.saturating_sub(self.t))
            });
    }
}

/// A partner's state: its rate limiter (replaced when its rate changes) and its in-flight count
/// (kept: requests admitted under the old rate are still running).
struct PartnerSlot {
    limiter: Gcra,
    in_flight: Arc<AtomicUsize>,
}

/// Which limit refused the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The partner's own rate (or the one it inherits).
    Partner,
    /// The group's aggregate cap.
    Group,
}

/// The call was refused by a rate; retry after `retry_after`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{scope:?} limit of {per_second} requests per second exceeded")]
pub struct Throttled {
    /// Which limit.
    pub scope: Scope,
    /// The rate of that limit.
    pub per_second: u32,
    /// When a retry can succeed.
    pub retry_after: Duration,
}

impl Throttled {
    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// The partner already has `limit` requests in flight.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{limit} requests of this partner are already in flight (limits.max_in_flight_per_partner)"
)]
pub struct TooManyInFlight {
    /// `limits.max_in_flight_per_partner`.
    pub limit: usize,
}

/// Why [`Throttle::admit`] refused a call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A rate limit.
    #[error(transparent)]
    Rate(Throttled),
    /// The in-flight limit.
    #[error(transparent)]
    InFlight(TooManyInFlight),
}

/// One admitted call, counted in its partner's in-flight total until dropped.
#[derive(Debug)]
#[must_use = "the call counts as in flight only while the guard lives"]
pub struct InFlight {
    count: Arc<AtomicUsize>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The limiters of every partner and group seen so far.
pub struct Throttle {
    default: Rate,
    max_in_flight: usize,
    partners: RwLock<HashMap<String, Arc<PartnerSlot>>>,
    groups: RwLock<HashMap<String, Arc<Gcra>>>,
    epoch: Instant,
}

/// The entry for `key` in `map` with `rate` (a fresh one when absent or of another rate;
/// `make` builds it from the previous entry, if any).
fn entry<T>(
    map: &RwLock<HashMap<String, Arc<T>>>,
    key: &str,
    rate: Rate,
    rate_of: impl Fn(&T) -> Rate,
    make: impl Fn(Option<&T>) -> T,
) -> Arc<T> {
    // A poisoned lock only means another thread panicked while holding it; nothing under the
    // lock can leave the map half-changed, so keep using it (a fresh entry per call would turn
    // the limits off).
    {
        let read = map.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = read.get(key).filter(|s| rate_of(s) == rate) {
            return Arc::clone(found);
        }
    }
    let mut write = map.write().unwrap_or_else(PoisonError::into_inner);
    // Another request may have inserted it meanwhile; keep theirs if the rate matches.
    let current = write.get(key).cloned();
    match current {
        Some(found) if rate_of(&found) == rate => found,
        previous => {
            let fresh = Arc::new(make(previous.as_deref()));
            write.insert(key.to_string(), Arc::clone(&fresh));
            fresh
        }
    }
}

impl Throttle {
    /// Limiters with `default` for partners that have no rate of their own or from a group, and
    /// [`DEFAULT_MAX_IN_FLIGHT`] requests in flight per partner.
    pub fn new(default: Rate) -> Self {
        Throttle {
            default,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            partners: RwLock::new(HashMap::new()),
            groups: RwLock::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    /// The same with `limit` requests in flight per partner (`limits.max_in_flight_per_partner`).
    pub fn with_max_in_flight(mut self, limit: usize) -> Self {
        self.max_in_flight = limit;
        self
    }

    /// The rate that applies to a partner with its own `rate` in `group`.
    fn partner_rate(&self, rate: Option<Rate>, group: Option<&GroupEntry>) -> Rate {
        rate.or_else(|| group.and_then(|g| g.rate))
            .unwrap_or(self.default)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Admits one call of `partner` — the returned guard keeps it counted as in flight until it
    /// is dropped — or says why not. A refused call spends nothing (see the module docs).
    pub fn admit(&self, partner: &PartnerEntry, snapshot: &Snapshot) -> Result<InFlight, Refused> {
        let group = partner
            .group
            .as_ref()
            .and_then(|g| snapshot.groups.get_key_value(g));
        let rate = self.partner_rate(partner.rate, group.map(|(_, g)| g));
        let own = entry(
            &self.partners,
            &partner.partner_id,
            rate,
            |s| s.limiter.rate,
            |previous| PartnerSlot {
                limiter: Gcra::continuing(rate, previous.map(|p| &p.limiter)),
                in_flight: previous.map_or_else(Arc::default, |p| Arc::clone(&p.in_flight)),
            },
        );
        // In flight first: refusing here touches no limiter. Raise, then check, so two racing
        // calls cannot both take the last place.
        let before = own.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight {
            count: Arc::clone(&own.in_flight),
        };
        if before >= self.max_in_flight {
            return Err(Refused::InFlight(TooManyInFlight {
                limit: self.max_in_flight,
            }));
        }
        let now = self.now();
        let throttled = |scope, rate: Rate, earliest: u64| {
            Refused::Rate(Throttled {
                scope,
                per_second: rate.per_second.get(),
                retry_after: Duration::from_nanos(earliest.saturating_sub(now)),
            })
        };
        own.limiter
            .take(now)
            .map_err(|earliest| throttled(Scope::Partner, rate, earliest))?;
        if let Some((name, aggregate)) = group.and_then(|(n, g)| g.aggregate.map(|a| (n, a))) {
            let shared = entry(
                &self.groups,
                name,
                aggregate,
                |g| g.rate,
                |previous| Gcra::continuing(aggregate, previous),
            );
            if let Err(earliest) = shared.take(now) {
                own.limiter.give_back();
                return Err(throttled(Scope::Group, aggregate, earliest));
            }
        }
        Ok(guard)
    }

    /// Drops limiters of partners and groups that are no longer in the snapshot (called by the
    /// refresher whenever it installs a new one). Calls in flight keep their counters alive.
    pub fn retain(&self, snapshot: &Snapshot) {
        if let Ok(mut p) = self.partners.write() {
            p.retain(|k, _| snapshot.partners.contains_key(k));
        }
        if let Ok(mut g) = self.groups.write() {
            g.retain(|k, _| snapshot.groups.contains_key(k));
        }
    }

    /// How many partner and group limiters are held.
    #[cfg(test)]
    fn tracked(&self) -> (usize, usize) {
        let p = self.partners.read().map_or(0, |m| m.len());
        let g = self.groups.read().map_or(0, |m| m.len());
        (p, g)
    }
}

#[cfg(test)]
mod tests {
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
            callback_url: None,
            callback_ca_pem: None,
            feature_defaults: None,
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
}
