//! Where the gateway's log lines go: standard error, through a small buffer.
//!
//! Written one `write(2)` per line, the access log was ~9 % of the gateway's CPU per request under
//! load (bench/README.md). Like nginx's `access_log … buffer= flush=`, lines at INFO and below
//! are collected in memory and written together: when the buffer holds [`BUFFER_BYTES`], every
//! `log_flush_ms` (default 100 ms) from a background thread, and at exit ([`LogOutput::flush`]).
//! A WARN or ERROR line is written at once, together with everything before it, so an operator
//! never waits for a problem and lines stay in order. `log_flush_ms = 0` writes every line at once.
//!
//! What can be lost: lines of the last interval if the process is killed with SIGKILL (SIGTERM
//! and SIGINT shut down cleanly and flush).

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// A full buffer is written without waiting for the interval.
pub const BUFFER_BYTES: usize = 32 * 1024;

/// The buffered standard error behind the tracing subscriber. Cheap to clone.
#[derive(Clone)]
pub struct LogOutput {
    shared: Arc<Shared>,
}

struct Shared {
    buf: Mutex<Vec<u8>>,
    /// Zero: write every line at once.
    interval: Duration,
    /// Where lines go (standard error; tests capture them).
    out: fn(&[u8]),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A poisoned buffer is still a buffer of whole lines: keep logging.
        self.buf.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Errors writing a log are not reported anywhere else, as with an unbuffered standard error;
/// the lines are dropped rather than kept growing.
fn to_stderr(bytes: &[u8]) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(bytes);
    let _ = err.flush();
}

/// Writes out and empties `buf`.
fn drain(shared: &Shared, buf: &mut Vec<u8>) {
    if !buf.is_empty() {
        (shared.out)(buf);
        buf.clear();
    }
}

impl LogOutput {
    /// A buffer written at least every `interval` (zero: unbuffered). With a non-zero interval
    /// this starts the background flusher thread, which lives as long as the process.
    pub fn new(interval: Duration) -> Self {
        Self::with_output(interval, to_stderr)
    }

    fn with_output(interval: Duration, out: fn(&[u8])) -> Self {
        let shared = Arc::new(Shared {
            buf: Mutex::new(Vec::with_capacity(if interval.is_zero() {
                0
            } else {
                BUFFER_BYTES
            })),
            interval,
            out,
        });
        if !interval.is_zero() {
            let weak = Arc::downgrade(&shared);
            let spawned =
                std::thread::Builder::new()
                    .name("log-flush".into())
                    .spawn(move || loop {
                        std::thread::sleep(interval);
                        match weak.upgrade() {
                            Some(shared) => drain(&shared, &mut shared.lock()),
                            None => return,
                        }
                    });
            if spawned.is_err() {
                // No thread: fall back to writing every line at once.
                return LogOutput {
                    shared: Arc::new(Shared {
                        buf: Mutex::new(Vec::new()),
                        interval: Duration::ZERO,
                        out,
                    }),
                };
            }
        }
        LogOutput { shared }
    }

    /// Writes whatever is buffered now (at shutdown, before exiting).
    pub fn flush(&self) {
        drain(&self.shared, &mut self.shared.lock());
    }

    fn sink(&self, urgent: bool) -> Line<'_> {
        Line {
            shared: &self.shared,
            urgent: urgent || self.shared.interval.is_zero(),
        }
    }
}

/// One event's output (the fmt layer formats a whole line, then writes it in one call).
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut buf = self.shared.lock();
        buf.extend_from_slice(bytes);
        if self.urgent || buf.len() >= BUFFER_BYTES {
            drain(self.shared, &mut buf);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        self.sink(true)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        // tracing orders levels by verbosity: WARN and ERROR are the ones at or below WARN.
        self.sink(*meta.level() <= Level::WARN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discard(_: &[u8]) {}

    fn buffered(out: &LogOutput) -> Vec<u8> {
        out.shared.lock().clone()
    }

    /// An event's metadata at `level`.
    fn event(name: &'static str, level: Level) -> tracing::Metadata<'static> {
        tracing::Metadata::new(
            name,
            "t",
            level,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CALLSITE)),
            tracing::metadata::Kind::EVENT,
        )
    }

    #[test]
    fn info_lines_wait_in_the_buffer_and_warnings_take_them_along() {
        let out = LogOutput::with_output(Duration::from_secs(3600), discard);
        let info = event("i", Level::INFO);
        out.make_writer_for(&info).write_all(b"one\n").unwrap();
        out.make_writer_for(&info).write_all(b"two\n").unwrap();
        assert_eq!(buffered(&out), b"one\ntwo\n");
        let warn = event("w", Level::WARN);
        out.make_writer_for(&warn).write_all(b"three\n").unwrap();
        assert!(
            buffered(&out).is_empty(),
            "a warning writes out what came before it"
        );
    }

    #[test]
    fn a_full_buffer_is_written_and_zero_interval_is_unbuffered() {
        let out = LogOutput::with_output(Duration::from_secs(3600), discard);
        let line = vec![b'x'; 1000];
        for _ in 0..(BUFFER_BYTES / 1000) {
            out.make_writer().write_all(&line).unwrap();
        }
        // make_writer() (no metadata) is treated as urgent
        assert!(buffered(&out).is_empty());
        let unbuffered = LogOutput::with_output(Duration::ZERO, discard);
        assert!(unbuffered.sink(false).urgent);
        let buffered_sink = out.sink(false);
        assert!(!buffered_sink.urgent);
        let mut sink = out.sink(false);
        for _ in 0..(BUFFER_BYTES / 1000 - 1) {
            sink.write_all(&line).unwrap();
        }
        assert_eq!(buffered(&out).len(), (BUFFER_BYTES / 1000 - 1) * 1000);
        sink.write_all(&line).unwrap();
        sink.write_all(&line).unwrap();
        assert!(buffered(&out).len() < BUFFER_BYTES, "written out once full");
    }

    #[test]
    fn the_flusher_thread_empties_the_buffer() {
        let out = LogOutput::with_output(Duration::from_millis(20), discard);
        out.sink(false).write_all(b"line\n").unwrap();
        let start = std::time::Instant::now();
        while !buffered(&out).is_empty() {
            assert!(start.elapsed() < Duration::from_secs(5), "never flushed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    struct Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!("not registered")
        }
    }
    static CALLSITE: Callsite = Callsite;
}
