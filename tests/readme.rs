#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! The README's command blocks stay true: every ```sh block preceded by a
//! `<!-- readme-runs: … -->` line runs as written, in README order, with the real binary as
//! `partnergate` on `PATH`, in a temporary directory on a fresh SQLite database
//! (`PARTNERGATE_DATABASE_URL`). Asserted: every command exits 0 (a failure names the command
//! and prints its output), the partner the onboarding block creates is `PARTNER-0001` as the
//! README's example output says (the later commands name it), and at the end the partner is
//! offboarded in group `platinum` with every key revoked, as the commands left it.

mod common;

use std::path::Path;
use std::process::{Command, Output};

const MARKER: &str = "<!-- readme-runs:";

/// The marked blocks' contents, in README order.
fn marked_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with(MARKER) {
            continue;
        }
        let fence = lines.next().unwrap_or_default();
        assert_eq!(
            fence, "```sh",
            "a {MARKER} line must be followed by a ```sh block"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        blocks.push(body.join("\n"));
    }
    blocks
}

/// A block's commands: continuation lines (ending in `\`) joined; blank and comment-only lines
/// left out (a trailing comment stays: the shell ignores it).
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(
        current.is_empty(),
        "a block ends inside a continued line: {current}"
    );
    out
}

fn run(dir: &Path, db: &Path, command: &str) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_partnergate"));
    let path = format!(
        "{}:{}",
        bin.parent().expect("binary directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-c", command])
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir)
        .env("USER", "readme")
        .env("PARTNERGATE_DATABASE_URL", db)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "README command failed ({}):\n  {command}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_readme_command_blocks_run_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let blocks = marked_blocks(&readme);
    assert!(
        blocks.len() >= 2,
        "the onboarding and administration blocks are marked: {}",
        blocks.len()
    );
    let dir = common::temp_path("readme", "dir");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("partnergate.db");
    let mut ran = 0;
    for (i, block) in blocks.iter().enumerate() {
        for command in commands(block) {
            let out = run(&dir, &db, &command);
            ran += 1;
            if i == 0 && command.contains("partner create") {
                let created: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("partner create --json");
                assert_eq!(
                    created["partner_id"], "PARTNER-0001",
                    "the README's example output and later commands name PARTNER-0001"
                );
            }
        }
    }
    assert!(ran >= 20, "only {ran} commands found in the marked blocks");
    let shown = run(&dir, &db, "partnergate partner show PARTNER-0001 --json");
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("show --json");
    let text = shown.to_string();
    assert!(
        text.contains("\"offboarded\""),
        "offboarded at the end: {text}"
    );
    assert!(
        text.contains("\"platinum\""),
        "in the renamed group: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn commands_are_split_at_lines_and_joined_at_continuations() {
    let block = "# a comment\npartnergate a \\\n    --b c   # note\n\npartnergate d\n";
    assert_eq!(
        commands(block),
        ["partnergate a      --b c   # note", "partnergate d"]
    );
}
