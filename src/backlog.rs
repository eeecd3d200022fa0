//! The wheel thread's watch on checks waiting for a free worker. Pure logic, clock passed in:
//! the wheel tells it each job it queues and, once a tick, how many jobs are still queued,
//! how many are still waiting to be queued and how many checks have ended; it answers with a
//! [`Notice`] when the operator should hear about it.
//!
//! Why here: only the wheel sees both queues (its own `ready` list and the job channel) and
//! each job's due time, and it learns from the workers' "finished" notices how many checks
//! run. A hung pool starts no check at all, so a watch on the workers' lag would stay silent
//! exactly when checks wait longest.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Checks waiting longer than this for a free worker make the daemon warn.
pub const WAIT_LIMIT: Duration = Duration::from_secs(1);
/// While the wait lasts, the warning is repeated at most this often.
pub const REPEAT: Duration = Duration::from_secs(60);

/// What the operator is told, with the figures of the moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// Checks wait (first time, or again a [`REPEAT`] after the last warning).
    Waiting(Figures),
    /// The oldest waiting check is back under [`WAIT_LIMIT`].
    Cleared { lasted: Duration, worst: Duration },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub busy: usize,
    pub workers: usize,
    /// Checks due and not started: in the job channel and in the wheel's own list.
    pub waiting: usize,
    /// How long the oldest of them has waited since it was due.
    pub oldest: Duration,
}

/// The watch. `queued` mirrors the job channel: the due times of the jobs sent, oldest first;
/// the channel is FIFO, so once it holds `n` jobs they are the last `n` sent.
pub struct Watch {
    workers: usize,
    queued: VecDeque<Instant>,
    /// Jobs sent to the channel and not yet reported finished.
    in_flight: usize,
    /// Since when checks wait too long, the worst wait seen meanwhile, and whether this
    /// episode was warned about (one that was not ends silently too).
    since: Option<(Instant, Duration, bool)>,
    last_warned: Option<Instant>,
    /// How long the oldest waiting check had waited at the last look.
    oldest: Duration,
}

impl Watch {
    pub fn new(workers: usize) -> Watch {
        Watch {
            workers,
            queued: VecDeque::new(),
            in_flight: 0,
            since: None,
            last_warned: None,
            oldest: Duration::ZERO,
        }
    }

    /// A job due at `due` went into the channel.
    pub fn sent(&mut self, due: Instant) {
        self.queued.push_back(due);
        self.in_flight += 1;
    }

    /// `n` checks ended (or were dropped unstarted by a worker).
    pub fn finished(&mut self, n: usize) {
        self.in_flight = self.in_flight.saturating_sub(n);
    }

    /// How long the oldest check waiting for a worker had waited at the last `observe`.
    pub fn oldest(&self) -> Duration {
        self.oldest
    }

    /// Workers running a check now: jobs out of the channel and not yet finished.
    pub fn busy(&self) -> usize {
        self.in_flight.saturating_sub(self.queued.len())
    }

    /// Once a tick: `in_channel` jobs are still queued; `unsent` wait in the wheel's list, the
    /// oldest of them due at `unsent_oldest`.
    pub fn observe(
        &mut self,
        now: Instant,
        in_channel: usize,
        unsent: usize,
        unsent_oldest: Option<Instant>,
    ) -> Option<Notice> {
        while self.queued.len() > in_channel {
            self.queued.pop_front();
        }
        let oldest_due = match (self.queued.front(), unsent_oldest) {
            (Some(a), Some(b)) => Some(*a.min(&b)),
            (a, b) => a.copied().or(b),
        };
        let oldest = oldest_due.map_or(Duration::ZERO, |d| now.saturating_duration_since(d));
        self.oldest = oldest;
        if oldest <= WAIT_LIMIT {
            let (started, worst, warned) = self.since.take()?;
            return warned.then_some(Notice::Cleared {
                lasted: now.saturating_duration_since(started),
                worst,
            });
        }
        let repeat_due = self
            .last_warned
            .is_none_or(|at| now.saturating_duration_since(at) >= REPEAT);
        let figures = Figures {
            busy: self.busy(),
            workers: self.workers,
            waiting: self.queued.len() + unsent,
            oldest,
        };
        let episode = self.since.get_or_insert((now, oldest, false));
        episode.1 = episode.1.max(oldest);
        if !repeat_due {
            return None;
        }
        episode.2 = true;
        self.last_warned = Some(now);
        Some(Notice::Waiting(figures))
    }
}

impl Notice {
    /// The log line: the figures, and the setting to raise.
    pub fn line(&self) -> String {
        match self {
            Notice::Waiting(f) => format!(
                "checks wait for a free worker: {} of {} workers busy, {} checks waiting, the \
                 oldest for {:.1} s; raise [settings] Workers (now {}) or lower the timeouts of \
                 slow targets (repeated at most once a minute while it lasts)",
                f.busy,
                f.workers,
                f.waiting,
                f.oldest.as_secs_f64(),
                f.workers
            ),
            Notice::Cleared { lasted, worst } => format!(
                "checks no longer wait for a free worker (waits over {} s lasted {:.0} s, the \
                 longest {:.1} s)",
                WAIT_LIMIT.as_secs(),
                lasted.as_secs_f64(),
                worst.as_secs_f64()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_short_queue_is_no_news() {
        let t0 = Instant::now();
        let mut w = Watch::new(4);
        for _ in 0..10 {
            w.sent(t0);
        }
        assert_eq!(w.observe(t0 + ms(900), 6, 0, None), None);
        assert_eq!(w.busy(), 4, "10 sent, 6 queued: 4 running");
        assert_eq!(w.oldest(), ms(900));
        w.finished(4);
        assert_eq!(w.busy(), 0);
    }

    #[test]
    fn two_hung_workers_warn_once_a_minute_and_say_when_it_clears() {
        let t0 = Instant::now();
        let mut w = Watch::new(2);
        // Two checks hang in the workers, a third waits in the channel, two more in the wheel.
        for _ in 0..3 {
            w.sent(t0);
        }
        let first = w.observe(t0 + ms(1500), 1, 2, Some(t0 + ms(500)));
        assert_eq!(
            first,
            Some(Notice::Waiting(Figures {
                busy: 2,
                workers: 2,
                waiting: 3,
                oldest: ms(1500),
            }))
        );
        let line = first.unwrap().line();
        assert!(line.contains("2 of 2 workers busy, 3 checks waiting, the oldest for 1.5 s"));
        assert!(line.contains("[settings] Workers (now 2)"), "{line}");
        for s in 2..61 {
            let now = t0 + Duration::from_secs(s);
            assert_eq!(w.observe(now, 1, 2, None), None, "repeated at {s} s");
        }
        assert!(matches!(
            w.observe(t0 + ms(61_500), 1, 2, None),
            Some(Notice::Waiting(_))
        ));
        // The queue drains: one line, then silence.
        w.finished(3);
        let cleared = w.observe(t0 + ms(62_000), 0, 0, None);
        assert_eq!(
            cleared,
            Some(Notice::Cleared {
                lasted: ms(60_500),
                worst: ms(61_500)
            })
        );
        assert_eq!(w.observe(t0 + ms(63_000), 0, 0, None), None);
    }

    #[test]
    fn a_new_wait_soon_after_a_clear_is_not_warned_again_within_the_minute() {
        let t0 = Instant::now();
        let mut w = Watch::new(1);
        w.sent(t0);
        w.sent(t0);
        assert!(w.observe(t0 + ms(2000), 1, 0, None).is_some());
        assert!(matches!(
            w.observe(t0 + ms(3000), 0, 0, None),
            Some(Notice::Cleared { .. })
        ));
        w.sent(t0 + ms(3000));
        assert_eq!(w.observe(t0 + ms(5000), 1, 0, None), None, "flapping");
        assert_eq!(w.observe(t0 + ms(5500), 0, 0, None), None, "nor its end");
    }
}
