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
//! **Callbacks** (the relay, `callback.rs`): each partner also has a limiter for the callbacks
//! the TSP's partner API layer sends to its BSS ([`Throttle::admit_callback`]): its own callback
//! rate, else `callback.default_rate_per_second` / `callback.default_burst` (default
//! [`DEFAULT_CALLBACK_RATE`]; groups do not apply). It is counted across the cluster like the
//! others, under [`Scope::Callback`]. No in-flight limit: the relay's response timeout bounds
//! how long a callback holds anything.
//!
//! **In flight:** each partner has one atomic counter (kept across quota changes), raised on
//! admission and lowered when the [`InFlight`] guard drops — at the end of the request, on every
//! path, early returns and unwinding included. At `limits.max_in_flight_per_partner` (default
//! 256) the next call is refused.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::store::{GroupEntry, PartnerEntry, Rate, Snapshot};

pub mod cluster;

/// Default of `limits.max_in_flight_per_partner`: far above what a real partner has open (its
/// calls take milliseconds), low enough that one partner cannot hold every connection's worth
/// of upstream capacity.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Default of `callback.default_rate_per_second` (5) and `callback.default_burst` (10): the rate
/// of callbacks to a partner's BSS without a callback rate of its own. Low on purpose — a burst
/// of provisioning events must not flood a small partner's system; a partner that takes more
/// gets its own rate (`partnergate throttle set --partner P --callback-rate N --callback-burst M`).
pub const DEFAULT_CALLBACK_RATE: Rate = Rate {
    per_second: NonZeroU32::MIN.saturating_add(4),
    burst: NonZeroU32::MIN.saturating_add(9),
};

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

    /// Spends `cells` cells admitted elsewhere (by other nodes) at `now`: the arrival time moves
    /// as if they had been taken here, but never further than `ceiling` past `now` (a
    /// debt longer than that is forgiven) and never back.
    fn charge(&self, now: u64, cells: u64, ceiling: u64) {
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                let charged = tat
                    .max(now)
                    .saturating_add(cells.saturating_mul(self.t))
                    .min(now.saturating_add(ceiling));
                Some(charged.max(tat))
            });
    }

    /// How far past now the arrival time may be charged when `nodes` nodes share the limit:
    /// every node's full burst (`nodes · burst` cells), the most the nodes can have admitted
    /// together before seeing each other.
    fn ceiling(&self, nodes: u64) -> u64 {
        self.tau.saturating_add(self.t).saturating_mul(nodes.max(1))
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

/// A partner's state: its rate limiter (replaced when its rate changes), its in-flight count
/// (kept: requests admitted under the old rate are still running) and the calls admitted since
/// the cluster exchange last collected them (kept too).
struct PartnerSlot {
    limiter: Gcra,
    in_flight: Arc<AtomicUsize>,
    admitted: Arc<AtomicU64>,
}

/// A limiter without an in-flight count — a group's aggregate cap, a partner's callbacks — and
/// the calls it admitted since the cluster exchange last collected them (kept across rate
/// changes).
struct RateSlot {
    limiter: Gcra,
    admitted: Arc<AtomicU64>,
}

impl RateSlot {
    fn continuing(rate: Rate, previous: Option<&RateSlot>) -> RateSlot {
        RateSlot {
            limiter: Gcra::continuing(rate, previous.map(|p| &p.limiter)),
            admitted: previous.map_or_else(Arc::default, |p| Arc::clone(&p.admitted)),
        }
    }
}

/// Which limit refused the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// The partner's own rate (or the one it inherits).
    Partner,
    /// The group's aggregate cap.
    Group,
    /// The partner's callback rate (the relay's direction: the TSP's layer to the partner).
    Callback,
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
    callback_default: Rate,
    max_in_flight: usize,
    partners: RwLock<HashMap<String, Arc<PartnerSlot>>>,
    groups: RwLock<HashMap<String, Arc<RateSlot>>>,
    /// Callback limiters by partner id.
    callbacks: RwLock<HashMap<String, Arc<RateSlot>>>,
    epoch: Instant,
    /// The cluster exchange's state, for `/metrics`.
    sync: Arc<cluster::SyncStatus>,
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
            callback_default: DEFAULT_CALLBACK_RATE,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            partners: RwLock::new(HashMap::new()),
            groups: RwLock::new(HashMap::new()),
            callbacks: RwLock::new(HashMap::new()),
            epoch: Instant::now(),
            sync: Arc::default(),
        }
    }

    /// The same with `limit` requests in flight per partner (`limits.max_in_flight_per_partner`).
    pub fn with_max_in_flight(mut self, limit: usize) -> Self {
        self.max_in_flight = limit;
        self
    }

    /// The same with `rate` for the callbacks of partners without a callback rate of their own
    /// (`callback.default_rate_per_second`, `callback.default_burst`).
    pub fn with_callback_default(mut self, rate: Rate) -> Self {
        self.callback_default = rate;
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
                admitted: previous.map_or_else(Arc::default, |p| Arc::clone(&p.admitted)),
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
                |g| g.limiter.rate,
                |previous| RateSlot::continuing(aggregate, previous),
            );
            if let Err(earliest) = shared.limiter.take(now) {
                own.limiter.give_back();
                return Err(throttled(Scope::Group, aggregate, earliest));
            }
            shared.admitted.fetch_add(1, Ordering::Relaxed);
        }
        // Counted only once every limit has admitted the call: the count the other nodes are
        // charged never includes a cell given back.
        own.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(guard)
    }

    /// Admits one callback to `partner`'s BSS under its callback rate (its own, else the
    /// default), or says when one can be sent. A refused callback spends nothing.
    pub fn admit_callback(&self, partner: &PartnerEntry) -> Result<(), Throttled> {
        let rate = partner.callback_rate.unwrap_or(self.callback_default);
        let slot = entry(
            &self.callbacks,
            &partner.partner_id,
            rate,
            |s| s.limiter.rate,
            |previous| RateSlot::continuing(rate, previous),
        );
        let now = self.now();
        slot.limiter.take(now).map_err(|earliest| Throttled {
            scope: Scope::Callback,
            per_second: rate.per_second.get(),
            retry_after: Duration::from_nanos(earliest.saturating_sub(now)),
        })?;
        slot.admitted.fetch_add(1, Ordering::Relaxed);
        Ok(())
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
        if let Ok(mut c) = self.callbacks.write() {
            c.retain(|k, _| snapshot.partners.contains_key(k));
        }
    }

    /// Moves the calls admitted since the last drain into `out` (scope, partner id or group
    /// name, count) and starts counting again from zero; limiters with nothing new are left out.
    pub fn drain_admitted(&self, out: &mut Vec<(Scope, String, u64)>) {
        {
            let partners = self.partners.read().unwrap_or_else(PoisonError::into_inner);
            for (id, slot) in partners.iter() {
                let n = slot.admitted.swap(0, Ordering::Relaxed);
                if n > 0 {
                    out.push((Scope::Partner, id.clone(), n));
                }
            }
        }
        for (scope, map) in [
            (Scope::Group, &self.groups),
            (Scope::Callback, &self.callbacks),
        ] {
            let slots = map.read().unwrap_or_else(PoisonError::into_inner);
            for (key, slot) in slots.iter() {
                let n = slot.admitted.swap(0, Ordering::Relaxed);
                if n > 0 {
                    out.push((scope, key.clone(), n));
                }
            }
        }
    }

    /// Spends `cells` calls that other nodes admitted under the partner's (or group's) limit on
    /// this node's limiter, as if they had come here (`nodes`: how many nodes share the limit,
    /// which bounds the debt: see [`Gcra::charge`]). A limiter this node does not hold yet is
    /// left alone: it starts with its full burst when the first call comes.
    pub fn charge(&self, scope: Scope, key: &str, cells: u64, nodes: u64) {
        if cells == 0 {
            return;
        }
        let now = self.now();
        match scope {
            Scope::Partner => {
                let partners = self.partners.read().unwrap_or_else(PoisonError::into_inner);
                if let Some(slot) = partners.get(key) {
                    slot.limiter.charge(now, cells, slot.limiter.ceiling(nodes));
                }
            }
            Scope::Group | Scope::Callback => {
                let map = if scope == Scope::Group {
                    &self.groups
                } else {
                    &self.callbacks
                };
                let slots = map.read().unwrap_or_else(PoisonError::into_inner);
                if let Some(slot) = slots.get(key) {
                    slot.limiter.charge(now, cells, slot.limiter.ceiling(nodes));
                }
            }
        }
    }

    /// Prometheus text of the cluster exchange (`partnergate_throttle_cluster_*`).
    pub fn render_cluster_metrics(&self, out: &mut String) {
        self.sync.render(out);
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
mod tests;
