//! `partnergate serve` as a child process on a free 127.0.0.1 port, for the tests that need the
//! real binary (its defaults, its memory, its process): on a SQLite file of its own
//! ([`Binary::serve`]) or on a database URL shared by several ([`Binary::serve_url`]).

#![allow(
    dead_code,
    reason = "shared by several test files; each uses a part of it"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::common::{get, get_tls, remove_db, temp_path};

/// `partnergate` run in the temp directory without the test's `PARTNERGATE_*` or `RUST_LOG`.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partnergate"));
    cmd.current_dir(std::env::temp_dir());
    for (k, _) in std::env::vars() {
        if k.starts_with("PARTNERGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// The running binary, killed on drop (its SQLite database, if it has one of its own, and its
/// log removed).
pub struct Binary {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    db: Option<PathBuf>,
    stderr: PathBuf,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(db) = &self.db {
            remove_db(db);
        }
        let _ = std::fs::remove_file(&self.stderr);
    }
}

impl Binary {
    /// Starts `partnergate serve` on the SQLite file `db` forwarding to `upstream`, with no
    /// `PARTNERGATE_*` or `RUST_LOG` of the test's environment and `env` added; waits until
    /// `/readyz` answers 200. The file is removed when the binary is dropped.
    pub async fn serve(db: PathBuf, upstream: &str, env: &[(&str, String)]) -> Binary {
        let url = db.display().to_string();
        Binary::launch(&url, Some(db), upstream, env, None).await
    }

    /// Like [`Binary::serve`] for a TLS listener (`env` names its certificate) whose
    /// certificate `ca` issued: readiness is asked over TLS.
    pub async fn serve_tls(
        db: PathBuf,
        upstream: &str,
        env: &[(&str, String)],
        ca: &rustls::pki_types::CertificateDer<'static>,
    ) -> Binary {
        let url = db.display().to_string();
        Binary::launch(&url, Some(db), upstream, env, Some(ca)).await
    }

    /// Sends a signal (`HUP`, `TERM`, …) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    /// Like [`Binary::serve`] on the database at `url` (e.g. `postgres://…`, shared by several
    /// binaries), which the caller owns: nothing is removed on drop.
    pub async fn serve_url(url: &str, upstream: &str, env: &[(&str, String)]) -> Binary {
        Binary::launch(url, None, upstream, env, None).await
    }

    async fn launch(
        url: &str,
        db: Option<PathBuf>,
        upstream: &str,
        env: &[(&str, String)],
        ca: Option<&rustls::pki_types::CertificateDer<'static>>,
    ) -> Binary {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("local address").port()
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stderr = temp_path("serve", "log");
        let mut cmd = command();
        cmd.args(["serve", "--database-url", url])
            .args(["--listen", &addr.to_string(), "--upstream", upstream])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(&stderr).expect("log file"),
            ));
        let mut child = cmd.spawn().expect("spawn partnergate serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                let ready = match ca {
                    Some(ca) => get_tls(addr, ca, "/readyz").await,
                    None => get(addr, "/readyz", None).await,
                };
                if ready.status == 200 {
                    break;
                }
            }
            if let Some(status) = child.try_wait().expect("wait") {
                panic!(
                    "serve exited with {status}: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "serve did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Binary {
            addr,
            child,
            db,
            stderr,
        }
    }

    /// Kills the process at once (SIGKILL: no shutdown, no last words) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM (the orderly shutdown a service manager asks for).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {}", self.child.id());
    }

    /// Waits up to `within` for the process to exit: its status, or `None` when it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `VmHWM` (peak resident set) and `VmRSS` of the process, in bytes.
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{name} in {status}"))
                * 1024
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}
