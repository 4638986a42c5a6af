//! Connections: the database URL → backend decision, the r2d2 manager that establishes exactly
//! the chosen backend, SQLite's per-connection pragmas, migrations and URL redaction.
//!
//! Diesel's `MultiConnection::establish` tries every backend in turn and drops the errors: an
//! unreachable PostgreSQL server gives "Invalid connection url for multiconnection", and a libpq
//! keyword string silently became a SQLite file (measured in the spike). So the backend is chosen
//! here from the URL scheme, and [`Manager::connect`] establishes only that variant, keeping the
//! real libpq/SQLite error.

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{Backend, StoreError};

/// Migrations for each backend; both trees have the same versions.
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Serializes migrations of gateway nodes that start at the same time against one PostgreSQL
/// database (any constant; this one is "pgate" in ASCII).
const MIGRATION_LOCK: i64 = 0x70_67_61_74_65;

/// Default libpq `connect_timeout`, in seconds.
const POSTGRES_CONNECT_TIMEOUT_SECS: u32 = 10;

/// How long SQLite waits for another writer before giving up with "database is locked".
pub(crate) const SQLITE_BUSY_TIMEOUT_MS: u32 = 5000;

/// One connection of either backend. Queries are written once against this type.
#[derive(diesel::MultiConnection)]
pub(crate) enum AnyConnection {
    /// PostgreSQL through libpq.
    Postgresql(PgConnection),
    /// SQLite (bundled).
    Sqlite(SqliteConnection),
}

/// Where to connect: the result of looking at the URL's scheme, never of trying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The URL, passed to libpq as it is.
    Postgres(String),
    /// A file path (no URI interpretation).
    Sqlite(String),
}

impl Target {
    /// Decides the backend from the URL: `postgres://`, `postgresql://` → PostgreSQL;
    /// `sqlite://PATH`, `file:PATH`, `sqlite:PATH` or a plain path → SQLite.
    pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
        if let Some((scheme, rest)) = url.split_once("://") {
            return match scheme.to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => Ok(Target::Postgres(with_connect_timeout(url))),
                "sqlite" => sqlite_path(rest),
                _ => Err(StoreError::UnsupportedUrl {
                    scheme: scheme.to_owned(),
                    reason: "use postgres://, postgresql://, sqlite://PATH, file:PATH or a path"
                        .to_owned(),
                }),
            };
        }
        for prefix in ["file:", "sqlite:"] {
            if let Some(path) = strip_prefix_ignore_case(url, prefix) {
                return sqlite_path(path);
            }
        }
        if looks_like_libpq_keywords(url) {
            return Err(StoreError::UnsupportedUrl {
                scheme: "(none)".to_owned(),
                reason: "this looks like a libpq keyword string, which would be taken for a \
                         SQLite file name; write it as postgres://USER@HOST:PORT/DB"
                    .to_owned(),
            });
        }
        sqlite_path(url)
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Target::Postgres(_) => Backend::Postgres,
            Target::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// libpq waits for TCP's own timeout (minutes) on an unreachable host unless told otherwise:
/// add `connect_timeout` when the URL does not set it.
fn with_connect_timeout(url: &str) -> String {
    with_default_param(
        url,
        "connect_timeout",
        &POSTGRES_CONNECT_TIMEOUT_SECS.to_string(),
    )
}

/// `url` with `key=value` added to its query unless it sets `key` already.
fn with_default_param(url: &str, key: &str, value: &str) -> String {
    let has_param = url.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|kv| kv.split_once('=').is_some_and(|(k, _)| k == key))
    });
    if has_param {
        url.to_owned()
    } else {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}{key}={value}")
    }
}

/// The URL of the connection that listens for changes (`push`), from the pool's URL: named
/// [`super::push::APPLICATION_NAME`] in `pg_stat_activity`, with TCP keepalives that notice a
/// silently dead connection within about 25 s (it is idle, so nothing else would), unless the
/// URL says otherwise.
pub(crate) fn listen_url(url: &str) -> String {
    let url = with_default_param(url, "application_name", super::push::APPLICATION_NAME);
    let url = with_default_param(&url, "keepalives", "1");
    let url = with_default_param(&url, "keepalives_idle", "10");
    let url = with_default_param(&url, "keepalives_interval", "5");
    with_default_param(&url, "keepalives_count", "3")
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn looks_like_libpq_keywords(s: &str) -> bool {
    const KEYWORDS: [&str; 8] = [
        "host=",
        "hostaddr=",
        "port=",
        "dbname=",
        "user=",
        "password=",
        "sslmode=",
        "service=",
    ];
    s.split_whitespace()
        .any(|word| KEYWORDS.iter().any(|k| word.starts_with(k)))
}

fn sqlite_path(path: &str) -> Result<Target, StoreError> {
    if path.is_empty() {
        return Err(StoreError::Invalid {
            field: "url",
            reason: "empty SQLite path".to_owned(),
        });
    }
    // Every pooled connection would open its own, empty in-memory database, so writes made
    // through one connection would be invisible to the next.
    if path == ":memory:" || path.contains("mode=memory") {
        return Err(StoreError::Invalid {
            field: "url",
            reason: "in-memory SQLite is not supported: each pooled connection would see a \
                     different database; use a file"
                .to_owned(),
        });
    }
    // Diesel opens SQLite with SQLITE_OPEN_URI: a relative path starting with "file:" would be
    // read as a URI, so relative paths are anchored with "./".
    if path.starts_with('/') || path.starts_with("./") || path.starts_with("../") {
        Ok(Target::Sqlite(path.to_owned()))
    } else {
        Ok(Target::Sqlite(format!("./{path}")))
    }
}

/// A SQLite URI that opens `path` read-write but never creates it (`?`, `#` and `%` escaped).
fn existing_file_uri(path: &str) -> String {
    let mut uri = String::with_capacity(path.len() + 15);
    // An absolute path gets an empty authority ("file:///x"), so "//x" cannot be read as a host.
    uri.push_str(if path.starts_with('/') {
        "file://"
    } else {
        "file:"
    });
    for c in path.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            _ => uri.push(c),
        }
    }
    uri.push_str("?mode=rw");
    uri
}

/// The URL with any password replaced by `***` (userinfo and a `password=` query parameter).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Why a pooled connection could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManagerError {
    /// Establishing failed (the libpq or SQLite message).
    #[error(transparent)]
    Connect(#[from] diesel::ConnectionError),
    /// A health check or a pragma failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// An r2d2 manager that establishes only the backend chosen from the URL.
#[derive(Debug)]
pub(crate) struct Manager {
    pub(crate) target: Target,
    /// Whether a missing SQLite file is created: only for the first connection, in
    /// `Store::open`. Pooled connections open the existing file (`mode=rw`), so a file deleted
    /// under a running gateway is an error, not a new empty database, and a connect still in
    /// flight when the pool is dropped cannot leave a file behind.
    pub(crate) create: bool,
}

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ManagerError;

    fn connect(&self) -> Result<AnyConnection, ManagerError> {
        Ok(match &self.target {
            Target::Postgres(url) => AnyConnection::Postgresql(PgConnection::establish(url)?),
            Target::Sqlite(path) if self.create => {
                AnyConnection::Sqlite(SqliteConnection::establish(path)?)
            }
            Target::Sqlite(path) => {
                AnyConnection::Sqlite(SqliteConnection::establish(&existing_file_uri(path))?)
            }
        })
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ManagerError> {
        Ok(conn.batch_execute("SELECT 1")?)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        conn.is_broken()
    }
}

/// Applied to every new SQLite connection: wait for other writers instead of failing, WAL (readers
/// never block the writer), enforce foreign keys (off by default in SQLite).
#[derive(Debug)]
pub(crate) struct SqlitePragmas;

impl r2d2::CustomizeConnection<AnyConnection, ManagerError> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), ManagerError> {
        if let AnyConnection::Sqlite(c) = conn {
            c.batch_execute(&format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                 PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = NORMAL;
                 PRAGMA foreign_keys = ON;"
            ))?;
        }
        Ok(())
    }
}

/// Logs pool errors (failed background connects) through tracing, naming the redacted URL.
#[derive(Debug)]
pub(crate) struct PoolErrors {
    pub(crate) db: Arc<str>,
}

impl r2d2::HandleError<ManagerError> for PoolErrors {
    fn handle_error(&self, error: ManagerError) {
        tracing::warn!(db = %self.db, %error, "database pool: connection failed");
    }
}

/// Runs the pending migrations of the connection's backend.
pub(crate) fn migrate(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let migrate_err =
        |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migrate(e.to_string());
    match conn {
        AnyConnection::Postgresql(c) => {
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(drop)
                .map_err(migrate_err);
            let unlocked = c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
            result?;
            unlocked?;
        }
        AnyConnection::Sqlite(c) => {
            // BEGIN IMMEDIATE: two processes opening a new file at once take turns (the loser
            // waits on busy_timeout and then finds nothing pending) instead of both creating
            // the tables. Diesel runs each migration in a savepoint inside it.
            c.immediate_transaction(|c| {
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(drop)
                    .map_err(migrate_err)
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_decides_the_backend() {
        let pg = |s: &str| Target::Postgres(s.to_owned());
        let lite = |s: &str| Target::Sqlite(s.to_owned());
        assert_eq!(
            Target::parse("postgres://u@h/db").unwrap(),
            pg("postgres://u@h/db?connect_timeout=10")
        );
        assert_eq!(
            Target::parse("PostgreSQL://h/db?sslmode=require").unwrap(),
            pg("PostgreSQL://h/db?sslmode=require&connect_timeout=10")
        );
        assert_eq!(
            Target::parse("postgres://h/db?connect_timeout=3").unwrap(),
            pg("postgres://h/db?connect_timeout=3")
        );
        assert_eq!(
            Target::parse("sqlite:///tmp/a.db").unwrap(),
            lite("/tmp/a.db")
        );
        assert_eq!(Target::parse("sqlite://a.db").unwrap(), lite("./a.db"));
        assert_eq!(Target::parse("file:a.db").unwrap(), lite("./a.db"));
        assert_eq!(Target::parse("file:/x/a.db").unwrap(), lite("/x/a.db"));
        assert_eq!(Target::parse("data/a.db").unwrap(), lite("./data/a.db"));
        assert_eq!(
            Target::parse("file:file:a.db").unwrap(),
            lite("./file:a.db")
        );
        assert!(matches!(
            Target::parse("mysql://h/db"),
            Err(StoreError::UnsupportedUrl { scheme, .. }) if scheme == "mysql"
        ));
        assert!(matches!(
            Target::parse("host=127.0.0.1 port=1 user=gw dbname=gw"),
            Err(StoreError::UnsupportedUrl { .. })
        ));
        for memory in [
            ":memory:",
            "sqlite://:memory:",
            "file::memory:",
            "file:x?mode=memory",
        ] {
            assert!(
                matches!(
                    Target::parse(memory),
                    Err(StoreError::Invalid { field: "url", .. })
                ),
                "{memory}"
            );
        }
    }

    #[test]
    fn the_listening_connection_is_named_and_kept_alive() {
        assert_eq!(
            listen_url("postgres://h/db?connect_timeout=10"),
            "postgres://h/db?connect_timeout=10&application_name=partnergate-listen&keepalives=1\
             &keepalives_idle=10&keepalives_interval=5&keepalives_count=3"
        );
        assert_eq!(
            listen_url("postgres://h/db?application_name=mine&keepalives_idle=60"),
            "postgres://h/db?application_name=mine&keepalives_idle=60&keepalives=1\
             &keepalives_interval=5&keepalives_count=3"
        );
    }

    #[test]
    fn pooled_sqlite_connections_never_create_the_file() {
        assert_eq!(existing_file_uri("/tmp/a.db"), "file:///tmp/a.db?mode=rw");
        assert_eq!(existing_file_uri("//tmp/a.db"), "file:////tmp/a.db?mode=rw");
        assert_eq!(
            existing_file_uri("./a?b#c%d.db"),
            "file:./a%3fb%23c%25d.db?mode=rw"
        );
        let dir = std::env::temp_dir().join(format!("pg-conn-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("odd ?#%name.db").display().to_string();
        let pooled = |create| {
            r2d2::ManageConnection::connect(&Manager {
                target: Target::Sqlite(path.clone()),
                create,
            })
        };
        assert!(pooled(false).is_err(), "missing file is not created");
        assert!(!std::path::Path::new(&path).exists());
        drop(pooled(true).unwrap());
        assert!(std::path::Path::new(&path).exists());
        drop(pooled(false).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://gw:s3cr%40t@db.example:5432/gw?sslmode=require"),
            "postgres://gw:***@db.example:5432/gw?sslmode=require"
        );
        assert_eq!(redact("postgres://gw@db/gw"), "postgres://gw@db/gw");
        assert_eq!(
            redact("postgresql://db/gw?user=gw&password=hunter2"),
            "postgresql://db/gw?user=gw&password=***"
        );
        assert_eq!(redact("postgres://a:b@c@h"), "postgres://a:***@h");
        assert_eq!(redact("/var/lib/pg.db"), "/var/lib/pg.db");
    }
}
