//! The admin API's routes: a path and method → the admin [`Request`] it asks for, with the
//! JSON bodies each route reads.

use http::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::PREFIX;
use crate::admin::dashboard::form::Form;
use crate::admin::{some, AdminError, Direction, RateInput, Request, StatusInput, UpdateGroup};

/// A route, with the partner id or group name from the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Endpoint<'a> {
    Partners,
    Partner(&'a str),
    Suspend(&'a str),
    Reinstate(&'a str),
    Offboard(&'a str),
    Keys(&'a str),
    Rotate(&'a str),
    Revoke(&'a str),
    Allow(&'a str),
    AllowRemove(&'a str),
    Grants(&'a str),
    GrantRevoke(&'a str),
    PartnerGroup(&'a str),
    PartnerThrottle(&'a str, Direction),
    Groups,
    Group(&'a str),
    GroupThrottle(&'a str),
    Audit,
    Nodes,
    Operators,
    OperatorDisable(&'a str),
    OperatorEnable(&'a str),
    OperatorResetPassword(&'a str),
    OperatorRole(&'a str),
    OperatorTokens(&'a str),
    OperatorTokenRevoke(&'a str),
    Enrollments,
    Enrollment(&'a str),
    EnrollmentApprove(&'a str),
    EnrollmentReject(&'a str),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorBody {
    name: String,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenIdBody {
    id: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CidrBody {
    cidr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionBody {
    permission: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    group: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupThrottleBody {
    #[serde(default, deserialize_with = "some")]
    rate: Option<Option<RateInput>>,
    #[serde(default, deserialize_with = "some")]
    aggregate: Option<Option<RateInput>>,
}

/// A JSON body (an empty body reads as `{}`).
pub(super) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| AdminError::Invalid {
        field: "body",
        reason: format!("not the expected JSON: {e}"),
    })
}

/// The query string's pairs, decoded as a form (the dashboard's decoder).
fn query_pairs(query: Option<&str>) -> Result<Form, AdminError> {
    Form::parse(query.unwrap_or("")).ok_or_else(|| AdminError::Invalid {
        field: "query",
        reason: "the query does not decode to UTF-8".into(),
    })
}

impl<'a> Endpoint<'a> {
    pub(super) fn parse(path: &'a str) -> Option<Endpoint<'a>> {
        let rest = path.strip_prefix(PREFIX)?;
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(match parts.as_slice() {
            ["partners"] => Endpoint::Partners,
            ["partners", id] => Endpoint::Partner(id),
            ["partners", id, "suspend"] => Endpoint::Suspend(id),
            ["partners", id, "reinstate"] => Endpoint::Reinstate(id),
            ["partners", id, "offboard"] => Endpoint::Offboard(id),
            ["partners", id, "keys"] => Endpoint::Keys(id),
            ["partners", id, "keys", "rotate"] => Endpoint::Rotate(id),
            ["partners", id, "keys", "revoke"] => Endpoint::Revoke(id),
            ["partners", id, "allowlist"] => Endpoint::Allow(id),
            ["partners", id, "allowlist", "remove"] => Endpoint::AllowRemove(id),
            ["partners", id, "grants"] => Endpoint::Grants(id),
            ["partners", id, "grants", "revoke"] => Endpoint::GrantRevoke(id),
            ["partners", id, "group"] => Endpoint::PartnerGroup(id),
            ["partners", id, "throttle"] => Endpoint::PartnerThrottle(id, Direction::Inbound),
            ["partners", id, "callback-throttle"] => {
                Endpoint::PartnerThrottle(id, Direction::Callback)
            }
            ["groups"] => Endpoint::Groups,
            ["groups", name] => Endpoint::Group(name),
            ["groups", name, "throttle"] => Endpoint::GroupThrottle(name),
            ["audit"] => Endpoint::Audit,
            ["nodes"] => Endpoint::Nodes,
            ["operators"] => Endpoint::Operators,
            ["enrollments"] => Endpoint::Enrollments,
            ["enrollments", id] => Endpoint::Enrollment(id),
            ["enrollments", id, "approve"] => Endpoint::EnrollmentApprove(id),
            ["enrollments", id, "reject"] => Endpoint::EnrollmentReject(id),
            ["operators", name, "disable"] => Endpoint::OperatorDisable(name),
            ["operators", name, "enable"] => Endpoint::OperatorEnable(name),
            ["operators", name, "reset-password"] => Endpoint::OperatorResetPassword(name),
            ["operators", name, "role"] => Endpoint::OperatorRole(name),
            ["operators", name, "tokens"] => Endpoint::OperatorTokens(name),
            ["operators", name, "tokens", "revoke"] => Endpoint::OperatorTokenRevoke(name),
            _ => return None,
        })
    }

    pub(super) fn methods(self) -> &'static [Method] {
        match self {
            Endpoint::Partners
            | Endpoint::Allow(_)
            | Endpoint::Grants(_)
            | Endpoint::Groups
            | Endpoint::Operators
            | Endpoint::OperatorTokens(_) => &[Method::GET, Method::POST],
            Endpoint::Partner(_) | Endpoint::Group(_) => &[Method::GET, Method::PATCH],
            Endpoint::Suspend(_)
            | Endpoint::Reinstate(_)
            | Endpoint::Offboard(_)
            | Endpoint::Rotate(_)
            | Endpoint::Revoke(_)
            | Endpoint::AllowRemove(_)
            | Endpoint::GrantRevoke(_)
            | Endpoint::OperatorDisable(_)
            | Endpoint::OperatorEnable(_)
            | Endpoint::OperatorResetPassword(_)
            | Endpoint::OperatorTokenRevoke(_)
            | Endpoint::EnrollmentApprove(_)
            | Endpoint::EnrollmentReject(_) => &[Method::POST],
            Endpoint::Keys(_)
            | Endpoint::Audit
            | Endpoint::Nodes
            | Endpoint::Enrollments
            | Endpoint::Enrollment(_) => &[Method::GET],
            Endpoint::PartnerGroup(_) | Endpoint::OperatorRole(_) => &[Method::PUT],
            Endpoint::PartnerThrottle(..) | Endpoint::GroupThrottle(_) => {
                &[Method::PUT, Method::DELETE]
            }
        }
    }

    /// The operation of this route and method (already checked against [`Self::methods`]).
    pub(super) fn request(
        self,
        method: &Method,
        bytes: &[u8],
        query: Option<&str>,
    ) -> Result<Request, AdminError> {
        let get = *method == Method::GET;
        let owned = |s: &str| s.to_owned();
        Ok(match self {
            Endpoint::Partners if get => Request::ListPartners,
            Endpoint::Partners => Request::CreatePartner(body(bytes)?),
            Endpoint::Partner(p) if get => Request::ShowPartner { partner: owned(p) },
            Endpoint::Partner(p) => Request::UpdatePartner {
                partner: owned(p),
                update: body(bytes)?,
            },
            Endpoint::Suspend(p) => Request::Suspend {
                partner: owned(p),
                input: body::<StatusInput>(bytes)?,
            },
            Endpoint::Reinstate(p) => Request::Reinstate {
                partner: owned(p),
                input: body(bytes)?,
            },
            Endpoint::Offboard(p) => Request::Offboard {
                partner: owned(p),
                input: body(bytes)?,
            },
            Endpoint::Keys(p) => Request::ListKeys { partner: owned(p) },
            Endpoint::Rotate(p) => Request::RotateKey {
                partner: owned(p),
                input: body(bytes)?,
            },
            Endpoint::Revoke(p) => Request::RevokeKeys {
                partner: owned(p),
                input: body(bytes)?,
            },
            Endpoint::Allow(p) if get => Request::ListAllow { partner: owned(p) },
            Endpoint::Allow(p) => Request::AddAllow {
                partner: owned(p),
                cidr: body::<CidrBody>(bytes)?.cidr,
            },
            Endpoint::AllowRemove(p) => Request::RemoveAllow {
                partner: owned(p),
                cidr: body::<CidrBody>(bytes)?.cidr,
            },
            Endpoint::Grants(p) if get => Request::ListGrants { partner: owned(p) },
            Endpoint::Grants(p) => Request::AddGrant {
                partner: owned(p),
                permission: body::<PermissionBody>(bytes)?.permission,
            },
            Endpoint::GrantRevoke(p) => Request::RevokeGrant {
                partner: owned(p),
                permission: body::<PermissionBody>(bytes)?.permission,
            },
            Endpoint::PartnerGroup(p) => Request::AssignGroup {
                partner: owned(p),
                group: body::<GroupBody>(bytes)?.group,
            },
            Endpoint::PartnerThrottle(p, direction) if *method == Method::DELETE => {
                Request::PartnerThrottle {
                    partner: owned(p),
                    direction,
                    rate: None,
                }
            }
            Endpoint::PartnerThrottle(p, direction) => Request::PartnerThrottle {
                partner: owned(p),
                direction,
                rate: Some(body(bytes)?),
            },
            Endpoint::Groups if get => Request::ListGroups,
            Endpoint::Groups => Request::CreateGroup(body(bytes)?),
            Endpoint::Group(g) if get => Request::ShowGroup { group: owned(g) },
            Endpoint::Group(g) => Request::UpdateGroup {
                group: owned(g),
                update: body(bytes)?,
            },
            Endpoint::GroupThrottle(g) if *method == Method::DELETE => Request::UpdateGroup {
                group: owned(g),
                update: UpdateGroup {
                    name: None,
                    rate: Some(None),
                    aggregate: Some(None),
                },
            },
            Endpoint::GroupThrottle(g) => {
                let b: GroupThrottleBody = body(bytes)?;
                Request::UpdateGroup {
                    group: owned(g),
                    update: UpdateGroup {
                        name: None,
                        rate: b.rate,
                        aggregate: b.aggregate,
                    },
                }
            }
            Endpoint::Audit => {
                let mut target = None;
                let mut limit = None;
                for (k, v) in query_pairs(query)?.pairs() {
                    match k {
                        "target" => target = Some(v.to_owned()),
                        "limit" => {
                            limit = Some(v.parse::<u32>().map_err(|_| AdminError::Invalid {
                                field: "limit",
                                reason: format!("{v:?} is not a number"),
                            })?);
                        }
                        other => {
                            return Err(AdminError::Invalid {
                                field: "query",
                                reason: format!("unknown parameter {other:?}: use target, limit"),
                            })
                        }
                    }
                }
                Request::ListAudit { target, limit }
            }
            Endpoint::Nodes => Request::ListNodes,
            Endpoint::Operators if get => Request::ListOperators,
            Endpoint::Operators => {
                let b: OperatorBody = body(bytes)?;
                Request::CreateOperator {
                    name: b.name,
                    role: b.role,
                }
            }
            Endpoint::OperatorDisable(n) => Request::DisableOperator { name: owned(n) },
            Endpoint::OperatorEnable(n) => Request::EnableOperator { name: owned(n) },
            Endpoint::OperatorResetPassword(n) => Request::ResetPassword { name: owned(n) },
            Endpoint::OperatorRole(n) => Request::SetRole {
                name: owned(n),
                role: body::<RoleBody>(bytes)?.role,
            },
            Endpoint::OperatorTokens(n) if get => Request::ListTokens { operator: owned(n) },
            Endpoint::OperatorTokens(n) => Request::CreateToken {
                operator: owned(n),
                label: body::<TokenBody>(bytes)?.label,
            },
            Endpoint::OperatorTokenRevoke(n) => Request::RevokeToken {
                operator: owned(n),
                id: body::<TokenIdBody>(bytes)?.id,
            },
            Endpoint::Enrollments => {
                let mut status = None;
                for (k, v) in query_pairs(query)?.pairs() {
                    match k {
                        "status" => status = Some(v.to_owned()),
                        _ => {
                            return Err(AdminError::Invalid {
                                field: "query",
                                reason: "use status=pending|approved|rejected|collected".into(),
                            })
                        }
                    }
                }
                Request::ListEnrollments { status }
            }
            Endpoint::Enrollment(id) => Request::ShowEnrollment {
                enrollment: owned(id),
            },
            Endpoint::EnrollmentApprove(id) => Request::ApproveEnrollment {
                enrollment: owned(id),
                input: body(bytes)?,
            },
            Endpoint::EnrollmentReject(id) => Request::RejectEnrollment {
                enrollment: owned(id),
                input: body(bytes)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Endpoint::parse("/admin/v1/partners"),
            Some(Endpoint::Partners)
        );
        assert_eq!(
            Endpoint::parse("/admin/v1/partners/P-1/keys/rotate"),
            Some(Endpoint::Rotate("P-1"))
        );
        assert_eq!(
            Endpoint::parse("/admin/v1/groups/gold/throttle"),
            Some(Endpoint::GroupThrottle("gold"))
        );
        for bad in [
            "/admin/v1/",
            "/admin/v1/partners/",
            "/admin/v1//partners",
            "/admin/v2/partners",
            "/admin/v1/partners/P/nope",
        ] {
            assert_eq!(Endpoint::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_values_are_decoded() {
        let q = query_pairs(Some("target=group%3Agold+x&limit=5")).unwrap();
        assert_eq!(
            q.pairs().collect::<Vec<_>>(),
            [("target", "group:gold x"), ("limit", "5")]
        );
        assert!(query_pairs(None).unwrap().pairs().next().is_none());
        assert!(query_pairs(Some("target=%ff")).is_err());
        let list = |q: &str| Endpoint::Enrollments.request(&Method::GET, b"", Some(q));
        assert!(matches!(
            list("status=pending"),
            Ok(Request::ListEnrollments { status: Some(s) }) if s == "pending"
        ));
        assert!(list("state=pending").is_err());
        assert!(list("status=%C3").is_err());
    }

    #[test]
    fn empty_bodies_read_as_empty_objects() {
        let s: StatusInput = body(b"").unwrap();
        assert!(s.reason.is_none());
        assert!(body::<StatusInput>(b"{\"why\": 1}").is_err());
    }
}
