//! `enrollment list/show/approve/reject`: operators' review of the requests partners filed
//! through the enrollment endpoint (`/soap/enrollment/v1`).

use clap::Subcommand;

use partnergate::admin::{ApproveEnrollment, RateInput, RejectEnrollment, Request};

use super::admin::administer;
use super::args::AdminArgs;

#[derive(Subcommand, Debug)]
pub enum EnrollmentAction {
    /// List enrollment requests, newest first.
    List {
        /// Only those in this state: pending, approved, rejected or collected.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one request: company, contacts, operations, networks, callback URL, decision.
    Show {
        /// Enrollment id (enr_…).
        enrollment: String,
    },
    /// Approve a pending request: the partner is created from it (flags change a field); the
    /// partner collects its keys with its pickup secret, once.
    Approve {
        /// Enrollment id (enr_…).
        enrollment: String,
        /// Partner id (default: PARTNER-0001, -0002, …).
        #[arg(long)]
        id: Option<String>,
        /// Display name (default: the company name).
        #[arg(long)]
        name: Option<String>,
        /// Throttle group (must exist).
        #[arg(long)]
        group: Option<String>,
        /// Networks instead of the requested ones; repeat for more.
        #[arg(long = "allow", value_name = "CIDR")]
        allow: Vec<String>,
        /// Permissions instead of the requested operations; repeat for more.
        #[arg(long = "grant", value_name = "OP")]
        grant: Vec<String>,
        /// Callback URL instead of the requested one.
        #[arg(long, value_name = "URL", conflicts_with = "no_callback_url")]
        callback_url: Option<String>,
        /// No callback URL, whatever was requested.
        #[arg(long)]
        no_callback_url: bool,
        /// The partner's own rate (requests per second); with --burst.
        #[arg(long, requires = "burst")]
        rate: Option<u64>,
        /// The partner's burst; with --rate.
        #[arg(long, requires = "rate")]
        burst: Option<u64>,
        /// Do not register the client certificate the request carried (by default the partner
        /// gets it as a registered client certificate).
        #[arg(long)]
        no_client_cert: bool,
    },
    /// Reject a pending request; the applicant reads the reason.
    Reject {
        /// Enrollment id (enr_…).
        enrollment: String,
        /// Why (one line, up to 500 characters).
        #[arg(long)]
        reason: String,
    },
}

/// `partnergate enrollment …`; messages name the flag at fault.
pub fn run(args: AdminArgs<EnrollmentAction>, out: &mut String) -> Result<(), String> {
    let request = match args.action {
        EnrollmentAction::List { status } => Request::ListEnrollments { status },
        EnrollmentAction::Show { enrollment } => Request::ShowEnrollment { enrollment },
        EnrollmentAction::Approve {
            enrollment,
            id,
            name,
            group,
            allow,
            grant,
            callback_url,
            no_callback_url,
            rate,
            burst,
            no_client_cert,
        } => {
            let input = ApproveEnrollment {
                id,
                name,
                group,
                allow: (!allow.is_empty()).then_some(allow),
                grants: (!grant.is_empty()).then_some(grant),
                callback_url: if no_callback_url {
                    Some(None)
                } else {
                    callback_url.map(Some)
                },
                rate: rate
                    .zip(burst)
                    .map(|(per_second, burst)| RateInput { per_second, burst }),
                client_cert: no_client_cert.then_some(false),
            };
            Request::ApproveEnrollment { enrollment, input }
        }
        EnrollmentAction::Reject { enrollment, reason } => Request::RejectEnrollment {
            enrollment,
            input: RejectEnrollment { reason },
        },
    };
    administer(request, &args.common, &args.output, true, out)
}
