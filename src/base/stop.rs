//! The stop request: one [`StopTrigger`] on the main thread, a [`Stop`] clone in every
//! pipeline thread. Pulling the trigger closes a channel, so a thread can wait on it in a
//! `select!` beside its other channels (the wheel, the loader's sleep, the notifier's sleep)
//! and look at it between two statements or two deliveries without blocking. The trigger
//! also sets the instant by which the whole daemon must be gone (`StopTimeout` from the
//! request), so every thread can fit its last work into the time left.
//!
//! A second channel closes when the checks in flight at the stop are over (finished, or
//! abandoned past `StopGrace`): every result the workers will hand in is then in the
//! writer's channel, and the writer makes its last rounds without waiting for the workers'
//! senders to go (a worker blocked where no closed socket reaches may never let go of its).
//!
//! [`Feed`] is a bounded channel's sending end that waits for room, but not past the stop: a
//! stage that must not lose a message gets back-pressure instead of an unbounded queue, and
//! still cannot hang at the stop behind a receiver that has left its loop.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, Sender, TryRecvError, TrySendError};

/// The main thread's end.
pub struct StopTrigger {
    tx: Option<Sender<()>>,
    checks_over: Option<Sender<()>>,
    deadline: Arc<OnceLock<Instant>>,
}

/// A pipeline thread's end; clones share the request.
#[derive(Clone)]
pub struct Stop {
    rx: Receiver<()>,
    checks_over: Receiver<()>,
    deadline: Arc<OnceLock<Instant>>,
}

/// A stop request not yet made.
pub fn request() -> (StopTrigger, Stop) {
    let (tx, rx) = bounded(0);
    let (over_tx, over_rx) = bounded(0);
    let deadline = Arc::new(OnceLock::new());
    (
        StopTrigger {
            tx: Some(tx),
            checks_over: Some(over_tx),
            deadline: deadline.clone(),
        },
        Stop {
            rx,
            checks_over: over_rx,
            deadline,
        },
    )
}

impl StopTrigger {
    /// Asks every thread to stop, and to be done within `within`. Later calls change nothing.
    pub fn pull(&mut self, within: Duration) {
        let _ = self.deadline.set(Instant::now() + within);
        self.tx.take();
    }

    /// When the daemon must be gone, once stopping.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get().copied()
    }

    /// Says that the checks in flight at the stop are over: no more results will come.
    pub fn checks_over(&mut self) {
        self.checks_over.take();
    }
}

impl Stop {
    /// Has the stop been asked for?
    pub fn requested(&self) -> bool {
        matches!(self.rx.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// Are the checks in flight at the stop over (see [`StopTrigger::checks_over`])?
    pub fn checks_over(&self) -> bool {
        matches!(self.checks_over.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// For `select!`: ready (disconnected) once the stop is asked for.
    pub fn channel(&self) -> &Receiver<()> {
        &self.rx
    }

    /// Sleeps for `d` or until the stop is asked for; true when it was.
    pub fn sleep(&self, d: Duration) -> bool {
        !matches!(
            self.rx.recv_timeout(d),
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
        )
    }

    /// The time left before the daemon must be gone; `None` while not stopping.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .get()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// The sending end of a bounded channel whose messages must not be dropped while the daemon
/// runs (targets to check or to forget): a send waits while the channel is full, until the
/// receiver takes one or the stop is asked for. Clones share the channel.
pub struct Feed<T> {
    tx: Sender<T>,
    stop: Stop,
}

impl<T> Clone for Feed<T> {
    fn clone(&self) -> Self {
        Feed {
            tx: self.tx.clone(),
            stop: self.stop.clone(),
        }
    }
}

impl<T> Feed<T> {
    pub fn new(tx: Sender<T>, stop: Stop) -> Feed<T> {
        Feed { tx, stop }
    }

    /// Sends `msg`, waiting while the channel is full; false (the message dropped) once the
    /// receiver is gone, or when the stop is asked for while waiting: nothing is dispatched
    /// after the stop, so what was on its way no longer matters.
    pub fn send(&self, msg: T) -> bool {
        let msg = match self.tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(msg)) => msg,
        };
        select! {
            send(self.tx, msg) -> sent => sent.is_ok(),
            recv(self.stop.rx) -> _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulling_wakes_sleepers_and_sets_the_deadline() {
        let (mut trigger, stop) = request();
        assert!(!stop.requested());
        assert_eq!(stop.time_left(), None);
        let sleeper = {
            let stop = stop.clone();
            std::thread::spawn(move || stop.sleep(Duration::from_secs(60)))
        };
        trigger.pull(Duration::from_secs(30));
        assert!(sleeper.join().unwrap(), "the sleep ended on the stop");
        assert!(stop.requested());
        let left = stop.time_left().unwrap();
        assert!(left <= Duration::from_secs(30) && left > Duration::from_secs(25));
        assert!(!stop.checks_over(), "a later stage");
        trigger.checks_over();
        assert!(stop.checks_over());
    }

    #[test]
    fn a_feed_waits_for_room_but_not_past_the_stop() {
        let (mut trigger, stop) = request();
        let (tx, rx) = bounded(1);
        let feed = Feed::new(tx, stop);
        assert!(feed.send(1));
        let taker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let first = rx.recv().unwrap();
            (first, rx)
        });
        assert!(feed.send(2), "sent once the receiver took the first");
        let (first, rx) = taker.join().unwrap();
        assert_eq!((first, rx.len()), (1, 1));
        let puller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            trigger.pull(Duration::from_secs(1));
        });
        assert!(!feed.send(3), "full, and then the stop");
        puller.join().unwrap();
        drop(rx);
        assert!(!feed.send(4), "the receiver is gone");
    }

    #[test]
    fn an_unpulled_stop_sleeps_its_time() {
        let (_trigger, stop) = request();
        assert!(!stop.sleep(Duration::from_millis(10)));
    }
}
