#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]
//! What a packager ships besides the binary, checked with the real binary and the real tools:
//! - `packaging/partnergate.example.toml` passes `partnergate config check`, its active settings
//!   are exactly the defaults, and with its commented-out settings enabled it names every key
//!   the configuration knows (`config::KEYS`, the loader's own list), each once;
//! - `partnergate completions bash|zsh|fish` parse in their shell (`bash -n`, `zsh -n`,
//!   `fish --no-execute`) and complete every command; zsh or fish missing: skipped with a
//!   message (`.ci/setup` installs both);
//! - `partnergate man` and `man --dir` render with groff without a warning and list every
//!   command;
//! - `packaging/partnergate.service` passes `systemd-analyze verify` (its `Documentation=` man
//!   page resolved against the generated pages) and `systemd-analyze security --offline`
//!   rates it at most [`MAX_EXPOSURE`]; systemd-analyze missing: skipped with a message;
//! - `partnergate health` (the image's HEALTHCHECK) against the real `serve`: exit 0 and
//!   `URL: HTTP 200` for `/healthz` and `/readyz`, exit 1 naming the status or the refused
//!   connection otherwise.

mod common;
#[path = "common/serve.rs"]
mod serve;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use partnergate::config::{self, Config, Source, TomlFile};

/// The highest `systemd-analyze security` exposure the unit may have (it rates 1.1 on
/// systemd 252; 0 is best, 10 worst; the figure is in README.md).
const MAX_EXPOSURE: f64 = 1.5;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The real binary with `args`, without any `PARTNERGATE_*` variable of the test's environment.
fn partnergate(args: &[&str]) -> Output {
    serve::command().args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Whether `tool` runs here; if not, says that the check is skipped.
fn have(tool: &str, check: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: {check}: {tool} is not installed (.ci/setup installs it)");
    }
    found
}

/// The commands `partnergate --help` lists (clap's own list, so a new command joins it).
fn commands() -> Vec<String> {
    let help = stdout(&partnergate(&["--help"]));
    let list: Vec<String> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect();
    assert!(
        list.len() > 15 && list.iter().any(|c| c == "serve"),
        "{list:?}"
    );
    list
}

// === the example configuration ===

const EXAMPLE: &str = "packaging/partnergate.example.toml";

/// The example with its commented-out settings (`# key = value`) enabled.
fn every_setting_enabled(text: &str) -> String {
    text.lines()
        .map(|line| {
            let rest = line.strip_prefix("# ").unwrap_or(line);
            let is_setting = rest.split_once(" = ").is_some_and(|(key, _)| {
                !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.".contains(&b))
            });
            if is_setting {
                rest
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_config_passes_config_check_and_holds_the_defaults() {
    let path = repo(EXAMPLE);
    let out = partnergate(&["config", "check", "--config", path.to_str().unwrap()]);
    assert_eq!(stdout(&out), "configuration is valid\n");

    let text = std::fs::read_to_string(&path).unwrap();
    let file = TomlFile::parse(&text).unwrap();
    let loaded = Config::from_sources(&[&file]).unwrap();
    let defaults = Config::from_sources(&[]).unwrap();
    assert_eq!(
        format!("{loaded:#?}"),
        format!("{defaults:#?}"),
        "an active setting in {EXAMPLE} is not the default"
    );
}

#[test]
fn the_example_config_names_every_key_once() {
    let text = std::fs::read_to_string(repo(EXAMPLE)).unwrap();
    let all = every_setting_enabled(&text);
    // A key written twice is a TOML error here.
    let file = TomlFile::parse(&all).unwrap_or_else(|e| panic!("{e}\n{all}"));
    let named: BTreeSet<String> = file.settings().into_keys().collect();
    let known: BTreeSet<String> = config::KEYS.iter().map(|k| (*k).to_owned()).collect();
    let missing: Vec<_> = known.difference(&named).collect();
    let unknown: Vec<_> = named.difference(&known).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{EXAMPLE}: keys missing: {missing:?}; keys the configuration does not know: {unknown:?}"
    );
    // The example values of the commented-out settings are valid too.
    Config::from_sources(&[&file]).unwrap();
    // Through the binary as well, as an operator would check a copy of it.
    let dir = tempdir();
    let copy = dir.join("all.toml");
    std::fs::write(&copy, &all).unwrap();
    let out = partnergate(&["config", "check", "--config", copy.to_str().unwrap()]);
    assert_eq!(stdout(&out), "configuration is valid\n");
}

#[test]
fn config_check_reports_every_bad_key() {
    let dir = tempdir();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"nowhere\"\n[limits]\nbody_max_bytes = 0\nno_such_key = 1\n",
    )
    .unwrap();
    let by_flag = partnergate(&["config", "check", "--config", bad.to_str().unwrap()]);
    // PARTNERGATE_CONFIG names the file too (the container image sets it for every command).
    let by_env = serve::command()
        .args(["config", "check"])
        .env("PARTNERGATE_CONFIG", &bad)
        .output()
        .unwrap();
    assert_eq!(by_flag, by_env);
    let out = by_flag;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    for line in [
        "partnergate: invalid configuration:",
        "listen = \"nowhere\": expected IP:PORT",
        "limits.body_max_bytes = \"0\": must be more than 0",
        "limits.no_such_key: unknown key",
    ] {
        assert!(err.contains(line), "{line:?} not in {err}");
    }
}

// === completions ===

fn completion(shell: &str) -> (PathBuf, String) {
    let script = stdout(&partnergate(&["completions", shell]));
    let dir = tempdir();
    let path = dir.join(format!("partnergate.{shell}"));
    std::fs::write(&path, &script).unwrap();
    (path, script)
}

fn run_shell(shell: &str, args: &[&str]) -> String {
    let out = Command::new(shell).args(args).output().unwrap();
    stdout(&out)
}

#[test]
fn bash_completion_parses_and_completes_every_command() {
    let (path, _) = completion("bash");
    run_shell("bash", &["-n", path.to_str().unwrap()]);
    // Ask the completion function itself, as bash does after `partnergate <TAB>`.
    let script = format!(
        "source {}; COMP_WORDS=(partnergate ''); COMP_CWORD=1; COMP_LINE='partnergate '; \
         COMP_POINT=12; _partnergate partnergate '' partnergate; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    let offered = run_shell("bash", &["-c", &script]);
    let offered: BTreeSet<&str> = offered.lines().collect();
    for command in commands() {
        assert!(
            offered.contains(command.as_str()),
            "bash does not complete {command}: {offered:?}"
        );
    }
    // And a subcommand's own: `partnergate config <TAB>`.
    let script = format!(
        "source {}; COMP_WORDS=(partnergate config ''); COMP_CWORD=2; \
         COMP_LINE='partnergate config '; COMP_POINT=19; _partnergate partnergate '' config; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display()
    );
    assert!(run_shell("bash", &["-c", &script])
        .lines()
        .any(|l| l == "check"));
}

#[test]
fn zsh_completion_parses_and_names_every_command() {
    let (path, script) = completion("zsh");
    assert!(script.starts_with("#compdef partnergate"));
    for command in commands() {
        assert!(
            script.contains(&format!("'{command}:")),
            "zsh script lacks {command}"
        );
    }
    if have("zsh", "zsh -n on the zsh completion") {
        run_shell("zsh", &["-n", path.to_str().unwrap()]);
    }
}

#[test]
fn fish_completion_parses_and_completes_every_command() {
    let (path, _) = completion("fish");
    if !have("fish", "the fish completion") {
        return;
    }
    run_shell("fish", &["--no-execute", path.to_str().unwrap()]);
    let offered = run_shell(
        "fish",
        &[
            "--no-config",
            "-c",
            &format!("source {}; complete -C 'partnergate '", path.display()),
        ],
    );
    let offered: BTreeSet<&str> = offered
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    for command in commands() {
        assert!(
            offered.contains(command.as_str()),
            "fish does not complete {command}: {offered:?}"
        );
    }
}

// === man pages ===

/// The page rendered by groff as `man` renders it (preconv: the help text is UTF-8), which
/// must not warn.
fn render(page: &Path) -> String {
    let out = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-P-cbou"])
        .arg(page)
        .output()
        .unwrap();
    stdout(&out)
}

/// `text` with every run of white space made one space (groff justifies lines).
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn man_pages_render_and_list_every_command() {
    if !have("groff", "rendering the man pages") {
        return;
    }
    let dir = tempdir();
    let page = dir.join("printed.1");
    std::fs::write(&page, stdout(&partnergate(&["man"]))).unwrap();
    let text = render(&page);
    assert!(
        words(&text).contains("NAME partnergate - SOAP/WSDL-first security gateway"),
        "{text}"
    );
    let listed = text
        .split("SUBCOMMANDS")
        .nth(1)
        .expect("a SUBCOMMANDS section");
    for command in commands() {
        assert!(
            listed.contains(&format!("partnergate-{command}(1)")),
            "the man page does not list {command}"
        );
    }

    let pages = dir.join("man1");
    std::fs::create_dir(&pages).unwrap();
    let p = pages.to_str().unwrap();
    assert_eq!(
        stdout(&partnergate(&["man", "--dir", p])),
        format!("man pages written to {p}\n")
    );
    assert_eq!(
        std::fs::read_to_string(&page).unwrap(),
        std::fs::read_to_string(pages.join("partnergate.1")).unwrap(),
        "man --dir writes the printed page as partnergate.1"
    );
    for command in commands() {
        let sub = pages.join(format!("partnergate-{command}.1"));
        let text = render(&sub);
        assert!(
            words(&text).contains(&format!("NAME partnergate-{command} - ")),
            "{}: {text}",
            sub.display()
        );
    }
    let serve = render(&pages.join("partnergate-serve.1"));
    assert!(
        serve.contains("--config") && serve.contains("--listen"),
        "{serve}"
    );
}

// === the systemd unit ===

const UNIT: &str = "packaging/partnergate.service";

/// The unit as installed, with `/usr/bin/partnergate` being the binary under test (verify
/// checks that ExecStart's program exists), in a folder of its own.
fn installed_unit() -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(repo(UNIT)).unwrap();
    assert!(text.contains("ExecStart=/usr/bin/partnergate serve --config /etc/partnergate/"));
    let dir = tempdir();
    let unit = dir.join("partnergate.service");
    std::fs::write(
        &unit,
        text.replace("/usr/bin/partnergate", env!("CARGO_BIN_EXE_partnergate")),
    )
    .unwrap();
    (dir, unit)
}

/// `[Service]` settings, last one wins as in systemd (enough for single-valued ones).
fn setting<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .rev()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[test]
fn the_service_unit_states_its_hardening() {
    let unit = std::fs::read_to_string(repo(UNIT)).unwrap();
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "partnergate"),
        ("WorkingDirectory", "/var/lib/partnergate"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("UMask", "0077"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        // The gateway's own bound is 10 s (app::SHUTDOWN_GRACE): systemd must not kill first.
        ("TimeoutStopSec", "15s"),
    ] {
        assert_eq!(setting(&unit, key), Some(value), "{key}");
    }
    assert!(unit.contains("\nSystemCallFilter=@system-service\n"));
    // The default database file lands in the state directory.
    let defaults = Config::from_sources(&[]).unwrap();
    assert!(!Path::new(&defaults.database_url).is_absolute());
}

#[test]
fn the_service_unit_verifies_and_rates_low_exposure() {
    if !have("systemd-analyze", "systemd-analyze verify on the unit") {
        return;
    }
    let (dir, unit) = installed_unit();
    // Documentation=man:partnergate(1): verify runs `man`, so the generated pages are on MANPATH.
    let man = dir.join("man");
    let man1 = man.join("man1");
    std::fs::create_dir_all(&man1).unwrap();
    stdout(&partnergate(&["man", "--dir", man1.to_str().unwrap()]));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("MANPATH", &man)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("partnergate.service"),
        "systemd-analyze verify: {:?}\n{stderr}",
        out.status
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for partnergate.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no exposure level in:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("systemd-analyze security --offline: exposure {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{text}"
    );
}

/// A fresh folder in the temporary directory (small files only, left there).
fn tempdir() -> PathBuf {
    let dir = common::temp_path("packaging", "d");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// === the health probe ===

#[tokio::test(flavor = "multi_thread")]
async fn health_asks_a_running_gateway() {
    let gw = serve::Binary::serve(
        common::temp_path("health", "db"),
        "http://127.0.0.1:9/soap/partner/v1",
        &[],
    )
    .await;
    let base = format!("http://{}", gw.addr);
    let alive = format!("{base}/healthz");
    assert_eq!(
        stdout(&partnergate(&["health", "--url", &alive])),
        format!("{alive}: HTTP 200\n")
    );
    // Without --url: the configured listener, an unspecified address asked on loopback.
    let out = serve::command()
        .args(["health", "--ready"])
        .env("PARTNERGATE_LISTEN", format!("0.0.0.0:{}", gw.addr.port()))
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out),
        format!("http://127.0.0.1:{}/readyz: HTTP 200\n", gw.addr.port())
    );
    let refused = |args: &[&str]| {
        let out = partnergate(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty());
        String::from_utf8(out.stderr).unwrap()
    };
    assert_eq!(
        refused(&["health", "--url", &format!("{base}/nothing")]),
        format!("partnergate: {base}/nothing: HTTP 404\n")
    );
    assert_eq!(
        refused(&["health", "--url", "https://127.0.0.1:1/healthz"]),
        "partnergate: https://127.0.0.1:1/healthz: only http:// URLs are probed\n"
    );
    drop(gw);
    let err = refused(&["health", "--url", &alive]);
    assert!(
        err.starts_with(&format!("partnergate: {alive}: ")) && err.contains("Connection refused"),
        "{err}"
    );
}
