//! How commands end: their text written to standard output, an error as `partnergate: …` on
//! standard error, and the exit status.

use std::fmt::Display;
use std::io::Write as _;
use std::process::ExitCode;

/// Prints `partnergate: MESSAGE` on standard error.
pub fn report(message: impl Display) {
    eprintln!("partnergate: {message}");
}

/// Reports `message` and returns the failure status.
pub fn fail(message: impl Display) -> ExitCode {
    report(message);
    ExitCode::FAILURE
}

/// Writes what a command printed into `out` (even when it then failed), then its error if any;
/// the exit status follows.
pub fn finish(out: &str, result: Result<(), String>) -> ExitCode {
    // A closed pipe (`partnergate operations | head`) is not an error worth a panic.
    let written = std::io::stdout().lock().write_all(out.as_bytes());
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return fail(format!("writing output: {e}"));
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}
