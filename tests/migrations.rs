//! The migration directories: diesel keys a migration by the version before the first `_` of its
//! directory name, so two migrations with the same version would leave one of them unapplied on
//! a database that has the other; and both backends have the same migrations.

#![allow(clippy::expect_used, clippy::panic, reason = "test code")]

use std::collections::BTreeMap;
use std::path::Path;

/// version → directory names, for one backend.
fn versions(backend: &str) -> BTreeMap<String, Vec<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.expect("a directory entry");
        if !entry.path().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let version = name.split('_').next().unwrap_or_default().to_owned();
        out.entry(version).or_default().push(name);
    }
    out
}

#[test]
fn every_migration_has_its_own_version_and_both_backends_the_same_ones() {
    let postgres = versions("postgres");
    let sqlite = versions("sqlite");
    for (backend, map) in [("postgres", &postgres), ("sqlite", &sqlite)] {
        assert!(map.len() > 5, "{backend}: migrations found");
        let shared: Vec<_> = map.values().filter(|names| names.len() > 1).collect();
        assert!(
            shared.is_empty(),
            "{backend}: one version, several migrations: {shared:?}"
        );
    }
    assert_eq!(postgres, sqlite, "the two backends' migrations differ");
}
