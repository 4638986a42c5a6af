//! Admission of a connection, before a byte of it is read.
//!
//! 1. **The gate**: the union of every active partner's allowlist, `callback.allowed_callers`,
//!    `metrics.allow`, `trusted_proxies`, `enrollment.allow` (when enrollment is enabled) and
//!    `gate.also_allow` is the set of addresses that can ever succeed at anything here. A connection from elsewhere is closed at once. The set is
//!    rebuilt (sorted, merged address ranges; a binary search per connection) whenever the
//!    partner snapshot's revision moves.
//! 2. **Per source** (an IPv4 address, or an IPv6 /64): at most
//!    `limits.max_connections_per_address` connections at once, and new connections at most at
//!    `limits.new_connections_per_second_per_address` (burst
//!    `limits.new_connections_burst_per_address`).
//!
//! Refusals are counted by reason for `/metrics` and logged at most once per address per
//! `gate.log_interval_ms` (with how many were refused meanwhile), never once per connection.
//! [`refuse`] closes a refused connection (the server calls it).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;

use crate::allowlist::canonical;
use crate::config::Config;
use crate::store::{PartnerStatus, Snapshot};

/// At most this many addresses are remembered for the refusal log; past it the memory is
/// cleared (and the next refusal of each address is logged again).
const LOG_MEMORY: usize = 10_000;

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The address is outside every network that could succeed.
    Gate,
    /// The address already holds `limits.max_connections_per_address` connections.
    PerAddress,
    /// The address opens connections faster than `limits.new_connections_per_second_per_address`.
    Rate,
}

impl Refusal {
    /// The name in logs and the `reason` label in `/metrics`: the setting that refused it.
    pub fn key(self) -> &'static str {
        match self {
            Refusal::Gate => "gate",
            Refusal::PerAddress => "limits.max_connections_per_address",
            Refusal::Rate => "limits.new_connections_per_second_per_address",
        }
    }

    /// The short answer written to a refused connection (none for the gate: it is closed
    /// without a byte).
    pub fn answer(self) -> Option<&'static str> {
        match self {
            Refusal::Gate => None,
            Refusal::PerAddress => {
                Some("too many connections from this address (limits.max_connections_per_address)\n")
            }
            Refusal::Rate => Some(
                "new connections from this address too fast (limits.new_connections_per_second_per_address)\n",
            ),
        }
    }

    const ALL: [Refusal; 3] = [Refusal::Gate, Refusal::PerAddress, Refusal::Rate];

    fn index(self) -> usize {
        match self {
            Refusal::Gate => 0,
            Refusal::PerAddress => 1,
            Refusal::Rate => 2,
        }
    }
}

/// What a source is counted as: an IPv4 address, or the /64 of an IPv6 address (one host
/// holds a whole /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 address (IPv4-mapped IPv6 included).
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6(u64),
}

impl Source {
    /// The source of `ip`.
    pub fn of(ip: IpAddr) -> Source {
        match canonical(ip) {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => Source::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// A set of networks as sorted, merged, inclusive ranges over IPv6 space (IPv4 mapped into
/// `::ffff:0:0/96`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NetSet {
    ranges: Vec<(u128, u128)>,
}

fn as_u128(ip: IpAddr) -> u128 {
    match canonical(ip) {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl NetSet {
    /// The union of `nets`.
    pub fn new<'a>(nets: impl IntoIterator<Item = &'a IpNet>) -> NetSet {
        let mut ranges: Vec<(u128, u128)> = nets
            .into_iter()
            .map(|n| (as_u128(n.network()), as_u128(n.broadcast())))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        NetSet { ranges: merged }
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let x = as_u128(ip);
        let i = self.ranges.partition_point(|&(lo, _)| lo <= x);
        i > 0 && self.ranges[i - 1].1 >= x
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// The gate's set for one snapshot revision.
struct Gate {
    revision: i64,
    set: NetSet,
}

type Limiter = RateLimiter<
    Source,
    governor::state::keyed::DefaultKeyedStateStore<Source>,
    governor::clock::DefaultClock,
>;

/// The admission state of one listener.
pub struct Admission {
    gate_enabled: bool,
    fixed: Vec<IpNet>,
    gate: ArcSwap<Gate>,
    max_per_source: usize,
    open: Mutex<HashMap<Source, usize>>,
    limiter: Limiter,
    refused: [AtomicU64; 3],
    reclaimed: AtomicU64,
    cut_slow: AtomicU64,
    log_interval: Duration,
    logged: Mutex<HashMap<IpAddr, (Instant, u64)>>,
    last_retain: Mutex<Instant>,
}

/// A connection slot of a source, given back when dropped.
pub struct Slot {
    admission: Arc<Admission>,
    source: Source,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.admission.open.lock() {
            if let Some(n) = open.get_mut(&self.source) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.source);
                }
            }
        }
    }
}

impl Admission {
    /// The admission rules of `config`.
    pub fn new(config: &Config) -> Arc<Admission> {
        let mut fixed = Vec::new();
        fixed.extend(config.callback.allowed_callers.iter().copied());
        fixed.extend(config.metrics_allow.iter().copied());
        fixed.extend(config.trusted_proxies.iter().copied());
        fixed.extend(config.gate.also_allow.iter().copied());
        if config.enrollment.enabled {
            fixed.extend(config.enrollment.allow.iter().copied());
        }
        let rate = config.limits.new_connections_per_address;
        let quota = Quota::per_second(rate.per_second).allow_burst(rate.burst);
        Arc::new(Admission {
            gate_enabled: config.gate.enabled,
            gate: ArcSwap::from_pointee(Gate {
                revision: i64::MIN,
                set: NetSet::new(&fixed),
            }),
            fixed,
            max_per_source: config.limits.max_connections_per_address,
            open: Mutex::new(HashMap::new()),
            limiter: RateLimiter::keyed(quota),
            refused: Default::default(),
            reclaimed: AtomicU64::new(0),
            cut_slow: AtomicU64::new(0),
            log_interval: config.gate.log_interval,
            logged: Mutex::new(HashMap::new()),
            last_retain: Mutex::new(Instant::now()),
        })
    }

    /// The gate's set for `snapshot`, rebuilt when its revision moved.
    fn gate_for(&self, snapshot: &Snapshot) -> Arc<Gate> {
        let current = self.gate.load_full();
        if current.revision == snapshot.revision {
            return current;
        }
        let partners = snapshot
            .partners
            .values()
            .filter(|p| p.status == PartnerStatus::Active)
            .flat_map(|p| p.allow.iter());
        let gate = Arc::new(Gate {
            revision: snapshot.revision,
            set: NetSet::new(self.fixed.iter().chain(partners)),
        });
        self.gate.store(Arc::clone(&gate));
        gate
    }

    /// Admits a connection from `peer`, or says why not (and counts and logs the refusal).
    pub fn admit(self: &Arc<Self>, peer: IpAddr, snapshot: &Snapshot) -> Result<Slot, Refusal> {
        let peer = canonical(peer);
        let result = self.check(peer, snapshot);
        if let Err(refusal) = result {
            self.refused[refusal.index()].fetch_add(1, Ordering::Relaxed);
            self.log_refusal(peer, refusal);
        }
        self.retain_now_and_then();
        result
    }

    fn check(self: &Arc<Self>, peer: IpAddr, snapshot: &Snapshot) -> Result<Slot, Refusal> {
        if self.gate_enabled && !self.gate_for(snapshot).set.contains(peer) {
            return Err(Refusal::Gate);
        }
        let source = Source::of(peer);
        {
            let Ok(mut open) = self.open.lock() else {
                return Err(Refusal::PerAddress);
            };
            let n = open.entry(source).or_insert(0);
            if *n >= self.max_per_source {
                return Err(Refusal::PerAddress);
            }
            *n += 1;
        }
        // From here on the slot gives the count back, also when the rate refuses.
        let slot = Slot {
            admission: Arc::clone(self),
            source,
        };
        if self.limiter.check_key(&source).is_err() {
            return Err(Refusal::Rate);
        }
        Ok(slot)
    }

    /// Forgets the rate state of sources that have been quiet long enough to be full again
    /// (at most every 10 s).
    fn retain_now_and_then(&self) {
        let Ok(mut last) = self.last_retain.try_lock() else {
            return;
        };
        if last.elapsed() >= Duration::from_secs(10) {
            *last = Instant::now();
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }

    fn log_refusal(&self, peer: IpAddr, refusal: Refusal) {
        let Ok(mut logged) = self.logged.lock() else {
            return;
        };
        if logged.len() >= LOG_MEMORY && !logged.contains_key(&peer) {
            logged.clear();
            tracing::warn!(
                "connections refused from more than {LOG_MEMORY} addresses; the refusal log \
                 starts again (counts by reason: /metrics partnergate_connections_refused_total)"
            );
        }
        let now = Instant::now();
        match logged.get_mut(&peer) {
            Some((at, since)) if now.duration_since(*at) < self.log_interval => *since += 1,
            entry => {
                let before = entry.map_or(0, |(_, since)| *since);
                logged.insert(peer, (now, 0));
                tracing::warn!(
                    %peer,
                    reason = refusal.key(),
                    refused_since_last_line = before,
                    "connection refused at accept"
                );
            }
        }
    }

    /// Counts a connection closed to make room near the connection cap.
    pub fn count_reclaimed(&self) {
        self.reclaimed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection cut for sending its request header below the rate floor.
    pub fn count_cut_slow(&self) {
        self.cut_slow.fetch_add(1, Ordering::Relaxed);
    }

    /// How many connections `refusal` refused so far.
    pub fn refused(&self, refusal: Refusal) -> u64 {
        self.refused[refusal.index()].load(Ordering::Relaxed)
    }

    /// The admission counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP partnergate_connections_refused_total Connections refused at accept, by the setting that refused them."
        );
        let _ = writeln!(out, "# TYPE partnergate_connections_refused_total counter");
        for r in Refusal::ALL {
            let _ = writeln!(
                out,
                "partnergate_connections_refused_total{{reason=\"{}\"}} {}",
                r.key(),
                self.refused(r)
            );
        }
        let _ = writeln!(
            out,
            "# HELP partnergate_connections_closed_total Connections the gateway closed before they were done, by reason."
        );
        let _ = writeln!(out, "# TYPE partnergate_connections_closed_total counter");
        let _ = writeln!(
            out,
            "partnergate_connections_closed_total{{reason=\"idle-reclaimed\"}} {}",
            self.reclaimed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "partnergate_connections_closed_total{{reason=\"limits.min_receive_bytes_per_second\"}} {}",
            self.cut_slow.load(Ordering::Relaxed)
        );
        let gate = self.gate.load();
        let _ = writeln!(
            out,
            "# HELP partnergate_gate_ranges Address ranges the accept gate admits (0 with the gate off).\n\
             # TYPE partnergate_gate_ranges gauge\npartnergate_gate_ranges {}",
            if self.gate_enabled { gate.set.len() } else { 0 }
        );
    }
}

/// Closes a connection that [`Admission`] refused: the gate's at once, without a byte (and
/// with a reset, so that no closed socket lingers here); the per-source limits' after a short
/// plain-text 429 that names the limit (plain TCP only: nothing can be written before a TLS
/// handshake).
pub(super) fn refuse(stream: tokio::net::TcpStream, refusal: Refusal, tls: bool) {
    match refusal.answer() {
        Some(text) if !tls => {
            let answer = format!(
                "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\n\
                 retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{text}",
                text.len()
            );
            // Best effort: a fresh socket's send buffer takes it whole, or the peer gets less.
            let _ = stream.try_write(answer.as_bytes());
        }
        _ => {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
    }
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PartnerEntry, Rate};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        crate::config::parse_net(s).unwrap()
    }

    #[test]
    fn netset_merges_and_finds() {
        let nets = [
            net("10.0.0.0/8"),
            net("10.1.0.0/16"),
            net("192.0.2.7"),
            net("192.0.2.8/31"),
            net("2001:db8::/32"),
        ];
        let set = NetSet::new(&nets);
        assert_eq!(set.len(), 3, "{set:?}");
        for yes in [
            "10.0.0.0",
            "10.255.255.255",
            "192.0.2.7",
            "192.0.2.9",
            "::ffff:10.2.3.4",
            "2001:db8::1",
        ] {
            assert!(set.contains(ip(yes)), "{yes}");
        }
        for no in [
            "9.255.255.255",
            "11.0.0.0",
            "192.0.2.6",
            "192.0.2.10",
            "2001:db9::",
            "::",
            "::a00:1",
        ] {
            assert!(!set.contains(ip(no)), "{no}");
        }
        assert!(!NetSet::new(&[]).contains(ip("127.0.0.1")));
        assert!(NetSet::new(&[net("0.0.0.0/0")]).contains(ip("203.0.113.1")));
        assert!(!NetSet::new(&[net("0.0.0.0/0")]).contains(ip("2001:db8::1")));
    }

    fn snapshot(revision: i64, partners: &[(&str, PartnerStatus, &[&str])]) -> Snapshot {
        let mut s = Snapshot::empty();
        s.revision = revision;
        for (id, status, allow) in partners {
            let p = PartnerEntry {
                partner_id: (*id).to_string(),
                name: (*id).to_string(),
                status: *status,
                group: None,
                country: None,
                keys: Vec::new(),
                allow: allow.iter().map(|a| net(a)).collect(),
                grants: Vec::new(),
                rate: None,
                callback_rate: None,
                callback_url: None,
                callback_ca_pem: None,
                feature_defaults: None,
                client_auth: None,
            };
            s.partners.insert((*id).to_string(), Arc::new(p));
        }
        s
    }

    fn config() -> Config {
        let mut c = Config {
            metrics_allow: vec![net("127.0.0.1")],
            trusted_proxies: vec![net("192.168.1.1")],
            ..Config::default()
        };
        c.callback.allowed_callers = vec![net("10.9.0.0/16")];
        c.gate.also_allow = vec![net("198.51.100.0/24")];
        c
    }

    #[test]
    fn the_gate_admits_the_union_and_follows_the_snapshot() {
        let a = Admission::new(&config());
        let s1 = snapshot(
            1,
            &[
                ("P1", PartnerStatus::Active, &["203.0.113.0/28"]),
                ("P2", PartnerStatus::Suspended, &["203.0.113.64/28"]),
                ("P3", PartnerStatus::Offboarded, &["203.0.113.128/28"]),
            ],
        );
        for yes in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "10.9.3.4",
            "192.168.1.1",
            "198.51.100.77",
            "203.0.113.15",
        ] {
            assert!(a.admit(ip(yes), &s1).is_ok(), "{yes}");
        }
        for no in [
            "127.0.0.2",
            "203.0.113.16",
            "203.0.113.65",
            "203.0.113.129",
            "::1",
        ] {
            assert_eq!(a.admit(ip(no), &s1).err(), Some(Refusal::Gate), "{no}");
        }
        assert_eq!(a.refused(Refusal::Gate), 5);
        // A new revision: P2 active again, P1 gone.
        let s2 = snapshot(2, &[("P2", PartnerStatus::Active, &["203.0.113.64/28"])]);
        assert!(a.admit(ip("203.0.113.65"), &s2).is_ok());
        assert_eq!(a.admit(ip("203.0.113.15"), &s2).err(), Some(Refusal::Gate));
        let mut text = String::new();
        a.render(&mut text);
        assert!(
            text.contains("partnergate_connections_refused_total{reason=\"gate\"} 6"),
            "{text}"
        );
    }

    #[test]
    fn the_gate_can_be_turned_off() {
        let mut c = config();
        c.gate.enabled = false;
        let a = Admission::new(&c);
        assert!(a.admit(ip("203.0.113.200"), &snapshot(1, &[])).is_ok());
    }

    #[test]
    fn per_source_connections_are_capped_and_given_back() {
        let mut c = config();
        c.gate.enabled = false;
        c.limits.max_connections_per_address = 2;
        let a = Admission::new(&c);
        let s = snapshot(1, &[]);
        let one = a.admit(ip("192.0.2.1"), &s).unwrap();
        let _two = a.admit(ip("::ffff:192.0.2.1"), &s).unwrap();
        assert_eq!(
            a.admit(ip("192.0.2.1"), &s).err(),
            Some(Refusal::PerAddress)
        );
        // Another address is not affected; an IPv6 /64 counts as one source.
        let _other = a.admit(ip("192.0.2.2"), &s).unwrap();
        let _v6a = a.admit(ip("2001:db8::1"), &s).unwrap();
        let _v6b = a.admit(ip("2001:db8::ffff:2"), &s).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8::3"), &s).err(),
            Some(Refusal::PerAddress)
        );
        assert!(a.admit(ip("2001:db8:0:1::3"), &s).is_ok());
        drop(one);
        assert!(a.admit(ip("192.0.2.1"), &s).is_ok());
        assert_eq!(a.refused(Refusal::PerAddress), 2);
    }

    #[test]
    fn new_connections_per_source_are_rate_limited() {
        let mut c = config();
        c.gate.enabled = false;
        c.limits.new_connections_per_address = Rate {
            per_second: std::num::NonZeroU32::new(1).unwrap(),
            burst: std::num::NonZeroU32::new(3).unwrap(),
        };
        let a = Admission::new(&c);
        let s = snapshot(1, &[]);
        for _ in 0..3 {
            assert!(a.admit(ip("192.0.2.1"), &s).is_ok());
        }
        assert_eq!(a.admit(ip("192.0.2.1"), &s).err(), Some(Refusal::Rate));
        assert!(a.admit(ip("192.0.2.2"), &s).is_ok());
        // A refused connection gives its slot back at once.
        assert!(a
            .open
            .lock()
            .unwrap()
            .get(&Source::of(ip("192.0.2.1")))
            .is_none());
    }
}
