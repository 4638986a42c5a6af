//! Who may do what: the one table of operation → lowest role, checked by
//! [`Admin::run`](super::Admin::run) before anything is read or written, so the CLI, the admin
//! API and the dashboard cannot differ (README "Security model" prints the same table).
//!
//! - **viewer** reads everything but secrets (no read shows a key, a password or a token: they
//!   are shown once, in the reply of the change that makes them);
//! - **operator** also manages partners, their keys, allowlists, grants, group membership and
//!   throttles (a partner's rate and its callback rate, a group's rates), and approves or
//!   rejects enrollments;
//! - **admin** also manages operators and their tokens, and groups (create, rename).
//!
//! There are no runtime settings in the admin service: settings are the configuration (file,
//! environment), changed by whoever runs the process.

use super::enrollments::EnrollmentOp;
use super::operators::OperatorOp;
use super::{Checked, Op};
use crate::store::Role;

/// The lowest role that may run `op`.
fn required(op: &Op) -> Role {
    match op {
        Op::ListPartners
        | Op::ShowPartner(_)
        | Op::ListKeys(_)
        | Op::ListAllow(_)
        | Op::ListGrants(_)
        | Op::ListGroups
        | Op::ShowGroup(_)
        | Op::ListAudit(..)
        | Op::ListNodes
        | Op::Enrollments(EnrollmentOp::List(_) | EnrollmentOp::Show(_)) => Role::Viewer,
        Op::CreatePartner(_)
        | Op::UpdatePartner(..)
        | Op::Status(..)
        | Op::RotateKey(..)
        | Op::RevokeKeys(..)
        | Op::AddAllow(..)
        | Op::RemoveAllow(..)
        | Op::AddGrant(..)
        | Op::RevokeGrant(..)
        | Op::AssignGroup(..)
        | Op::PartnerThrottle(..)
        | Op::Enrollments(EnrollmentOp::Approve(..) | EnrollmentOp::Reject(..)) => Role::Operator,
        // A group's rates are throttles; its name is the group itself.
        Op::UpdateGroup(_, changes) if changes.rename.is_none() => Role::Operator,
        Op::UpdateGroup(..) | Op::CreateGroup(..) => Role::Admin,
        Op::Operators(
            OperatorOp::List
            | OperatorOp::Create(..)
            | OperatorOp::SetDisabled(..)
            | OperatorOp::ResetPassword(_)
            | OperatorOp::SetRole(..)
            | OperatorOp::CreateToken(..)
            | OperatorOp::ListTokens(_)
            | OperatorOp::RevokeToken(..),
        ) => Role::Admin,
    }
}

impl Checked {
    /// The lowest role that may run this request.
    pub fn required_role(&self) -> Role {
        required(&self.0)
    }
}
