//! The code generator's naming rules (`codegen/names.rs`, used by build.rs), run by
//! `cargo test --test codegen_names`: the module is std only, so this test includes the same file
//! the build script does.

#[path = "../codegen/names.rs"]
mod names;

use names::{domain_of, permission_of, same_name};

#[test]
fn domain_is_the_namespace_segment_before_the_version() {
    assert_eq!(domain_of("urn:partnergate:partner:accounts:v1"), "accounts");
    assert_eq!(domain_of("urn:partnergate:callback:v1"), "callback");
}

#[test]
#[should_panic(expected = "has no domain segment")]
fn a_namespace_without_a_domain_stops_the_build() {
    domain_of("urn");
}

#[test]
fn permission_drops_the_domain_noun_singular_or_plural() {
    assert_eq!(
        permission_of("accounts", "CreateAccount"),
        "accounts.create"
    );
    assert_eq!(
        permission_of("accounts", "ChangeAccountStatus"),
        "accounts.changeStatus"
    );
    assert_eq!(permission_of("accounts", "FindAccounts"), "accounts.find");
    assert_eq!(permission_of("services", "ListServices"), "services.list");
    assert_eq!(
        permission_of("features", "EnableFeature"),
        "features.enable"
    );
}

#[test]
fn callback_operations_keep_their_whole_name() {
    assert_eq!(
        permission_of("callback", "GetCustomerRecord"),
        "callback.getCustomerRecord"
    );
    assert_eq!(
        permission_of("callback", "NotifyProvisioningEvent"),
        "callback.notifyProvisioningEvent"
    );
}

#[test]
fn field_and_element_names_match_across_case_and_underscores() {
    assert!(same_name("street_2", "Street2"));
    assert!(same_name("r#type", "Type"));
    assert!(same_name("account_id", "AccountId"));
    assert!(!same_name("street_1", "Street2"));
}
