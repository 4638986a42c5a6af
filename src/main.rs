//! The `partnergate` command line: parses the arguments and dispatches each command to its
//! module under `cli/`. See README.md.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::args::{Cli, Command};
use cli::{
    access, audit, contract, enrollment, group, health, key, manual, nodes, operator, output,
    partner, serve, setup, stats,
};

/// mimalloc instead of glibc's malloc: a request makes a few hundred small, short-lived
/// allocations (quick-xml buffers, decoded strings, the typed message), and glibc's
/// malloc/free/realloc were ~7 % of the gateway's CPU under load (perf) — see bench/README.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve::serve(args),
        Command::Upstream { action, common } => serve::upstream(action, common),
        command => {
            let mut out = String::new();
            let result = run(command, &mut out);
            output::finish(&out, result)
        }
    }
}

/// Runs a command that prints: its text goes to `out`, written by `main` even when it failed.
fn run(command: Command, out: &mut String) -> Result<(), String> {
    match command {
        Command::Operations { callback } => contract::operations(callback, out),
        Command::Wsdl {
            soap11_only,
            callback,
        } => contract::wsdl(soap11_only, callback, out),
        Command::Xsd { name } => contract::xsd(&name, out)?,
        Command::Check {
            files,
            callback,
            response,
        } => contract::check_all(&files, callback, response.as_deref(), out)?,
        Command::Partner(args) => partner::run(args, out)?,
        Command::Key(args) => key::run(args, out)?,
        Command::Allow(args) => access::allow(args, out)?,
        Command::Grant(args) => access::grant(args, out)?,
        Command::Group(args) => group::group(args, out)?,
        Command::Throttle(args) => group::throttle(args, out)?,
        Command::Stats {
            partner,
            since,
            common,
            output,
        } => stats::stats(partner.as_deref(), &since, &common, output.json, out)?,
        Command::Nodes { common, output } => nodes::run(&common, &output, out)?,
        Command::Audit(args) => audit::run(args, out)?,
        Command::Operator(args) => operator::run(args, out)?,
        Command::Enrollment(args) => enrollment::run(args, out)?,
        Command::Config { action, common } => setup::config(&action, &common, out)?,
        Command::Health {
            url,
            ready,
            timeout_ms,
            common,
        } => health::health(
            url.as_deref(),
            ready,
            std::time::Duration::from_millis(timeout_ms),
            &common,
            out,
        )?,
        Command::Completions { shell } => manual::completions(shell, out)?,
        Command::Man { dir } => manual::man(dir.as_deref(), out)?,
        Command::Serve(_) | Command::Upstream { .. } => return Err("run by main".into()),
    }
    Ok(())
}
