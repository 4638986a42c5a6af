//! `key list/rotate/revoke`: partner and callback keys.

use clap::Subcommand;

use partnergate::admin::{Request, RevokeInput, RotateInput};

use super::admin::administer;
use super::args::AdminArgs;

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// List a partner's keys: id, kind, prefix, state, dates (never a key or its hash).
    List {
        /// Partner id.
        partner: String,
    },
    /// Issue a new key (shown once); the old keys of its kind stay valid for the overlap.
    Rotate {
        /// Partner id.
        partner: String,
        /// partner or callback.
        #[arg(long, default_value = "partner")]
        kind: String,
        /// How long the old keys stay valid: 0 (now), 90s, 15m, 24h, 7d, 1h30m.
        #[arg(long, default_value = "24h")]
        overlap: String,
    },
    /// Revoke keys now: every key of a kind, or one key by id.
    Revoke {
        /// Partner id.
        partner: String,
        /// partner or callback: every unrevoked key of that kind.
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        kind: Option<String>,
        /// One key, by the id `key list` shows.
        #[arg(long)]
        id: Option<i64>,
    },
}

/// `partnergate key …`.
pub fn run(args: AdminArgs<KeyAction>, out: &mut String) -> Result<(), String> {
    administer(request(args.action), &args.common, &args.output, false, out)
}

fn request(action: KeyAction) -> Request {
    match action {
        KeyAction::List { partner } => Request::ListKeys { partner },
        KeyAction::Rotate {
            partner,
            kind,
            overlap,
        } => Request::RotateKey {
            partner,
            input: RotateInput {
                kind: Some(kind),
                overlap: Some(overlap),
            },
        },
        KeyAction::Revoke { partner, kind, id } => Request::RevokeKeys {
            partner,
            input: RevokeInput { kind, id },
        },
    }
}
