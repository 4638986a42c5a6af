//! `operator create|list|disable|enable|reset-password|set-role` and `operator token
//! create|list|revoke`: operator accounts and their API tokens (role admin).

use clap::Subcommand;

use partnergate::admin::Request;

use super::admin::administer;
use super::args::AdminArgs;

#[derive(Subcommand, Debug)]
pub enum OperatorAction {
    /// A new operator account; prints its one-time password, once.
    Create {
        /// Login name: 1 to 64 of a-z 0-9 . _ -.
        #[arg(long)]
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
    },
    /// Every account: name, role, enabled or disabled, dates.
    List,
    /// Disable an account: its dashboard sessions end and its tokens are refused at once.
    Disable {
        /// Login name.
        #[arg(long)]
        name: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Login name.
        #[arg(long)]
        name: String,
    },
    /// A new one-time password (printed once); the account's sessions end.
    ResetPassword {
        /// Login name.
        #[arg(long)]
        name: String,
    },
    /// Give an account another role.
    SetRole {
        /// Login name.
        #[arg(long)]
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
    },
    /// API tokens for the admin API and `--as`.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// A new API token for an operator (printed once; stored as its hash).
    Create {
        /// The operator's login name.
        #[arg(long)]
        name: String,
        /// What the token is for (shown in lists).
        #[arg(long)]
        label: Option<String>,
    },
    /// An operator's tokens: id, prefix, label, created, last used, revoked.
    List {
        /// The operator's login name.
        #[arg(long)]
        name: String,
    },
    /// Revoke a token now.
    Revoke {
        /// The operator's login name.
        #[arg(long)]
        name: String,
        /// The token's id, from `operator token list`.
        #[arg(long)]
        id: i64,
    },
}

/// `partnergate operator …`; messages name the flag at fault.
pub fn run(args: AdminArgs<OperatorAction>, out: &mut String) -> Result<(), String> {
    let request = match args.action {
        OperatorAction::Create { name, role } => Request::CreateOperator { name, role },
        OperatorAction::List => Request::ListOperators,
        OperatorAction::Disable { name } => Request::DisableOperator { name },
        OperatorAction::Enable { name } => Request::EnableOperator { name },
        OperatorAction::ResetPassword { name } => Request::ResetPassword { name },
        OperatorAction::SetRole { name, role } => Request::SetRole { name, role },
        OperatorAction::Token { action } => match action {
            TokenAction::Create { name, label } => Request::CreateToken {
                operator: name,
                label,
            },
            TokenAction::List { name } => Request::ListTokens { operator: name },
            TokenAction::Revoke { name, id } => Request::RevokeToken { operator: name, id },
        },
    };
    administer(request, &args.common, &args.output, true, out)
}
