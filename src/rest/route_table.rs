//! The REST face's route table as plain data, std only: `rest/routes.rs` matches requests with
//! it and build.rs includes this file (`codegen/openapi.rs`) to write the OpenAPI document, so
//! the routes served and the routes documented are one list.

/// One route: (method, path template below `/rest/partner/v1`, operation, query members).
/// `{Member}` path segments are members of the operation's request; a `GET` route's other
/// members are its query members, every other route's come in a JSON body.
pub type RouteRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

/// Every route of the REST face, one per partner operation.
#[rustfmt::skip]
pub const ROUTE_TABLE: &[RouteRow] = &[
    ("POST",  "/accounts",                                       "CreateAccount",       &[]),
    ("GET",   "/accounts",                                       "FindAccounts",        &["CustomerReference"]),
    ("GET",   "/accounts/{AccountNumber}",                       "GetAccount",          &[]),
    ("PATCH", "/accounts/{AccountNumber}",                       "ModifyAccount",       &[]),
    ("POST",  "/accounts/{AccountNumber}/status",                "ChangeAccountStatus", &[]),
    ("POST",  "/accounts/{AccountNumber}/services",              "AddService",          &[]),
    ("GET",   "/accounts/{AccountNumber}/services",              "ListServices",        &["ServiceType"]),
    ("GET",   "/services/{ServiceId}",                           "GetService",          &[]),
    ("PATCH", "/services/{ServiceId}",                           "ModifyService",       &[]),
    ("POST",  "/services/{ServiceId}/status",                    "ChangeServiceStatus", &[]),
    ("POST",  "/services/{ServiceId}/devices",                   "AddDevice",           &[]),
    ("GET",   "/devices/{MacAddress}",                           "GetDevice",           &[]),
    ("PATCH", "/devices/{MacAddress}",                           "ModifyDevice",        &[]),
    ("POST",  "/devices/{MacAddress}/status",                    "ChangeDeviceStatus",  &[]),
    ("POST",  "/services/{ServiceId}/features",                  "EnableFeature",       &[]),
    ("GET",   "/services/{ServiceId}/features/{Feature}",        "GetFeature",          &[]),
    ("PATCH", "/services/{ServiceId}/features/{Feature}",        "ModifyFeature",       &[]),
    ("POST",  "/services/{ServiceId}/features/{Feature}/status", "ChangeFeatureStatus", &[]),
];

/// The `{Member}` names of a path template, in order.
pub fn path_members(path: &'static str) -> impl Iterator<Item = &'static str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}
