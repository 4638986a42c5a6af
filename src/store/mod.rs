//! Partner data: partners, keys, allowlists, grants, groups and rates, in SQLite (the embedded
//! default) or PostgreSQL (several gateway nodes), through Diesel and an r2d2 pool.
//!
//! Not a request-path stage: the hot path never queries the database. It reads an in-memory
//! [`Snapshot`] published in a [`SnapshotCell`]; [`run_refresher`] polls the `meta.revision`
//! counter (one tiny query) and reloads the snapshot when a write has bumped it. Every write in
//! this module bumps the revision in its own transaction.
//!
//! The API is blocking (r2d2 + Diesel): async callers run it on `tokio::task::spawn_blocking`.
//!
//! - `conn`: URL → backend, the pool's connection manager, SQLite pragmas, migrations;
//! - `schema` / `models`: the hand-written portable schema and row types;
//! - `snapshot`: the hot-path view, its loader and the refresher;
//! - `rules`: below `onboard` and `admin`, what both use: input rules, error shapes and the
//!   small steps inside a write transaction (a partner's row id, a group check, an audit row);
//! - `onboard`: validated writes (create partner, keys, groups, rates, status);
//! - `admin`: the administrator's reads and audited writes, one file per job (`partners`,
//!   `keys`, `access`, `groups`, `audit`) over its shared `records`;
//! - `sessions`: the dashboard's sessions, shared by every node (hashes and ciphertext only),
//!   each bound to an operator;
//! - `operators`: operator accounts (roles, Argon2id PHC strings) and their API tokens
//!   (hashes only); `login_throttle`: failed logins per account and address.
//! - `nodes`: the nodes' registry and heartbeats; `throttle_usage`: the calls each node has
//!   admitted per limiter, exchanged so that a limit holds across the cluster.

mod admin;
mod client_certs;
mod conn;
mod enrollments;
mod login_throttle;
mod models;
mod nodes;
mod onboard;
mod operators;
mod push;
mod rules;
mod schema;
mod sessions;
mod snapshot;
mod throttle_usage;
mod usage;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Weak};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use scheduled_thread_pool::ScheduledThreadPool;

pub(crate) use conn::AnyConnection;
use conn::{Manager, PoolErrors, SqlitePragmas, Target};
use schema::meta;

pub use admin::{
    AuditRecord, Direction, GroupChanges, GroupRecord, KeyRecord, KeySelector, PartnerChanges,
    PartnerDetail, PartnerRecord, RotatedKey, StatusChange, MAX_AUDIT_ROWS,
};
pub use client_certs::{ClientCaRecord, ClientCertRecord, NewClientCert};
pub use enrollments::{
    Approval, Collected, EnrollmentContact, EnrollmentRecord, EnrollmentRequest, EnrollmentState,
    Filed, PickupRow, ENROLLMENT_ACTOR,
};
pub use login_throttle::{LoginPolicy, LoginScope};
pub use nodes::{NodeBeat, NodeRecord, FORGET_AFTER, GONE_AFTER, HEARTBEAT_INTERVAL};
pub use onboard::{CreatedPartner, NewPartner};
pub use operators::{NewToken, OperatorIdentity, OperatorRecord, Role, TokenRecord};
pub use push::{APPLICATION_NAME as PUSH_APPLICATION_NAME, CHANNEL as PUSH_CHANNEL};
pub(crate) use rules::{
    check_country, check_grant, check_name, check_net, valid_group_name, valid_partner_id,
};
pub use sessions::{SessionRecord, SessionSlot};
pub use snapshot::{
    run_refresher, run_refresher_with, GroupEntry, KeyEntry, PartnerEntry, PartnerStatus, Rate,
    RefreshHealth, Snapshot, SnapshotCell, Trigger, DEFAULT_REFRESH_INTERVAL,
};
pub use throttle_usage::{Exchanged, OwnCount, PeerCount};
pub use usage::{UsageDelta, UsageRow, UsageTotal};

/// Pool size for SQLite: one writer at a time anyway; a few readers.
const SQLITE_POOL_SIZE: u32 = 4;
/// Pool size for PostgreSQL.
const POSTGRES_POOL_SIZE: u32 = 8;
/// Threads that make a service's pooled connections in the background (r2d2's default).
const SERVICE_POOL_THREADS: usize = 3;
/// How long a caller waits for a pooled connection unless its handle says otherwise
/// ([`Store::with_checkout_timeout`]); also the base of r2d2's reconnect backoff (at most half
/// of it between two connect attempts).
const POOL_TIMEOUT: Duration = Duration::from_secs(10);
/// The `meta` row bumped by every write to partner data.
const REVISION: &str = "revision";

/// What a [`Store`] is opened for; decides the size and the habits of its connection pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolUse {
    /// A long-running process (`serve`, `upstream serve`): up to 4 (SQLite) or 8 (PostgreSQL)
    /// connections, one kept idle and replaced in the background when it is taken.
    Service,
    /// One command-line command: at most one connection, made when the command asks for it and
    /// never ahead of time, so no connect is still running in the background when the command
    /// is done.
    Command,
}

/// Which database a [`Store`] talks to, decided by the URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A SQLite file (`sqlite://PATH`, `file:PATH` or a plain path).
    Sqlite,
    /// A PostgreSQL server (`postgres://` or `postgresql://`).
    Postgres,
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL's scheme names no supported database (raised by [`Store::open`] before anything
    /// is opened or created).
    #[error("unsupported database URL scheme {scheme:?}: {reason}")]
    UnsupportedUrl {
        /// The scheme as written (`(none)` when there is none).
        scheme: String,
        /// What is supported instead.
        reason: String,
    },
    /// The first connection failed; the text is the database's own error (libpq, SQLite),
    /// prefixed with the redacted URL.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// Running the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// No pooled connection could be had (timeout, or the server is gone).
    #[error("database pool: {0}")]
    Pool(String),
    /// The thing to change does not exist.
    #[error("{what} {key:?} not found")]
    NotFound {
        /// What was looked for (`partner`, …).
        what: &'static str,
        /// The identifier that was given.
        key: String,
    },
    /// An input value is not acceptable; nothing was written.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The input field (`name`, `country`, `partner_id`, `allow`, `grants`, `group`, …).
        field: &'static str,
        /// Why, for the operator.
        reason: String,
    },
    /// The write would duplicate something unique (a partner id, a group name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored value cannot be read back (written around this module, or a bug): the
    /// snapshot is not loaded, so the refresher keeps the previous one.
    #[error("corrupt {table} row {key:?}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's identifier.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Handle to the partner database. Cheap to clone (the pool is shared); blocking.
///
/// The pool makes connections on its own worker threads. Before the process exits, drop every
/// clone and wait on [`Store::closing`]: libpq loads MIT Kerberos (GSSAPI), whose exit-time
/// destructors abort the process (`k5_mutex_lock: Received error 22`) when a worker is still
/// inside a PostgreSQL connect.
#[derive(Clone)]
pub struct Store {
    /// Connections of the one backend chosen at open.
    pool: r2d2::Pool<Manager>,
    backend: Backend,
    /// For logs and errors: the URL without its password.
    redacted_url: Arc<str>,
    /// PostgreSQL: the URL of the connection that listens for changes (`push`).
    listen_url: Option<Arc<str>>,
    /// The pool's worker threads (connects and reaping run there).
    threads: Arc<ScheduledThreadPool>,
    /// How many worker threads `threads` has.
    thread_count: usize,
    /// One strong count per clone of this handle: [`Closing::wait`] waits until none is left.
    handles: Arc<()>,
    /// How long this handle waits for a pooled connection ([`Store::with_checkout_timeout`]).
    checkout: Duration,
    /// Shared by every clone: the last checkout found no connection in time. While it is set and
    /// the pool holds no connection at all (the database is unreachable, not merely busy), a
    /// checkout takes an idle connection if the pool's background reconnect has made one, and
    /// otherwise fails at once instead of waiting: see [`Store::conn`].
    unreachable: Arc<AtomicBool>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("url", &self.redacted_url)
            .finish_non_exhaustive()
    }
}

// === impl Store ===

impl Store {
    /// Opens the database named by `url` and runs the pending migrations.
    ///
    /// The backend comes from the scheme, never from trying: `postgres://` or `postgresql://`
    /// → PostgreSQL; `sqlite://PATH`, `file:PATH` or a plain path (no `://`) → a SQLite file,
    /// created if missing. Any other scheme → [`StoreError::UnsupportedUrl`], before anything is
    /// created. `:memory:` is refused: every pooled connection would open its own, separate
    /// in-memory database. A libpq keyword string (`host=… dbname=…`) is refused too (it would
    /// otherwise be a SQLite file name).
    ///
    /// The first connection is made here, so an unreachable server fails now with the real
    /// libpq error ([`StoreError::Connect`]). SQLite connections get `busy_timeout` (5 s), WAL and
    /// `foreign_keys=ON`. Pool size: SQLite 4, PostgreSQL 8 ([`PoolUse::Service`]).
    pub fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_for(url, PoolUse::Service)
    }

    /// [`Store::open`] with the pool sized for `usage`: a command-line command opens with
    /// [`PoolUse::Command`] (one connection, nothing made in the background).
    pub fn open_for(url: &str, usage: PoolUse) -> Result<Store, StoreError> {
        let target = Target::parse(url)?;
        let backend = target.backend();
        let redacted_url: Arc<str> = conn::redact(url).into();
        let listen_url = match &target {
            Target::Postgres(url) => Some(conn::listen_url(url).into()),
            Target::Sqlite(_) => None,
        };
        let mut first = r2d2::ManageConnection::connect(&Manager {
            target: target.clone(),
            create: true,
        })
        .map_err(|e| StoreError::Connect(format!("{redacted_url}: {e}")))?;
        r2d2::CustomizeConnection::on_acquire(&SqlitePragmas, &mut first)
            .map_err(|e| StoreError::Connect(format!("{redacted_url}: {e}")))?;
        conn::migrate(&mut first)?;
        drop(first);

        // Our own worker pool (r2d2 would make one it never joins), so `closing` can wait for
        // the connects running on it.
        let thread_count = match usage {
            PoolUse::Service => SERVICE_POOL_THREADS,
            PoolUse::Command => 1,
        };
        let threads = Arc::new(
            ScheduledThreadPool::builder()
                .num_threads(thread_count)
                .thread_name_pattern("partnergate-db-{}")
                .build(),
        );
        let builder = r2d2::Pool::builder()
            .connection_timeout(POOL_TIMEOUT)
            .thread_pool(Arc::clone(&threads))
            .error_handler(Box::new(PoolErrors {
                db: redacted_url.clone(),
            }))
            .connection_customizer(Box::new(SqlitePragmas));
        let builder = match usage {
            PoolUse::Service => builder
                .max_size(match backend {
                    Backend::Sqlite => SQLITE_POOL_SIZE,
                    Backend::Postgres => POSTGRES_POOL_SIZE,
                })
                .min_idle(Some(1)),
            // min_idle 0: no connect at build, none to replace a taken connection, and no reaper
            // (no idle timeout, no lifetime): the only connect is the one `get` waits for.
            PoolUse::Command => builder
                .max_size(1)
                .min_idle(Some(0))
                .idle_timeout(None)
                .max_lifetime(None),
        };
        // Unchecked: the connection above proved the database reachable; the pool connects lazily.
        let pool = builder.build_unchecked(Manager {
            target,
            create: false,
        });
        tracing::debug!(db = %redacted_url, ?backend, ?usage, "partner database open");
        Ok(Store {
            pool,
            backend,
            redacted_url,
            listen_url,
            threads,
            thread_count,
            handles: Arc::new(()),
            checkout: POOL_TIMEOUT,
            unreachable: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A handle on the same pool that waits at most `timeout` for a connection (default 10 s).
    /// The embedded partner API layer uses `database_checkout_timeout_ms` (500 ms) so that a
    /// call fails fast when the database is down; the background tasks use short waits so that
    /// shutdown is never held by one.
    pub fn with_checkout_timeout(&self, timeout: Duration) -> Store {
        Store {
            checkout: timeout,
            ..self.clone()
        }
    }

    /// How long this handle waits for a pooled connection.
    pub fn checkout_timeout(&self) -> Duration {
        self.checkout
    }

    /// Whether the last checkout (through any handle) found no connection in time and none has
    /// succeeded since.
    pub fn unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Relaxed)
    }

    /// What to wait on before the process exits, once every clone of this store is dropped:
    /// see [`Closing::wait`].
    pub fn closing(&self) -> Closing {
        Closing {
            threads: Arc::clone(&self.threads),
            thread_count: self.thread_count,
            handles: Arc::downgrade(&self.handles),
        }
    }

    /// The backend chosen at open.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL as opened, with any password replaced by `***`: the only form to log.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// PostgreSQL: the URL of the connection that listens for changes; `None` on SQLite.
    fn listen_url(&self) -> Option<Arc<str>> {
        self.listen_url.clone()
    }

    /// The current data revision (`meta.revision`), bumped by every write to partner data.
    pub fn revision(&self) -> Result<i64, StoreError> {
        read_revision(&mut *self.conn()?)
    }

    /// Reads everything the hot path needs in one read transaction (PostgreSQL: repeatable
    /// read, read only), so the snapshot and its revision are consistent.
    pub fn load_snapshot(&self) -> Result<Snapshot, StoreError> {
        snapshot::load(&mut *self.conn()?)
    }

    /// A pooled connection within this handle's checkout timeout, failing at once while the
    /// database is known to be unreachable.
    ///
    /// The circuit: a checkout that times out marks the store unreachable; from then on, as long
    /// as the pool holds no connection at all, a checkout only takes one the pool's background
    /// reconnect (r2d2 retries every failed connect, backoff up to 5 s) may have made meanwhile,
    /// and fails at once otherwise; the first successful checkout clears the mark. A pool that
    /// holds connections but has none idle is busy, not down: it is waited for as usual.
    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        if self.unreachable.load(Ordering::Relaxed) && self.pool.state().connections == 0 {
            return match self.pool.try_get() {
                Some(conn) => {
                    self.unreachable.store(false, Ordering::Relaxed);
                    Ok(conn)
                }
                None => Err(StoreError::Pool(format!(
                    "no connection to {}: the database is unreachable (failing fast until the \
                     pool reconnects)",
                    self.redacted_url
                ))),
            };
        }
        match self.pool.get_timeout(self.checkout) {
            Ok(conn) => {
                self.unreachable.store(false, Ordering::Relaxed);
                Ok(conn)
            }
            Err(e) => {
                self.unreachable.store(true, Ordering::Relaxed);
                Err(StoreError::Pool(format!(
                    "no connection to {} within {:?}: {e}",
                    self.redacted_url, self.checkout
                )))
            }
        }
    }

    /// A pooled connection, for the partner API layer's own tables (`provision`), which are not
    /// partner data and do not bump the revision.
    pub(crate) fn connection(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        self.conn()
    }

    /// Runs `f` in one write transaction that first bumps the revision.
    ///
    /// Bumping first takes the write lock before anything is read: on SQLite the transaction
    /// then waits on `busy_timeout` instead of failing with "database is locked" when its read
    /// snapshot turns stale; on PostgreSQL the `meta` row lock orders concurrent writers. An
    /// error rolls everything back, the bump included.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn()?.transaction(|c| {
            let bumped = diesel::update(meta::table.filter(meta::key.eq(REVISION)))
                .set(meta::value.eq(meta::value + 1))
                .execute(c)?;
            if bumped != 1 {
                return Err(StoreError::NotFound {
                    what: "meta row",
                    key: REVISION.to_owned(),
                });
            }
            f(c)
        })
    }
}

/// How long a process waits for its pool's background work at exit by default: a connect in
/// flight ends within libpq's `connect_timeout` (10 s unless the URL says otherwise).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);

/// The end of a [`Store`]'s pool, to wait on before the process exits (from [`Store::closing`]).
///
/// r2d2 makes connections on worker threads that it never joins: when a command's `main`
/// returned while a worker was still inside a PostgreSQL connect, the exit-time destructors of
/// libpq's Kerberos library (GSSAPI) ran under it and the process died with SIGABRT
/// (`k5_mutex_lock: Received error 22`) after its work was done.
#[must_use = "call wait() before the process exits"]
pub struct Closing {
    threads: Arc<ScheduledThreadPool>,
    thread_count: usize,
    handles: Weak<()>,
}

impl fmt::Debug for Closing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closing")
            .field("threads", &self.thread_count)
            .field("handles", &self.handles.strong_count())
            .finish()
    }
}

impl Closing {
    /// Waits, at most `timeout`, until every clone of the store is dropped and the pool's worker
    /// threads have finished whatever they were doing (a connect, or closing the pool's
    /// connections when it went away). After that no thread of the pool touches the database
    /// libraries again: the process may exit. Returns `false` when `timeout` ran out first.
    pub fn wait(self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        // With a handle left, the pool could still start a connect after the wait.
        while self.handles.strong_count() > 0 {
            if Instant::now() >= deadline {
                tracing::warn!("database pool: a store handle is still in use at exit");
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Park every worker on a job of ours: a worker takes it only after finishing the job
        // it was running, and none can take a job started later until all are parked. Jobs
        // left in the queue after that (a delayed retry, the reaper) only hold a weak reference
        // to the pool, which is gone, so they return without connecting.
        let (parked_tx, parked_rx) = mpsc::channel::<()>();
        let mut releases = Vec::with_capacity(self.thread_count);
        for _ in 0..self.thread_count {
            let (release_tx, release_rx) = mpsc::channel::<()>();
            releases.push(release_tx);
            let parked = parked_tx.clone();
            self.threads.execute(move || {
                let _ = parked.send(());
                // Returns when `releases` is dropped.
                let _ = release_rx.recv();
            });
        }
        drop(parked_tx);
        for _ in 0..self.thread_count {
            let left = deadline.saturating_duration_since(Instant::now());
            if parked_rx.recv_timeout(left).is_err() {
                tracing::warn!("database pool: a connection was still being made at exit");
                return false;
            }
        }
        drop(releases);
        true
    }
}

fn read_revision(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    meta::table
        .filter(meta::key.eq(REVISION))
        .select(meta::value)
        .first::<i64>(conn)
        .optional()?
        .ok_or_else(|| StoreError::NotFound {
            what: "meta row",
            key: REVISION.to_owned(),
        })
}

/// Now, in unix seconds (the timestamps' unit).
fn unix_now() -> i64 {
    crate::clock::unix_now()
}
