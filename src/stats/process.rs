//! The build and process families of `/metrics`, by the Prometheus conventions:
//! `partnergate_build_info{version,commit} 1` and the standard `process_*` families (what the
//! official client libraries export), read from `/proc/self` on Linux and left out elsewhere.
//! Read when `/metrics` is asked for, never on the request path; uses std only.

use std::fmt::Write as _;

/// The crate version (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The short commit id the binary was built from (build.rs: `git rev-parse --short HEAD`, or
/// `PARTNERGATE_COMMIT`, or `unknown`).
pub const COMMIT: &str = env!("PARTNERGATE_COMMIT");

/// Appends `partnergate_build_info` and the `process_*` families to `out`.
pub fn render(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP partnergate_build_info The version and commit this binary was built from.\n\
         # TYPE partnergate_build_info gauge\n\
         partnergate_build_info{{version=\"{VERSION}\",commit=\"{COMMIT}\"}} 1"
    );
    #[cfg(target_os = "linux")]
    if let Some(p) = linux::read() {
        p.render(out);
    }
}

/// One reading of the process' resources.
#[derive(Debug, Default, PartialEq)]
struct Process {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

impl Process {
    fn render(&self, out: &mut String) {
        let mut family = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            self.cpu_seconds.to_string(),
        );
        family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            self.resident_bytes.to_string(),
        );
        family(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            self.virtual_bytes.to_string(),
        );
        if let Some(n) = self.open_fds {
            family(
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                n.to_string(),
            );
        }
        if let Some(n) = self.max_fds {
            family(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                n.to_string(),
            );
        }
        if let Some(t) = self.start_time_seconds {
            family(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                t.to_string(),
            );
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::Process;

    /// Clock ticks per second of `/proc/*/stat` (USER_HZ: 100 on every Linux architecture
    /// Prometheus' own procfs reader supports; it makes the same assumption).
    const TICKS: f64 = 100.0;

    pub(super) fn read() -> Option<Process> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| max_open_files(&s));
        parse(&stat, &status, boot, open_fds, max_fds)
    }

    /// The reading from the texts of `/proc/self/stat` and `/proc/self/status`.
    pub(super) fn parse(
        stat: &str,
        status: &str,
        boot_time: Option<u64>,
        open_fds: Option<u64>,
        max_fds: Option<u64>,
    ) -> Option<Process> {
        // The command name (field 2) is in parentheses and may hold spaces: fields count from
        // the last ')'; field 3 (state) is the first after it.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        let (utime, stime, start) = (field(14)?, field(15)?, field(22)?);
        let kb = |key: &str| {
            status.lines().find_map(|l| {
                let v = l.strip_prefix(key)?.trim().strip_suffix("kB")?;
                v.trim().parse::<u64>().ok().map(|k| k * 1024)
            })
        };
        Some(Process {
            cpu_seconds: (utime + stime) as f64 / TICKS,
            resident_bytes: kb("VmRSS:")?,
            virtual_bytes: kb("VmSize:")?,
            open_fds,
            max_fds,
            start_time_seconds: boot_time.map(|b| b as f64 + start as f64 / TICKS),
        })
    }

    /// `btime` of `/proc/stat`: boot time in Unix seconds.
    pub(super) fn boot_time(text: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The soft limit of "Max open files" in `/proc/self/limits` (`None` when unlimited).
    pub(super) fn max_open_files(text: &str) -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        line["Max open files".len()..]
            .split_ascii_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::linux::{boot_time, max_open_files, parse};
    use super::*;

    #[test]
    fn proc_texts_are_read_by_field() {
        // A command name with spaces and a ')' in it; utime 250, stime 50, starttime 1000.
        let stat = "4242 (serve (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 \
                    3 0 1000 123456 789 18446744073709551615";
        let status = "Name:\tpartnergate\nVmSize:\t  200000 kB\nVmRSS:\t   12000 kB\n";
        let p = parse(stat, status, Some(1_700_000_000), Some(12), Some(1024)).unwrap();
        assert_eq!(
            p,
            Process {
                cpu_seconds: 3.0,
                resident_bytes: 12_000 * 1024,
                virtual_bytes: 200_000 * 1024,
                open_fds: Some(12),
                max_fds: Some(1024),
                start_time_seconds: Some(1_700_000_010.0),
            }
        );
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(parse("garbage", status, None, None, None), None);
    }

    #[test]
    fn families_render_with_their_types() {
        let mut out = String::new();
        render(&mut out);
        assert!(out.contains(&format!(
            "partnergate_build_info{{version=\"{VERSION}\",commit=\"{COMMIT}\"}} 1\n"
        )));
        for (name, kind) in [
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
            ("process_start_time_seconds", "gauge"),
        ] {
            assert!(out.contains(&format!("# TYPE {name} {kind}\n")), "{out}");
        }
    }
}
