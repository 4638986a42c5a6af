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
//! - `onboard`: validated writes (create partner, keys, groups, rates, status).
//! - `admin`: the administrator's reads and audited writes (update, status, rotation,
//!   revocation, allowlist, grants, groups, throttle, `audit_log`).

mod admin;
mod conn;
mod models;
mod onboard;
mod schema;
mod snapshot;
mod usage;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::prelude::*;

pub(crate) use conn::AnyConnection;
use conn::{Manager, PoolErrors, SqlitePragmas, Target};
use schema::meta;

pub use admin::{
    AuditRecord, GroupChanges, GroupRecord, KeyRecord, KeySelector, PartnerChanges, PartnerDetail,
    PartnerRecord, RotatedKey, StatusChange, MAX_AUDIT_ROWS,
};
pub(crate) use onboard::{
    check_country, check_grant, check_name, check_net, valid_group_name, valid_partner_id,
};
pub use onboard::{CreatedPartner, NewPartner};
pub use snapshot::{
    run_refresher, GroupEntry, KeyEntry, PartnerEntry, PartnerStatus, Rate, RefreshHealth,
    Snapshot, SnapshotCell, DEFAULT_REFRESH_INTERVAL,
};
pub use usage::{UsageDelta, UsageRow, UsageTotal};

/// Pool size for SQLite: one writer at a time anyway; a few readers.
const SQLITE_POOL_SIZE: u32 = 4;
/// Pool size for PostgreSQL.
const POSTGRES_POOL_SIZE: u32 = 8;
/// How long a caller waits for a pooled connection.
const POOL_TIMEOUT: Duration = Duration::from_secs(10);
/// The `meta` row bumped by every write to partner data.
const REVISION: &str = "revision";

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
#[derive(Clone)]
pub struct Store {
    /// Connections of the one backend chosen at open.
    pool: r2d2::Pool<Manager>,
    backend: Backend,
    /// For logs and errors: the URL without its password.
    redacted_url: Arc<str>,
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
    /// `foreign_keys=ON`. Pool size: SQLite 4, PostgreSQL 8.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let target = Target::parse(url)?;
        let backend = target.backend();
        let redacted_url: Arc<str> = conn::redact(url).into();
        let mut first = r2d2::ManageConnection::connect(&Manager {
            target: target.clone(),
            create: true,
        })
        .map_err(|e| StoreError::Connect(format!("{redacted_url}: {e}")))?;
        r2d2::CustomizeConnection::on_acquire(&SqlitePragmas, &mut first)
            .map_err(|e| StoreError::Connect(format!("{redacted_url}: {e}")))?;
        conn::migrate(&mut first)?;
        drop(first);

        let builder = r2d2::Pool::builder()
            .max_size(match backend {
                Backend::Sqlite => SQLITE_POOL_SIZE,
                Backend::Postgres => POSTGRES_POOL_SIZE,
            })
            .min_idle(Some(1))
            .connection_timeout(POOL_TIMEOUT)
            .error_handler(Box::new(PoolErrors {
                db: redacted_url.clone(),
            }))
            .connection_customizer(Box::new(SqlitePragmas));
        // Unchecked: the connection above proved the database reachable; the pool connects lazily.
        let pool = builder.build_unchecked(Manager {
            target,
            create: false,
        });
        tracing::debug!(db = %redacted_url, ?backend, "partner database open");
        Ok(Store {
            pool,
            backend,
            redacted_url,
        })
    }

    /// The backend chosen at open.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL as opened, with any password replaced by `***`: the only form to log.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
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

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        self.pool.get().map_err(|e| {
            StoreError::Pool(format!(
                "no connection to {} within {POOL_TIMEOUT:?}: {e}",
                self.redacted_url
            ))
        })
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
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
