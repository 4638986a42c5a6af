//! Stage: per-operation permission. Takes the authenticated partner and the operation the
//! envelope scan found, and returns it if the partner holds a grant for it (`*`, `domain.*` or
//! the exact permission such as `accounts.create`) — or an [`AuthorizeError`]. Nothing reaches
//! the upstream without it.

use crate::authenticate::Authenticated;
use crate::generated::partner::Operation;

/// The partner holds no grant for the operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("operation {permission} is not permitted for this partner")]
pub struct AuthorizeError {
    /// The permission that was missing.
    pub permission: &'static str,
}

/// Checks the operation against the partner's grants.
pub fn check(auth: &Authenticated, op: Operation) -> Result<Operation, AuthorizeError> {
    if auth.partner.permits(op.permission()) {
        Ok(op)
    } else {
        Err(AuthorizeError {
            permission: op.permission(),
        })
    }
}
