//! `serve` and `upstream serve`: configuration from flags, the runtime, start-up, waiting for
//! SIGINT/SIGTERM and the bounded shutdown (drain, runtime end, the database pool's close).

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use partnergate::config;
use partnergate::log_output::LogOutput;
use partnergate::store as db;

use super::args::Common;
use super::output::{fail, report};
use super::setup::load_config;

/// The flags of `partnergate serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: Common,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// The partner API layer to forward to (http:// or https://).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Public base URL for the served WSDL (behind a load balancer).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log JSON lines.
    #[arg(long)]
    pub log_json: bool,
    /// Address of the admin API (default 127.0.0.1:8090; it runs only when an admin token
    /// is configured: admin.token or PARTNERGATE_ADMIN_TOKEN).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum UpstreamAction {
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

/// `partnergate serve`: runs until SIGINT or SIGTERM.
pub fn serve(args: ServeArgs) -> ExitCode {
    let ServeArgs {
        common,
        listen,
        upstream,
        public_url,
        tls_cert,
        tls_key,
        log_json,
        admin_listen,
    } = args;
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
        Err(e) => return fail(e),
    };
    let log = init_tracing(config.log_json, config.log_flush);
    if config.admin.token.is_none() {
        tracing::info!(
            "admin API and dashboard off: no admin.token configured (PARTNERGATE_ADMIN_TOKEN)"
        );
    }
    run_until_signal(log, Shutdown::Draining, || async move {
        match partnergate::app::start(config).await {
            Ok(r) => Some(Stop {
                shutdown: r.shutdown,
                done: r.done,
                closing: r.closing,
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                report(e);
                None
            }
        }
    })
}

/// `partnergate upstream serve`: runs until SIGINT or SIGTERM.
pub fn upstream(action: UpstreamAction, common: Common) -> ExitCode {
    let UpstreamAction::Serve {
        listen,
        allow_gateway,
        gateway_secret,
    } = action;
    let config = match load_config(&common, BTreeMap::new()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let listen: std::net::SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(_) => return fail(format!("--listen {listen:?}: expected IP:PORT")),
    };
    if gateway_secret.chars().count() < 16 {
        return fail("--gateway-secret: use at least 16 characters");
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
    run_until_signal(log, Shutdown::Quiet, || async move {
        let trust = partnergate::provision::standalone::GatewayTrust {
            allowed,
            secret: gateway_secret,
        };
        match partnergate::app::start_upstream(
            &config.database_url,
            listen,
            trust,
            config.refresh_interval,
        )
        .await
        {
            Ok(r) => Some(Stop {
                shutdown: r.shutdown,
                done: r.done,
                closing: r.closing,
            }),
            Err(e) => {
                report(e);
                None
            }
        }
    })
}

/// What `serve` and `upstream serve` need of a started server to stop it.
struct Stop {
    /// Send `true` to shut down.
    shutdown: tokio::sync::watch::Sender<bool>,
    /// Finishes when the server has stopped.
    done: tokio::task::JoinHandle<()>,
    /// The database pool's end.
    closing: db::Closing,
}

/// Whether the shutdown is announced in the log (`serve`) or not (`upstream serve`).
#[derive(PartialEq, Eq)]
enum Shutdown {
    Draining,
    Quiet,
}

/// Builds the runtime, catches SIGINT/SIGTERM, runs `start` (which reports its own failure and
/// returns `None`), waits for a signal, then stops the server within `app::SHUTDOWN_GRACE`;
/// flushes `log` before returning the exit code.
fn run_until_signal<F, Fut>(log: LogOutput, shutdown: Shutdown, start: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<Stop>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let (code, closing) = runtime.block_on(async move {
        let signals = Signals::install();
        let Some(running) = start().await else {
            return (ExitCode::FAILURE, None);
        };
        signals.wait().await;
        let deadline = std::time::Instant::now() + partnergate::app::SHUTDOWN_GRACE;
        if shutdown == Shutdown::Draining {
            tracing::info!("shutting down: finishing in-flight requests");
        }
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
