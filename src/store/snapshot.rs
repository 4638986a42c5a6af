//! The hot path's view of partner data: an immutable [`Snapshot`] behind an `ArcSwap`
//! ([`SnapshotCell`]), replaced by [`run_refresher`] when the database's revision changes.
//! Readers never wait on the database or on a lock.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::conn::AnyConnection;
use super::models::{GroupRow, KeyRow, PartnerRow};
use super::schema::{allow_entries, api_keys, callback_rates, grants, groups, partners};
use super::{read_revision, Store, StoreError};
use crate::secret::{KeyHash, KeyKind};

/// How often the refresher polls the revision unless told otherwise.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_millis(250);

/// The refresher never polls faster than this (`tokio::time::interval` refuses zero).
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(10);

/// Everything the hot path needs, as of one database revision.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// `meta.revision` when this was read; `-1` for [`Snapshot::empty`].
    pub revision: i64,
    /// Every partner (whatever its status), by partner id (`PARTNER-0001`).
    pub partners: HashMap<String, Arc<PartnerEntry>>,
    /// Every group, by name.
    pub groups: HashMap<String, GroupEntry>,
    /// When it was read.
    pub loaded_at: SystemTime,
}

/// One partner as the hot path sees it.
#[derive(Clone, Debug)]
pub struct PartnerEntry {
    /// The public id, e.g. `PARTNER-0001`.
    pub partner_id: String,
    /// Display name.
    pub name: String,
    /// Only [`PartnerStatus::Active`] partners may call.
    pub status: PartnerStatus,
    /// The group whose rates apply when the partner has none of its own.
    pub group: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// Keys that are not revoked. Expired ones are included: the caller compares
    /// `expires_at` with its own clock, so a key expires on time between refreshes.
    pub keys: Vec<KeyEntry>,
    /// Source networks the partner may call from.
    pub allow: Vec<ipnet::IpNet>,
    /// Permissions: `*`, `<domain>.*` or exact (`accounts.create`); see [`PartnerEntry::permits`].
    pub grants: Vec<String>,
    /// The partner's own rate, if set (else the group's per-member rate applies).
    pub rate: Option<Rate>,
    /// The partner's own rate for callbacks to its BSS, if set (else
    /// `callback.default_rate_per_second` / `callback.default_burst` apply; groups do not).
    pub callback_rate: Option<Rate>,
    /// Where the TSP's callbacks for this partner go.
    pub callback_url: Option<String>,
    /// CA certificate(s) to verify the callback server with.
    pub callback_ca_pem: Option<String>,
    /// Default feature settings (a JSON object).
    pub feature_defaults: Option<serde_json::Value>,
    /// Client certificates (mutual TLS): registered leaves, or a CA and a subject; `None`: the
    /// partner may call without one (`client_cert::check` does nothing).
    pub client_auth: Option<Arc<crate::certificate::ClientAuth>>,
}

/// A key's hash and metadata; never the key.
#[derive(Clone, Debug)]
pub struct KeyEntry {
    /// `api_keys.id`.
    pub id: i64,
    /// Partner or callback key.
    pub kind: KeyKind,
    /// The display prefix (`pgk_1a2b`), for logs.
    pub prefix: String,
    /// SHA-256 of the key; compare with [`crate::secret::ct_eq`].
    pub hash: KeyHash,
    /// Unix seconds after which the key is refused, if it expires.
    pub expires_at: Option<i64>,
}

/// A group: a per-member default rate and a cap shared by all members.
#[derive(Clone, Debug)]
pub struct GroupEntry {
    /// The group's name.
    pub name: String,
    /// Per-member rate for members without their own.
    pub rate: Option<Rate>,
    /// The cap on the members' combined rate.
    pub aggregate: Option<Rate>,
}

/// A token-bucket rate: `per_second` sustained, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: NonZeroU32,
    /// Bucket size.
    pub burst: NonZeroU32,
}

impl Rate {
    /// A rate, if both numbers are non-zero.
    pub fn new(per_second: u32, burst: u32) -> Option<Rate> {
        Some(Rate {
            per_second: NonZeroU32::new(per_second)?,
            burst: NonZeroU32::new(burst)?,
        })
    }
}

/// A partner's lifecycle state (`partners.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartnerStatus {
    /// May call.
    Active,
    /// Temporarily refused; keys and settings kept.
    Suspended,
    /// Gone for good; the row stays for history.
    Offboarded,
}

impl PartnerStatus {
    /// The value stored in `partners.status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            PartnerStatus::Active => "active",
            PartnerStatus::Suspended => "suspended",
            PartnerStatus::Offboarded => "offboarded",
        }
    }

    /// Parses the stored value.
    pub fn from_db(s: &str) -> Option<Self> {
        [
            PartnerStatus::Active,
            PartnerStatus::Suspended,
            PartnerStatus::Offboarded,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

// === impl Snapshot ===

impl Snapshot {
    /// No partners: what the gateway holds before the first load (revision `-1`, which no
    /// database has, so the first poll always loads).
    pub fn empty() -> Snapshot {
        Snapshot {
            revision: -1,
            partners: HashMap::new(),
            groups: HashMap::new(),
            loaded_at: UNIX_EPOCH,
        }
    }

    /// The rate that applies to one member: its own, else its group's per-member rate.
    pub fn member_rate(&self, partner: &PartnerEntry) -> Option<Rate> {
        partner.rate.or_else(|| {
            partner
                .group
                .as_ref()
                .and_then(|g| self.groups.get(g))
                .and_then(|g| g.rate)
        })
    }
}

// === impl PartnerEntry ===

impl PartnerEntry {
    /// Whether the grants allow `permission` (e.g. `accounts.create`): an exact grant, `*`, or
    /// `domain.*` when the permission starts with `domain.`.
    pub fn permits(&self, permission: &str) -> bool {
        self.grants.iter().any(|grant| {
            grant == "*"
                || grant == permission
                || grant.strip_suffix(".*").is_some_and(|domain| {
                    permission
                        .strip_prefix(domain)
                        .is_some_and(|rest| rest.starts_with('.'))
                })
        })
    }
}

/// Loads the snapshot in one read transaction.
pub(crate) fn load(conn: &mut AnyConnection) -> Result<Snapshot, StoreError> {
    let is_pg = matches!(conn, AnyConnection::Postgresql(_));
    conn.transaction(|c| {
        if is_pg {
            // One snapshot for all the queries below (the default, read committed, takes one
            // per statement). SQLite's read transaction is a single snapshot already.
            c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        }
        let revision = read_revision(c)?;
        let group_rows = groups::table
            .select(GroupRow::as_select())
            .order(groups::name)
            .load(c)?;
        let partner_rows = partners::table
            .select(PartnerRow::as_select())
            .order(partners::id)
            .load(c)?;
        let key_rows = api_keys::table
            .filter(api_keys::revoked_at.is_null())
            .select(KeyRow::as_select())
            .order(api_keys::id)
            .load(c)?;
        let allow_rows: Vec<(i64, String)> = allow_entries::table
            .select((allow_entries::partner_id, allow_entries::cidr))
            .order(allow_entries::id)
            .load(c)?;
        let grant_rows: Vec<(i64, String)> = grants::table
            .select((grants::partner_id, grants::permission))
            .order(grants::id)
            .load(c)?;
        let client_auth = super::client_certs::load_settings(c)?;
        let callback_rows: Vec<(i64, i32, i32)> = callback_rates::table
            .select((
                callback_rates::partner_id,
                callback_rates::rate_per_second,
                callback_rates::burst,
            ))
            .load(c)?;
        assemble(
            revision,
            Rows {
                group_rows,
                partner_rows,
                key_rows,
                allow_rows,
                grant_rows,
                client_auth,
                callback_rows,
            },
        )
    })
}

/// What [`load`] read in its one transaction, for [`assemble`].
struct Rows {
    group_rows: Vec<GroupRow>,
    partner_rows: Vec<PartnerRow>,
    key_rows: Vec<KeyRow>,
    allow_rows: Vec<(i64, String)>,
    grant_rows: Vec<(i64, String)>,
    client_auth: HashMap<i64, Arc<crate::certificate::ClientAuth>>,
    callback_rows: Vec<(i64, i32, i32)>,
}

fn assemble(revision: i64, rows: Rows) -> Result<Snapshot, StoreError> {
    let Rows {
        group_rows,
        partner_rows,
        key_rows,
        allow_rows,
        grant_rows,
        mut client_auth,
        callback_rows,
    } = rows;
    let mut groups = HashMap::with_capacity(group_rows.len());
    for g in group_rows {
        let rate = stored_rate("groups", &g.name, g.rate_per_second, g.burst)?;
        let aggregate = stored_rate(
            "groups",
            &g.name,
            g.aggregate_rate_per_second,
            g.aggregate_burst,
        )?;
        groups.insert(
            g.name.clone(),
            GroupEntry {
                name: g.name,
                rate,
                aggregate,
            },
        );
    }

    let mut by_row_id: HashMap<i64, PartnerEntry> = HashMap::with_capacity(partner_rows.len());
    for p in partner_rows {
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "partners",
            key: p.partner_id.clone(),
            reason,
        };
        let status = PartnerStatus::from_db(&p.status)
            .ok_or_else(|| corrupt(format!("unknown status {:?}", p.status)))?;
        let rate = stored_rate("partners", &p.partner_id, p.rate_per_second, p.burst)?;
        let feature_defaults = match &p.feature_defaults {
            None => None,
            Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v @ serde_json::Value::Object(_)) => Some(v),
                Ok(_) => return Err(corrupt("feature_defaults is not a JSON object".into())),
                Err(e) => return Err(corrupt(format!("feature_defaults: {e}"))),
            },
        };
        by_row_id.insert(
            p.id,
            PartnerEntry {
                partner_id: p.partner_id,
                name: p.name,
                status,
                group: p.group_name,
                country: p.country,
                keys: Vec::new(),
                allow: Vec::new(),
                grants: Vec::new(),
                rate,
                callback_rate: None,
                callback_url: p.callback_url,
                callback_ca_pem: p.callback_ca_pem,
                feature_defaults,
                client_auth: client_auth.remove(&p.id),
            },
        );
    }

    for k in key_rows {
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "api_keys",
            key: k.id.to_string(),
            reason,
        };
        let kind = KeyKind::from_db(&k.kind)
            .ok_or_else(|| corrupt(format!("unknown kind {:?}", k.kind)))?;
        let hash = KeyHash::try_from(k.hash.as_slice())
            .map_err(|_| corrupt(format!("hash is {} bytes, not 32", k.hash.len())))?;
        if let Some(p) = by_row_id.get_mut(&k.partner_id) {
            p.keys.push(KeyEntry {
                id: k.id,
                kind,
                prefix: k.prefix,
                hash,
                expires_at: k.expires_at,
            });
        }
    }
    for (partner, cidr) in allow_rows {
        let net: ipnet::IpNet = cidr.parse().map_err(|e| StoreError::Corrupt {
            table: "allow_entries",
            key: cidr.clone(),
            reason: format!("not a network: {e}"),
        })?;
        if let Some(p) = by_row_id.get_mut(&partner) {
            p.allow.push(net);
        }
    }
    for (partner, permission) in grant_rows {
        if let Some(p) = by_row_id.get_mut(&partner) {
            p.grants.push(permission);
        }
    }
    for (partner, per_second, burst) in callback_rows {
        if let Some(p) = by_row_id.get_mut(&partner) {
            p.callback_rate = stored_rate(
                "callback_rates",
                &p.partner_id,
                Some(per_second),
                Some(burst),
            )?;
        }
    }

    Ok(Snapshot {
        revision,
        partners: by_row_id
            .into_values()
            .map(|p| (p.partner_id.clone(), Arc::new(p)))
            .collect(),
        groups,
        loaded_at: SystemTime::now(),
    })
}

/// A stored (rate, burst) pair: both NULL, or both positive.
pub(super) fn stored_rate(
    table: &'static str,
    key: &str,
    per_second: Option<i32>,
    burst: Option<i32>,
) -> Result<Option<Rate>, StoreError> {
    match (per_second, burst) {
        (None, None) => Ok(None),
        (Some(r), Some(b)) => u32::try_from(r)
            .ok()
            .zip(u32::try_from(b).ok())
            .and_then(|(r, b)| Rate::new(r, b))
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                table,
                key: key.to_owned(),
                reason: format!("rate {r}/s burst {b} is not positive"),
            }),
        _ => Err(StoreError::Corrupt {
            table,
            key: key.to_owned(),
            reason: "rate and burst must both be set or both be NULL".into(),
        }),
    }
}

/// How the refresher is doing, for `/readyz`.
#[derive(Clone, Debug, Default)]
pub struct RefreshHealth {
    /// The last time the database confirmed the snapshot is current (a poll or a load
    /// succeeded). `None` until the first success.
    pub last_success: Option<SystemTime>,
    /// The error of the latest poll, if it failed (cleared by the next success). Never
    /// contains a password.
    pub last_error: Option<String>,
    /// When `last_error` happened.
    pub last_error_at: Option<SystemTime>,
}

/// The published snapshot: lock-free reads on the hot path, replaced whole by the refresher.
#[derive(Debug)]
pub struct SnapshotCell {
    current: ArcSwap<Snapshot>,
    health: ArcSwap<RefreshHealth>,
    refreshes: RefreshCounts,
}

/// What woke the refresher for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A notification on the listening connection (PostgreSQL).
    Push,
    /// The poll of `meta.revision` every `refresh_interval_ms`.
    Poll,
}

/// How changes reach this process, for `/metrics`.
#[derive(Debug, Default)]
struct RefreshCounts {
    /// A listening connection is configured (PostgreSQL).
    push_enabled: AtomicBool,
    /// The listening connection is up.
    push_connected: AtomicBool,
    /// Snapshots reloaded because a notification said so first.
    pushed: AtomicU64,
    /// Snapshots reloaded because the poll saw the change first.
    polled: AtomicU64,
}

impl Default for SnapshotCell {
    fn default() -> Self {
        SnapshotCell::new(Snapshot::empty())
    }
}

// === impl SnapshotCell ===

impl SnapshotCell {
    /// A cell holding `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        SnapshotCell {
            current: ArcSwap::from_pointee(snapshot),
            health: ArcSwap::from_pointee(RefreshHealth::default()),
            refreshes: RefreshCounts::default(),
        }
    }

    /// Whether changes reach this process by notification right now (PostgreSQL with its
    /// listening connection up); otherwise the poll alone brings them.
    pub fn push_connected(&self) -> bool {
        self.refreshes.push_connected.load(Ordering::Relaxed)
    }

    /// Snapshots reloaded so far, by what noticed the change first.
    pub fn refreshes(&self, trigger: Trigger) -> u64 {
        match trigger {
            Trigger::Push => self.refreshes.pushed.load(Ordering::Relaxed),
            Trigger::Poll => self.refreshes.polled.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn set_push_enabled(&self, enabled: bool) {
        self.refreshes
            .push_enabled
            .store(enabled, Ordering::Relaxed);
    }

    pub(crate) fn set_push_connected(&self, connected: bool) {
        self.refreshes
            .push_connected
            .store(connected, Ordering::Relaxed);
    }

    fn count_refresh(&self, trigger: Trigger) {
        let counter = match trigger {
            Trigger::Push => &self.refreshes.pushed,
            Trigger::Poll => &self.refreshes.polled,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text for how changes arrive: `partnergate_snapshot_push_enabled`,
    /// `partnergate_snapshot_push_connected` (1/0) and
    /// `partnergate_snapshot_refreshes_total{trigger="push"|"poll"}`.
    pub fn render_refresh_metrics(&self, out: &mut String) {
        let flag = |b: &AtomicBool| u8::from(b.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP partnergate_snapshot_push_enabled 1 when changes are pushed by notification \
             (PostgreSQL), 0 when only polled (SQLite).\n\
             # TYPE partnergate_snapshot_push_enabled gauge\n\
             partnergate_snapshot_push_enabled {}\n\
             # HELP partnergate_snapshot_push_connected 1 while the notification connection is \
             up; 0: changes arrive by the poll (refresh_interval_ms).\n\
             # TYPE partnergate_snapshot_push_connected gauge\n\
             partnergate_snapshot_push_connected {}\n\
             # HELP partnergate_snapshot_refreshes_total Partner snapshots reloaded, by what \
             noticed the change first.\n\
             # TYPE partnergate_snapshot_refreshes_total counter\n\
             partnergate_snapshot_refreshes_total{{trigger=\"push\"}} {}\n\
             partnergate_snapshot_refreshes_total{{trigger=\"poll\"}} {}",
            flag(&self.refreshes.push_enabled),
            flag(&self.refreshes.push_connected),
            self.refreshes.pushed.load(Ordering::Relaxed),
            self.refreshes.polled.load(Ordering::Relaxed),
        );
    }

    /// The current snapshot (lock-free; hold the guard only for the request).
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// Publishes a new snapshot.
    pub fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// The refresher's state.
    pub fn health(&self) -> Arc<RefreshHealth> {
        self.health.load_full()
    }

    /// How long since the database last confirmed the snapshot (`None`: never).
    pub fn staleness(&self, now: SystemTime) -> Option<Duration> {
        self.health
            .load()
            .last_success
            .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO))
    }

    fn record_success(&self) {
        self.health.store(Arc::new(RefreshHealth {
            last_success: Some(SystemTime::now()),
            last_error: None,
            last_error_at: None,
        }));
    }

    /// Records a failure; returns whether it differs from the previous one (worth a warning).
    fn record_error(&self, error: String) -> bool {
        let previous = self.health.load_full();
        let new = previous.last_error.as_deref() != Some(error.as_str());
        self.health.store(Arc::new(RefreshHealth {
            last_success: previous.last_success,
            last_error: Some(error),
            last_error_at: Some(SystemTime::now()),
        }));
        new
    }
}

/// Keeps `cell` current: every `every` (see [`DEFAULT_REFRESH_INTERVAL`]) it polls
/// [`Store::revision`] and, when it differs from the cell's, loads and publishes a new snapshot.
/// On PostgreSQL it also listens for the notification every revision bump sends at commit
/// (`push`) and checks at once when one arrives; the poll stays as the fallback. One task does
/// both, so reloads never overlap and a newer snapshot is never replaced by an older one.
/// Database work runs on `spawn_blocking`, never on an async worker. On errors the previous
/// snapshot stays published; the error is logged (at `warn` when it first appears or changes)
/// and recorded in [`SnapshotCell::health`]. Returns when `shutdown` becomes `true` or its sender
/// is dropped.
pub async fn run_refresher(
    store: Store,
    cell: Arc<SnapshotCell>,
    every: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    run_refresher_with(store, cell, every, shutdown, |_| {}).await;
}

/// [`run_refresher`], calling `installed` with every new snapshot right after it is published
/// (the gateway drops the throttle state of partners and groups that are gone).
pub async fn run_refresher_with(
    store: Store,
    cell: Arc<SnapshotCell>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    installed: impl Fn(&Snapshot) + Send + 'static,
) {
    let every = every.max(MIN_REFRESH_INTERVAL);
    let push = store.listen_url().and_then(|url| {
        super::push::start(
            store.clone(),
            url,
            Arc::clone(&cell),
            every,
            shutdown.clone(),
        )
    });
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        let trigger = tokio::select! {
            _ = tick.tick() => Trigger::Poll,
            () = pushed(push.as_deref()) => Trigger::Push,
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };

        let known = cell.load().revision;
        let db = store.clone();
        let polled =
            tokio::task::spawn_blocking(move || -> Result<Option<Snapshot>, StoreError> {
                if db.revision()? == known {
                    return Ok(None);
                }
                db.load_snapshot().map(Some)
            })
            .await;

        let error = match polled {
            Ok(Ok(None)) => {
                cell.record_success();
                continue;
            }
            Ok(Ok(Some(snapshot))) => {
                tracing::info!(
                    revision = snapshot.revision,
                    previous = known,
                    partners = snapshot.partners.len(),
                    ?trigger,
                    "partner snapshot reloaded"
                );
                installed(&snapshot);
                cell.store(snapshot);
                cell.record_success();
                cell.count_refresh(trigger);
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(join) => format!("refresh task failed: {join}"),
        };
        if cell.record_error(error.clone()) {
            tracing::warn!(
                db = %store.redacted_url(),
                %error,
                revision = known,
                "partner snapshot refresh failed; keeping the previous snapshot"
            );
        } else {
            tracing::debug!(db = %store.redacted_url(), %error, "partner snapshot refresh still failing");
        }
    }
}

/// Completes when the listening thread signals a notification; never without one.
async fn pushed(wake: Option<&tokio::sync::Notify>) {
    match wake {
        Some(w) => w.notified().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
