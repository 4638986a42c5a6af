//! The `partnergate` command line. See README.md.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use partnergate::config::{self, Config, TomlFile};
use partnergate::decode::{self, DecodeLimits};
use partnergate::encode;
use partnergate::envelope;
use partnergate::generated::{callback, partner};
use partnergate::published;
use partnergate::store::{NewPartner, Store};
use std::collections::BTreeMap;

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
    },
    /// The reference partner API layer as its own service (`upstream serve`).
    Upstream {
        #[command(subcommand)]
        action: UpstreamAction,
        #[command(flatten)]
        common: Common,
    },
    /// Partners: onboarding.
    Partner {
        #[command(subcommand)]
        action: PartnerAction,
        #[command(flatten)]
        common: Common,
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
        #[arg(long, conflicts_with = "callback")]
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
    /// Check a SOAP message against the contract as the gateway would: envelope, then strict
    /// decode of the body. Prints the canonical re-encoding on success.
    Check {
        /// The message file (`-` for standard input).
        file: PathBuf,
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

#[derive(Subcommand, Debug)]
enum PartnerAction {
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
        /// Print JSON (partner_id, api_key, callback_key).
        #[arg(long)]
        json: bool,
    },
}

/// `VOICEMAIL.MaxMessageSeconds=120` … → `{"VOICEMAIL": {"MaxMessageSeconds": "120"}}`, checked
/// against the contract (repeated settings, such as AllowList, become lists).
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
    let value = serde_json::Value::Object(object);
    partnergate::provision::features::validate_defaults(&value)
        .map_err(|e| format!("--feature-default: {e}"))?;
    Ok(Some(value))
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
                (_, true) => published::CALLBACK_WSDL,
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
            file,
            callback,
            response,
        } => check(&file, callback, response.as_deref(), out)?,
        Command::Partner { action, common } => partner(action, &common, out)?,
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
    init_tracing(config.log_json);
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
    runtime.block_on(async move {
        let running = match partnergate::app::start(config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("partnergate: {e}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = running.shutdown.send(true);
        let _ = running.done.await;
        ExitCode::SUCCESS
    })
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
    init_tracing(config.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
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
            Err(e) => return fail(e.to_string()),
        };
        wait_for_signal().await;
        let _ = running.shutdown.send(true);
        let _ = running.done.await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("partnergate=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
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

fn partner(action: PartnerAction, common: &Common, out: &mut String) -> Result<(), String> {
    let config = load_config(common, BTreeMap::new())?;
    match action {
        PartnerAction::Create {
            name,
            id,
            country,
            group,
            allow,
            grant,
            feature_default,
            json,
        } => {
            // Every argument is checked before the database is opened.
            let feature_defaults = feature_defaults(&feature_default)?;
            let allow = allow
                .iter()
                .map(|a| config::parse_net(a).map_err(|e| format!("--allow: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            // Operation names (CreateAccount) are accepted as well as permissions.
            let grants = grant
                .iter()
                .map(|g| {
                    partner::Operation::from_name(g)
                        .map_or_else(|| g.clone(), |op| op.permission().to_string())
                })
                .collect();
            let known: Vec<&str> = partner::Operation::ALL
                .iter()
                .map(|o| o.permission())
                .collect();
            let new = NewPartner {
                partner_id: id,
                name,
                country,
                group,
                allow,
                grants,
                key_ttl: None,
                feature_defaults,
            };
            // Everything that can be checked without the database is checked before it is
            // opened (or created).
            new.check(&known).map_err(|e| e.to_string())?;
            let store = Store::open(&config.database_url).map_err(|e| e.to_string())?;
            let created = store
                .create_partner(new, &known)
                .map_err(|e| e.to_string())?;
            if json {
                let value = serde_json::json!({
                    "partner_id": created.partner_id,
                    "api_key": created.api_key.expose(),
                    "callback_key": created.callback_key.expose(),
                });
                let _ = writeln!(out, "{value}");
            } else {
                let _ = writeln!(out, "partner_id:   {}", created.partner_id);
                let _ = writeln!(out, "api_key:      {}", created.api_key.expose());
                let _ = writeln!(out, "callback_key: {}", created.callback_key.expose());
                let _ = writeln!(out, "Store the keys now: they are shown only once (the database keeps their hashes).");
            }
        }
    }
    Ok(())
}

fn check(
    file: &PathBuf,
    is_callback: bool,
    response: Option<&str>,
    text: &mut String,
) -> Result<(), String> {
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
    eprintln!("ok: {name} ({:?})", env.version);
    text.push_str(&String::from_utf8_lossy(&out));
    text.push('\n');
    Ok(())
}
