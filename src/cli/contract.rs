//! The contract's commands, no database: `operations`, `wsdl`, `xsd` and `check` (messages
//! checked as the gateway would: envelope, then strict decode, then the canonical re-encoding).

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;

use partnergate::decode::{self, DecodeLimits};
use partnergate::encode;
use partnergate::envelope;
use partnergate::generated::{callback, partner};
use partnergate::published;

/// One row of `operations`: name, permission, SOAPAction and body element (namespace, name).
type OperationRow = (
    &'static str,
    &'static str,
    &'static str,
    (&'static str, &'static str),
);

/// `partnergate operations [--callback]`: the contract's operations as a table.
pub fn operations(is_callback: bool, out: &mut String) {
    if is_callback {
        let rows = callback::Operation::ALL.map(|op| {
            (
                op.name(),
                op.permission(),
                op.soap_action(),
                op.request_element(),
            )
        });
        operation_table(&rows, [26, 34, 52], out);
    } else {
        let rows = partner::Operation::ALL.map(|op| {
            (
                op.name(),
                op.permission(),
                op.soap_action(),
                op.request_element(),
            )
        });
        operation_table(&rows, [22, 26, 46], out);
    }
}

/// The `operations` table: a header, then one line per row, the first three columns padded to
/// `widths`.
fn operation_table(rows: &[OperationRow], widths: [usize; 3], out: &mut String) {
    let [a, b, c] = widths;
    let _ = writeln!(
        out,
        "{:<a$} {:<b$} {:<c$} BODY ELEMENT",
        "OPERATION", "PERMISSION", "SOAPACTION"
    );
    for (name, permission, soap_action, (ns, local)) in rows {
        let _ = writeln!(
            out,
            "{name:<a$} {permission:<b$} {soap_action:<c$} {{{ns}}}{local}"
        );
    }
}

/// `partnergate wsdl`: a published WSDL.
pub fn wsdl(soap11_only: bool, is_callback: bool, out: &mut String) {
    let doc = match (soap11_only, is_callback) {
        (true, true) => published::CALLBACK_WSDL_SOAP11,
        (false, true) => published::CALLBACK_WSDL,
        (true, false) => published::PARTNER_WSDL_SOAP11,
        (false, false) => published::PARTNER_WSDL,
    };
    out.push_str(doc.text);
}

/// `partnergate xsd NAME`: a published XSD.
pub fn xsd(name: &str, out: &mut String) -> Result<(), String> {
    let doc = published::schema(name).ok_or_else(|| {
        let names: Vec<_> = published::SCHEMAS.iter().map(|d| d.name).collect();
        format!("no schema named {name:?}; published: {}", names.join(", "))
    })?;
    out.push_str(doc.text);
    Ok(())
}

/// `partnergate check FILE…`: one file as before (its result, or its error as the command's);
/// several: each file's result on its own line, then `checked N files: X ok, Y failed`.
pub fn check_all(
    files: &[PathBuf],
    is_callback: bool,
    response: Option<&str>,
    text: &mut String,
) -> Result<(), String> {
    if let [file] = files {
        let ok = check(file, is_callback, response, text)?;
        eprintln!("ok: {ok}");
        return Ok(());
    }
    let mut failed = 0usize;
    for file in files {
        match check(file, is_callback, response, text) {
            Ok(ok) => eprintln!("{}: ok: {ok}", file.display()),
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", file.display());
            }
        }
    }
    eprintln!(
        "checked {} files: {} ok, {failed} failed",
        files.len(),
        files.len() - failed
    );
    if failed == 0 {
        Ok(())
    } else {
        Err(format!(
            "{failed} of {} files failed the check",
            files.len()
        ))
    }
}

/// Checks one message; on success appends its canonical form to `text` and returns
/// `NAME (VERSION)`.
fn check(
    file: &PathBuf,
    is_callback: bool,
    response: Option<&str>,
    text: &mut String,
) -> Result<String, String> {
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
    let (name, out) = match (is_callback, response) {
        (false, None) => {
            let value = decode::partner_request(&env.body, limits).map_err(invalid)?;
            let out = canonical(env.version, |w| Ok(value.encode(w)?))?;
            (value.operation().name(), out)
        }
        (false, Some(op)) => {
            let op = partner::Operation::from_name(op)
                .ok_or_else(|| format!("unknown operation {op:?}"))?;
            let value = decode::partner_response(op, &env.body, limits).map_err(invalid)?;
            (op.name(), canonical(env.version, |w| Ok(value.encode(w)?))?)
        }
        (true, None) => {
            let value = decode::callback_request(&env.body, limits).map_err(invalid)?;
            let out = canonical(env.version, |w| Ok(value.encode(w)?))?;
            (value.operation().name(), out)
        }
        (true, Some(op)) => {
            let op = callback::Operation::from_name(op)
                .ok_or_else(|| format!("unknown callback operation {op:?}"))?;
            let value = decode::callback_response(op, &env.body, limits).map_err(invalid)?;
            (op.name(), canonical(env.version, |w| Ok(value.encode(w)?))?)
        }
    };
    text.push_str(&String::from_utf8_lossy(&out));
    text.push('\n');
    Ok(format!("{name} ({:?})", env.version))
}

/// A decoded value written by `write` in a fresh envelope of `version`: its canonical form, as
/// the gateway would forward it.
fn canonical(
    version: envelope::SoapVersion,
    write: impl FnOnce(&mut encode::XmlWriter<'_>) -> Result<(), encode::EncodeError>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    encode::body_only(version, &mut out, write).map_err(|e| e.to_string())?;
    Ok(out)
}
