//! The `partnergate` command line. See README.md.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use partnergate::admin::{
    self, Actor, Admin, AdminError, CreateGroup, CreatePartner, RateInput, Request, RevokeInput,
    RotateInput, Rules, StatusInput, UpdateGroup, UpdatePartner,
};
use partnergate::config::{self, Config, TomlFile};
use partnergate::decode::{self, DecodeLimits};
use partnergate::encode;
use partnergate::envelope;
use partnergate::generated::{callback, partner};
use partnergate::latency::{self, Estimate};
use partnergate::log_output::LogOutput;
use partnergate::published;
use partnergate::store::{self as db, PoolUse, Store, UsageTotal};
use std::collections::BTreeMap;

/// mimalloc instead of glibc's malloc: a request makes a few hundred small, short-lived
/// allocations (quick-xml buffers, decoded strings, the typed message), and glibc's
/// malloc/free/realloc were ~7 % of the gateway's CPU under load (perf) — see bench/README.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// partnergate: the SOAP security gateway in front of the TSP's partner API.
#[derive(Parser, Debug)]
#[command(name = "partnergate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Settings shared by every command that touches the database or serves.
#[derive(clap::Args, Debug, Default)]
struct Common {
    /// TOML configuration file (keys as in README; overridden by PARTNERGATE_* and flags).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL: a SQLite file path (default partnergate.db) or postgres://…
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// The partner API layer to forward to (http:// or https://).
        #[arg(long, value_name = "URL")]
        upstream: Option<String>,
        /// Public base URL for the served WSDL (behind a load balancer).
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
        /// TLS certificate chain (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Log JSON lines.
        #[arg(long)]
        log_json: bool,
        /// Address of the admin API (default 127.0.0.1:8090; it runs only when an admin token
        /// is configured: admin.token or PARTNERGATE_ADMIN_TOKEN).
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<String>,
    },
    /// The reference partner API layer as its own service (`upstream serve`).
    Upstream {
        #[command(subcommand)]
        action: UpstreamAction,
        #[command(flatten)]
        common: Common,
    },
    /// Partners: onboarding, details, suspension, offboarding.
    Partner {
        #[command(subcommand)]
        action: PartnerAction,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        output: Output,
    },
    /// Partner and callback keys: list, rotate, revoke.
    Key {
        #[command(subcommand)]
        action: KeyAction,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        output: Output,
    },
    /// The networks a partner may call from.
    Allow {
        #[command(subcommand)]
        action: AllowAction,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        output: Output,
    },
    /// A partner's permissions (operations it may call).
    Grant {
        #[command(subcommand)]
        action: GrantAction,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        output: Output,
    },
    /// Partner groups: shared rates.
    Group {
        #[command(subcommand)]
        action: GroupAction,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        output: Output,
    },
    /// Rates: a partner's own, a group's per-member rate and aggregate cap.
    Throttle {
        #[command(subcommand)]
        action: ThrottleAction,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        output: Output,
    },
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
    Audit {
        #[command(subcommand)]
        action: AuditAction,
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        output: Output,
    },
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
}

#[derive(Subcommand, Debug)]
enum UpstreamAction {
    /// Serve the partner API layer for gateways: only gateway nodes (by address and shared
    /// secret) may call it.
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
        listen: String,
        /// Network a gateway node calls from; repeat for more (default 127.0.0.1/32).
        #[arg(long = "allow-gateway", value_name = "CIDR")]
        allow_gateway: Vec<String>,
        /// The secret gateways send (their upstream.gateway_secret); at least 16 characters.
        #[arg(
            long,
            env = "PARTNERGATE_UPSTREAM_GATEWAY_SECRET",
            hide_env_values = true
        )]
        gateway_secret: String,
    },
}

/// How administrative commands print.
#[derive(clap::Args, Debug, Default)]
struct Output {
    /// Print JSON (the admin API's representation) instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum PartnerAction {
    /// List every partner.
    List,
    /// Show a partner: details, allowlist, grants, keys (never a key itself).
    Show {
        /// Partner id.
        partner: String,
    },
    /// Create a partner with its two keys (shown once, stored hashed), allowlist and grants.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Partner id (default: PARTNER-0001, -0002, …).
        #[arg(long)]
        id: Option<String>,
        /// ISO 3166-1 alpha-2 country code.
        #[arg(long)]
        country: Option<String>,
        /// Throttle group (must exist).
        #[arg(long)]
        group: Option<String>,
        /// Network the partner's servers call from (IP or CIDR); repeat for more.
        #[arg(long = "allow", value_name = "CIDR", required = true)]
        allow: Vec<String>,
        /// Permission: *, a domain wildcard (accounts.*) or an operation (accounts.create, or
        /// its WSDL name CreateAccount); repeat for more.
        #[arg(long = "grant", value_name = "OP", required = true)]
        grant: Vec<String>,
        /// Default for an unset feature setting, as FEATURE.Setting=VALUE (e.g.
        /// VOICEMAIL.MaxMessageSeconds=120, DO_NOT_DISTURB.AllowList=+4930123); repeat for more.
        #[arg(long = "feature-default", value_name = "FEATURE.SETTING=VALUE")]
        feature_default: Vec<String>,
    },
    /// Change a partner's details; --clear FIELD removes one.
    Update {
        /// Partner id.
        partner: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Contact (person, e-mail, phone), free text.
        #[arg(long)]
        contact: Option<String>,
        /// Billing rate: DECIMAL [CURRENCY[/UNIT]], e.g. "0.0125 EUR/min".
        #[arg(long)]
        billing_rate: Option<String>,
        /// ISO 3166-1 alpha-2 country code.
        #[arg(long)]
        country: Option<String>,
        /// Throttle group (must exist).
        #[arg(long)]
        group: Option<String>,
        /// Where the TSP's callbacks go (https://…).
        #[arg(long, value_name = "URL")]
        callback_url: Option<String>,
        /// PEM file with the CA certificate(s) of the partner's callback server.
        #[arg(long, value_name = "FILE")]
        callback_ca_file: Option<PathBuf>,
        /// Feature defaults as FEATURE.Setting=VALUE (repeat); they replace the stored ones.
        #[arg(long = "feature-default", value_name = "FEATURE.SETTING=VALUE")]
        feature_default: Vec<String>,
        /// Remove a field's value; repeat for more.
        #[arg(long, value_enum, value_name = "FIELD")]
        clear: Vec<ClearField>,
    },
    /// Suspend a partner: its calls are refused; keys and settings are kept.
    Suspend {
        /// Partner id.
        partner: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reinstate a suspended partner.
    Reinstate {
        /// Partner id.
        partner: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Offboard a partner for good: every key revoked, status offboarded, records kept.
    Offboard {
        /// Partner id.
        partner: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// A partner field `partner update --clear` can remove.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ClearField {
    /// The contact.
    Contact,
    /// The billing rate.
    BillingRate,
    /// The country.
    Country,
    /// The group.
    Group,
    /// The callback URL.
    CallbackUrl,
    /// The callback CA.
    CallbackCa,
    /// The feature defaults.
    FeatureDefaults,
}

#[derive(Subcommand, Debug)]
enum KeyAction {
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

#[derive(Subcommand, Debug)]
enum AllowAction {
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
enum GrantAction {
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

/// A rate and an aggregate cap as flags.
#[derive(clap::Args, Debug, Default)]
struct RateArgs {
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
enum GroupAction {
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
struct RateTarget {
    /// A partner's own rate.
    #[arg(long, value_name = "PARTNER_ID")]
    partner: Option<String>,
    /// A group's rates.
    #[arg(long = "group", value_name = "GROUP")]
    group_name: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ThrottleAction {
    /// Set a partner's own rate (--rate, --burst), or a group's per-member rate and/or
    /// aggregate cap (--aggregate-rate, --aggregate-burst).
    Set {
        #[command(flatten)]
        target: RateTarget,
        #[command(flatten)]
        rates: RateArgs,
    },
    /// Clear a partner's own rate (its group's or the default applies), or a group's rates.
    Clear {
        #[command(flatten)]
        target: RateTarget,
        /// Groups: clear only the per-member rate.
        #[arg(long, conflicts_with = "aggregate", requires = "group_name")]
        member: bool,
        /// Groups: clear only the aggregate cap.
        #[arg(long, requires = "group_name")]
        aggregate: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AuditAction {
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

/// `VOICEMAIL.MaxMessageSeconds=120` … → `{"VOICEMAIL": {"MaxMessageSeconds": "120"}}` (repeated
/// settings, such as AllowList, become lists); the admin service checks it against the contract.
fn feature_defaults(items: &[String]) -> Result<Option<serde_json::Value>, String> {
    if items.is_empty() {
        return Ok(None);
    }
    let mut object = serde_json::Map::new();
    for item in items {
        let (path, value) = item
            .split_once('=')
            .ok_or_else(|| format!("--feature-default {item:?}: expected FEATURE.SETTING=VALUE"))?;
        let (feature, setting) = path
            .split_once('.')
            .ok_or_else(|| format!("--feature-default {item:?}: expected FEATURE.SETTING=VALUE"))?;
        let entry = object
            .entry(feature.to_string())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let serde_json::Value::Object(settings) = entry {
            match settings.get_mut(setting) {
                Some(serde_json::Value::Array(list)) => list.push(value.into()),
                Some(single) => {
                    let first = single.take();
                    *single = serde_json::Value::Array(vec![first, value.into()]);
                }
                None => {
                    settings.insert(setting.to_string(), value.into());
                }
            }
        }
    }
    Ok(Some(serde_json::Value::Object(object)))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve { .. } = &cli.command {
        return serve(cli.command);
    }
    if let Command::Upstream { .. } = &cli.command {
        return upstream(cli.command);
    }
    let mut out = String::new();
    let result = run(cli.command, &mut out);
    // A closed pipe (`partnergate operations | head`) is not an error worth a panic.
    let written = std::io::stdout().lock().write_all(out.as_bytes());
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("partnergate: writing output: {e}");
            return ExitCode::FAILURE;
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("partnergate: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, out: &mut String) -> Result<(), String> {
    match command {
        Command::Operations { callback: false } => {
            let _ = writeln!(
                out,
                "{:<22} {:<26} {:<46} BODY ELEMENT",
                "OPERATION", "PERMISSION", "SOAPACTION"
            );
            for op in partner::Operation::ALL {
                let (ns, local) = op.request_element();
                let _ = writeln!(
                    out,
                    "{:<22} {:<26} {:<46} {{{ns}}}{local}",
                    op.name(),
                    op.permission(),
                    op.soap_action()
                );
            }
        }
        Command::Operations { callback: true } => {
            let _ = writeln!(
                out,
                "{:<26} {:<34} {:<52} BODY ELEMENT",
                "OPERATION", "PERMISSION", "SOAPACTION"
            );
            for op in callback::Operation::ALL {
                let (ns, local) = op.request_element();
                let _ = writeln!(
                    out,
                    "{:<26} {:<34} {:<52} {{{ns}}}{local}",
                    op.name(),
                    op.permission(),
                    op.soap_action()
                );
            }
        }
        Command::Wsdl {
            soap11_only,
            callback,
        } => {
            let doc = match (soap11_only, callback) {
                (true, true) => published::CALLBACK_WSDL_SOAP11,
                (false, true) => published::CALLBACK_WSDL,
                (true, false) => published::PARTNER_WSDL_SOAP11,
                (false, false) => published::PARTNER_WSDL,
            };
            out.push_str(doc.text);
        }
        Command::Xsd { name } => {
            let doc = published::schema(&name).ok_or_else(|| {
                let names: Vec<_> = published::SCHEMAS.iter().map(|d| d.name).collect();
                format!("no schema named {name:?}; published: {}", names.join(", "))
            })?;
            out.push_str(doc.text);
        }
        Command::Check {
            files,
            callback,
            response,
        } => check_all(&files, callback, response.as_deref(), out)?,
        Command::Partner {
            action,
            common,
            output,
        } => {
            let flags = matches!(
                action,
                PartnerAction::Create { .. } | PartnerAction::Update { .. }
            );
            administer(partner_request(action)?, &common, &output, flags, out)?;
        }
        Command::Key {
            action,
            common,
            output,
        } => administer(key_request(action), &common, &output, false, out)?,
        Command::Allow {
            action,
            common,
            output,
        } => {
            let request = match action {
                AllowAction::List { partner } => Request::ListAllow { partner },
                AllowAction::Add { partner, cidr } => Request::AddAllow { partner, cidr },
                AllowAction::Remove { partner, cidr } => Request::RemoveAllow { partner, cidr },
            };
            administer(request, &common, &output, false, out)?;
        }
        Command::Grant {
            action,
            common,
            output,
        } => {
            let request = match action {
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
            administer(request, &common, &output, false, out)?;
        }
        Command::Group {
            action,
            common,
            output,
        } => administer(group_request(action)?, &common, &output, false, out)?,
        Command::Throttle {
            action,
            common,
            output,
        } => administer(throttle_request(action)?, &common, &output, true, out)?,
        Command::Stats {
            partner,
            since,
            common,
            output,
        } => stats(partner.as_deref(), &since, &common, output.json, out)?,
        Command::Nodes { common, output } => {
            administer(Request::ListNodes, &common, &output, false, out)?;
        }
        Command::Audit {
            action: AuditAction::List { target, limit },
            common,
            output,
        } => administer(
            Request::ListAudit { target, limit },
            &common,
            &output,
            true,
            out,
        )?,
        Command::Serve { .. } | Command::Upstream { .. } => return Err("run by main".into()),
    }
    Ok(())
}

/// `partnergate serve`: runs until SIGINT or SIGTERM.
fn serve(command: Command) -> ExitCode {
    let Command::Serve {
        common,
        listen,
        upstream,
        public_url,
        tls_cert,
        tls_key,
        log_json,
        admin_listen,
    } = command
    else {
        return ExitCode::FAILURE;
    };
    let mut flags = BTreeMap::new();
    let mut flag = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            flags.insert(k.to_string(), v);
        }
    };
    flag("listen", listen);
    flag("upstream.url", upstream);
    flag("public_url", public_url);
    flag("tls.cert", tls_cert.map(|p| p.display().to_string()));
    flag("tls.key", tls_key.map(|p| p.display().to_string()));
    flag("admin.listen", admin_listen);
    if log_json {
        flag("log_json", Some("true".into()));
    }
    let config = match load_config(&common, flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("partnergate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log = init_tracing(config.log_json, config.log_flush);
    if config.admin.token.is_none() {
        tracing::info!(
            "admin API and dashboard off: no admin.token configured (PARTNERGATE_ADMIN_TOKEN)"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("partnergate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (code, closing) = runtime.block_on(async move {
        let signals = Signals::install();
        let running = match partnergate::app::start(config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("partnergate: {e}");
                return (ExitCode::FAILURE, None);
            }
        };
        signals.wait().await;
        let deadline = std::time::Instant::now() + partnergate::app::SHUTDOWN_GRACE;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = running.shutdown.send(true);
        stopped(running.done, deadline).await;
        (ExitCode::SUCCESS, Some((running.closing, deadline)))
    });
    close_store(runtime, closing);
    log.flush();
    code
}

/// Waits for the server to stop (in-flight requests, the last statistics flush), at most until
/// `deadline`.
async fn stopped(done: tokio::task::JoinHandle<()>, deadline: std::time::Instant) {
    let until = tokio::time::Instant::from_std(deadline);
    if tokio::time::timeout_at(until, done).await.is_err() {
        tracing::warn!("shutdown: the server did not stop within the drain limit");
    }
}

/// What the pool's close keeps of the drain limit when the runtime's blocking tasks take long.
const CLOSE_RESERVE: std::time::Duration = std::time::Duration::from_millis(300);

/// The end of `serve` and `upstream serve`, by `deadline` (SIGTERM + `app::SHUTDOWN_GRACE`):
/// shutting the runtime down drops the tasks still holding the store (refresher, statistics
/// flusher) and waits for its blocking tasks; then the pool's own threads are waited for, so
/// none is inside libpq when the process exits. A blocking task or a connect still running at
/// the deadline (a database gone) is left behind, with a warning: the process exits in time.
fn close_store(
    runtime: tokio::runtime::Runtime,
    closing: Option<(db::Closing, std::time::Instant)>,
) {
    let Some((closing, deadline)) = closing else {
        drop(runtime);
        return;
    };
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    runtime.shutdown_timeout(left().saturating_sub(CLOSE_RESERVE));
    if !closing.wait(left().max(std::time::Duration::from_millis(50))) {
        tracing::warn!("database pool did not shut down within the drain limit; exiting");
    }
}

/// `partnergate upstream serve`: runs until SIGINT or SIGTERM.
fn upstream(command: Command) -> ExitCode {
    let Command::Upstream {
        action:
            UpstreamAction::Serve {
                listen,
                allow_gateway,
                gateway_secret,
            },
        common,
    } = command
    else {
        return ExitCode::FAILURE;
    };
    let fail = |e: String| {
        eprintln!("partnergate: {e}");
        ExitCode::FAILURE
    };
    let config = match load_config(&common, BTreeMap::new()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let listen: std::net::SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => return fail(format!("--listen {listen:?}: expected IP:PORT")),
    };
    if gateway_secret.chars().count() < 16 {
        return fail("--gateway-secret: use at least 16 characters".into());
    }
    let allowed = if allow_gateway.is_empty() {
        vec!["127.0.0.1/32".to_string()]
    } else {
        allow_gateway
    };
    let allowed = match allowed
        .iter()
        .map(|a| config::parse_net(a))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(a) => a,
        Err(e) => return fail(format!("--allow-gateway: {e}")),
    };
    let log = init_tracing(config.log_json, config.log_flush);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let (code, closing) = runtime.block_on(async move {
        let signals = Signals::install();
        let trust = partnergate::provision::standalone::GatewayTrust {
            allowed,
            secret: gateway_secret,
        };
        let running = match partnergate::app::start_upstream(
            &config.database_url,
            listen,
            trust,
            config.refresh_interval,
        )
        .await
        {
            Ok(r) => r,
            Err(e) => return (fail(e.to_string()), None),
        };
        signals.wait().await;
        let deadline = std::time::Instant::now() + partnergate::app::SHUTDOWN_GRACE;
        let _ = running.shutdown.send(true);
        stopped(running.done, deadline).await;
        (ExitCode::SUCCESS, Some((running.closing, deadline)))
    });
    close_store(runtime, closing);
    log.flush();
    code
}

/// SIGINT and SIGTERM, caught from before start-up (opening and migrating the database), so
/// that a signal during start-up ends in a clean shutdown once started, not in the default
/// action killing the process half-way.
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers (inside the runtime).
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Until either signal arrives (at once if one arrived already). A handler that could not
    /// be installed leaves that signal's default action.
    async fn wait(mut self) {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.interrupt) => {}
            _ = one(&mut self.terminate) => {}
        }
    }
}

/// Installs the subscriber; the returned output is flushed before the process exits.
fn init_tracing(json: bool, flush: std::time::Duration) -> LogOutput {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("partnergate=info"));
    let output = LogOutput::new(flush);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only on a terminal: escape codes in a log file are noise for every reader.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(output.clone());
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder
            .event_format(partnergate::access_format::TextFormat::default())
            .init();
    }
    output
}

/// `partnergate stats`.
fn stats(
    partner: Option<&str>,
    since: &str,
    common: &Common,
    json: bool,
    out: &mut String,
) -> Result<(), String> {
    let now = partnergate::pipeline::unix_now();
    let start = if since.len() >= 9 && since.bytes().all(|b| b.is_ascii_digit()) {
        since
            .parse::<i64>()
            .map_err(|e| format!("--since {since:?}: {e}"))?
    } else {
        let back =
            partnergate::admin::parse_duration(since).map_err(|e| format!("--since: {e}"))?;
        now - i64::try_from(back.as_secs()).unwrap_or(i64::MAX / 2)
    };
    let config = load_config(common, BTreeMap::new())?;
    let rows = with_store(&config.database_url, |store| {
        store.usage(start, partner).map_err(|e| e.to_string())
    })?;
    if json {
        let rows: Vec<serde_json::Value> = rows.iter().map(stats_json_row).collect();
        let value = serde_json::json!({ "since": start, "until": now, "rows": rows });
        let _ = writeln!(out, "{value}");
        return Ok(());
    }
    let since_text = partnergate::xs::DateTime::from_unix(start);
    let _ = writeln!(out, "since {since_text} (statistics are kept per minute)");
    let _ = writeln!(
        out,
        "{:<16} {:<22} {:<26} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "PARTNER", "OPERATION", "OUTCOME", "CALLS", "AVG MS", "P50 MS", "P95 MS", "P99 MS"
    );
    for r in &rows {
        let avg = if r.count > 0 {
            r.total_micros as f64 / r.count as f64 / 1000.0
        } else {
            0.0
        };
        let [p50, p95, p99] = latency::SHOWN.map(|(_, q)| match r.latency.percentile(q) {
            Some(Estimate::Micros(us)) => format!("{:.3}", us / 1000.0),
            Some(Estimate::Above(b)) => format!(">{}", b / 1000),
            None => "-".to_owned(),
        });
        let _ = writeln!(
            out,
            "{:<16} {:<22} {:<26} {:>10} {:>10.3} {p50:>10} {p95:>10} {p99:>10}",
            r.partner_id, r.operation, r.outcome, r.count, avg
        );
    }
    let total: i64 = rows.iter().map(|r| r.count).sum();
    let _ = writeln!(out, "{total} calls");
    Ok(())
}

/// One row of `partnergate stats --json`: the stored totals, the average, p50/p95/p99 (in
/// milliseconds; `{"above_ms": 60000}` when slower than the last bucket bound, `null` without a
/// histogram) and the non-empty latency buckets (`le_ms` null for the overflow bucket).
fn stats_json_row(r: &UsageTotal) -> serde_json::Value {
    let estimate = |q: f64| match r.latency.percentile(q) {
        Some(Estimate::Micros(us)) => serde_json::json!(us / 1000.0),
        Some(Estimate::Above(b)) => serde_json::json!({ "above_ms": b as f64 / 1000.0 }),
        None => serde_json::Value::Null,
    };
    let buckets: Vec<serde_json::Value> = r
        .latency
        .stored()
        .map(|(le, n)| {
            let le_ms = (le != latency::OVERFLOW_STORED).then(|| le as f64 / 1000.0);
            serde_json::json!({ "le_ms": le_ms, "count": n })
        })
        .collect();
    serde_json::json!({
        "partner_id": r.partner_id,
        "operation": r.operation,
        "outcome": r.outcome,
        "count": r.count,
        "total_micros": r.total_micros,
        "avg_ms": (r.count > 0).then(|| r.total_micros as f64 / r.count as f64 / 1000.0),
        "p50_ms": estimate(0.50),
        "p95_ms": estimate(0.95),
        "p99_ms": estimate(0.99),
        "latency_buckets": buckets,
    })
}

/// Opens the database for one command, runs `f` on it (which drops the store), then waits until
/// the pool's threads are done: a PostgreSQL connect still running while the process exits
/// can abort it in libpq's Kerberos library after the command's change was committed.
fn with_store<T>(url: &str, f: impl FnOnce(Store) -> Result<T, String>) -> Result<T, String> {
    let store = Store::open_for(url, PoolUse::Command).map_err(|e| e.to_string())?;
    let closing = store.closing();
    let result = f(store);
    if !closing.wait(db::CLOSE_TIMEOUT) {
        eprintln!("partnergate: warning: the database connection pool did not shut down in time");
    }
    result
}

/// Loads the configuration from the defaults, the file, the environment and `flags`.
fn load_config(common: &Common, flags: BTreeMap<String, String>) -> Result<Config, String> {
    let file = match &common.config {
        Some(path) => Some(TomlFile::read(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut flags = flags;
    if let Some(url) = &common.database_url {
        flags.insert("database_url".into(), url.clone());
    }
    let env = config::Environment;
    let mut sources: Vec<&dyn config::Source> = Vec::new();
    if let Some(f) = &file {
        sources.push(f);
    }
    sources.push(&env);
    sources.push(&flags);
    Config::from_sources(&sources).map_err(|e| e.to_string())
}

/// The flag that sets an input field, for messages of flag-based commands.
fn flag_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "id" => "--id",
        "name" => "--name",
        "country" => "--country",
        "group" => "--group",
        "allow" => "--allow",
        "grants" => "--grant",
        "feature_defaults" => "--feature-default",
        "contact" => "--contact",
        "billing_rate" => "--billing-rate",
        "callback_url" => "--callback-url",
        "callback_ca_pem" => "--callback-ca-file",
        "reason" => "--reason",
        "rate" => "--rate/--burst",
        "aggregate" => "--aggregate-rate/--aggregate-burst",
        "limit" => "--limit",
        _ => return None,
    })
}

/// Runs one administrative request as the CLI user: checked before the database is opened,
/// then one transaction; prints text or (`--json`) the admin API's JSON.
fn administer(
    request: Request,
    common: &Common,
    output: &Output,
    flags: bool,
    out: &mut String,
) -> Result<(), String> {
    let config = load_config(common, BTreeMap::new())?;
    let rules = Rules {
        allow_http_callbacks: config.callback.allow_http,
        callback_allowed_networks: config.callback.allowed_networks.clone(),
    };
    let message = |e: AdminError| match e.field().and_then(flag_of) {
        Some(flag) if flags => format!("{flag}: {e}"),
        _ => e.to_string(),
    };
    let checked = request.check(&rules).map_err(message)?;
    let is_change = checked.is_change();
    let reply = with_store(&config.database_url, |store| {
        Admin::new(store)
            .run(checked, &Actor::cli())
            .map_err(message)
    })?;
    if output.json {
        let text = serde_json::to_string(&reply.view).map_err(|e| e.to_string())?;
        let _ = writeln!(out, "{text}");
    } else {
        out.push_str(&admin::text::render(&reply, is_change));
    }
    Ok(())
}

fn partner_request(action: PartnerAction) -> Result<Request, String> {
    let status = |reason| StatusInput { reason };
    Ok(match action {
        PartnerAction::List => Request::ListPartners,
        PartnerAction::Show { partner } => Request::ShowPartner { partner },
        PartnerAction::Create {
            name,
            id,
            country,
            group,
            allow,
            grant,
            feature_default,
        } => Request::CreatePartner(CreatePartner {
            id,
            name,
            country,
            group,
            allow,
            grants: grant,
            feature_defaults: feature_defaults(&feature_default)?,
        }),
        PartnerAction::Update {
            partner,
            name,
            contact,
            billing_rate,
            country,
            group,
            callback_url,
            callback_ca_file,
            feature_default,
            clear,
        } => {
            let callback_ca_pem = match &callback_ca_file {
                None => None,
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|e| format!("--callback-ca-file {}: {e}", path.display()))?,
                ),
            };
            let feature_defaults = feature_defaults(&feature_default)?;
            // A field is set, cleared (--clear) or left alone; not two of these.
            let field = |value: Option<_>, which: ClearField, flag: &str| {
                let cleared = clear.contains(&which);
                match (value, cleared) {
                    (Some(_), true) => Err(format!(
                        "{flag} and --clear {} contradict each other",
                        clap::ValueEnum::to_possible_value(&which)
                            .map_or_else(String::new, |v| v.get_name().to_owned())
                    )),
                    (Some(v), false) => Ok(Some(Some(v))),
                    (None, true) => Ok(Some(None)),
                    (None, false) => Ok(None),
                }
            };
            Request::UpdatePartner {
                partner,
                update: UpdatePartner {
                    name,
                    contact: field(contact, ClearField::Contact, "--contact")?,
                    billing_rate: field(billing_rate, ClearField::BillingRate, "--billing-rate")?,
                    country: field(country, ClearField::Country, "--country")?,
                    group: field(group, ClearField::Group, "--group")?,
                    callback_url: field(callback_url, ClearField::CallbackUrl, "--callback-url")?,
                    callback_ca_pem: field(
                        callback_ca_pem,
                        ClearField::CallbackCa,
                        "--callback-ca-file",
                    )?,
                    feature_defaults: match (
                        feature_defaults,
                        clear.contains(&ClearField::FeatureDefaults),
                    ) {
                        (Some(_), true) => return Err(
                            "--feature-default and --clear feature-defaults contradict each other"
                                .into(),
                        ),
                        (Some(v), false) => Some(Some(v)),
                        (None, true) => Some(None),
                        (None, false) => None,
                    },
                },
            }
        }
        PartnerAction::Suspend { partner, reason } => Request::Suspend {
            partner,
            input: status(reason),
        },
        PartnerAction::Reinstate { partner, reason } => Request::Reinstate {
            partner,
            input: status(reason),
        },
        PartnerAction::Offboard { partner, reason } => Request::Offboard {
            partner,
            input: status(reason),
        },
    })
}

fn key_request(action: KeyAction) -> Request {
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
        ThrottleAction::Set { target, rates } => match (target.partner, target.group_name) {
            (Some(partner), _) => {
                if rates.aggregate().is_some() {
                    return Err(
                        "a partner has no aggregate cap: set --aggregate-rate on its group".into(),
                    );
                }
                let rate = rates
                    .member()
                    .ok_or("give --rate and --burst for the partner")?;
                Request::PartnerThrottle {
                    partner,
                    rate: Some(rate),
                }
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
            member,
            aggregate,
        } => match (target.partner, target.group_name) {
            (Some(partner), _) => Request::PartnerThrottle {
                partner,
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

/// `partnergate check FILE…`: one file as before (its result, or its error as the command's);
/// several: each file's result on its own line, then `checked N files: X ok, Y failed`.
fn check_all(
    files: &[PathBuf],
    is_callback: bool,
    response: Option<&str>,
    text: &mut String,
) -> Result<(), String> {
    if let [file] = files {
        let ok = check(file, is_callback, response, text)?;
        eprintln!("ok: {ok}");
        return Ok(());
    }
    let mut failed = 0usize;
    for file in files {
        match check(file, is_callback, response, text) {
            Ok(ok) => eprintln!("{}: ok: {ok}", file.display()),
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", file.display());
            }
        }
    }
    eprintln!(
        "checked {} files: {} ok, {failed} failed",
        files.len(),
        files.len() - failed
    );
    if failed == 0 {
        Ok(())
    } else {
        Err(format!(
            "{failed} of {} files failed the check",
            files.len()
        ))
    }
}

/// Checks one message; on success appends its canonical form to `text` and returns
/// `NAME (VERSION)`.
fn check(
    file: &PathBuf,
    is_callback: bool,
    response: Option<&str>,
    text: &mut String,
) -> Result<String, String> {
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading standard input: {e}"))?;
    } else {
        bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let env =
        envelope::scan(&bytes).map_err(|e| format!("not an acceptable SOAP envelope: {e}"))?;
    let limits = DecodeLimits::default();
    let invalid =
        |e: decode::DecodeError| format!("InvalidRequest at {}: {}: {}", e.path, e.rule, e.detail);
    let mut out = Vec::new();
    let name = match (is_callback, response) {
        (false, None) => {
            let value = decode::partner_request(&env.body, limits).map_err(invalid)?;
            encode::body_only(env.version, &mut out, |w| Ok(value.encode(w)?))
                .map_err(|e| e.to_string())?;
            value.operation().name()
        }
        (false, Some(op)) => {
            let op = partner::Operation::from_name(op)
                .ok_or_else(|| format!("unknown operation {op:?}"))?;
            let value = decode::partner_response(op, &env.body, limits).map_err(invalid)?;
            encode::body_only(env.version, &mut out, |w| Ok(value.encode(w)?))
                .map_err(|e| e.to_string())?;
            op.name()
        }
        (true, None) => {
            let value = decode::callback_request(&env.body, limits).map_err(invalid)?;
            encode::body_only(env.version, &mut out, |w| Ok(value.encode(w)?))
                .map_err(|e| e.to_string())?;
            value.operation().name()
        }
        (true, Some(op)) => {
            let op = callback::Operation::from_name(op)
                .ok_or_else(|| format!("unknown callback operation {op:?}"))?;
            let value = decode::callback_response(op, &env.body, limits).map_err(invalid)?;
            encode::body_only(env.version, &mut out, |w| Ok(value.encode(w)?))
                .map_err(|e| e.to_string())?;
            op.name()
        }
    };
    text.push_str(&String::from_utf8_lossy(&out));
    text.push('\n');
    Ok(format!("{name} ({:?})", env.version))
}
