//! Black-box tests of `partnergate::store` and `partnergate::secret` on SQLite (a fresh temp file
//! per test) and PostgreSQL (a fresh database per test on the server named by
//! `PARTNERGATE_TEST_POSTGRES_URL`; `tests/run.sh` starts a throwaway one). Without that
//! variable the `postgres` tests fail: they never pass silently.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::BTreeSet;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use partnergate::generated::partner::Operation;
use partnergate::secret::{self, KeyKind};
use partnergate::store::{
    run_refresher, Backend, NewPartner, NodeBeat, OwnCount, PartnerStatus, PoolUse, Rate, Role,
    SessionRecord, SessionSlot, Snapshot, SnapshotCell, Store, StoreError, FORGET_AFTER,
    GONE_AFTER,
};

fn known() -> Vec<&'static str> {
    Operation::ALL.map(|o| o.permission()).to_vec()
}

// === test databases ===

#[path = "common/db.rs"]
#[allow(dead_code, reason = "shared with tests/admin_cli.rs")]
mod db;
use db::{random_hex, with_database, Db, PG_ENV};

impl Db {
    fn sqlite() -> Db {
        logs();
        Db::sqlite_tagged("store")
    }

    fn postgres() -> Db {
        logs();
        Db::postgres_tagged("test")
    }

    fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres { .. } => Backend::Postgres,
        }
    }

    fn open(&self) -> Store {
        Store::open(&self.url()).unwrap_or_else(|e| panic!("open {}: {e}", self.url()))
    }

    /// Runs raw SQL around the store (to plant data it would refuse to write).
    fn raw(&self, sql: &str) {
        match self {
            Db::Sqlite { path } => SqliteConnection::establish(&path.display().to_string())
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
            Db::Postgres { url, .. } => PgConnection::establish(url)
                .unwrap()
                .batch_execute(sql)
                .unwrap(),
        }
    }
}

/// Runs each body once on SQLite and once on PostgreSQL: `<name>::sqlite`, `<name>::postgres`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::Db::sqlite());
            }
            #[test]
            fn postgres() {
                super::$name(&super::Db::postgres());
            }
        }
    )*};
}

both_backends!(
    migrations_run_on_open_and_reopen_is_idempotent,
    backend_follows_the_scheme,
    created_keys_match_stored_hashes_and_are_not_stored,
    validation_errors_name_the_field_and_write_nothing,
    revoke_removes_the_key_and_bumps_the_revision,
    grants_permit_exact_domain_and_star,
    groups_rates_and_status,
    concurrent_onboarding_does_not_fail,
    refresher_picks_up_a_change_from_another_handle,
    refresher_keeps_the_snapshot_when_loading_fails,
    dashboard_reads_keys_and_usage_buckets,
    usage_older_than_the_cut_off_is_pruned,
    usage_counts_and_buckets_are_read_from_one_snapshot,
    closing_waits_for_every_handle_and_the_pool,
    dashboard_sessions_are_shared_taken_once_expire_and_are_bounded,
    nodes_heartbeat_list_gone_and_prune,
    throttle_counts_are_exchanged_between_nodes_and_pruned_with_them,
);

fn partner(name: &str) -> NewPartner {
    NewPartner {
        name: name.to_owned(),
        country: Some("DE".into()),
        allow: vec!["192.0.2.0/24".parse().unwrap()],
        grants: vec!["accounts.*".into()],
        ..NewPartner::default()
    }
}

// === cases (each runs on both backends) ===

/// A heartbeat inserts, then updates, the node's row, stamped with the database's clock, without
/// touching the partner-data revision; a row silent for longer than `GONE_AFTER` is gone, and
/// rows silent for longer than `FORGET_AFTER` are deleted by `prune_nodes`.
fn nodes_heartbeat_list_gone_and_prune(db: &Db) {
    let store = db.open();
    assert!(store.list_nodes().unwrap().is_empty());
    let mut beat = NodeBeat {
        node_id: "n-0000000000000001".into(),
        listen: "127.0.0.1:8080".into(),
        version: "9.9.9".into(),
        started_at: 1_700_000_000,
        revision: 3,
        requests_total: 10,
        requests_per_second: 2.5,
        push_connected: false,
    };
    store.heartbeat(&beat).unwrap();
    beat.revision = 4;
    beat.requests_total = 12;
    beat.requests_per_second = 0.75;
    beat.push_connected = true;
    store.heartbeat(&beat).unwrap();
    let nodes = store.list_nodes().unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0].beat, beat);
    assert!((0..2000).contains(&nodes[0].silent_ms), "{nodes:?}");
    assert!(!nodes[0].gone());
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    assert!(
        (nodes[0].last_seen_ms - now_ms).abs() < 5000,
        "the database's clock is this machine's: {} vs {now_ms}",
        nodes[0].last_seen_ms
    );
    assert_eq!(store.revision().unwrap(), 0, "not partner data");

    // Planted: a node silent for just over GONE_AFTER, one silent for longer than FORGET_AFTER.
    let seen = nodes[0].last_seen_ms;
    let gone = seen - i64::try_from(GONE_AFTER.as_millis()).unwrap() - 1000;
    let forgotten = seen - i64::try_from(FORGET_AFTER.as_millis()).unwrap() - 60_000;
    db.raw(&format!(
        "INSERT INTO nodes (node_id, listen, version, started_at, last_seen_ms, revision, \
         requests_total, requests_per_second, push_connected) VALUES \
         ('n-gone', '10.0.0.2:8080', '1', 1, {gone}, 1, 0, 0.0, false), \
         ('n-forgotten', '10.0.0.3:8080', '1', 0, {forgotten}, 1, 0, 0.0, false);"
    ));
    let nodes = store.list_nodes().unwrap();
    let states: Vec<(&str, bool)> = nodes
        .iter()
        .map(|n| (n.beat.node_id.as_str(), n.gone()))
        .collect();
    assert_eq!(
        states,
        [
            ("n-forgotten", true),
            ("n-gone", true),
            ("n-0000000000000001", false)
        ],
        "oldest start first"
    );
    assert_eq!(store.prune_nodes().unwrap(), 1);
    let left: Vec<String> = store
        .list_nodes()
        .unwrap()
        .into_iter()
        .map(|n| n.beat.node_id)
        .collect();
    assert_eq!(left, ["n-gone", "n-0000000000000001"]);
    assert_eq!(store.prune_nodes().unwrap(), 0);
}

/// Two nodes exchange throttle counts: each writes its totals and reads only the other's rows,
/// only those changed since the time asked for; an update keeps the row's creation time; the
/// counts of a node that never registered (or left long ago) are deleted by `prune_nodes`.
fn throttle_counts_are_exchanged_between_nodes_and_pruned_with_them(db: &Db) {
    let store = db.open();
    let count = |scope, key: &str, admitted| OwnCount {
        scope,
        key: key.into(),
        admitted,
    };
    let a = store
        .exchange_throttle_usage("n-a", &[count("partner", "P", 3)], None)
        .unwrap();
    assert!(a.peers.is_empty(), "its own rows are not read back: {a:?}");
    let b = store
        .exchange_throttle_usage(
            "n-b",
            &[count("partner", "P", 5), count("group", "g", 2)],
            None,
        )
        .unwrap();
    assert_eq!(b.peers.len(), 1);
    assert_eq!(
        (
            b.peers[0].node_id.as_str(),
            b.peers[0].scope.as_str(),
            b.peers[0].key.as_str(),
            b.peers[0].admitted
        ),
        ("n-a", "partner", "P", 3)
    );
    let created = b.peers[0].created_ms;
    std::thread::sleep(Duration::from_millis(20));
    let a2 = store
        .exchange_throttle_usage("n-a", &[count("partner", "P", 9)], Some(a.now_ms - 1))
        .unwrap();
    let mut seen: Vec<(String, i64)> = a2
        .peers
        .iter()
        .map(|p| (p.key.clone(), p.admitted))
        .collect();
    seen.sort();
    assert_eq!(seen, [("P".to_string(), 5), ("g".to_string(), 2)]);
    // Only what changed after the time asked for.
    let b2 = store
        .exchange_throttle_usage("n-b", &[], Some(a2.now_ms - 1))
        .unwrap();
    assert_eq!(b2.peers.len(), 1, "{b2:?}");
    assert_eq!(b2.peers[0].admitted, 9);
    assert_eq!(
        b2.peers[0].created_ms, created,
        "an update keeps the creation time"
    );
    assert!(b2.peers[0].updated_ms > created);
    let none = store
        .exchange_throttle_usage("n-b", &[], Some(b2.now_ms + 60_000))
        .unwrap();
    assert!(none.peers.is_empty());
    assert_eq!(store.revision().unwrap(), 0, "not partner data");

    // n-a registers (heartbeat); n-b never did: its counts go with the pruning.
    store
        .heartbeat(&NodeBeat {
            node_id: "n-a".into(),
            listen: "127.0.0.1:8080".into(),
            version: "1".into(),
            started_at: 1,
            revision: 0,
            requests_total: 0,
            requests_per_second: 0.0,
            push_connected: false,
        })
        .unwrap();
    store.prune_nodes().unwrap();
    let left = store.exchange_throttle_usage("n-x", &[], None).unwrap();
    let nodes: Vec<&str> = left.peers.iter().map(|p| p.node_id.as_str()).collect();
    assert_eq!(nodes, ["n-a"]);
}

/// Dashboard sessions through two handles on one database (two nodes): what one stores the
/// other reads; a slot is taken once even by racing handles; a session past its expiry, or
/// older than the reader's lifetime, is refused and deleted; logout deletes it for both; a
/// login deletes expired sessions and keeps at most `max_live`, dropping the oldest.
fn dashboard_sessions_are_shared_taken_once_expire_and_are_bounded(db: &Db) {
    let (a, b) = (db.open(), db.open());
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let h = |n: u8| secret::hash(&format!("session-{n}"));
    let live = |s: &Store, n: u8| {
        s.open_dashboard_session(&h(n), now, now - 3_600_000)
            .unwrap()
    };

    a.create_operator("test", "tester", Role::Viewer, "x")
        .unwrap();
    let op = a.login_candidate("tester").unwrap().unwrap().0;
    a.create_dashboard_session(&h(1), op.id, now, now + 60_000, 10)
        .unwrap();
    assert_eq!(
        live(&b, 1).unwrap(),
        SessionRecord {
            created_at_ms: now,
            expires_at_ms: now + 60_000,
            flash: None,
            operator: op.clone(),
        }
    );
    assert!(live(&b, 2).is_none(), "unknown hash");
    let revision = a.revision().unwrap();

    // The flash: written by one, taken with the session by the other, once.
    assert!(a
        .put_dashboard_slot(&h(1), SessionSlot::Flash, b"sealed flash")
        .unwrap());
    assert_eq!(
        live(&b, 1).unwrap().flash.as_deref(),
        Some(&b"sealed flash"[..])
    );
    assert_eq!(live(&a, 1).unwrap().flash, None);
    // The reveal: taken once, by whichever handle comes first, even racing.
    for round in 0..5u8 {
        assert!(a
            .put_dashboard_slot(&h(1), SessionSlot::Reveal, &[round; 40])
            .unwrap());
        let takers: Vec<_> = (0..4)
            .map(|i| {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                let hash = h(1);
                std::thread::spawn(move || s.take_dashboard_slot(&hash, SessionSlot::Reveal))
            })
            .collect();
        let got: Vec<Vec<u8>> = takers
            .into_iter()
            .filter_map(|t| t.join().unwrap().unwrap())
            .collect();
        assert_eq!(got, vec![vec![round; 40]], "round {round}");
    }
    assert_eq!(
        a.take_dashboard_slot(&h(1), SessionSlot::Flash).unwrap(),
        None
    );
    assert!(!a
        .put_dashboard_slot(&h(9), SessionSlot::Flash, b"x")
        .unwrap());
    assert_eq!(
        a.revision().unwrap(),
        revision,
        "sessions are not partner data"
    );

    // Expiry, read against the stored time: refused and deleted.
    a.create_dashboard_session(&h(2), op.id, now, now + 1_000, 10)
        .unwrap();
    assert!(live(&b, 2).is_some());
    assert!(b
        .open_dashboard_session(&h(2), now + 1_000, now - 3_600_000)
        .unwrap()
        .is_none());
    assert!(live(&a, 2).is_none(), "deleted when read after its expiry");
    // Older than the reader's own lifetime: refused and deleted.
    a.create_dashboard_session(&h(3), op.id, now - 5_000, now + 60_000, 10)
        .unwrap();
    assert!(b
        .open_dashboard_session(&h(3), now, now - 5_000)
        .unwrap()
        .is_none());
    assert!(live(&a, 3).is_none());

    // Logout through one handle: gone for both.
    assert!(b.delete_dashboard_session(&h(1)).unwrap());
    assert!(live(&a, 1).is_none());
    assert!(!a.delete_dashboard_session(&h(1)).unwrap());
    assert_eq!(a.dashboard_session_count().unwrap(), 0);

    // A login deletes the expired rows (never read again) and keeps the newest `max_live`.
    a.create_dashboard_session(&h(10), op.id, now - 10_000, now - 1, 3)
        .unwrap();
    assert_eq!(a.dashboard_session_count().unwrap(), 1);
    for n in 11..=15u8 {
        let at = now + i64::from(n);
        b.create_dashboard_session(&h(n), op.id, at, at + 60_000, 3)
            .unwrap();
        if n == 11 {
            assert_eq!(
                a.dashboard_session_count().unwrap(),
                1,
                "the expired one went"
            );
        }
    }
    assert_eq!(a.dashboard_session_count().unwrap(), 3);
    for n in 10..=12 {
        assert!(live(&a, n).is_none(), "session {n} dropped");
    }
    for n in 13..=15 {
        assert!(live(&a, n).is_some(), "session {n} kept");
    }
}

/// `Closing::wait` (what `main` calls before exiting) returns only once no handle is left and
/// the pool's threads are idle; a command-sized store reads and writes like a service's.
fn closing_waits_for_every_handle_and_the_pool(db: &Db) {
    let store = Store::open_for(&db.url(), PoolUse::Command).unwrap();
    let created = store.create_partner(partner("Acme"), &known()).unwrap();
    assert_eq!(store.revision().unwrap(), 1);
    let clone = store.clone();
    let (early, late) = (store.closing(), store.closing());
    drop(store);
    // A handle is left: its pool could still connect after the wait.
    assert!(!early.wait(Duration::from_millis(50)));
    let detail = clone.partner_detail(&created.partner_id).unwrap();
    assert_eq!(detail.partner.name, "Acme");
    drop(clone);
    let started = Instant::now();
    assert!(late.wait(Duration::from_secs(15)));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A service's pool connects ahead of time on its threads; the wait outlasts that too.
    let service = db.open();
    assert_eq!(service.revision().unwrap(), 1);
    let closing = service.closing();
    drop(service);
    assert!(closing.wait(Duration::from_secs(15)));
}

fn migrations_run_on_open_and_reopen_is_idempotent(db: &Db) {
    let store = db.open();
    assert_eq!(store.backend(), db.backend());
    assert_eq!(store.revision().unwrap(), 0);
    let snap = store.load_snapshot().unwrap();
    assert_eq!(snap.revision, 0);
    assert!(snap.partners.is_empty() && snap.groups.is_empty());
    let created = store.create_partner(partner("Acme"), &known()).unwrap();
    drop(store);

    for _ in 0..2 {
        let again = db.open();
        assert_eq!(again.revision().unwrap(), 1);
        let snap = again.load_snapshot().unwrap();
        assert!(snap.partners.contains_key(&created.partner_id));
    }
}

fn backend_follows_the_scheme(db: &Db) {
    let urls: Vec<String> = match db {
        Db::Sqlite { path } => {
            let p = path.display().to_string();
            vec![p.clone(), format!("sqlite://{p}"), format!("file:{p}")]
        }
        Db::Postgres { url, .. } => {
            let rest = url.split_once("://").unwrap().1;
            vec![format!("postgres://{rest}"), format!("postgresql://{rest}")]
        }
    };
    let first = Store::open(&urls[0]).unwrap();
    let created = first.create_partner(partner("Acme"), &known()).unwrap();
    for url in &urls {
        let store = Store::open(url).unwrap();
        assert_eq!(store.backend(), db.backend(), "{url}");
        let snap = store.load_snapshot().unwrap();
        assert!(snap.partners.contains_key(&created.partner_id), "{url}");
    }
}

fn created_keys_match_stored_hashes_and_are_not_stored(db: &Db) {
    let store = db.open();
    let mut new = partner("Acme Telecom GmbH");
    new.key_ttl = Some(Duration::from_secs(3600));
    new.grants = vec![
        "accounts.*".into(),
        "devices.get".into(),
        "accounts.*".into(),
    ];
    new.allow = vec![
        "192.0.2.0/24".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
        "192.0.2.0/24".parse().unwrap(),
    ];
    let created = store.create_partner(new, &known()).unwrap();
    assert_eq!(created.partner_id, "PARTNER-0001");
    let api = created.api_key.expose().to_owned();
    let cb = created.callback_key.expose().to_owned();
    assert!(api.starts_with("pgk_") && cb.starts_with("pgc_"));

    // Keys match the stored hashes, of the right kind, and only those.
    let snap = store.load_snapshot().unwrap();
    assert_eq!(snap.revision, 1);
    let p = &snap.partners["PARTNER-0001"];
    assert_eq!(p.name, "Acme Telecom GmbH");
    assert_eq!(p.status, PartnerStatus::Active);
    assert_eq!(p.country.as_deref(), Some("DE"));
    assert_eq!(p.keys.len(), 2);
    for (key, kind) in [(&api, KeyKind::Partner), (&cb, KeyKind::Callback)] {
        let h = secret::hash(key);
        let entry = p
            .keys
            .iter()
            .find(|k| secret::ct_eq(&h, &k.hash))
            .expect("the returned key matches a stored hash");
        assert_eq!(entry.kind, kind);
        assert_eq!(entry.prefix, secret::display_prefix(key));
        let expires = entry.expires_at.expect("key_ttl sets expires_at");
        let now = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap();
        assert!(
            (now + 3590..=now + 3600).contains(&expires),
            "{expires} vs {now}"
        );
    }
    assert!(!p
        .keys
        .iter()
        .any(|k| secret::ct_eq(&k.hash, &secret::hash("pgk_not-the-key"))));
    let allow: BTreeSet<String> = p.allow.iter().map(ToString::to_string).collect();
    assert_eq!(
        allow,
        BTreeSet::from(["192.0.2.0/24".to_owned(), "2001:db8::/32".to_owned()])
    );
    let grants: BTreeSet<&str> = p.grants.iter().map(String::as_str).collect();
    assert_eq!(grants, BTreeSet::from(["accounts.*", "devices.get"]));

    // Printed: only prefixes.
    let shown = format!("{created:?} {} {}", created.api_key, created.callback_key);
    assert!(!shown.contains(&api) && !shown.contains(&cb), "{shown}");
    assert!(shown.contains(&api[..8]));
    // Logged (by any test in this binary so far): only prefixes.
    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    let ours = logs
        .lines()
        .find(|l| l.contains("partner onboarded") && l.contains(&api[..8]))
        .unwrap_or_else(|| panic!("onboarding is logged with the key prefix: {logs}"));
    assert!(ours.contains(&cb[..8]), "{ours}");
    assert!(!logs.contains(&api) && !logs.contains(&cb), "{logs}");
    assert!(
        !logs.contains(&api[8..16]),
        "nothing past the prefix: {ours}"
    );

    // Stored: no plaintext in the SQLite files (database, WAL, shared memory).
    if let Db::Sqlite { path } = db {
        drop(store);
        let bytes = sqlite_file_bytes(path);
        let hash = secret::hash(&api);
        assert!(
            contains(&bytes, &hash),
            "the hash is in the file (the search works)"
        );
        assert!(
            contains(&bytes, &api.as_bytes()[..8]),
            "the prefix is stored"
        );
        for key in [&api, &cb] {
            assert!(
                !contains(&bytes, key.as_bytes()),
                "key plaintext in the SQLite file"
            );
            assert!(
                !contains(&bytes, &key.as_bytes()[8..]),
                "key tail in the SQLite file"
            );
        }
    }

    // A second generated id follows the row id; a given id is used; a taken one conflicts.
    let store = db.open();
    let second = store.create_partner(partner("Beta"), &known()).unwrap();
    assert_eq!(second.partner_id, "PARTNER-0002");
    let mut given = partner("Gamma");
    given.partner_id = Some("GAMMA-1".into());
    assert_eq!(
        store
            .create_partner(given.clone(), &known())
            .unwrap()
            .partner_id,
        "GAMMA-1"
    );
    let revision = store.revision().unwrap();
    let err = store.create_partner(given, &known()).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("GAMMA-1")),
        "{err}"
    );
    assert_eq!(
        store.revision().unwrap(),
        revision,
        "a conflict writes nothing"
    );
    assert_eq!(store.load_snapshot().unwrap().partners.len(), 3);
}

fn sqlite_file_bytes(path: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.to_path_buf().into_os_string();
        p.push(suffix);
        if let Ok(b) = std::fs::read(&p) {
            all.extend(b);
        }
    }
    assert!(!all.is_empty());
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[path = "common/logs.rs"]
mod logs;
use logs::logs;

fn validation_errors_name_the_field_and_write_nothing(db: &Db) {
    let store = db.open();
    let before = store.revision().unwrap();
    type Edit = fn(&mut NewPartner);
    let cases: [(&str, Edit); 13] = [
        ("name", |p| p.name = String::new()),
        ("name", |p| p.name = "x".repeat(201)),
        ("name", |p| p.name = " Acme".into()),
        ("country", |p| p.country = Some("de".into())),
        ("country", |p| p.country = Some("DEU".into())),
        ("partner_id", |p| p.partner_id = Some("partner-1".into())),
        ("partner_id", |p| p.partner_id = Some("AB".into())),
        ("allow", |p| p.allow.clear()),
        ("allow", |p| p.allow = vec!["192.0.2.7/24".parse().unwrap()]),
        ("grants", |p| p.grants = vec!["billing.*".into()]),
        ("grants", |p| p.grants = vec!["accounts.delete".into()]),
        ("key_ttl", |p| p.key_ttl = Some(Duration::ZERO)),
        // Checked inside the transaction: the revision bump is rolled back too.
        ("group", |p| p.group = Some("no-such-group".into())),
    ];
    for (field, edit) in cases {
        let mut new = partner("Acme");
        edit(&mut new);
        match store.create_partner(new, &known()) {
            Err(StoreError::Invalid { field: f, reason }) => {
                assert_eq!(f, field, "{reason}");
                let msg = StoreError::Invalid { field: f, reason }.to_string();
                assert!(msg.contains(field), "{msg}");
            }
            other => panic!("{field}: expected Invalid, got {other:?}"),
        }
        assert_eq!(
            store.revision().unwrap(),
            before,
            "{field}: revision unchanged"
        );
        assert!(
            store.load_snapshot().unwrap().partners.is_empty(),
            "{field}: no partner row"
        );
    }
    // Updates of an unknown partner: NotFound, nothing written.
    let nf = |r: Result<(), StoreError>| {
        assert!(
            matches!(r, Err(StoreError::NotFound { what: "partner", ref key }) if key == "PARTNER-9999"),
            "{r:?}"
        );
    };
    nf(store.set_status("PARTNER-9999", PartnerStatus::Suspended));
    nf(store.set_partner_rate("PARTNER-9999", Rate::new(1, 1)));
    nf(store.revoke_key("PARTNER-9999", KeyKind::Partner).map(drop));
    assert_eq!(store.revision().unwrap(), before);
}

fn revoke_removes_the_key_and_bumps_the_revision(db: &Db) {
    let store = db.open();
    let created = store.create_partner(partner("Acme"), &known()).unwrap();
    let id = &created.partner_id;
    let rev = store.revision().unwrap();
    assert_eq!(store.revoke_key(id, KeyKind::Partner).unwrap(), 1);
    assert_eq!(store.revision().unwrap(), rev + 1);
    let snap = store.load_snapshot().unwrap();
    assert_eq!(snap.revision, rev + 1);
    let keys = &snap.partners[id].keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kind, KeyKind::Callback);
    let revoked = secret::hash(created.api_key.expose());
    assert!(!keys.iter().any(|k| secret::ct_eq(&k.hash, &revoked)));
    assert_eq!(store.revoke_key(id, KeyKind::Partner).unwrap(), 0);
    assert_eq!(store.revoke_key(id, KeyKind::Callback).unwrap(), 1);
    assert!(store.load_snapshot().unwrap().partners[id].keys.is_empty());
}

/// The dashboard's two reads: every partner's key metadata in one query, and usage buckets
/// filtered by time, partner and operation, oldest first.
/// A flush (one transaction adding to both usage tables) racing a dashboard read: every row read
/// must have exactly as many calls in its latency buckets as its count. Reading the two tables
/// with a snapshot each (PostgreSQL's read committed, or SQLite outside a transaction) lets a
/// flush land between them.
fn usage_counts_and_buckets_are_read_from_one_snapshot(db: &Db) {
    let store = db.open();
    let writer_store = db.open();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The writer goes on until the reader has read a few times during its writes (on a loaded
    // machine 300 flushes can be over before the reader's first read ends).
    let reads_seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let done = Arc::clone(&done);
        let reads_seen = Arc::clone(&reads_seen);
        std::thread::spawn(move || {
            let mut i = 0u64;
            while i < 300
                || (reads_seen.load(std::sync::atomic::Ordering::SeqCst) < 10 && i < 30_000)
            {
                i += 1;
                let mut latency = partnergate::latency::Counts::default();
                latency.record(100 + i);
                let delta = partnergate::store::UsageDelta {
                    bucket_start: 600,
                    partner_id: "PARTNER-0001".to_owned(),
                    operation: "GetAccount".to_owned(),
                    outcome: "ok".to_owned(),
                    count: 1,
                    total_micros: 100,
                    latency,
                };
                writer_store.add_usage(&[delta], &[]).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut reads = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        for row in store.usage_rows(0, None, None).unwrap() {
            let in_buckets: u64 = row.latency.stored().map(|(_, n)| n).sum();
            assert_eq!(
                in_buckets,
                u64::try_from(row.count).unwrap(),
                "counts and buckets from different moments"
            );
        }
        reads += 1;
        reads_seen.store(reads, std::sync::atomic::Ordering::SeqCst);
    }
    writer.join().unwrap();
    assert!(reads > 5, "the reads did not overlap the writes ({reads})");
}

fn usage_older_than_the_cut_off_is_pruned(db: &Db) {
    let store = db.open();
    let delta = |at: i64, op: &str| partnergate::store::UsageDelta {
        bucket_start: at,
        partner_id: "PARTNER-0001".to_owned(),
        operation: op.to_owned(),
        outcome: "ok".to_owned(),
        count: 1,
        total_micros: 500,
        latency: {
            let mut c = partnergate::latency::Counts::default();
            c.record(500);
            c.record(5_000);
            c
        },
    };
    store
        .add_usage(
            &[
                delta(60, "GetAccount"),
                delta(120, "GetAccount"),
                delta(120, "CreateAccount"),
                delta(180, "GetAccount"),
            ],
            &[],
        )
        .unwrap();
    // Minutes starting before 180 go: 3 usage_stats rows and their 2 latency rows each.
    assert_eq!(store.prune_usage(180).unwrap(), 3 + 3 * 2);
    let rows = store.usage_rows(0, None, None).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].bucket_start, 180);
    assert_eq!(rows[0].latency.stored().count(), 2, "its buckets stay");
    assert_eq!(store.prune_usage(180).unwrap(), 0, "nothing left to delete");
}

fn dashboard_reads_keys_and_usage_buckets(db: &Db) {
    let store = db.open();
    let a = store.create_partner(partner("Acme"), &known()).unwrap();
    let b = store.create_partner(partner("Beta"), &known()).unwrap();
    let keys = store.keys_by_partner().unwrap();
    assert_eq!(keys.len(), 4);
    assert!(keys.windows(2).all(|w| w[0].0 <= w[1].0), "by partner id");
    assert_eq!(
        keys.iter().filter(|(p, _)| *p == a.partner_id).count(),
        2,
        "{keys:?}"
    );
    let delta = |at: i64, p: &str, op: &str, outcome: &str| partnergate::store::UsageDelta {
        bucket_start: at,
        partner_id: p.to_owned(),
        operation: op.to_owned(),
        outcome: outcome.to_owned(),
        count: 2,
        total_micros: 3000,
        latency: {
            // One call of ≤ 1 ms and one slower than the last bound.
            let mut c = partnergate::latency::Counts::default();
            c.record(900);
            c.record(61_000_000);
            c
        },
    };
    store
        .add_usage(
            &[
                delta(120, &a.partner_id, "GetAccount", "ok"),
                delta(60, &a.partner_id, "GetAccount", "ok"),
                delta(60, &a.partner_id, "CreateAccount", "denied-operation"),
                delta(60, &b.partner_id, "GetAccount", "ok"),
                delta(0, &a.partner_id, "GetAccount", "ok"),
            ],
            &[],
        )
        .unwrap();
    let rows = store.usage_rows(60, Some(&a.partner_id), None).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows
        .windows(2)
        .all(|w| w[0].bucket_start <= w[1].bucket_start));
    let rows = store
        .usage_rows(60, Some(&a.partner_id), Some("GetAccount"))
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.bucket_start).collect::<Vec<_>>(),
        vec![60, 120]
    );
    assert_eq!((rows[0].count, rows[0].total_micros), (2, 3000));
    assert_eq!(store.usage_rows(0, None, None).unwrap().len(), 5);
    // The latency buckets come back with their rows, and a second flush adds to them.
    assert_eq!(
        rows[0].latency.stored().collect::<Vec<_>>(),
        vec![(1_000, 1), (partnergate::latency::OVERFLOW_STORED, 1)]
    );
    store
        .add_usage(&[delta(60, &a.partner_id, "GetAccount", "ok")], &[])
        .unwrap();
    let rows = store
        .usage_rows(60, Some(&a.partner_id), Some("GetAccount"))
        .unwrap();
    assert_eq!((rows[0].count, rows[0].latency.total()), (4, 4));
    assert_eq!(
        rows[0]
            .latency
            .percentile(0.99)
            .map(|e| e.to_string())
            .as_deref(),
        Some("> 60 s")
    );
    let totals = store.usage(0, Some(&a.partner_id)).unwrap();
    let ok = totals.iter().find(|t| t.outcome == "ok").unwrap();
    assert_eq!((ok.count, ok.latency.total()), (8, 8));
}

fn grants_permit_exact_domain_and_star(db: &Db) {
    let store = db.open();
    let mut some = partner("Some");
    some.grants = vec!["accounts.*".into(), "devices.get".into()];
    let some = store.create_partner(some, &known()).unwrap().partner_id;
    let mut all = partner("All");
    all.grants = vec!["*".into()];
    let all = store.create_partner(all, &known()).unwrap().partner_id;
    let mut none = partner("None");
    none.grants = vec![];
    let none = store.create_partner(none, &known()).unwrap().partner_id;

    let snap = store.load_snapshot().unwrap();
    let (some, all, none) = (
        &snap.partners[&some],
        &snap.partners[&all],
        &snap.partners[&none],
    );
    for op in Operation::ALL {
        let perm = op.permission();
        assert_eq!(
            some.permits(perm),
            perm.starts_with("accounts.") || perm == "devices.get",
            "{perm}"
        );
        assert!(all.permits(perm), "{perm}");
        assert!(!none.permits(perm), "{perm}");
    }
    assert!(!some.permits("accountsX.create"));
    assert!(!some.permits("devices.getAll"));
}

fn groups_rates_and_status(db: &Db) {
    let store = db.open();
    let gold = Rate::new(20, 40);
    let cap = Rate::new(100, 200);
    store.create_group("gold", gold, cap).unwrap();
    assert_eq!(store.revision().unwrap(), 1);
    assert!(matches!(
        store.create_group("gold", None, None),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_group("bad name", None, None),
        Err(StoreError::Invalid { field: "group", .. })
    ));
    assert!(matches!(
        store.create_group("huge", Rate::new(u32::MAX, 1), None),
        Err(StoreError::Invalid { field: "rate", .. })
    ));
    assert_eq!(store.revision().unwrap(), 1);

    let mut new = partner("Acme");
    new.group = Some("gold".into());
    let id = store.create_partner(new, &known()).unwrap().partner_id;
    let snap = store.load_snapshot().unwrap();
    let g = &snap.groups["gold"];
    assert_eq!((g.rate, g.aggregate), (gold, cap));
    let p = &snap.partners[&id];
    assert_eq!(p.group.as_deref(), Some("gold"));
    assert_eq!(p.rate, None);
    assert_eq!(snap.member_rate(p), gold);

    let own = Rate::new(5, 10);
    let rev = store.revision().unwrap();
    store.set_partner_rate(&id, own).unwrap();
    store.set_status(&id, PartnerStatus::Suspended).unwrap();
    assert_eq!(store.revision().unwrap(), rev + 2);
    let snap = store.load_snapshot().unwrap();
    let p = &snap.partners[&id];
    assert_eq!((p.rate, p.status), (own, PartnerStatus::Suspended));
    assert_eq!(snap.member_rate(p), own);
    store.set_partner_rate(&id, None).unwrap();
    store.set_status(&id, PartnerStatus::Offboarded).unwrap();
    let snap = store.load_snapshot().unwrap();
    assert_eq!(snap.partners[&id].rate, None);
    assert_eq!(snap.partners[&id].status, PartnerStatus::Offboarded);
}

fn concurrent_onboarding_does_not_fail(db: &Db) {
    const THREADS: usize = 8;
    const EACH: usize = 5;
    // Two handles (two pools) as well as several threads per pool.
    let stores = [db.open(), db.open()];
    let start = Instant::now();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = stores[t % 2].clone();
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            store
                                .create_partner(partner(&format!("P{t}-{i}")), &known())
                                .unwrap_or_else(|e| panic!("thread {t} #{i}: {e}"))
                                .partner_id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), THREADS * EACH);
    assert_eq!(
        stores[0].revision().unwrap(),
        i64::try_from(THREADS * EACH).unwrap()
    );
    assert_eq!(
        stores[1].load_snapshot().unwrap().partners.len(),
        THREADS * EACH
    );
    eprintln!(
        "{THREADS}x{EACH} concurrent onboardings: {:?}",
        start.elapsed()
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `cond` every 5 ms until it holds or `limit` has passed; returns the time it took.
async fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

fn refresher_picks_up_a_change_from_another_handle(db: &Db) {
    let gateway = db.open();
    let admin = db.open();
    let cell = Arc::new(SnapshotCell::new(Snapshot::empty()));
    runtime().block_on(async {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run_refresher(
            gateway,
            cell.clone(),
            Duration::from_millis(20),
            shutdown,
        ));
        within(Duration::from_secs(1), || cell.load().revision == 0)
            .await
            .expect("first load");
        assert!(cell.health().last_success.is_some());

        let id = tokio::task::spawn_blocking(move || {
            admin
                .create_partner(partner("Acme"), &known())
                .unwrap()
                .partner_id
        })
        .await
        .unwrap();
        let took = within(Duration::from_secs(1), || {
            cell.load().partners.contains_key(&id)
        })
        .await
        .expect("the refresher picks up the new partner within 1 s");
        eprintln!("refresher picked up the change in {took:?}");
        assert_eq!(cell.load().revision, 1);
        assert!(cell.staleness(SystemTime::now()).unwrap() < Duration::from_secs(1));

        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the refresher stops on shutdown")
            .unwrap();
    });
}

fn refresher_keeps_the_snapshot_when_loading_fails(db: &Db) {
    let store = db.open();
    let id = store
        .create_partner(partner("Acme"), &known())
        .unwrap()
        .partner_id;
    let cell = Arc::new(SnapshotCell::new(store.load_snapshot().unwrap()));
    // Data the store would never write: an allow entry that is not a network, plus a bump.
    db.raw(
        "INSERT INTO allow_entries (partner_id, cidr, created_at) VALUES (1, 'not-a-net', 0);
         UPDATE meta SET value = value + 1 WHERE key = 'revision';",
    );
    assert!(matches!(
        store.load_snapshot(),
        Err(StoreError::Corrupt {
            table: "allow_entries",
            ..
        })
    ));
    runtime().block_on(async {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run_refresher(
            store.clone(),
            cell.clone(),
            Duration::from_millis(20),
            shutdown,
        ));
        within(Duration::from_secs(1), || {
            cell.health().last_error.is_some()
        })
        .await
        .expect("the failure is recorded");
        let health = cell.health();
        assert!(health.last_error.as_deref().unwrap().contains("not-a-net"));
        assert_eq!(cell.load().revision, 1, "the previous snapshot stays");
        assert!(cell.load().partners.contains_key(&id));

        // Repaired: the next poll loads again and clears the error.
        db.raw(
            "DELETE FROM allow_entries WHERE cidr = 'not-a-net';
             UPDATE meta SET value = value + 1 WHERE key = 'revision';",
        );
        within(Duration::from_secs(1), || cell.load().revision == 3)
            .await
            .expect("reloaded after the repair");
        within(Duration::from_secs(1), || {
            cell.health().last_error.is_none()
        })
        .await
        .expect("error cleared");
        drop(stop);
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the refresher stops when the shutdown sender is dropped")
            .unwrap();
    });
}

// === URL handling (no database needed) ===

/// The crate root's entries: nothing may appear there when opening fails.
fn cwd_entries() -> BTreeSet<std::ffi::OsString> {
    std::fs::read_dir(".")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

#[test]
fn unknown_scheme_is_refused_before_anything_is_created() {
    logs();
    let before = cwd_entries();
    for (url, scheme) in [("mysql://localhost/gw", "mysql"), ("redis://h", "redis")] {
        let err = Store::open(url).unwrap_err();
        assert!(
            matches!(&err, StoreError::UnsupportedUrl { scheme: s, .. } if s == scheme),
            "{err:?}"
        );
        assert!(err.to_string().contains(scheme), "{err}");
    }
    let err = Store::open("host=127.0.0.1 port=1 user=gw dbname=gw").unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
    assert!(err.to_string().contains("postgres://"), "{err}");
    for memory in [":memory:", "sqlite://:memory:", "file::memory:"] {
        let err = Store::open(memory).unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { field: "url", reason } if reason.contains("pooled connection")),
            "{memory}: {err:?}"
        );
    }
    assert_eq!(cwd_entries(), before);
}

#[test]
fn unreachable_postgres_fails_with_the_libpq_error() {
    logs();
    let before = cwd_entries();
    let start = Instant::now();
    let err = Store::open("postgres://gw:hunter2@127.0.0.1:1/x").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Connect(_)), "{err:?}");
    assert!(
        msg.contains("Connection refused"),
        "libpq's own text: {msg}"
    );
    assert!(msg.contains("127.0.0.1") && msg.contains("port 1"), "{msg}");
    assert!(!msg.contains("hunter2"), "password redacted: {msg}");
    assert!(msg.contains("postgres://gw:***@127.0.0.1:1/x"), "{msg}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(cwd_entries(), before, "no SQLite fallback file");
}

#[test]
fn missing_sqlite_directory_fails_to_connect() {
    logs();
    let path = std::env::temp_dir()
        .join(format!("partnergate-no-such-dir-{}", random_hex(4)))
        .join("gw.db");
    let err = Store::open(&path.display().to_string()).unwrap_err();
    assert!(matches!(err, StoreError::Connect(_)), "{err:?}");
    assert!(!path.exists());
}

#[test]
fn postgres_url_password_is_redacted() {
    logs();
    let Ok(admin) = std::env::var(PG_ENV) else {
        panic!("{PG_ENV} is not set: run tests/run.sh (it starts a throwaway PostgreSQL)");
    };
    // The throwaway cluster trusts local connections, so any password is accepted.
    let (scheme, rest) = admin.split_once("://").unwrap();
    let rest = match rest.split_once('@') {
        Some((user, host)) => format!("{}:s3cret-pw@{host}", user.split(':').next().unwrap()),
        None => format!("postgres:s3cret-pw@{rest}"),
    };
    let db = Db::postgres();
    let Db::Postgres { name, .. } = &db else {
        unreachable!()
    };
    let url = with_database(&format!("{scheme}://{rest}"), name);
    let store = Store::open(&url).unwrap();
    assert!(!store.redacted_url().contains("s3cret-pw"));
    assert!(store.redacted_url().contains(":***@"));
    assert!(!format!("{store:?}").contains("s3cret-pw"));
}
