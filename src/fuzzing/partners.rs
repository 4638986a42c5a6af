//! The fixed world every fuzz target runs in: the partner snapshot (four partners with keys,
//! networks and grants, kept as plain data to check invariants against), the peers the pipeline
//! target chooses from, the trusted proxies, "now" and the request id. Uses `crate::store` and
//! `crate::secret` only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};
use std::time::UNIX_EPOCH;

use ipnet::IpNet;

use crate::secret::{self, KeyKind};
use crate::store::{KeyEntry, PartnerEntry, PartnerStatus, Snapshot};

/// "Now" for key expiry in the fuzz targets (unix seconds), so that runs are reproducible.
pub const NOW: i64 = 1_700_000_000;

/// The gateway request id the pipeline target uses.
pub const REQUEST_ID: &str = "gw-fuzz-00000000000000000000000000000001";

/// One partner of the fuzz snapshot, as plain data (the invariants are checked against this, not
/// against the snapshot the code under test reads).
#[derive(Clone, Copy, Debug)]
pub struct FuzzPartner {
    /// Partner id.
    pub id: &'static str,
    /// Its API key (the golden fixtures' key for `PARTNER-0042`).
    pub key: &'static str,
    /// Its callback key.
    pub callback_key: &'static str,
    /// Only `Active` partners may call.
    pub status: PartnerStatus,
    /// Allowed source networks.
    pub allow: &'static [&'static str],
    /// Grants.
    pub grants: &'static [&'static str],
    /// Key expiry (unix seconds).
    pub expires_at: Option<i64>,
}

impl FuzzPartner {
    /// Whether this partner's API key is usable at [`NOW`] and the partner may call.
    pub fn may_call(&self) -> bool {
        self.status == PartnerStatus::Active && self.expires_at.is_none_or(|at| at > NOW)
    }
}

/// The partners of [`snapshot`]: the fixtures' partner with every grant, a partner limited to
/// some operations and one network, a suspended partner and one whose keys have expired.
pub const PARTNERS: [FuzzPartner; 4] = [
    FuzzPartner {
        id: "PARTNER-0042",
        key: "pgk_test_0123456789abcdef0123456789abcdef",
        callback_key: "pgc_test_0123456789abcdef0123456789abcdef",
        status: PartnerStatus::Active,
        allow: &["127.0.0.0/8"],
        grants: &["*"],
        expires_at: None,
    },
    FuzzPartner {
        id: "PARTNER-0043",
        key: "pgk_test_43434343434343434343434343434343",
        callback_key: "pgc_test_43434343434343434343434343434343",
        status: PartnerStatus::Active,
        allow: &["192.0.2.0/24"],
        grants: &["accounts.*", "services.get"],
        expires_at: None,
    },
    FuzzPartner {
        id: "PARTNER-0044",
        key: "pgk_test_44444444444444444444444444444444",
        callback_key: "pgc_test_44444444444444444444444444444444",
        status: PartnerStatus::Suspended,
        allow: &["0.0.0.0/0", "::/0"],
        grants: &["*"],
        expires_at: None,
    },
    FuzzPartner {
        id: "PARTNER-0045",
        key: "pgk_test_45454545454545454545454545454545",
        callback_key: "pgc_test_45454545454545454545454545454545",
        status: PartnerStatus::Active,
        allow: &["0.0.0.0/0", "::/0"],
        grants: &["*"],
        expires_at: Some(NOW - 1),
    },
];

/// The source addresses the pipeline target chooses from (first input byte, low 3 bits).
pub const PEERS: [IpAddr; 6] = [
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
    // A trusted proxy: the client address comes from X-Forwarded-For.
    IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1)),
    IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1)),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// The trusted proxies of the pipeline target's gateway.
pub const TRUSTED_PROXIES: &str = "10.9.0.0/16";

pub(super) fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter()
        .map(|n| n.parse().expect("a network of the fuzz snapshot"))
        .collect()
}

/// The partner snapshot every target authenticates against (built once).
pub fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let mut partners = std::collections::HashMap::new();
        for (i, p) in (0i64..).zip(PARTNERS.iter()) {
            let key = |id: i64, kind: KeyKind, text: &str| KeyEntry {
                id,
                kind,
                prefix: secret::display_prefix(text),
                hash: secret::hash(text),
                expires_at: p.expires_at,
            };
            let entry = PartnerEntry {
                partner_id: p.id.to_string(),
                name: format!("Fuzz partner {i}"),
                status: p.status,
                group: None,
                country: Some("DE".into()),
                keys: vec![
                    key(2 * i + 1, KeyKind::Partner, p.key),
                    key(2 * i + 2, KeyKind::Callback, p.callback_key),
                ],
                allow: nets(p.allow),
                grants: p.grants.iter().map(|g| (*g).to_string()).collect(),
                rate: None,
                callback_url: None,
                callback_ca_pem: None,
                feature_defaults: None,
                client_auth: None,
                callback_rate: None,
            };
            partners.insert(p.id.to_string(), Arc::new(entry));
        }
        Snapshot {
            revision: 1,
            partners,
            groups: std::collections::HashMap::new(),
            loaded_at: UNIX_EPOCH,
        }
    })
}

pub(super) fn fuzz_partner(id: &str) -> Option<&'static FuzzPartner> {
    PARTNERS.iter().find(|p| p.id == id)
}
