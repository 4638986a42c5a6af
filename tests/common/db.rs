//! One test's database, SQLite or PostgreSQL, removed when dropped. Shared by the test files that
//! run their cases on both backends (`#[path = "common/db.rs"] mod db;`): a fresh temp file per
//! SQLite test, a fresh database per PostgreSQL test on the server named by
//! `PARTNERGATE_TEST_POSTGRES_URL` (`tests/run.sh` starts a throwaway one). Without that variable
//! the `postgres` tests fail: they never pass silently.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use rand::RngCore;

/// The variable naming the PostgreSQL server for tests.
pub const PG_ENV: &str = "PARTNERGATE_TEST_POSTGRES_URL";

/// `bytes` random bytes as hex.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One test's database; removed (file) or dropped (PostgreSQL database) on drop.
pub enum Db {
    /// A temp file (and its -wal/-shm/-journal files).
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A database of its own on the test server.
    Postgres {
        /// The server's URL as given (used to drop the database).
        admin_url: String,
        /// The database's name.
        name: String,
        /// The URL of this database.
        url: String,
    },
}

impl Db {
    /// A fresh SQLite file in the temp directory; `tag` names the test file.
    pub fn sqlite_tagged(tag: &str) -> Db {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "partnergate-{tag}-{}-{}-{}.db",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            random_hex(4)
        ));
        Db::Sqlite { path }
    }

    /// A fresh PostgreSQL database named `pg_<tag>_<random>`.
    pub fn postgres_tagged(tag: &str) -> Db {
        let admin_url = std::env::var(PG_ENV).unwrap_or_else(|_| {
            panic!("{PG_ENV} is not set: run tests/run.sh (it starts a throwaway PostgreSQL)")
        });
        let name = format!("pg_{tag}_{}", random_hex(8));
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("{PG_ENV}: cannot connect: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = with_database(&admin_url, &name);
        Db::Postgres {
            admin_url,
            name,
            url,
        }
    }

    /// The database URL (a file path for SQLite).
    pub fn url(&self) -> String {
        match self {
            Db::Sqlite { path } => path.display().to_string(),
            Db::Postgres { url, .. } => url.clone(),
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        match self {
            Db::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Db::Postgres {
                admin_url, name, ..
            } => {
                if let Ok(mut admin) = PgConnection::establish(admin_url) {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
        }
    }
}

/// `admin_url` with its database name replaced by `name` (query parameters kept).
pub fn with_database(admin_url: &str, name: &str) -> String {
    let (scheme, rest) = admin_url.split_once("://").expect("a postgres:// URL");
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap();
    let mut url = format!("{scheme}://{authority}/{name}");
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}
