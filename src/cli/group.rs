//! `group list/show/create/update/assign` and `throttle set/clear`: partner groups and rates
//! (a partner's own rate for its calls and, `--callback-rate`, for the callbacks to its BSS).

use clap::Subcommand;

use partnergate::admin::{CreateGroup, Direction, RateInput, Request, UpdateGroup};

use super::admin::administer;
use super::args::AdminArgs;

/// A rate and an aggregate cap as flags.
#[derive(clap::Args, Debug, Default)]
pub struct RateArgs {
    /// Requests per second (with --burst).
    #[arg(long, value_name = "N", requires = "burst")]
    rate: Option<u64>,
    /// Burst size (with --rate).
    #[arg(long, value_name = "N", requires = "rate")]
    burst: Option<u64>,
    /// Groups: requests per second of all members together (with --aggregate-burst).
    #[arg(long, value_name = "N", requires = "aggregate_burst")]
    aggregate_rate: Option<u64>,
    /// Groups: burst of all members together (with --aggregate-rate).
    #[arg(long, value_name = "N", requires = "aggregate_rate")]
    aggregate_burst: Option<u64>,
}

impl RateArgs {
    fn member(&self) -> Option<RateInput> {
        self.rate
            .zip(self.burst)
            .map(|(per_second, burst)| RateInput { per_second, burst })
    }

    fn aggregate(&self) -> Option<RateInput> {
        self.aggregate_rate
            .zip(self.aggregate_burst)
            .map(|(per_second, burst)| RateInput { per_second, burst })
    }
}

#[derive(Subcommand, Debug)]
pub enum GroupAction {
    /// List every group with its rates and member count.
    List,
    /// Show a group and its members.
    Show {
        /// Group name.
        name: String,
    },
    /// Create a group.
    Create {
        /// Group name: [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
        name: String,
        #[command(flatten)]
        rates: RateArgs,
    },
    /// Rename a group or change its rates.
    Update {
        /// Group name.
        name: String,
        /// New name (members follow).
        #[arg(long, value_name = "NAME")]
        rename: Option<String>,
        #[command(flatten)]
        rates: RateArgs,
        /// Remove the per-member rate.
        #[arg(long, conflicts_with_all = ["rate", "burst"])]
        clear_rate: bool,
        /// Remove the aggregate cap.
        #[arg(long, conflicts_with_all = ["aggregate_rate", "aggregate_burst"])]
        clear_aggregate: bool,
    },
    /// Put a partner into a group, or (--none) into no group.
    Assign {
        /// Partner id.
        partner: String,
        /// Group name.
        #[arg(required_unless_present = "none")]
        group: Option<String>,
        /// No group.
        #[arg(long, conflicts_with = "group")]
        none: bool,
    },
}

/// The partner or the group whose rate is meant.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct RateTarget {
    /// A partner's own rate.
    #[arg(long, value_name = "PARTNER_ID")]
    partner: Option<String>,
    /// A group's rates.
    #[arg(long = "group", value_name = "GROUP")]
    group_name: Option<String>,
}

/// A partner's rate for the callbacks the TSP's partner API layer sends to its BSS.
#[derive(clap::Args, Debug, Default)]
pub struct CallbackRateArgs {
    /// Partners: callbacks per second to its BSS (with --callback-burst).
    #[arg(long, value_name = "N", requires = "callback_burst")]
    callback_rate: Option<u64>,
    /// Partners: burst of callbacks to its BSS (with --callback-rate).
    #[arg(long, value_name = "N", requires = "callback_rate")]
    callback_burst: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum ThrottleAction {
    /// Set a partner's own rate (--rate, --burst) or its callback rate (--callback-rate,
    /// --callback-burst), or a group's per-member rate and/or aggregate cap
    /// (--aggregate-rate, --aggregate-burst).
    Set {
        #[command(flatten)]
        target: RateTarget,
        #[command(flatten)]
        rates: RateArgs,
        #[command(flatten)]
        callback: CallbackRateArgs,
    },
    /// Clear a partner's own rate (its group's or the default applies) or, with --callback, its
    /// callback rate (callback.default_* applies), or a group's rates.
    Clear {
        #[command(flatten)]
        target: RateTarget,
        /// Partners: clear the callback rate instead of the rate of its calls.
        #[arg(long, requires = "partner", conflicts_with_all = ["member", "aggregate"])]
        callback: bool,
        /// Groups: clear only the per-member rate.
        #[arg(long, conflicts_with = "aggregate", requires = "group_name")]
        member: bool,
        /// Groups: clear only the aggregate cap.
        #[arg(long, requires = "group_name")]
        aggregate: bool,
    },
}

/// `partnergate group …`.
pub fn group(args: AdminArgs<GroupAction>, out: &mut String) -> Result<(), String> {
    administer(
        group_request(args.action)?,
        &args.common,
        &args.output,
        false,
        out,
    )
}

/// `partnergate throttle …`; messages name the flag at fault.
pub fn throttle(args: AdminArgs<ThrottleAction>, out: &mut String) -> Result<(), String> {
    administer(
        throttle_request(args.action)?,
        &args.common,
        &args.output,
        true,
        out,
    )
}

fn group_request(action: GroupAction) -> Result<Request, String> {
    Ok(match action {
        GroupAction::List => Request::ListGroups,
        GroupAction::Show { name } => Request::ShowGroup { group: name },
        GroupAction::Create { name, rates } => Request::CreateGroup(CreateGroup {
            name,
            rate: rates.member(),
            aggregate: rates.aggregate(),
        }),
        GroupAction::Update {
            name,
            rename,
            rates,
            clear_rate,
            clear_aggregate,
        } => Request::UpdateGroup {
            group: name,
            update: UpdateGroup {
                name: rename,
                rate: if clear_rate {
                    Some(None)
                } else {
                    rates.member().map(Some)
                },
                aggregate: if clear_aggregate {
                    Some(None)
                } else {
                    rates.aggregate().map(Some)
                },
            },
        },
        GroupAction::Assign {
            partner,
            group,
            none,
        } => Request::AssignGroup {
            partner,
            group: if none { None } else { group },
        },
    })
}

fn throttle_request(action: ThrottleAction) -> Result<Request, String> {
    Ok(match action {
        ThrottleAction::Set {
            target,
            rates,
            callback,
        } => match (target.partner, target.group_name) {
            (Some(partner), _) => {
                if rates.aggregate().is_some() {
                    return Err(
                        "a partner has no aggregate cap: set --aggregate-rate on its group".into(),
                    );
                }
                let callback = callback
                    .callback_rate
                    .zip(callback.callback_burst)
                    .map(|(per_second, burst)| RateInput { per_second, burst });
                let (direction, rate) = match (rates.member(), callback) {
                    (Some(rate), None) => (Direction::Inbound, rate),
                    (None, Some(rate)) => (Direction::Callback, rate),
                    (Some(_), Some(_)) => {
                        return Err("set --rate and --callback-rate in two commands (each is \
                                    its own change, audited on its own)"
                            .into())
                    }
                    (None, None) => {
                        return Err("give --rate and --burst, or --callback-rate and \
                                    --callback-burst, for the partner"
                            .into())
                    }
                };
                Request::PartnerThrottle {
                    partner,
                    direction,
                    rate: Some(rate),
                }
            }
            (None, Some(_)) if callback.callback_rate.is_some() => {
                return Err("a group has no callback rate: set --callback-rate on a partner".into())
            }
            (None, Some(group)) => Request::UpdateGroup {
                group,
                update: UpdateGroup {
                    name: None,
                    rate: rates.member().map(Some),
                    aggregate: rates.aggregate().map(Some),
                },
            },
            (None, None) => return Err("give --partner or --group".into()),
        },
        ThrottleAction::Clear {
            target,
            callback,
            member,
            aggregate,
        } => match (target.partner, target.group_name) {
            (Some(partner), _) => Request::PartnerThrottle {
                partner,
                direction: if callback {
                    Direction::Callback
                } else {
                    Direction::Inbound
                },
                rate: None,
            },
            (None, Some(group)) => Request::UpdateGroup {
                group,
                update: UpdateGroup {
                    name: None,
                    rate: (!aggregate).then_some(None),
                    aggregate: (!member).then_some(None),
                },
            },
            (None, None) => return Err("give --partner or --group".into()),
        },
    })
}
