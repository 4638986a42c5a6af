//! Changes pushed (PostgreSQL only): every bump of `meta.revision` notifies the channel
//! [`CHANNEL`] at commit (a trigger, migration `…_cluster_nodes`); each process keeps one
//! connection of its own that LISTENs there, on a thread of its own, and wakes the refresher
//! ([`super::run_refresher`]) as soon as a notification arrives, so a change is in force on every
//! node within milliseconds instead of at the next poll.
//!
//! The poll keeps running underneath (`refresh_interval_ms`): if the listening connection fails
//! (server restart, `pg_terminate_backend`, network), the loss is logged once, changes arrive by
//! the poll as before, and the thread reconnects with backoff ([`RETRY_FIRST`] doubling up to
//! [`RETRY_MAX`]); once connected again it wakes the refresher to catch up. `/metrics` says which
//! (`partnergate_snapshot_push_connected`). The request path never waits on any of this.
//!
//! libpq does not hand out its socket through Diesel, so the thread asks the connection for
//! notifications every [`CHECK_EVERY`] (`PQconsumeInput` + `PQnotifies`: a non-blocking read, no
//! round trip to the server).

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tokio::sync::{watch, Notify};

use super::{SnapshotCell, Store};

/// The channel `meta.revision` bumps are announced on (payload: the new revision).
pub const CHANNEL: &str = "partnergate_revision";
/// The listening connection's `application_name` (it shows in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "partnergate-listen";
/// How often the listening thread looks for notifications that have arrived.
pub const CHECK_EVERY: Duration = Duration::from_millis(5);
/// The first wait before reconnecting after a failure.
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between reconnection attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(8);
/// A connection that stayed up this long resets the backoff (and the "logged once" state).
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Starts the listening thread for `store` (which must be PostgreSQL, `url` its listening URL);
/// returns what it signals the refresher with, or `None` when the thread cannot be started
/// (then the poll alone keeps the snapshot current). The thread holds a clone of `store` until
/// it ends, so [`super::Closing::wait`] also waits for a connect it may be inside; it ends
/// within [`CHECK_EVERY`] (or one connect timeout) of `shutdown` turning true or closing.
pub(crate) fn start(
    store: Store,
    url: Arc<str>,
    cell: Arc<SnapshotCell>,
    poll: Duration,
    shutdown: watch::Receiver<bool>,
) -> Option<Arc<Notify>> {
    let wake = Arc::new(Notify::new());
    let signal = Arc::clone(&wake);
    let enabled = Arc::clone(&cell);
    let spawned = std::thread::Builder::new()
        .name("partnergate-push".into())
        .spawn(move || {
            let listener = Listener {
                url,
                cell,
                wake: signal,
                poll,
                shutdown,
            };
            listener.run();
            drop(store);
        });
    match spawned {
        Ok(_) => {
            enabled.set_push_enabled(true);
            Some(wake)
        }
        Err(e) => {
            tracing::warn!(error = %e, "snapshot push: cannot start its thread; polling only");
            None
        }
    }
}

struct Listener {
    url: Arc<str>,
    cell: Arc<SnapshotCell>,
    wake: Arc<Notify>,
    poll: Duration,
    shutdown: watch::Receiver<bool>,
}

impl Listener {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }

    fn run(&self) {
        let mut retry = RETRY_FIRST;
        // Whether a failure has been logged at `warn` since push last was stable.
        let mut warned = false;
        while !self.stopping() {
            let failure = match self.connect() {
                Ok(mut conn) => {
                    let since = Instant::now();
                    self.cell.set_push_connected(true);
                    tracing::info!(channel = CHANNEL, "snapshot push connected");
                    // Whatever changed while nobody listened: the refresher checks at once.
                    self.wake.notify_one();
                    let ended = self.listen(&mut conn);
                    self.cell.set_push_connected(false);
                    let Some(error) = ended else { break };
                    if since.elapsed() >= STABLE_AFTER {
                        retry = RETRY_FIRST;
                        warned = false;
                    }
                    format!("listening connection lost: {error}")
                }
                Err(error) => format!("cannot listen: {error}"),
            };
            // libpq's messages span lines; a log line should not.
            let failure = failure.split_whitespace().collect::<Vec<_>>().join(" ");
            if warned {
                tracing::debug!(%failure, ?retry, "snapshot push still down");
            } else {
                warned = true;
                tracing::warn!(
                    %failure,
                    poll = ?self.poll,
                    "snapshot push lost: changes arrive by polling until it is back; reconnecting with backoff"
                );
            }
            self.sleep(retry);
            retry = (retry * 2).min(RETRY_MAX);
        }
        self.cell.set_push_connected(false);
    }

    fn connect(&self) -> Result<PgConnection, String> {
        let mut conn = PgConnection::establish(&self.url).map_err(|e| e.to_string())?;
        conn.batch_execute(&format!("LISTEN {CHANNEL}"))
            .map_err(|e| e.to_string())?;
        Ok(conn)
    }

    /// Wakes the refresher for every batch of notifications until the connection fails (its
    /// error) or the process stops (`None`).
    fn listen(&self, conn: &mut PgConnection) -> Option<String> {
        loop {
            if self.stopping() {
                return None;
            }
            let mut arrived = false;
            // The iterator ends when nothing more has arrived; an error repeats forever, so
            // the first one ends the connection.
            for notification in conn.notifications_iter() {
                match notification {
                    Ok(_) => arrived = true,
                    Err(e) => return Some(e.to_string()),
                }
            }
            if arrived {
                self.wake.notify_one();
            }
            std::thread::sleep(CHECK_EVERY);
        }
    }

    /// Sleeps `d`, in short steps so that a shutdown is not kept waiting.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}
