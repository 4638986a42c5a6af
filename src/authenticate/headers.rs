//! The REST face's credentials: `X-Partner-Id` and `Authorization: Bearer pgk_…`, each exactly
//! once, checked against the contract's `PartnerId` and `ApiKey` types (the facets the SOAP
//! `PartnerAuth` header is decoded with) and then verified exactly as `PartnerAuth` is (the same
//! constant-time comparison, the same refusals). Uses the generated types and the snapshot.

use http::HeaderMap;

use super::{verify, AuthError, Authenticated, Presented};
use crate::generated::types::cmn;
use crate::secret::KeyKind;
use crate::store::Snapshot;

/// The header that names the partner.
pub const PARTNER_ID_HEADER: &str = "x-partner-id";

/// The one value of `name`: none is [`AuthError::Missing`], two are [`AuthError::Duplicate`],
/// one that is not visible ASCII is malformed.
fn one<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, AuthError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Duplicate);
    }
    value
        .to_str()
        .map_err(|_| AuthError::Malformed(format!("{name} is not visible ASCII")))
}

/// Authenticates a REST call from its headers against the snapshot at time `now` (unix s).
pub fn authenticate_headers(
    headers: &HeaderMap,
    snapshot: &Snapshot,
    now: i64,
) -> Result<Authenticated, AuthError> {
    let partner_id = one(headers, PARTNER_ID_HEADER)?;
    let authorization = one(headers, http::header::AUTHORIZATION.as_str())?;
    // RFC 9110 §11.1: the scheme is case-insensitive; one space before the token (RFC 6750 §2.1).
    let key = match authorization.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
        _ => {
            return Err(AuthError::Malformed(
                "Authorization is not a Bearer credential".into(),
            ))
        }
    };
    let partner_id = cmn::PartnerId::new(partner_id.to_string())
        .map_err(|_| AuthError::Malformed("X-Partner-Id is not a PartnerId".into()))?;
    let key = cmn::ApiKey::new(key.to_string())
        .map_err(|_| AuthError::Malformed("the bearer token is not an ApiKey".into()))?;
    // The checked values move into the credential: no second copy of either.
    let presented = Presented {
        partner_id: partner_id.into_inner(),
        key: key.into_inner(),
    };
    verify(&presented, snapshot, KeyKind::Partner, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes())
                    .unwrap_or_else(|_| panic!("{k}")),
                http::HeaderValue::from_str(v).unwrap_or_else(|_| panic!("{v}")),
            );
        }
        h
    }

    const KEY: &str = "Bearer pgk_0123456789abcdef0123";

    #[test]
    fn missing_duplicate_and_malformed_credentials_are_refused_before_the_snapshot() {
        let s = Snapshot::empty();
        let auth = |pairs: &[(&str, &str)]| authenticate_headers(&headers(pairs), &s, 0);
        assert_eq!(auth(&[]).err(), Some(AuthError::Missing));
        assert_eq!(
            auth(&[("x-partner-id", "PARTNER-1")]).err(),
            Some(AuthError::Missing)
        );
        assert_eq!(
            auth(&[
                ("x-partner-id", "PARTNER-1"),
                ("x-partner-id", "PARTNER-1"),
                ("authorization", KEY)
            ])
            .err(),
            Some(AuthError::Duplicate)
        );
        for bad in [
            "Basic abc",
            "pgk_0123456789abcdef0123",
            "Bearer short",
            "Bearer  pgk_0123456789abcdef0123",
        ] {
            let e = auth(&[("x-partner-id", "PARTNER-1"), ("authorization", bad)]).err();
            assert!(matches!(e, Some(AuthError::Malformed(_))), "{bad}: {e:?}");
        }
        let e = auth(&[("x-partner-id", "partner 1"), ("authorization", KEY)]).err();
        assert!(matches!(e, Some(AuthError::Malformed(_))), "{e:?}");
        assert_eq!(
            auth(&[
                ("x-partner-id", "PARTNER-1"),
                ("authorization", "bearer pgk_0123456789abcdef0123")
            ])
            .err(),
            Some(AuthError::UnknownPartner {
                claimed: "PARTNER-1".into()
            })
        );
    }
}
