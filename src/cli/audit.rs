//! `audit list`: the audit log of administrative changes.

use clap::Subcommand;

use partnergate::admin::Request;

use super::admin::administer;
use super::args::AdminArgs;

#[derive(Subcommand, Debug)]
pub enum AuditAction {
    /// The newest audit rows: who changed what, when.
    List {
        /// Only rows about a partner id or group:NAME.
        #[arg(long)]
        target: Option<String>,
        /// How many rows (default 50, at most 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
}

/// `partnergate audit …`; messages name the flag at fault.
pub fn run(args: AdminArgs<AuditAction>, out: &mut String) -> Result<(), String> {
    let AuditAction::List { target, limit } = args.action;
    administer(
        Request::ListAudit { target, limit },
        &args.common,
        &args.output,
        true,
        out,
    )
}
