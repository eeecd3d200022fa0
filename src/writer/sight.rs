//! Writer thread: what the writer makes of the node's sight of its network. Every check goes
//! into the last minute's window (`base::sight::Window`); after each drain the writer judges
//! whether the node suspects itself (`[settings] BlindPercent`) and tells the shared
//! `Sight`; the round the node is found blind, the FAILUREs it raised from network errors in
//! the minute before go to the store thread to withdraw; and when the store thread withheld
//! a FAILURE (its parent was down, or the node was blind), the writer's memory of that target
//! is set back to "not alerted", so that its next failing check raises the FAILURE again, and
//! no recovery goes out for it. No I/O.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::Writer;
use crate::base::model::{AlertKind, CheckResult, Phase, TargetId};
use crate::base::sight::{self, Seen};

/// Addresses of targets recently unreachable kept for the suspicion's sample.
const RECENT_UNREACHABLE: usize = 64;
/// Addresses in the sample the sight thread probes while the node suspects itself.
const SAMPLE: usize = 8;
/// How often the FAILUREs raised more than a minute ago are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// The writer's part of the sight: the window, and what it told the `Sight`.
#[derive(Debug)]
pub(super) struct Suspicion {
    /// `[settings] BlindPercent`; 100: never.
    percent: u32,
    pub(super) window: sight::Window,
    suspected: bool,
    /// The sight thread's count of suspicions it ended, as last seen.
    cleared: u64,
    /// `host:port` of the latest checks that failed to resolve or connect, newest last.
    unreachable: VecDeque<String>,
    /// The targets whose FAILURE the writer raised from a network error, and when: those of
    /// the last minute are withdrawn when the node finds it is blind.
    raised: HashMap<TargetId, Instant>,
    /// The node was blind at the last round, and when `raised` was last pruned.
    was_blind: bool,
    pruned: Instant,
}

impl Suspicion {
    pub(super) fn new(percent: u32) -> Suspicion {
        Suspicion {
            percent,
            window: sight::Window::new(Instant::now()),
            suspected: false,
            cleared: 0,
            unreachable: VecDeque::new(),
            raised: HashMap::new(),
            was_blind: false,
            pruned: Instant::now(),
        }
    }
}

impl Writer {
    /// One check into the window; returns what to keep of it for the target.
    pub(super) fn see(&mut self, f: &CheckResult, before: Option<Seen>) -> Seen {
        let error = f.outcome.error.as_ref();
        let network = error.is_some_and(|e| e.is_network());
        // The sample is of connects that got no answer: a TLS handshake that timed out
        // connected, and would answer a probe while still failing.
        let unreachable = network
            && matches!(
                error,
                Some(crate::base::model::CheckError::NoResponse {
                    phase: Phase::Resolving | Phase::Connecting,
                    ..
                })
            );
        let s = &mut self.suspicion;
        if unreachable {
            let addr = f.target.url.addr();
            s.unreachable.retain(|a| *a != addr);
            if s.unreachable.len() == RECENT_UNREACHABLE {
                s.unreachable.pop_front();
            }
            s.unreachable.push_back(addr);
        }
        s.window.record(Instant::now(), before, network)
    }

    /// A FAILURE raised from a network error: withdrawn if the node finds it is blind
    /// within the minute.
    pub(super) fn raised_from_network(&mut self, id: TargetId) {
        self.suspicion.raised.insert(id, Instant::now());
    }

    /// After a drain: whether the node suspects itself now (told to the `Sight` when it
    /// changed, with a sample of addresses it could not reach when it starts; not judged
    /// when Connectivity decides), and, the round the node is found blind, the FAILUREs of
    /// network errors raised in the minute before, to withdraw.
    pub(super) fn judge_sight(&mut self) {
        if !self.sight.probing() {
            self.judge_suspicion();
        }
        let blind = self.sight.blind();
        let s = &mut self.suspicion;
        if blind && !s.was_blind {
            let window = Duration::from_secs(sight::WINDOW_SECS);
            self.retract.extend(
                s.raised
                    .iter()
                    .filter(|(_, at)| at.elapsed() <= window)
                    .map(|(id, _)| *id),
            );
            s.raised.clear();
        }
        s.was_blind = blind;
        if s.pruned.elapsed() >= PRUNE_EVERY {
            let window = Duration::from_secs(sight::WINDOW_SECS);
            s.raised.retain(|_, at| at.elapsed() <= window);
            s.pruned = Instant::now();
        }
    }

    fn judge_suspicion(&mut self) {
        let cleared = self.sight.cleared();
        let s = &mut self.suspicion;
        if cleared != s.cleared {
            // The sight thread saw most of the sample answer: what the window holds was seen
            // while blind.
            s.cleared = cleared;
            s.suspected = false;
            s.window.clear();
            for owned in self.states.values_mut() {
                owned.seen = None;
            }
            return;
        }
        let (checked, failed) = s.window.counts(Instant::now());
        let now = sight::suspects(checked, failed, s.percent, s.suspected);
        if now == s.suspected {
            return;
        }
        s.suspected = now;
        let sample: Vec<String> = s.unreachable.iter().rev().take(SAMPLE).cloned().collect();
        if now {
            log::debug!(
                "{failed} of the {checked} targets checked in the last minute failed with \
                 network errors: this node suspects it cannot reach its network"
            );
        }
        self.sight.suspect(now, sample);
    }

    /// The store thread withdrew the FAILUREs of these targets raised in an earlier batch,
    /// and moved their rows on once more for any other node that read them meanwhile: this
    /// writer's memory moves on with them.
    pub(super) fn withdrawn(&mut self, ids: &[TargetId]) {
        for id in ids {
            if let Some(owned) = self.states.get_mut(id) {
                owned.state.seq += 1;
            }
        }
    }

    /// The store thread held the FAILURE alerts of these targets: nobody was told they
    /// failed. Their state goes back to "not alerted" (their next failing check raises the
    /// FAILURE again, and is judged again), and the alerts folded since on the belief that
    /// the FAILURE went out (a recovery, a reminder) are dropped.
    pub(super) fn withheld(&mut self, ids: &[TargetId]) {
        for id in ids {
            // A FAILURE raised again since (a pass, then a failure) stands, and with it what
            // follows it.
            let mut raised_again = false;
            self.alerts.retain(|a| {
                if a.target_id != *id || raised_again {
                    return true;
                }
                raised_again = a.kind == AlertKind::Failure;
                !matches!(a.kind, AlertKind::Success | AlertKind::Reminder)
            });
            if raised_again {
                continue;
            }
            if let Some(owned) = self.states.get_mut(id) {
                owned.state.alerted = false;
            }
            if let Some(owed) = self.pending.get_mut(id) {
                owed.alerted = false;
            }
        }
    }
}
