//! Whether this node can reach its network, as one `Arc<Sight>` shared by the threads that
//! need to know: the sight thread (`crate::sight`) records its probes of `[settings]
//! Connectivity` and publishes the verdict; the writer thread records its suspicion (most of
//! the node's targets failing with network errors, see [`Window`]); the store thread asks
//! for the verdict that covers the failures it is about to alert for, waiting for a probe
//! made after them; the cluster thread hands the node's targets over while it is blind.
//! A mutex over a few fields and one atomic; no I/O.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};

/// Targets that must have been checked within the window before the node may suspect itself.
pub const MIN_TARGETS: u32 = 20;
/// The suspicion's window, in seconds.
pub const WINDOW_SECS: u64 = 60;

/// This node's sight. Shared across threads as an `Arc`: every method takes `&self`; none
/// blocks but [`Sight::verdict_after`], which waits at most the time it is given.
#[derive(Debug)]
pub struct Sight {
    /// `[settings] Connectivity` is set: its probes decide, and the suspicion is not used.
    probing: bool,
    state: Mutex<State>,
    probed: Condvar,
    /// The verdict the sight thread last published.
    blind: AtomicBool,
    /// The sight thread has ended: no probe will come.
    retired: AtomicBool,
    /// Asks the sight thread for a probe (or to publish a new suspicion) now; coalesced.
    want: Sender<()>,
}

#[derive(Debug, Default)]
struct State {
    /// The last probe round of the Connectivity list: when it started, and whether every
    /// entry failed.
    probe: Option<(SystemTime, bool)>,
    /// The latest periods the published verdict was blind: from the start of the round (or
    /// the moment of the suspicion) that found it, to that of the one that found it could
    /// see again (`None`: still blind). At most [`PERIODS`].
    periods: VecDeque<(SystemTime, Option<SystemTime>)>,
    /// The writer's suspicion, and the addresses of targets it could not reach when the
    /// suspicion began (what the sight thread probes to tell when the node sees again).
    suspect: bool,
    sample: Vec<String>,
    /// Counts the suspicions ended by a probe of the sample, so the writer starts its window
    /// afresh.
    cleared: u64,
}

impl Sight {
    /// A node that sees (until a probe or the suspicion says otherwise), and the receiver
    /// the sight thread takes requests for a probe on. `probing`: Connectivity is set.
    pub fn new(probing: bool) -> (Sight, Receiver<()>) {
        let (want, wanted) = crossbeam_channel::bounded(1);
        let sight = Sight {
            probing,
            state: Mutex::new(State::default()),
            probed: Condvar::new(),
            blind: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            want,
        };
        (sight, wanted)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock left plain values: they are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether Connectivity probes decide.
    pub fn probing(&self) -> bool {
        self.probing
    }

    /// The verdict last published: the node cannot reach its network.
    pub fn blind(&self) -> bool {
        self.blind.load(Ordering::Relaxed)
    }

    /// Whether the node could not reach its network when a check that failed with a network
    /// error ended at `ended`: blind if a published blind period covers that time (a check
    /// made while blind, judged after the node sees again, is still held); else, with
    /// Connectivity, the verdict of a probe started after it (asked for now, and waited for
    /// at most `wait`; past that, the last verdict); without, the suspicion now.
    pub fn verdict_after(&self, ended: SystemTime, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut state = self.state();
        if state.blind_at(ended) {
            return true;
        }
        if !self.probing {
            return state.suspect;
        }
        loop {
            if let Some((started, blind)) = state.probe {
                if started >= ended {
                    return blind;
                }
            }
            let _ = self.want.try_send(());
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.retired.load(Ordering::Relaxed) {
                return self.blind();
            }
            state = match self.probed.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// The sight thread: a probe round of the Connectivity list that started at `started`.
    pub fn record_probe(&self, started: SystemTime, blind: bool) {
        self.state().probe = Some((started, blind));
        self.probed.notify_all();
    }

    /// The writer: whether it suspects the node now; with the suspicion's start, the
    /// addresses (`host:port`) of targets it could not reach. The sight thread is told.
    pub fn suspect(&self, suspect: bool, sample: Vec<String>) {
        let mut state = self.state();
        if state.suspect == suspect {
            return;
        }
        state.suspect = suspect;
        state.sample = if suspect { sample } else { Vec::new() };
        drop(state);
        let _ = self.want.try_send(());
    }

    /// The sight thread: most of the sample answered again, so the node sees: the
    /// suspicion ends, and the writer starts its window afresh.
    pub fn clear_suspicion(&self) {
        let mut state = self.state();
        state.suspect = false;
        state.sample.clear();
        state.cleared += 1;
    }

    /// How many suspicions the sight thread has ended ([`Sight::clear_suspicion`]).
    pub fn cleared(&self) -> u64 {
        self.state().cleared
    }

    /// What the sight thread decides from: the last probe round's verdict (with
    /// Connectivity), the suspicion, and its sample.
    pub fn inputs(&self) -> (Option<bool>, bool, Vec<String>) {
        let state = self.state();
        let probe = state.probe.map(|(_, blind)| blind);
        (probe, state.suspect, state.sample.clone())
    }

    /// The sight thread has ended (at the stop): waiting for a probe is over.
    pub fn retire(&self) {
        let _held = self.state();
        self.retired.store(true, Ordering::Relaxed);
        self.probed.notify_all();
    }

    /// The sight thread: publishes the verdict, found by what began at `at` (a probe round,
    /// or the suspicion); true when it changed.
    pub fn publish(&self, blind: bool, at: SystemTime) -> bool {
        let mut state = self.state();
        if self.blind.swap(blind, Ordering::Relaxed) == blind {
            return false;
        }
        if blind {
            if state.periods.len() == PERIODS {
                state.periods.pop_front();
            }
            state.periods.push_back((at, None));
        } else if let Some(last) = state.periods.back_mut() {
            last.1 = Some(at);
        }
        true
    }
}

/// Blind periods remembered: more than a node can have had while a batch waits.
const PERIODS: usize = 16;

impl State {
    fn blind_at(&self, at: SystemTime) -> bool {
        self.periods
            .iter()
            .any(|(from, to)| *from <= at && to.is_none_or(|to| at < to))
    }
}

/// The writer's view of the last minute: per second, how many targets had their latest check
/// then and how many of those failed with a network error. A target counts once, at its
/// latest check: checking it again moves it, so the counts are of targets, not of checks.
/// Pure; the writer thread keeps one and each target's latest second and verdict.
#[derive(Debug)]
pub struct Window {
    origin: Instant,
    /// The newest second counted, since `origin`.
    newest: u64,
    checked: [u32; WINDOW_SECS as usize],
    failed: [u32; WINDOW_SECS as usize],
}

/// A target's latest check as the window counts it: its second and whether it failed with a
/// network error.
pub type Seen = (u64, bool);

impl Window {
    pub fn new(origin: Instant) -> Window {
        Window {
            origin,
            newest: 0,
            checked: [0; WINDOW_SECS as usize],
            failed: [0; WINDOW_SECS as usize],
        }
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs()
    }

    /// Moves the window to `sec`, emptying the seconds it leaves behind.
    fn advance(&mut self, sec: u64) {
        if sec <= self.newest {
            return;
        }
        let gone = (sec - self.newest).min(WINDOW_SECS);
        for s in (self.newest + 1)..=(self.newest + gone) {
            let i = (s % WINDOW_SECS) as usize;
            self.checked[i] = 0;
            self.failed[i] = 0;
        }
        self.newest = sec;
    }

    /// A target checked at `at`, `network` if it failed with a network error; `before` is
    /// what the window saw of it last. Returns what to keep for it.
    pub fn record(&mut self, at: Instant, before: Option<Seen>, network: bool) -> Seen {
        let sec = self.second(at).max(self.newest);
        self.advance(sec);
        if let Some((old, failed)) = before {
            if sec - old.min(sec) < WINDOW_SECS {
                let i = (old % WINDOW_SECS) as usize;
                self.checked[i] = self.checked[i].saturating_sub(1);
                if failed {
                    self.failed[i] = self.failed[i].saturating_sub(1);
                }
            }
        }
        let i = (sec % WINDOW_SECS) as usize;
        self.checked[i] += 1;
        if network {
            self.failed[i] += 1;
        }
        (sec, network)
    }

    /// A target no longer checked here (handed to another node, disabled, deleted): its
    /// latest check leaves the window at once. Kept, a target this node no longer checks
    /// would count as seen for a minute, and after a handover the node's own failures would
    /// be measured against targets it checked before (60 checked, 26 of them failing, is
    /// not most).
    pub fn forget(&mut self, (old, failed): Seen) {
        if self.newest - old.min(self.newest) < WINDOW_SECS {
            let i = (old % WINDOW_SECS) as usize;
            self.checked[i] = self.checked[i].saturating_sub(1);
            if failed {
                self.failed[i] = self.failed[i].saturating_sub(1);
            }
        }
    }

    /// Targets checked in the last minute, and of those whose latest check failed with a
    /// network error, as of `now`.
    pub fn counts(&mut self, now: Instant) -> (u32, u32) {
        self.advance(self.second(now));
        (self.checked.iter().sum(), self.failed.iter().sum())
    }

    /// Forgets everything (the node sees again: what it saw while blind no longer counts).
    pub fn clear(&mut self) {
        self.checked = [0; WINDOW_SECS as usize];
        self.failed = [0; WINDOW_SECS as usize];
    }
}

/// The suspicion's rule: at least [`MIN_TARGETS`] targets checked in the window, and more
/// than `percent` of them failing with network errors. With fewer checked (the node handed
/// its targets over, or has few), what it suspected stays: only a check of enough targets,
/// or a probe of the sample, tells that it sees again.
pub fn suspects(checked: u32, failed: u32, percent: u32, before: bool) -> bool {
    if checked < MIN_TARGETS {
        return before;
    }
    u64::from(failed) * 100 > u64::from(percent) * u64::from(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_counts_each_target_once_at_its_latest_check_for_a_minute() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = Window::new(t0);
        let a = w.record(at(1), None, false);
        let b = w.record(at(2), None, true);
        assert_eq!(w.counts(at(2)), (2, 1));
        // Checked again: moves, not counted twice.
        let a = w.record(at(10), Some(a), true);
        assert_eq!(w.counts(at(10)), (2, 2));
        let _b = w.record(at(30), Some(b), false);
        assert_eq!(w.counts(at(30)), (2, 1));
        // A target handed over leaves it at once.
        let mut handed = Window::new(t0);
        let c = handed.record(at(1), None, false);
        handed.record(at(1), None, true);
        handed.forget(c);
        assert_eq!(handed.counts(at(2)), (1, 1));
        // A minute after a's check it leaves the window.
        assert_eq!(w.counts(at(70)), (1, 0));
        // Its next check, long after, does not take from a second reused since.
        w.record(at(200), Some(a), false);
        assert_eq!(w.counts(at(200)), (1, 0));
        w.clear();
        assert_eq!(w.counts(at(200)), (0, 0));
    }

    #[test]
    fn the_node_suspects_itself_past_the_share_of_enough_targets_and_keeps_it_without_them() {
        assert!(!suspects(19, 19, 50, false), "fewer than 20 targets");
        assert!(suspects(19, 0, 50, true), "kept without enough checks");
        assert!(!suspects(20, 10, 50, false), "exactly half is not more");
        assert!(suspects(20, 11, 50, false));
        assert!(
            !suspects(40, 5, 50, true),
            "enough checks, most fine: sees again"
        );
        assert!(!suspects(1000, 1000, 100, false), "100: never");
    }

    #[test]
    fn a_verdict_waits_for_a_probe_started_after_the_failure() {
        let (sight, wanted) = Sight::new(true);
        let sight = std::sync::Arc::new(sight);
        let failed_at = SystemTime::now();
        let prober = {
            let sight = sight.clone();
            std::thread::spawn(move || {
                wanted.recv().unwrap();
                sight.record_probe(SystemTime::now(), true);
            })
        };
        assert!(sight.verdict_after(failed_at, Duration::from_secs(10)));
        prober.join().unwrap();
        // No probe comes: the published verdict, once the wait is over.
        let later = SystemTime::now() + Duration::from_secs(1);
        assert!(!sight.verdict_after(later, Duration::from_millis(50)));
        let (quiet, _rx) = Sight::new(false);
        quiet.suspect(true, vec!["10.0.0.1:80".into()]);
        assert!(quiet.verdict_after(SystemTime::now(), Duration::ZERO));
        assert_eq!(quiet.inputs(), (None, true, vec!["10.0.0.1:80".into()]));
    }

    #[test]
    fn a_failure_from_a_blind_period_is_held_even_when_judged_after_it() {
        let (sight, _rx) = Sight::new(true);
        let t0 = SystemTime::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(sight.publish(true, at(10)));
        assert!(!sight.publish(true, at(12)), "no change");
        assert!(sight.publish(false, at(20)));
        sight.record_probe(at(20), false);
        assert!(
            sight.verdict_after(at(15), Duration::ZERO),
            "failed while blind"
        );
        assert!(!sight.verdict_after(at(5), Duration::ZERO), "before");
        assert!(
            !sight.verdict_after(at(20), Duration::ZERO),
            "after: the probe saw"
        );
        assert!(sight.publish(true, at(30)));
        assert!(sight.verdict_after(at(40), Duration::ZERO), "blind still");
    }
}
