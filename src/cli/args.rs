//! The command line's shape: the clap `Cli`, its commands, and the flags every command shares.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::access::{AllowAction, GrantAction};
use super::audit::AuditAction;
use super::enrollment::EnrollmentAction;
use super::group::{GroupAction, ThrottleAction};
use super::key::KeyAction;
use super::operator::OperatorAction;
use super::partner::PartnerAction;
use super::serve::{ServeArgs, UpstreamAction};

/// partnergate: the SOAP security gateway in front of the TSP's partner API.
#[derive(Parser, Debug)]
#[command(name = "partnergate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command that touches the database or serves.
#[derive(clap::Args, Debug, Default)]
pub struct Common {
    /// TOML configuration file (keys as in README; overridden by PARTNERGATE_* and flags).
    #[arg(long, global = true, value_name = "FILE", env = "PARTNERGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: a SQLite file path (default partnergate.db) or postgres://…
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// The reference partner API layer as its own service (`upstream serve`).
    Upstream {
        #[command(subcommand)]
        action: UpstreamAction,
        #[command(flatten)]
        common: Common,
    },
    /// Partners: onboarding, details, suspension, offboarding.
    Partner(AdminArgs<PartnerAction>),
    /// Partner and callback keys: list, rotate, revoke.
    Key(AdminArgs<KeyAction>),
    /// The networks a partner may call from.
    Allow(AdminArgs<AllowAction>),
    /// A partner's permissions (operations it may call).
    Grant(AdminArgs<GrantAction>),
    /// Partner groups: shared rates.
    Group(AdminArgs<GroupAction>),
    /// Rates: a partner's own, a group's per-member rate and aggregate cap.
    Throttle(AdminArgs<ThrottleAction>),
    /// Usage statistics over a period: calls per partner, operation and outcome, with their
    /// average and p50/p95/p99 latency in the gateway (percentiles estimated from the stored
    /// latency buckets; refused calls count against the partner they claimed).
    Stats {
        /// Only this partner.
        #[arg(long)]
        partner: Option<String>,
        /// Start of the period: a duration back from now (90m, 24h, 7d) or a Unix timestamp.
        #[arg(long, default_value = "24h")]
        since: String,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        output: Output,
    },
    /// The gateway nodes sharing the database: id, listen address, version, start, snapshot
    /// revision, requests per second, last heartbeat and state (`gone` after 5 s of silence;
    /// heartbeats every second).
    Nodes {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        output: Output,
    },
    /// The audit log of administrative changes.
    Audit(AdminArgs<AuditAction>),
    /// Operator accounts with roles (viewer, operator, admin) and their API tokens.
    Operator(AdminArgs<OperatorAction>),
    /// Enrollment requests partners filed (/soap/enrollment/v1): list, show, approve, reject.
    Enrollment(AdminArgs<EnrollmentAction>),
    /// List the contract's operations: permission name, SOAPAction and body element.
    Operations {
        /// The callback contract instead of the partner API.
        #[arg(long)]
        callback: bool,
    },
    /// Print a published WSDL.
    Wsdl {
        /// The SOAP 1.1-only view (for toolkits that reject SOAP 1.2 bindings).
        #[arg(long)]
        soap11_only: bool,
        /// The callback WSDL.
        #[arg(long)]
        callback: bool,
    },
    /// Print a published XSD by name (common.xsd, accounts.xsd, …).
    Xsd {
        /// The schema's name.
        name: String,
    },
    /// Check SOAP messages against the contract as the gateway would: envelope, then strict
    /// decode of the body. Prints the canonical re-encoding of each that passes; with several
    /// files, every one is checked, then a summary line; the exit status is 1 if any failed.
    Check {
        /// The message files (`-` for standard input).
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Decode the message as a callback instead of a partner API request.
        #[arg(long)]
        callback: bool,
        /// Decode the body as the response of this operation.
        #[arg(long, value_name = "OPERATION")]
        response: Option<String>,
    },
    /// The configuration: check it as `serve` would load it.
    ///
    /// `config check` reads the defaults, --config FILE and the PARTNERGATE_* variables and
    /// reports every invalid key at once.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
        #[command(flatten)]
        common: Common,
    },
    /// Ask a running gateway whether it is alive (/healthz) or ready (/readyz); exit 0 only on
    /// HTTP 200.
    ///
    /// Without --url, the configured partner listener (`listen`; 0.0.0.0 and :: through
    /// loopback) over plain HTTP: the container image's HEALTHCHECK.
    Health {
        /// The URL to ask (http:// only) instead of the configured listener's.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Ask /readyz (the database reachable) instead of /healthz.
        #[arg(long)]
        ready: bool,
        /// How long to wait for the answer.
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        timeout_ms: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// `partnergate completions bash > /usr/share/bash-completion/completions/partnergate`;
    /// zsh: `_partnergate` in a $fpath folder (/usr/share/zsh/vendor-completions); fish:
    /// /usr/share/fish/vendor_completions.d/partnergate.fish.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write every page into a folder.
    ///
    /// `partnergate man > partnergate.1`, or `partnergate man | man -l -`; with --dir, the
    /// main page and one per subcommand (partnergate-serve.1, …) are written there
    /// (/usr/share/man/man1 for a package).
    Man {
        /// Write every page into this folder instead of printing the main one.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// `partnergate config …`.
#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Load the configuration and report every invalid key and value (exit status 1), or
    /// print `configuration is valid`. Files it names (TLS, CA) are read when serving.
    Check,
}

/// How administrative commands print, and whom they act as.
#[derive(clap::Args, Debug, Default)]
pub struct Output {
    /// Print JSON (the admin API's representation) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Act as the operator holding this API token (its name in the audit log, its role's
    /// rights); prefer the environment variable, which `ps` does not show. Without it the
    /// command acts as the operating-system user, with the admin role.
    #[arg(
        long = "as",
        global = true,
        value_name = "TOKEN",
        env = "PARTNERGATE_OPERATOR_TOKEN",
        hide_env_values = true
    )]
    pub as_token: Option<String>,
}

// An administrative command's flags: its subcommand, the shared settings and the output form.
// (No doc comment: the command's own is its help text.)
#[derive(clap::Args, Debug)]
pub struct AdminArgs<A: Subcommand> {
    #[command(subcommand)]
    pub action: A,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub output: Output,
}
