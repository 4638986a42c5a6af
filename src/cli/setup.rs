//! What commands need before they run: the configuration (defaults, file, environment, flags)
//! and the database opened for one command; `config check`.

use std::collections::BTreeMap;

use partnergate::config::{self, Config, TomlFile};
use partnergate::store::{self as db, PoolUse, Store};

use super::args::{Common, ConfigAction};

/// Opens the database for one command, runs `f` on it (which drops the store), then waits until
/// the pool's threads are done: a PostgreSQL connect still running while the process exits
/// can abort it in libpq's Kerberos library after the command's change was committed.
pub fn with_store<T>(url: &str, f: impl FnOnce(Store) -> Result<T, String>) -> Result<T, String> {
    let store = Store::open_for(url, PoolUse::Command).map_err(|e| e.to_string())?;
    let closing = store.closing();
    let result = f(store);
    if !closing.wait(db::CLOSE_TIMEOUT) {
        eprintln!("partnergate: warning: the database connection pool did not shut down in time");
    }
    result
}

/// Loads the configuration from the defaults, the file, the environment and `flags`.
pub fn load_config(common: &Common, flags: BTreeMap<String, String>) -> Result<Config, String> {
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

/// `partnergate config check`: the configuration loaded as `serve` loads it, or every error.
pub fn config(action: &ConfigAction, common: &Common, out: &mut String) -> Result<(), String> {
    match action {
        ConfigAction::Check => {
            load_config(common, BTreeMap::new())?;
            out.push_str("configuration is valid\n");
        }
    }
    Ok(())
}
