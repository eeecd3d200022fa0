//! The pure schedule: target id → next due instant, in a hashed timing wheel; the clock is
//! passed in. No thread, no channel: `wheel::run` drives it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::model::{Job, Method, Target, TargetId};

/// The resolution of the schedule.
pub const TICK: Duration = Duration::from_millis(10);
/// Slots in the wheel: one turn is 10.24 s; a target due later waits for its turn.
const SLOTS: usize = 1024;
/// The longest a PUSH target's first look waits after the start.
const PUSH_SPREAD: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting in a slot for its due tick.
    Waiting,
    /// Handed to a worker (or queued for one); not scheduled again until it finishes.
    Running,
}

pub(super) struct Entry {
    target: Arc<Target>,
    due: Instant,
    phase: Phase,
    /// Removed while its check ran: forgotten when the check finishes, unless added back
    /// meanwhile. Keeping it until then is what stops a remove-and-add from dispatching a
    /// second check of a target whose first is still running.
    removed: bool,
    /// Bumped whenever the entry moves, so the copy left in an old slot is ignored.
    generation: u32,
    /// Asked to be checked soon while its check ran (a PUSH target pushed): checked again
    /// as soon as that ends.
    again: bool,
    /// When its last check was dispatched: the periods that had passed by then were missed
    /// (the node was frozen or stalled), not owed.
    dispatched: Instant,
}

/// A slot holds (id, due tick, generation).
type Slot = Vec<(TargetId, u64, u32)>;

/// The schedule: target id → next due instant, in a hashed timing wheel.
pub struct Wheel {
    origin: Instant,
    slots: Vec<Slot>,
    /// The next tick to look at.
    cursor: u64,
    pub(super) entries: HashMap<TargetId, Entry>,
    /// Rounds skipped since the last [`Wheel::take_missed`].
    missed: u64,
}

impl Wheel {
    pub fn new(origin: Instant) -> Wheel {
        Wheel {
            origin,
            slots: vec![Vec::new(); SLOTS],
            cursor: 0,
            entries: HashMap::new(),
            missed: 0,
        }
    }

    /// The rounds skipped since the last call: periods that had passed before a target's
    /// check was dispatched (a node frozen or stalled dispatches one round on waking, not its
    /// backlog).
    pub fn take_missed(&mut self) -> u64 {
        std::mem::take(&mut self.missed)
    }

    fn tick_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        since.as_nanos().div_ceil(TICK.as_nanos()) as u64
    }

    fn place(&mut self, id: TargetId) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.generation = e.generation.wrapping_add(1);
        e.phase = Phase::Waiting;
        let (due, generation) = (e.due, e.generation);
        let tick = self.tick_of(due).max(self.cursor);
        self.slots[(tick % SLOTS as u64) as usize].push((id, tick, generation));
    }

    /// Adds or replaces a target.
    pub fn upsert(&mut self, target: Arc<Target>, first: bool, now: Instant) {
        let id = target.id;
        match self.entries.get_mut(&id) {
            Some(e) if e.removed => {
                // Added back while its last check runs: check it again as soon as that ends.
                e.removed = false;
                e.target = target;
                e.due = now.checked_sub(e.target.frequency).unwrap_or(now);
            }
            Some(e) => {
                let frequency_changed = e.target.frequency != target.frequency;
                e.target = target;
                if frequency_changed && e.phase == Phase::Waiting {
                    e.due = e.due.min(now + e.target.frequency);
                    self.place(id);
                }
            }
            None => {
                // A PUSH target's look costs no request: spread over a few seconds only, so
                // that one never pushed does not wait up to a period for its first window.
                let period = match target.method {
                    Method::Push => target.frequency.min(PUSH_SPREAD),
                    _ => target.frequency,
                };
                let due = if first { now + spread(id, period) } else { now };
                self.entries.insert(
                    id,
                    Entry {
                        target,
                        due,
                        phase: Phase::Waiting,
                        removed: false,
                        generation: 0,
                        again: false,
                        dispatched: now,
                    },
                );
                self.place(id);
            }
        }
    }

    pub fn remove(&mut self, id: TargetId) {
        match self.entries.get_mut(&id) {
            Some(e) if e.phase == Phase::Running => e.removed = true,
            _ => {
                self.entries.remove(&id);
            }
        }
    }

    /// Moves the wheel to `now`, appending every target that came due to `out` and marking it
    /// running.
    pub fn advance(&mut self, now: Instant, out: &mut Vec<Job>) {
        let now_tick = self.tick_of(now);
        if now_tick < self.cursor {
            return;
        }
        // After a long stall, one turn visits every slot.
        let last = now_tick.min(self.cursor + SLOTS as u64 - 1);
        for tick in self.cursor..=last {
            let slot = std::mem::take(&mut self.slots[(tick % SLOTS as u64) as usize]);
            let mut keep = Vec::new();
            for (id, due_tick, generation) in slot {
                match self.entries.get_mut(&id) {
                    Some(e) if e.generation == generation && e.phase == Phase::Waiting => {
                        if due_tick <= now_tick {
                            e.phase = Phase::Running;
                            e.dispatched = now;
                            out.push(Job {
                                target: e.target.clone(),
                                due: e.due,
                                generation: 0,
                            });
                        } else {
                            keep.push((id, due_tick, generation));
                        }
                    }
                    _ => {} // moved, removed or running: a stale copy
                }
            }
            self.slots[(tick % SLOTS as u64) as usize].extend(keep);
        }
        self.cursor = now_tick + 1;
    }

    /// A worker finished the target's check: schedule the next one a period after the last due
    /// time, keeping a steady rate; a check that overran its period runs again at once. The
    /// periods that had already passed when the check was dispatched are skipped (and
    /// counted): a node that wakes from a freeze checks each target once, not its backlog.
    pub fn check_done(&mut self, id: TargetId, now: Instant) {
        self.check_done_with(id, now, || None);
    }

    /// [`Wheel::check_done`], a PUSH target looked at again when `push_next` says (its
    /// pushes' window, see `check::push`) rather than a period later.
    pub fn check_done_with(
        &mut self,
        id: TargetId,
        now: Instant,
        push_next: impl FnOnce() -> Option<Instant>,
    ) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        if e.phase != Phase::Running {
            return;
        }
        if e.removed {
            self.entries.remove(&id);
            return;
        }
        let next = match e.target.method {
            Method::Push => push_next(),
            _ => None,
        };
        let (scheduled, missed) = next_round(e.due, e.dispatched, e.target.frequency);
        self.missed += missed;
        e.due = next.unwrap_or(scheduled).max(now);
        if std::mem::take(&mut e.again) {
            e.due = now;
        }
        self.place(id);
    }

    /// Checks a target as soon as it can (a PUSH target was pushed): now if it waits, once
    /// its check ends if one runs. A target this node does not check is left alone.
    pub fn check_soon(&mut self, id: TargetId, now: Instant) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        match e.phase {
            Phase::Running => e.again = true,
            Phase::Waiting if e.due > now => {
                e.due = now;
                self.place(id);
            }
            Phase::Waiting => {}
        }
    }
}

/// The round after one due at `due` and dispatched at `dispatched`, and how many rounds fell
/// between the two (skipped): the first due time after the dispatch on the grid of the
/// target's period.
fn next_round(due: Instant, dispatched: Instant, period: Duration) -> (Instant, u64) {
    let late = dispatched.saturating_duration_since(due);
    if period.is_zero() || late < period {
        return (due + period, 0);
    }
    let missed = (late.as_nanos() / period.as_nanos()) as u64;
    let skip = u32::try_from(missed + 1).unwrap_or(u32::MAX);
    (due + period.saturating_mul(skip), missed)
}

/// Where in its period a target's first check falls: spread by the golden ratio over the id,
/// so that 10,000 targets with one frequency do not all fire in the same tick.
fn spread(id: TargetId, period: Duration) -> Duration {
    let fraction = (id as f64 * 0.618_033_988_749_895).fract();
    period.mul_f64(fraction)
}
