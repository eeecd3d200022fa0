//! Cluster thread: whether a heartbeat may declare other nodes dead. Pure, with the clock
//! passed in.
//!
//! The others' heartbeats are judged by their age on the database's clock, which is only fair
//! while the database takes writes at their usual pace. When it held every write up (a Galera
//! cluster holds all commits while it decides that a node that stopped answering is gone, 5 s
//! and more with its default `evs.suspect_timeout`; a database that was away), every node's
//! heartbeat is late by as much, and the first node through would declare the healthy ones
//! dead with the one that is really gone. So after a heartbeat that was held up (its write
//! took longer than the interval between two), or after a gap in this node's own heartbeats,
//! nobody is declared dead for two heartbeat intervals: time for every live node to beat
//! again. A node that is really gone is declared dead that much later.

use std::time::{Duration, Instant};

/// What [`Steady::judge`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The database is steady: dead nodes may be declared so.
    Reap,
    /// No heartbeat of this node got through for this long (a new hold: logged once).
    HeldUp(Duration),
    /// Still within the grace after a hold.
    Wait,
}

/// The recent pace of this node's own heartbeats.
#[derive(Debug)]
pub(super) struct Steady {
    every: Duration,
    /// When the last heartbeat that got through ended.
    last_ok: Option<Instant>,
    /// No node is declared dead before this.
    grace_until: Option<Instant>,
}

impl Steady {
    /// `every`: the interval between two heartbeats.
    pub fn new(every: Duration) -> Steady {
        Steady {
            every,
            last_ok: None,
            grace_until: None,
        }
    }

    /// Judges a heartbeat whose write started at `started` and got through at `now`.
    pub fn judge(&mut self, started: Instant, now: Instant) -> Verdict {
        let took = now.saturating_duration_since(started);
        // The first heartbeat of this process, or one after failed ones: the others may not
        // have got through meanwhile either.
        let gap = self
            .last_ok
            .map_or(Duration::MAX, |t| started.saturating_duration_since(t));
        self.last_ok = Some(now);
        let allowed_gap = self.every * 2;
        if took > self.every || gap > allowed_gap {
            let new = self.grace_until.is_none_or(|t| now >= t);
            self.grace_until = Some(now + allowed_gap);
            // The first heartbeat of the process is no hold worth a line.
            return if new && gap != Duration::MAX {
                Verdict::HeldUp(gap + took)
            } else {
                Verdict::Wait
            };
        }
        match self.grace_until {
            Some(t) if now < t => Verdict::Wait,
            _ => Verdict::Reap,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(1);

    #[test]
    fn steady_heartbeats_may_declare_nodes_dead_two_intervals_after_the_first() {
        let t0 = Instant::now();
        let mut s = Steady::new(EVERY);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(s.judge(ms(0), ms(10)), Verdict::Wait, "the first beat");
        assert_eq!(s.judge(ms(1000), ms(1010)), Verdict::Wait);
        assert_eq!(s.judge(ms(2000), ms(2010)), Verdict::Reap);
        assert_eq!(s.judge(ms(4000), ms(4010)), Verdict::Reap);
    }

    #[test]
    fn a_held_up_heartbeat_holds_every_verdict_for_two_intervals() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut s = Steady::new(EVERY);
        for k in 0..4 {
            s.judge(ms(k * 1000), ms(k * 1000 + 10));
        }
        // A Galera view change: the write waits 5.5 s.
        assert_eq!(
            s.judge(ms(4000), ms(9500)),
            Verdict::HeldUp(Duration::from_millis(990 + 5500))
        );
        assert_eq!(s.judge(ms(10500), ms(10510)), Verdict::Wait);
        assert_eq!(s.judge(ms(11500), ms(11510)), Verdict::Reap);
    }

    #[test]
    fn a_gap_in_this_nodes_own_heartbeats_is_a_hold_too() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut s = Steady::new(EVERY);
        for k in 0..4 {
            s.judge(ms(k * 1000), ms(k * 1000 + 10));
        }
        // Heartbeats failed from 4 s to 20 s (the database was away).
        assert!(matches!(s.judge(ms(20000), ms(20010)), Verdict::HeldUp(_)));
        assert_eq!(s.judge(ms(21000), ms(21010)), Verdict::Wait);
        assert_eq!(s.judge(ms(22000), ms(22010)), Verdict::Reap);
    }
}
