//! Assembles the running gateway from a [`Config`]: opens the store (migrating it), loads the
//! first snapshot, starts the refresher (and on PostgreSQL its listening connection), builds the
//! upstream and the [`Gateway`], binds the listener, starts the node's heartbeat and serves until
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::forward::{HttpUpstream, Upstream};
use crate::pipeline::{Gateway, Settings};
use crate::provision::Provisioning;
use crate::server::{ServeError, Server};
use crate::stats::Stats;
use crate::store::{self, Closing, SnapshotCell, Store, StoreError};
use crate::throttle::Throttle;
use crate::tls::Identity;

/// Starting the gateway failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The upstream client.
    #[error(transparent)]
    Upstream(#[from] crate::forward::UpstreamConfigError),
    /// The listener or TLS.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A certificate or key file (`tls.*`, `admin.tls.*`, `upstream.client_*`,
    /// `callback.client_*`).
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsFileError),
    /// Tracing could not be set up.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// A blocking task failed.
    #[error("startup task failed: {0}")]
    Task(String),
}

/// A started gateway: where it listens, and how to stop it.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: std::net::SocketAddr,
    /// The admin API's bound address; `None` when no admin token is configured.
    pub admin_addr: Option<std::net::SocketAddr>,
    /// Send `true` to shut down.
    pub shutdown: watch::Sender<bool>,
    /// Finishes when the server has stopped.
    pub done: tokio::task::JoinHandle<()>,
    /// The database pool's end: once `done` has finished and the runtime is dropped (which drops
    /// the tasks still holding the store), wait on it before the process exits.
    pub closing: Closing,
}

/// The drain limit: from shutdown asked (SIGTERM) to the process's exit, everything included —
/// the requests in flight ([`DRAIN_GRACE`]), the last statistics flush ([`LAST_FLUSH`]), the
/// runtime's blocking tasks and the database pool's close (`cli/serve.rs`) — even with the database
/// gone.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long in-flight requests may take to finish after shutdown was asked for (the rest of
/// [`SHUTDOWN_GRACE`] is for the last flush and the pool's close).
pub const DRAIN_GRACE: Duration = Duration::from_secs(8);

/// After the drain: the flusher's flush in progress and the last flush, together. With the
/// database down the last flush fails within it (its checkout waits what is left of it) and
/// the counts not written are logged as lost.
pub const LAST_FLUSH: Duration = Duration::from_secs(1);

/// How long the background tasks (statistics flusher, snapshot refresher, node heartbeat) wait
/// for a database connection: short, so that shutdown never waits long on one of them.
pub const BACKGROUND_CHECKOUT: Duration = Duration::from_secs(1);

/// A standalone partner API layer: where it listens, and how to stop it.
pub struct RunningUpstream {
    /// The bound address.
    pub addr: std::net::SocketAddr,
    /// Send `true` to shut down.
    pub shutdown: watch::Sender<bool>,
    /// Finishes when the server has stopped.
    pub done: tokio::task::JoinHandle<()>,
    /// The database pool's end, as in [`Running::closing`].
    pub closing: Closing,
}

/// Opens the store with a blocking task; the handle to wait on at exit comes with it.
async fn open_store(url: &str) -> Result<(Store, Closing), StartError> {
    let url = url.to_owned();
    let store = tokio::task::spawn_blocking(move || Store::open(&url))
        .await
        .map_err(|e| StartError::Task(e.to_string()))??;
    let closing = store.closing();
    Ok((store, closing))
}

/// After a failed start: the store and the tasks holding it are gone or going (their shutdown
/// channel is closed); wait for the pool's threads so the caller may exit.
async fn close_after_failed_start(closing: Closing) {
    let _ = tokio::task::spawn_blocking(move || closing.wait(store::CLOSE_TIMEOUT)).await;
}

/// Opens the database and starts `partnergate upstream serve` in the background.
pub async fn start_upstream(
    database_url: &str,
    listen: std::net::SocketAddr,
    trust: crate::provision::standalone::GatewayTrust,
    refresh: Duration,
) -> Result<RunningUpstream, StartError> {
    let (store, closing) = open_store(database_url).await?;
    match serve_upstream(store, listen, trust, refresh).await {
        Ok(s) => Ok(RunningUpstream {
            addr: s.addr,
            shutdown: s.shutdown,
            done: s.done,
            closing,
        }),
        Err(e) => {
            close_after_failed_start(closing).await;
            Err(e)
        }
    }
}

/// A started server, before the store's [`Closing`] is added.
struct Started {
    addr: std::net::SocketAddr,
    admin_addr: Option<std::net::SocketAddr>,
    shutdown: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

async fn serve_upstream(
    store: Store,
    listen: std::net::SocketAddr,
    trust: crate::provision::standalone::GatewayTrust,
    refresh: Duration,
) -> Result<Started, StartError> {
    let first = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.load_snapshot())
            .await
            .map_err(|e| StartError::Task(e.to_string()))??
    };
    let cell = Arc::new(SnapshotCell::new(first));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(store::run_refresher(
        store.clone(),
        Arc::clone(&cell),
        refresh,
        shutdown_rx.clone(),
    ));
    let layer = Arc::new(Provisioning::new(
        store.with_checkout_timeout(crate::provision::DEFAULT_CHECKOUT_TIMEOUT),
        cell,
    ));
    let (addr, stop, done) = crate::provision::standalone::start(layer, trust, listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    // One switch stops both the server and the refresher.
    let mut rx = shutdown_rx;
    tokio::spawn(async move {
        let _ = rx.changed().await;
        let _ = stop.send(true);
    });
    tracing::info!(%addr, "partner API layer listening");
    Ok(Started {
        addr,
        admin_addr: None,
        shutdown: shutdown_tx,
        done,
    })
}

/// Opens everything and starts serving in the background.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let identities = Identities::load(&config)?;
    let (store, closing) = open_store(&config.database_url).await?;
    match serve_gateway(config, store, identities).await {
        Ok(s) => Ok(Running {
            addr: s.addr,
            admin_addr: s.admin_addr,
            shutdown: s.shutdown,
            done: s.done,
            closing,
        }),
        Err(e) => {
            close_after_failed_start(closing).await;
            Err(e)
        }
    }
}

/// The certificates of the process (each reloaded on SIGHUP): the partner listener's, the
/// admin listener's, and the ones the upstream and callback clients present.
struct Identities {
    reloader: Arc<crate::tls::Reloader>,
    partner: Option<Arc<Identity>>,
    admin: Option<Arc<Identity>>,
    upstream: Option<Arc<Identity>>,
    callback: Option<Arc<Identity>>,
}

impl Identities {
    /// Loads every configured pair; the first bad file fails the start, naming it.
    fn load(config: &Config) -> Result<Identities, crate::tls::TlsFileError> {
        let reloader = Arc::new(crate::tls::Reloader::default());
        let load = |label, files: &Option<crate::config::TlsConfig>| {
            files
                .as_ref()
                .map(|f| reloader.load(label, &f.cert, &f.key))
                .transpose()
        };
        Ok(Identities {
            partner: load("partner listener", &config.tls)?,
            admin: load("admin listener", &config.admin.tls)?,
            upstream: load("upstream client", &config.upstream.client)?,
            callback: load("callback client", &config.callback.client)?,
            reloader,
        })
    }
}

async fn serve_gateway(
    config: Config,
    store: Store,
    identities: Identities,
) -> Result<Started, StartError> {
    tracing::info!(database = store.redacted_url(), backend = ?store.backend(), "database open and migrated");
    let first = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.load_snapshot())
            .await
            .map_err(|e| StartError::Task(e.to_string()))??
    };
    tracing::info!(
        revision = first.revision,
        partners = first.partners.len(),
        "partner snapshot loaded"
    );
    let cell = Arc::new(SnapshotCell::new(first));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let stats = Arc::new(Stats::new(config.stats_max_pending_rows));
    let background = store.with_checkout_timeout(BACKGROUND_CHECKOUT);
    let flusher = tokio::spawn(crate::stats::run_flusher(
        Arc::clone(&stats),
        background.clone(),
        config.stats_flush_interval,
        config.stats_retention,
        shutdown_rx.clone(),
    ));
    // No upstream URL: the reference partner API layer runs in process, on the same database;
    // a call waits at most `database_checkout_timeout_ms` for a connection (fail fast when the
    // database is down: `UpstreamUnavailableFault`).
    let upstream: Arc<dyn Upstream> = match &config.upstream.url {
        Some(_) => Arc::new(HttpUpstream::with_identity(
            &config.upstream,
            identities.upstream.clone(),
        )?),
        None => Arc::new(Provisioning::new(
            store.with_checkout_timeout(config.database_checkout_timeout),
            Arc::clone(&cell),
        )),
    };
    let gateway = Arc::new(Gateway {
        settings: Settings {
            xml: config.limits.xml,
            trusted_proxies: config.trusted_proxies.clone(),
            trusted_proxy_header: config.trusted_proxy_header,
            fault_status: config.fault_status,
        },
        snapshot: Arc::clone(&cell),
        throttle: Throttle::new(config.default_rate)
            .with_max_in_flight(config.limits.max_in_flight_per_partner)
            .with_callback_default(config.default_callback_rate),
        upstream: Some(upstream),
        stats: Arc::clone(&stats),
        callback: Some(Arc::new(
            crate::callback::Relay::new(
                config.callback.clone(),
                Arc::clone(&cell),
                config.limits.xml,
                config.fault_status,
            )
            .with_identity(identities.callback.clone()),
        )),
        enrollment: Some(Arc::new(crate::enroll::Enrollment::new(
            config.enrollment.clone(),
            store.with_checkout_timeout(config.database_checkout_timeout),
            config.limits.xml,
            config.fault_status,
            config.callback.allow_http,
        ))),
    });
    // The refresher publishes new snapshots; with each, the throttle forgets the limiters of
    // partners and groups that are gone (offboarded, renamed).
    let on_new = Arc::clone(&gateway);
    tokio::spawn(store::run_refresher_with(
        background.clone(),
        Arc::clone(&cell),
        config.refresh_interval,
        shutdown_rx.clone(),
        move |snapshot| on_new.throttle.retain(snapshot),
    ));
    let telemetry = crate::telemetry::Telemetry::start(&config.tracing)?;
    let server = Server::with_identity(&config, Arc::clone(&gateway), identities.partner.clone())?
        .with_telemetry(telemetry.clone());
    let listener = Server::bind(config.listen).await?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let admin = start_admin(&config, &store, &shutdown_rx, identities.admin.clone()).await?;
    crate::tls::reload_on_sighup(Arc::clone(&identities.reloader), shutdown_rx.clone());
    let admin_addr = admin.as_ref().map(|(a, _)| *a);
    let node = crate::node::Node::new(addr);
    let node_id = node.id.clone();
    tokio::spawn(crate::node::run_heartbeat(
        background.clone(),
        node,
        Arc::clone(&cell),
        Arc::clone(&stats),
        store::HEARTBEAT_INTERVAL,
        shutdown_rx.clone(),
    ));
    if store.backend() == store::Backend::Postgres && !config.cluster_sync.is_zero() {
        // Its exchanges wait at most BACKGROUND_CHECKOUT for a connection, like the other
        // background tasks; while they fail, every node applies the limits on its own.
        tokio::spawn(crate::throttle::cluster::run(
            background,
            node_id.clone(),
            Arc::clone(&gateway),
            config.cluster_sync,
            shutdown_rx.clone(),
        ));
    }
    tracing::info!(
        %addr,
        node = %node_id,
        tls = config.tls.is_some(),
        upstream = config.upstream.url.as_deref().unwrap_or("in process"),
        "partnergate listening"
    );
    let done = tokio::spawn(async move {
        server.serve(listener, shutdown_rx, DRAIN_GRACE).await;
        last_flush(flusher, stats, store).await;
        if let Some(telemetry) = telemetry {
            telemetry.shutdown().await;
        }
    });
    let done = match admin {
        Some((_, admin_done)) => tokio::spawn(async move {
            let _ = done.await;
            let _ = admin_done.await;
        }),
        None => done,
    };
    Ok(Started {
        addr,
        admin_addr,
        shutdown: shutdown_tx,
        done,
    })
}

/// After the drain: the flusher has seen the shutdown; let a flush it has in progress finish
/// first (two flushes at once would write in turns anyway, but `done` must not end before the
/// statistics are in the database), then write what came in after it. Both within
/// [`LAST_FLUSH`]: with the database down, what is not written is logged as lost.
async fn last_flush(flusher: tokio::task::JoinHandle<()>, stats: Arc<Stats>, store: Store) {
    let until = tokio::time::Instant::now() + LAST_FLUSH;
    if tokio::time::timeout_at(until, flusher).await.is_err() {
        tracing::warn!("a statistics flush in progress did not finish before exit");
    }
    let left = until
        .saturating_duration_since(tokio::time::Instant::now())
        .max(Duration::from_millis(50));
    let store = store.with_checkout_timeout(left);
    let now = crate::clock::unix_now();
    let written = tokio::task::spawn_blocking(move || {
        let result = stats.flush(&store, now);
        (result, stats.pending_calls())
    });
    // The checkout gives up within `left`; the writing itself gets a little more.
    let until = tokio::time::Instant::now() + left + Duration::from_millis(200);
    match tokio::time::timeout_at(until, written).await {
        Ok(Ok((Ok(rows), _))) => tracing::info!(rows, "statistics flushed at shutdown"),
        Ok(Ok((Err(e), lost))) => tracing::warn!(
            error = %e,
            calls = lost,
            "statistics could not be written at shutdown: the counts of these calls are lost"
        ),
        Ok(Err(e)) => tracing::warn!(error = %e, "statistics flush task failed"),
        Err(_) => tracing::warn!("the last statistics flush did not finish before exit"),
    }
}

/// Binds and starts the admin API when an admin token is configured (else: no listener).
async fn start_admin(
    config: &Config,
    store: &Store,
    shutdown: &watch::Receiver<bool>,
    identity: Option<Arc<Identity>>,
) -> Result<Option<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>, StartError> {
    let Some(token) = config.admin.token.clone() else {
        tracing::debug!("admin API off: no admin token configured");
        return Ok(None);
    };
    let listener = Server::bind(config.admin.listen).await?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.admin.listen,
        source,
    })?;
    if !addr.ip().is_loopback() && identity.is_none() {
        tracing::warn!(%addr, "admin API on a non-loopback address over plain HTTP: put TLS in front of it");
    }
    let rules = crate::admin::Rules {
        allow_http_callbacks: config.callback.allow_http,
        callback_allowed_networks: config.callback.allowed_networks.clone(),
    };
    let server = crate::admin::http::AdminServer::new(
        crate::admin::Admin::new(store.clone()),
        rules,
        token,
        &config.limits,
    )
    .with_dashboard(crate::admin::dashboard::Settings {
        session_lifetime: config.admin.session_lifetime,
        // Over HTTPS the cookies are always `Secure`.
        cookie_secure: config.admin.cookie_secure || identity.is_some(),
        default_rate: config.default_rate,
        default_callback_rate: config.default_callback_rate,
        login: crate::store::LoginPolicy {
            max_failures: config.admin.login_max_failures,
            base_lock_ms: i64::try_from(config.admin.login_lock.as_millis()).unwrap_or(i64::MAX),
            max_lock_ms: crate::admin::dashboard::MAX_LOCK_MS,
        },
    });
    let tls = identity.is_some();
    let server = match identity {
        Some(identity) => server.with_tls(crate::tls::server_config(identity, false)?),
        None => server,
    };
    tracing::info!(%addr, tls, "admin API and dashboard (/ui/) listening");
    Ok(Some((
        addr,
        tokio::spawn(server.serve(listener, shutdown.clone())),
    )))
}
