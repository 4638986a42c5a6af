//! Stage: throttling (governor). Takes the authenticated, permitted partner and admits the call
//! or returns [`Throttled`] with the time after which a retry can succeed.
//!
//! Each partner has its own limiter with its own quota: its own rate, else its group's per-member
//! rate, else the configured default. A group may also carry an aggregate cap shared by all its
//! members. Limiters are keyed only by authenticated partner ids and group names from the
//! database, never by anything an anonymous caller controls, so their number is bounded by the
//! number of partners. A quota change replaces the limiter.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};

use crate::store::{PartnerEntry, Rate, Snapshot};

type Limiter = governor::DefaultDirectRateLimiter;

struct Slot {
    rate: Rate,
    limiter: Limiter,
}

/// Which limit refused the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The partner's own rate (or the one it inherits).
    Partner,
    /// The group's aggregate cap.
    Group,
}

/// The call was refused; retry after `retry_after`.
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

/// The limiters of every partner and group seen so far.
pub struct Throttle {
    default: Rate,
    partners: RwLock<HashMap<String, Arc<Slot>>>,
    groups: RwLock<HashMap<String, Arc<Slot>>>,
    clock: DefaultClock,
}

fn quota(rate: Rate) -> Quota {
    Quota::per_second(rate.per_second).allow_burst(rate.burst)
}

fn slot(map: &RwLock<HashMap<String, Arc<Slot>>>, key: &str, rate: Rate) -> Arc<Slot> {
    if let Ok(read) = map.read() {
        if let Some(slot) = read.get(key).filter(|s| s.rate == rate) {
            return Arc::clone(slot);
        }
    }
    let fresh = Arc::new(Slot {
        rate,
        limiter: RateLimiter::direct(quota(rate)),
    });
    match map.write() {
        Ok(mut write) => {
            // Another request may have inserted it meanwhile; keep theirs if the rate matches.
            let entry = write
                .entry(key.to_string())
                .or_insert_with(|| Arc::clone(&fresh));
            if entry.rate != rate {
                *entry = Arc::clone(&fresh);
            }
            Arc::clone(entry)
        }
        // A poisoned lock only means another thread panicked mid-insert: use a fresh limiter.
        Err(_) => fresh,
    }
}

impl Throttle {
    /// Limiters with `default` for partners that have no rate of their own or from a group.
    pub fn new(default: Rate) -> Self {
        Throttle {
            default,
            partners: RwLock::new(HashMap::new()),
            groups: RwLock::new(HashMap::new()),
            clock: DefaultClock::default(),
        }
    }

    /// The rate that applies to `partner`.
    pub fn partner_rate(&self, partner: &PartnerEntry, snapshot: &Snapshot) -> Rate {
        let group = partner.group.as_ref().and_then(|g| snapshot.groups.get(g));
        partner
            .rate
            .or_else(|| group.and_then(|g| g.rate))
            .unwrap_or(self.default)
    }

    /// Admits one call of `partner`, or says when to retry.
    pub fn admit(&self, partner: &PartnerEntry, snapshot: &Snapshot) -> Result<(), Throttled> {
        let rate = self.partner_rate(partner, snapshot);
        let own = slot(&self.partners, &partner.partner_id, rate);
        if let Err(not_until) = own.limiter.check() {
            return Err(Throttled {
                scope: Scope::Partner,
                per_second: rate.per_second.get(),
                retry_after: not_until.wait_time_from(self.clock.now()),
            });
        }
        let group = partner
            .group
            .as_ref()
            .and_then(|g| snapshot.groups.get(g).map(|e| (g, e)));
        if let Some((name, aggregate)) = group.and_then(|(n, g)| g.aggregate.map(|a| (n, a))) {
            let shared = slot(&self.groups, name, aggregate);
            if let Err(not_until) = shared.limiter.check() {
                return Err(Throttled {
                    scope: Scope::Group,
                    per_second: aggregate.per_second.get(),
                    retry_after: not_until.wait_time_from(self.clock.now()),
                });
            }
        }
        Ok(())
    }

    /// Drops limiters of partners and groups that are no longer in the snapshot.
    pub fn retain(&self, snapshot: &Snapshot) {
        if let Ok(mut p) = self.partners.write() {
            p.retain(|k, _| snapshot.partners.contains_key(k));
        }
        if let Ok(mut g) = self.groups.write() {
            g.retain(|k, _| snapshot.groups.contains_key(k));
        }
    }
}
