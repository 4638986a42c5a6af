//! The `partnergate` command line. See README.md.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use partnergate::decode::{self, DecodeLimits};
use partnergate::encode;
use partnergate::envelope;
use partnergate::generated::{callback, partner};
use partnergate::published;

/// partnergate: the SOAP security gateway in front of the TSP's partner API.
#[derive(Parser, Debug)]
#[command(name = "partnergate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the contract's operations: permission name, SOAPAction and body element.
    Operations {
        /// The callback contract instead of the partner API.
        #[arg(long)]
        callback: bool,
    },
    /// Print a published WSDL.
    Wsdl {
        /// The SOAP 1.1-only view (for toolkits that reject SOAP 1.2 bindings).
        #[arg(long, conflicts_with = "callback")]
        soap11_only: bool,
        /// The callback WSDL.
        #[arg(long)]
        callback: bool,
    },
    /// Print a published XSD by name (common.xsd, accounts.xsd, …).
    Xsd {
        /// The schema's name.
        name: String,
    },
    /// Check a SOAP message against the contract as the gateway would: envelope, then strict
    /// decode of the body. Prints the canonical re-encoding on success.
    Check {
        /// The message file (`-` for standard input).
        file: PathBuf,
        /// Decode the message as a callback instead of a partner API request.
        #[arg(long)]
        callback: bool,
        /// Decode the body as the response of this operation.
        #[arg(long, value_name = "OPERATION")]
        response: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = String::new();
    let result = run(cli.command, &mut out);
    // A closed pipe (`partnergate operations | head`) is not an error worth a panic.
    let written = std::io::stdout().lock().write_all(out.as_bytes());
    if let Err(e) = written {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("partnergate: writing output: {e}");
            return ExitCode::FAILURE;
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("partnergate: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, out: &mut String) -> Result<(), String> {
    match command {
        Command::Operations { callback: false } => {
            let _ = writeln!(
                out,
                "{:<22} {:<26} {:<46} BODY ELEMENT",
                "OPERATION", "PERMISSION", "SOAPACTION"
            );
            for op in partner::Operation::ALL {
                let (ns, local) = op.request_element();
                let _ = writeln!(
                    out,
                    "{:<22} {:<26} {:<46} {{{ns}}}{local}",
                    op.name(),
                    op.permission(),
                    op.soap_action()
                );
            }
        }
        Command::Operations { callback: true } => {
            let _ = writeln!(
                out,
                "{:<26} {:<34} {:<52} BODY ELEMENT",
                "OPERATION", "PERMISSION", "SOAPACTION"
            );
            for op in callback::Operation::ALL {
                let (ns, local) = op.request_element();
                let _ = writeln!(
                    out,
                    "{:<26} {:<34} {:<52} {{{ns}}}{local}",
                    op.name(),
                    op.permission(),
                    op.soap_action()
                );
            }
        }
        Command::Wsdl {
            soap11_only,
            callback,
        } => {
            let doc = match (soap11_only, callback) {
                (_, true) => published::CALLBACK_WSDL,
                (true, false) => published::PARTNER_WSDL_SOAP11,
                (false, false) => published::PARTNER_WSDL,
            };
            out.push_str(doc.text);
        }
        Command::Xsd { name } => {
            let doc = published::schema(&name).ok_or_else(|| {
                let names: Vec<_> = published::SCHEMAS.iter().map(|d| d.name).collect();
                format!("no schema named {name:?}; published: {}", names.join(", "))
            })?;
            out.push_str(doc.text);
        }
        Command::Check {
            file,
            callback,
            response,
        } => check(&file, callback, response.as_deref(), out)?,
    }
    Ok(())
}

fn check(
    file: &PathBuf,
    is_callback: bool,
    response: Option<&str>,
    text: &mut String,
) -> Result<(), String> {
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("reading standard input: {e}"))?;
    } else {
        bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let env =
        envelope::scan(&bytes).map_err(|e| format!("not an acceptable SOAP envelope: {e}"))?;
    let limits = DecodeLimits::default();
    let invalid =
        |e: decode::DecodeError| format!("InvalidRequest at {}: {}: {}", e.path, e.rule, e.detail);
    let mut out = Vec::new();
    let name = match (is_callback, response) {
        (false, None) => {
            let value = decode::partner_request(&env.body, limits).map_err(invalid)?;
            encode::body_only(env.version, &mut out, |w| Ok(value.encode(w)?))
                .map_err(|e| e.to_string())?;
            value.operation().name()
        }
        (false, Some(op)) => {
            let op = partner::Operation::from_name(op)
                .ok_or_else(|| format!("unknown operation {op:?}"))?;
            let value = decode::partner_response(op, &env.body, limits).map_err(invalid)?;
            encode::body_only(env.version, &mut out, |w| Ok(value.encode(w)?))
                .map_err(|e| e.to_string())?;
            op.name()
        }
        (true, None) => {
            let value = decode::callback_request(&env.body, limits).map_err(invalid)?;
            encode::body_only(env.version, &mut out, |w| Ok(value.encode(w)?))
                .map_err(|e| e.to_string())?;
            value.operation().name()
        }
        (true, Some(op)) => {
            let op = callback::Operation::from_name(op)
                .ok_or_else(|| format!("unknown callback operation {op:?}"))?;
            let value = decode::callback_response(op, &env.body, limits).map_err(invalid)?;
            encode::body_only(env.version, &mut out, |w| Ok(value.encode(w)?))
                .map_err(|e| e.to_string())?;
            op.name()
        }
    };
    eprintln!("ok: {name} ({:?})", env.version);
    text.push_str(&String::from_utf8_lossy(&out));
    text.push('\n');
    Ok(())
}
