//! Unit tests of the snapshot (beside the module, in their own file).
use super::*;

fn partner(grants: &[&str]) -> PartnerEntry {
    PartnerEntry {
        partner_id: "PARTNER-0001".into(),
        name: "Test".into(),
        status: PartnerStatus::Active,
        group: None,
        country: None,
        keys: vec![],
        allow: vec![],
        grants: grants.iter().map(|g| (*g).to_owned()).collect(),
        rate: None,
        callback_rate: None,
        callback_url: None,
        callback_ca_pem: None,
        feature_defaults: None,
        client_auth: None,
    }
}

#[test]
fn permits_exact_domain_and_star() {
    let p = partner(&["accounts.*", "devices.get"]);
    assert!(p.permits("accounts.create"));
    assert!(p.permits("accounts.changeStatus"));
    assert!(p.permits("devices.get"));
    assert!(!p.permits("devices.add"));
    assert!(!p.permits("accountsx.create"));
    assert!(!p.permits("accounts"));
    assert!(partner(&["*"]).permits("features.enable"));
    assert!(!partner(&[]).permits("features.enable"));
}

#[test]
fn member_rate_falls_back_to_the_group() {
    let mut snap = Snapshot::empty();
    let group_rate = Rate::new(5, 10);
    snap.groups.insert(
        "g".into(),
        GroupEntry {
            name: "g".into(),
            rate: group_rate,
            aggregate: Rate::new(50, 100),
        },
    );
    let mut p = partner(&[]);
    assert_eq!(snap.member_rate(&p), None);
    p.group = Some("g".into());
    assert_eq!(snap.member_rate(&p), group_rate);
    p.rate = Rate::new(1, 1);
    assert_eq!(snap.member_rate(&p), Rate::new(1, 1));
}

#[test]
fn stored_rates_must_be_paired_and_positive() {
    assert_eq!(stored_rate("t", "k", None, None).unwrap(), None);
    assert_eq!(
        stored_rate("t", "k", Some(2), Some(3)).unwrap(),
        Rate::new(2, 3)
    );
    assert!(stored_rate("t", "k", Some(2), None).is_err());
    assert!(stored_rate("t", "k", Some(0), Some(1)).is_err());
    assert!(stored_rate("t", "k", Some(-1), Some(1)).is_err());
}
