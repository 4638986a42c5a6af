//! The text format of the log, with a direct path for the access line.
//!
//! tracing-subscriber's default ("full") format writes every field through `Debug` and through
//! nu-ansi-term styles even when colours are off: for the one access line per request that was
//! ~15,000 instructions, about 4 % of a whole CreateAccount request (bench/README.md). The
//! access line — target `partnergate::access`, outside any span, no colours — is written here
//! byte for byte as the full format writes it (timestamp, level, target, `name=value` pairs;
//! strings quoted and escaped as `Debug` does); every other event, and an access line with a
//! field kind this path does not write, goes to the full format unchanged. The test below
//! compares the two outputs.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The access log's target (`server::log_line`).
pub const ACCESS_TARGET: &str = "partnergate::access";

/// The full format, with the access line written directly.
#[derive(Default)]
pub struct TextFormat {
    full: Format<Full, SystemTime>,
}

thread_local! {
    /// The line being written (reused: no allocation per line once it has grown).
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

#[cfg(test)]
thread_local! {
    /// Lines written by the direct path (the test checks it is taken).
    static DIRECT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() == ACCESS_TARGET
            && !writer.has_ansi_escapes()
            && ctx.event_scope().is_none()
        {
            let written = LINE.try_with(|line| {
                let Ok(mut line) = line.try_borrow_mut() else {
                    return None;
                };
                line.clear();
                access_line(&mut line, *meta.level(), event).then(|| writer.write_str(&line))
            });
            if let Ok(Some(result)) = written {
                #[cfg(test)]
                DIRECT.with(|d| d.set(d.get() + 1));
                return result;
            }
        }
        self.full.format_event(ctx, writer, event)
    }
}

/// Writes the line as the full format does; `false` if a field needs the full format.
fn access_line(line: &mut String, level: Level, event: &Event<'_>) -> bool {
    // Format<Full, SystemTime> without colours: "<time> <level> <target>: <fields>\n".
    {
        let mut w = Writer::new(line);
        if SystemTime.format_time(&mut w).is_err() && w.write_str("<unknown time>").is_err() {
            return false;
        }
    }
    let level = match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    };
    line.push(' ');
    line.push_str(level);
    line.push(' ');
    line.push_str(event.metadata().target());
    line.push_str(": ");
    let mut fields = Fields {
        line,
        first: true,
        ok: true,
    };
    event.record(&mut fields);
    let ok = fields.ok;
    line.push('\n');
    ok
}

/// tracing-subscriber's `DefaultVisitor`, for the field kinds of the access line.
struct Fields<'a> {
    line: &'a mut String,
    first: bool,
    ok: bool,
}

impl Fields<'_> {
    /// "name=" after the separator; `false` for a field the full format writes differently.
    fn name(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name == "message" || name.starts_with("r#") || name.starts_with("log.") {
            self.ok = false;
        }
        if !self.ok {
            return false;
        }
        if !std::mem::replace(&mut self.first, false) {
            self.line.push(' ');
        }
        self.line.push_str(name);
        self.line.push('=');
        true
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.name(field) {
            return;
        }
        // `Debug` of a str: printable ASCII other than `"` and `\` stays as it is.
        if value
            .bytes()
            .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
        {
            self.line.push('"');
            self.line.push_str(value);
            self.line.push('"');
        } else {
            self.ok &= write!(self.line, "{value:?}").is_ok();
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.name(field) {
            self.ok &= write!(self.line, "{value}").is_ok();
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.name(field) {
            self.ok &= write!(self.line, "{value}").is_ok();
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.name(field) {
            self.ok &= write!(self.line, "{value}").is_ok();
        }
    }

    fn record_error(&mut self, _: &Field, _: &(dyn std::error::Error + 'static)) {
        // Written with its sources by the full format.
        self.ok = false;
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.name(field) {
            self.ok &= write!(self.line, "{value:?}").is_ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    /// The lines `emit` logs, through the full format or through [`TextFormat`].
    fn lines(direct: bool, emit: &dyn Fn()) -> Vec<String> {
        let out = Capture::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(out.clone());
        if direct {
            tracing::subscriber::with_default(
                builder.event_format(TextFormat::default()).finish(),
                emit,
            );
        } else {
            tracing::subscriber::with_default(builder.finish(), emit);
        }
        let text = String::from_utf8(out.0.lock().expect("capture").clone()).expect("utf-8");
        text.lines().map(str::to_string).collect()
    }

    /// The line without its timestamp (the two runs are at different times), which must have
    /// the full format's shape.
    fn untimed(line: &str) -> &str {
        let (time, rest) = line.split_once(' ').expect("a timestamp");
        assert!(
            time.len() == 27 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{line}"
        );
        rest
    }

    #[test]
    fn access_lines_are_written_exactly_as_the_full_format_writes_them() {
        let peer: std::net::IpAddr = "2001:db8::7".parse().expect("ip");
        let emit = || {
            for (partner, detail) in [
                ("PARTNER-0042", "-"),
                ("", "rule \"max_depth\" at /a\\b"),
                (
                    "P\u{e9}\u{1F600}",
                    "tab\there\nnew line \u{7f} \u{0} \u{200b} 'q'",
                ),
                ("~ !#$%&()*+,-./09:;<=>?@AZ[]^_`az{|}", "\u{301}combining"),
            ] {
                tracing::info!(
                    target: "partnergate::access",
                    request_id = "gw-0123",
                    peer = %peer,
                    partner = partner,
                    operation = "CreateAccount",
                    outcome = "ok",
                    status = 200u16,
                    latency_us = 1234u64,
                    stage = "-",
                    detail = detail,
                );
            }
            tracing::warn!(target: "partnergate::access", signed = -5i64, flag = true, dbg = ?Some("x"));
            // Not the direct path: other targets, a message, an error, inside a span.
            tracing::info!(target: "partnergate::other", a = "b");
            tracing::info!(target: "partnergate::access", a = "b", "with a message");
            let e = std::io::Error::other("boom");
            tracing::info!(target: "partnergate::access", error = &e as &(dyn std::error::Error + 'static));
            tracing::info_span!("request", request_id = "gw-1").in_scope(|| {
                tracing::info!(target: "partnergate::access", a = "b");
            });
        };
        let full = lines(false, &emit);
        let before = DIRECT.with(std::cell::Cell::get);
        let direct = lines(true, &emit);
        // The four access lines and the warning; not the other four.
        assert_eq!(DIRECT.with(std::cell::Cell::get) - before, 5);
        assert_eq!(full.len(), 9, "{full:#?}");
        assert_eq!(direct.len(), full.len());
        for (d, f) in direct.iter().zip(&full) {
            assert_eq!(untimed(d), untimed(f));
        }
        assert!(untimed(&full[0])
            .starts_with(" INFO partnergate::access: request_id=\"gw-0123\" peer=2001:db8::7"));
        assert!(
            untimed(&full[8]).contains("request{request_id=\"gw-1\"}"),
            "{}",
            full[8]
        );
    }
}
