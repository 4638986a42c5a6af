//! Per-connection I/O clocks: the keep-alive idle timeout, the receive-rate floor for request
//! headers (`limits.min_receive_bytes_per_second` over `limits.min_receive_window_ms`), and the
//! connection state the accept loop reads to reclaim idle connections when the cap is near.
//!
//! A connection is in one of three phases: **idle** (no request being received or answered:
//! the idle timeout runs), **receiving a header** (bytes of a request arrived while none is being
//! answered: every window must bring the floor's bytes, or the header must be complete, i.e. the
//! request is being answered), **busy** (a request is being answered, however long the upstream
//! takes: no clock here; the body's rate is checked by `limit::read_body_within`, the upstream has its
//! own timeout).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub use crate::limit::RateFloor;

use super::framing::{Head, HeadTracker};

/// What a connection's I/O and its task share with the accept loop.
#[derive(Debug)]
pub struct ConnState {
    /// Requests being answered on the connection.
    busy: AtomicUsize,
    /// Milliseconds since `epoch` when the connection last became idle; `u64::MAX` while it
    /// is receiving a header or answering.
    idle_since: AtomicU64,
    /// The connection was cut for sending a header too slowly.
    cut_slow: AtomicBool,
    epoch: Instant,
    /// The raw request heads, as read.
    heads: std::sync::Mutex<HeadTracker>,
}

impl ConnState {
    /// A fresh connection: idle from now; header lines longer than `max_header_bytes` are
    /// not followed (hyper refuses them).
    pub fn new(max_header_bytes: usize) -> Arc<ConnState> {
        let epoch = Instant::now();
        Arc::new(ConnState {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            cut_slow: AtomicBool::new(false),
            epoch,
            heads: std::sync::Mutex::new(HeadTracker::new(max_header_bytes)),
        })
    }

    /// The raw head of the next request to answer (`None`: the stream could not be followed).
    pub fn take_head(&self) -> Option<Head> {
        self.heads.lock().ok()?.take()
    }

    fn feed(&self, bytes: &[u8]) {
        if let Ok(mut heads) = self.heads.lock() {
            heads.feed(bytes);
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn set_idle(&self) {
        if self.idle_since.load(Ordering::Relaxed) == u64::MAX {
            self.idle_since.store(self.millis(), Ordering::Relaxed);
        }
    }

    fn set_active(&self) {
        self.idle_since.store(u64::MAX, Ordering::Relaxed);
    }

    /// Whether the connection has been idle (nothing being received or answered) for at least
    /// `age`: such a connection may be closed to make room.
    pub fn idle_for(&self, age: Duration) -> bool {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let since = self.idle_since.load(Ordering::Relaxed);
        since != u64::MAX
            && self.millis().saturating_sub(since) >= u64::try_from(age.as_millis()).unwrap_or(0)
    }

    /// Whether the connection was cut for a header arriving below the rate floor.
    pub fn cut_slow(&self) -> bool {
        self.cut_slow.load(Ordering::Relaxed)
    }
}

/// Counts a request being answered on a connection for as long as it lives.
pub struct BusyGuard(Arc<ConnState>);

impl BusyGuard {
    /// Marks the connection busy.
    pub fn enter(state: Arc<ConnState>) -> Self {
        state.busy.fetch_add(1, Ordering::SeqCst);
        state.set_active();
        BusyGuard(state)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Header { window_bytes: u64 },
    Busy,
}

/// An I/O stream with the connection's clocks: fails with `TimedOut` when an idle connection
/// stays silent for `idle`, or when a request header arrives below the rate floor.
pub struct IdleIo<T> {
    inner: T,
    idle: Duration,
    floor: Option<RateFloor>,
    deadline: Pin<Box<Sleep>>,
    phase: Phase,
    state: Arc<ConnState>,
}

impl<T> IdleIo<T> {
    /// Wraps `inner`; `state` counts the requests being answered on it.
    pub fn new(inner: T, idle: Duration, floor: Option<RateFloor>, state: Arc<ConnState>) -> Self {
        IdleIo {
            inner,
            idle,
            floor,
            deadline: Box::pin(tokio::time::sleep(idle)),
            phase: Phase::Idle,
            state,
        }
    }

    fn reset(&mut self, after: Duration) {
        self.deadline.as_mut().reset(Instant::now() + after);
    }

    /// Moves the phase on from what the service and the bytes say.
    fn observe(&mut self, read: usize) {
        let busy = self.state.busy.load(Ordering::SeqCst) > 0;
        match (self.phase, busy) {
            (_, true) => {
                self.phase = Phase::Busy;
                self.state.set_active();
            }
            (Phase::Busy, false) => {
                self.phase = Phase::Idle;
                self.state.set_idle();
                self.reset(self.idle);
            }
            _ => {}
        }
        if read == 0 || busy {
            return;
        }
        match (&mut self.phase, self.floor) {
            (Phase::Idle, Some(floor)) => {
                self.phase = Phase::Header {
                    window_bytes: read as u64,
                };
                self.state.set_active();
                self.reset(floor.window);
            }
            (Phase::Idle, None) => {
                // No floor: a request being received keeps the idle clock at bay, as before.
                self.reset(self.idle);
            }
            (Phase::Header { window_bytes }, _) => *window_bytes += read as u64,
            (Phase::Busy, _) => {}
        }
    }

    /// Whether the connection's clock has run out (and it must fail now).
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        self.observe(0);
        match self.phase {
            Phase::Busy => None,
            Phase::Idle => self
                .deadline
                .as_mut()
                .poll(cx)
                .is_ready()
                .then(|| io::Error::new(io::ErrorKind::TimedOut, "keep-alive idle timeout")),
            Phase::Header { window_bytes } => {
                let floor = self.floor?;
                if self.deadline.as_mut().poll(cx).is_pending() {
                    return None;
                }
                if window_bytes < floor.bytes_per_window() {
                    self.state.cut_slow.store(true, Ordering::Relaxed);
                    return Some(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request header below limits.min_receive_bytes_per_second",
                    ));
                }
                // The window brought enough: measure the next one.
                self.phase = Phase::Header { window_bytes: 0 };
                self.reset(floor.window);
                let _ = self.deadline.as_mut().poll(cx);
                None
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.state.feed(&buf.filled()[before..]);
                this.observe(buf.filled().len() - before);
                Poll::Ready(r)
            }
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(r) => {
                // Writing the answer: the idle clock starts after the last byte written.
                this.observe(0);
                if this.phase == Phase::Idle {
                    this.reset(this.idle);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How often the accept loop, waiting for a free connection, asks idle connections again to
/// make room.
pub const RECLAIM_EVERY: Duration = Duration::from_millis(250);

/// A connection must have been idle this long to be closed to make room: a client that just
/// connected or just got its answer is about to send.
const RECLAIM_MIN_IDLE: Duration = Duration::from_secs(1);

/// Near the connection cap (fewer than a tenth of the permits free), idle keep-alive
/// connections are closed first: the accept loop sets how many should go and signals; each
/// connection that has been idle long enough takes one from that budget and closes.
pub struct Reclaim {
    permits: Arc<tokio::sync::Semaphore>,
    low_water: usize,
    budget: AtomicUsize,
    signal: tokio::sync::watch::Sender<u64>,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Reclaim {
    /// Reclaim for a listener of `cap` connections whose free slots are `permits`.
    pub fn new(permits: Arc<tokio::sync::Semaphore>, cap: usize) -> Arc<Reclaim> {
        Arc::new(Reclaim {
            permits,
            low_water: (cap / 10).max(1),
            budget: AtomicUsize::new(0),
            signal: tokio::sync::watch::channel(0).0,
            last: std::sync::Mutex::new(None),
        })
    }

    /// A connection's subscription to the signal.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.signal.subscribe()
    }

    /// Signals idle connections to close when the free slots are below the low-water mark (at
    /// most once per [`RECLAIM_EVERY`]).
    pub fn check(&self) {
        let free = self.permits.available_permits();
        if free >= self.low_water {
            return;
        }
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < RECLAIM_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        self.budget.store(self.low_water - free, Ordering::SeqCst);
        self.signal.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Whether the connection of `state` should close now: it has been idle long enough and
    /// the budget has room.
    pub fn take(&self, state: &ConnState) -> bool {
        state.idle_for(RECLAIM_MIN_IDLE)
            && self
                .budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                .is_ok()
    }
}
