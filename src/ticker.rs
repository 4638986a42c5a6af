//! Background work at a steady interval until shutdown: the one loop head of the node's
//! heartbeat, the cluster throttle's exchange and the statistics flusher. Uses tokio only.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

/// Ticks every interval (the first at once; a late tick delays the next rather than bunching
/// them) until shutdown is asked.
pub struct Ticker {
    tick: Interval,
    shutdown: watch::Receiver<bool>,
}

impl Ticker {
    /// A ticker of `every` that stops when `shutdown` turns true or its sender is dropped.
    pub fn new(every: Duration, shutdown: watch::Receiver<bool>) -> Ticker {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ticker { tick, shutdown }
    }

    /// Whether shutdown has been asked (without waiting).
    pub fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Waits for the next tick: `true`, or `false` once shutdown is asked (at once if it was
    /// asked before the call).
    pub async fn next(&mut self) -> bool {
        loop {
            if *self.shutdown.borrow_and_update() {
                return false;
            }
            tokio::select! {
                _ = self.tick.tick() => return true,
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ticks_until_shutdown_is_asked_or_its_sender_is_gone() {
        let (tx, rx) = watch::channel(false);
        let mut t = Ticker::new(Duration::from_millis(10), rx.clone());
        assert!(t.next().await, "the first tick at once");
        assert!(t.next().await);
        tx.send(false).expect("send");
        assert!(
            t.next().await,
            "a change that is not shutdown is not the end"
        );
        tx.send(true).expect("send");
        assert!(!t.next().await);
        drop((tx, rx));
        let (tx, rx) = watch::channel(false);
        let mut other = Ticker::new(Duration::from_millis(10), rx);
        assert!(other.next().await);
        drop(tx);
        assert!(!other.next().await, "a dropped sender ends it");
    }
}
