//! `allow list/add/remove` and `grant list/add/revoke`: the networks a partner may call from
//! and the operations it may call.

use clap::Subcommand;

use partnergate::admin::Request;

use super::admin::administer;
use super::args::AdminArgs;

#[derive(Subcommand, Debug)]
pub enum AllowAction {
    /// List a partner's networks.
    List {
        /// Partner id.
        partner: String,
    },
    /// Add an IP address or CIDR (without host bits).
    Add {
        /// Partner id.
        partner: String,
        /// IP or CIDR.
        cidr: String,
    },
    /// Remove an IP address or CIDR.
    Remove {
        /// Partner id.
        partner: String,
        /// IP or CIDR.
        cidr: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum GrantAction {
    /// List a partner's permissions.
    List {
        /// Partner id.
        partner: String,
    },
    /// Grant *, a domain wildcard (accounts.*), a permission (accounts.create) or an operation
    /// by its WSDL name (CreateAccount).
    Add {
        /// Partner id.
        partner: String,
        /// The permission.
        permission: String,
    },
    /// Revoke a permission (as granted; WSDL names are translated).
    Revoke {
        /// Partner id.
        partner: String,
        /// The permission.
        permission: String,
    },
}

/// `partnergate allow …`.
pub fn allow(args: AdminArgs<AllowAction>, out: &mut String) -> Result<(), String> {
    let request = match args.action {
        AllowAction::List { partner } => Request::ListAllow { partner },
        AllowAction::Add { partner, cidr } => Request::AddAllow { partner, cidr },
        AllowAction::Remove { partner, cidr } => Request::RemoveAllow { partner, cidr },
    };
    administer(request, &args.common, &args.output, false, out)
}

/// `partnergate grant …`.
pub fn grant(args: AdminArgs<GrantAction>, out: &mut String) -> Result<(), String> {
    let request = match args.action {
        GrantAction::List { partner } => Request::ListGrants { partner },
        GrantAction::Add {
            partner,
            permission,
        } => Request::AddGrant {
            partner,
            permission,
        },
        GrantAction::Revoke {
            partner,
            permission,
        } => Request::RevokeGrant {
            partner,
            permission,
        },
    };
    administer(request, &args.common, &args.output, false, out)
}
