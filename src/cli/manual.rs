//! `completions` and `man`: the shell completion scripts (clap_complete) and the man pages
//! (clap_mangen), both generated from the one command-line definition in `args.rs`, so they
//! cannot drift from the commands. Uses clap's `CommandFactory` only.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::args::Cli;

/// `partnergate completions SHELL`: the completion script for `shell`.
pub fn completions(shell: Shell, out: &mut String) -> Result<(), String> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "partnergate", &mut script);
    out.push_str(&String::from_utf8(script).map_err(|e| e.to_string())?);
    Ok(())
}

/// `partnergate man [--dir DIR]`: the man page (section 1, roff) printed, or with `dir` every
/// page (`partnergate.1` and one per subcommand, `partnergate-partner-create.1`, …) written
/// there, and their names printed.
pub fn man(dir: Option<&Path>, out: &mut String) -> Result<(), String> {
    match dir {
        None => {
            let mut page = Vec::new();
            // As generate_to does: no `help` entry, which would name a page that is not written.
            clap_mangen::Man::new(Cli::command().disable_help_subcommand(true))
                .render(&mut page)
                .map_err(|e| format!("rendering the man page: {e}"))?;
            out.push_str(&String::from_utf8(page).map_err(|e| e.to_string())?);
        }
        Some(dir) => {
            clap_mangen::generate_to(Cli::command(), dir)
                .map_err(|e| format!("writing the man pages to {}: {e}", dir.display()))?;
            out.push_str(&format!("man pages written to {}\n", dir.display()));
        }
    }
    Ok(())
}
