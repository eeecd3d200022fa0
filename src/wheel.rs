//! The timer-wheel thread ("skypunch-wheel"): owns the schedule of every enabled target and
//! hands due checks to the workers. Reads target changes from the loader and "finished"
//! notices from the workers; writes [`Job`]s to the bounded job channel, never blocking on it.
//!
//! [`Wheel`] is the pure schedule (a hashed timing wheel, clock passed in); [`run`] is the
//! thread around it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver};

use crate::backlog::{Notice, Watch};
use crate::jobs::{JobReceiver, JobSender};

use crate::base::model::{Control, Job, Method, Target, TargetId};
use crate::base::stats::WheelStats;
use crate::base::stop::Stop;
use crate::check::Heartbeats;

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

struct Entry {
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
    entries: HashMap<TargetId, Entry>,
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

/// The channels the wheel thread works with.
pub struct Ports {
    pub control: Receiver<Control>,
    /// The daemon's stop request: the wheel dispatches nothing once it is made.
    pub stop: Stop,
    pub done: Receiver<TargetId>,
    pub jobs: JobSender,
    /// The receiving end of `jobs`, used only at shutdown to take back checks not started.
    pub unstarted: JobReceiver,
    /// Whether this node's cluster lease allows checks now.
    pub member: Arc<crate::cluster::Member>,
    /// `[settings] Workers`, named in the warning when checks wait for a free worker.
    pub workers: usize,
    /// The pushes of PUSH targets: which were pushed (checked at once), and when to look at
    /// one again.
    pub heartbeats: Arc<Heartbeats>,
}

/// The thread body: runs until the stop request (or until the loader's end of `control` is
/// gone).
///
/// It wakes for loader messages and once a tick, and only then takes the workers' "finished"
/// notices: waking for each of them cost a context switch per check at high rates.
pub fn run(ports: Ports, stats: WheelStats) {
    let mut wheel = Wheel::new(Instant::now());
    let mut ready: VecDeque<Job> = VecDeque::new();
    // Removed since the last tick: their checks still waiting in `ready` (a backlog when the
    // workers cannot keep up) are dropped, not run for a target handed to another node.
    let mut removed: HashSet<TargetId> = HashSet::new();
    let mut due = Vec::new();
    let mut watch = Watch::new(ports.workers);
    let mut deadline = Instant::now() + TICK;
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        select! {
            recv(ports.control) -> msg => match msg {
                Ok(msg) => take_control(msg, &mut wheel, &mut removed, &ports.heartbeats),
                Err(_) => break,
            },
            recv(ports.stop.channel()) -> _ => break,
            default(wait) => {}
        }
        let now = Instant::now();
        if now < deadline {
            continue;
        }
        deadline = (deadline + TICK).max(now);
        crate::base::fault::point("wheel");
        // Read before the control messages waiting are taken: a check of a target handed
        // over whose removal is not taken yet carries at most the generation of the hand-over.
        let generation = ports.member.generation();
        for msg in ports.control.try_iter() {
            take_control(msg, &mut wheel, &mut removed, &ports.heartbeats);
        }
        let mut finished = 0;
        for id in ports.done.try_iter() {
            wheel.check_done_with(id, now, || ports.heartbeats.next_look(id));
            finished += 1;
        }
        for id in ports.heartbeats.take_arrivals() {
            wheel.check_soon(id, now);
        }
        watch.finished(finished);
        if !removed.is_empty() {
            drop_removed(&mut ready, &mut removed, &mut wheel, now);
        }
        // A node whose lease ran out (frozen, or cut off from the database while others
        // were alive) starts nothing until its heartbeat says it still owns its targets.
        if ports.member.may_check(now) {
            wheel.advance(now, &mut due);
            ready.extend(due.drain(..).map(|job| Job { generation, ..job }));
            hand_out(&mut ready, &ports.jobs, &mut watch);
        }
        stats.add_missed_rounds(wheel.take_missed());
        watch_queues(&mut watch, now, &ready, &ports.jobs, &stats);
    }
    let unstarted = ports.unstarted.discard_queued() + ready.len();
    if unstarted > 0 {
        log::info!("shutdown: {unstarted} due checks not started");
    }
}

/// A target to schedule or to drop, from the cluster thread.
fn take_control(
    msg: Control,
    wheel: &mut Wheel,
    removed: &mut HashSet<TargetId>,
    heartbeats: &Heartbeats,
) {
    match msg {
        Control::Upsert { target, first } => {
            removed.remove(&target.id);
            let now = Instant::now();
            if target.method == Method::Push && !wheel.entries.contains_key(&target.id) {
                heartbeats.watch(target.id, now);
            }
            wheel.upsert(target, first, now);
        }
        Control::Remove(id) => {
            removed.insert(id);
            wheel.remove(id);
        }
    }
}

/// Once a tick: the queue depth and busy workers for the stats, and the operator told when
/// checks wait too long for a free worker (and when they no longer do).
fn watch_queues(
    watch: &mut Watch,
    now: Instant,
    ready: &VecDeque<Job>,
    jobs: &JobSender,
    stats: &WheelStats,
) {
    let in_channel = jobs.len();
    stats.set_queue_depth((ready.len() + in_channel) as u64);
    let oldest_unsent = ready.front().map(|j| j.due);
    match watch.observe(now, in_channel, ready.len(), oldest_unsent) {
        Some(n @ Notice::Waiting(_)) => log::warn!("{}", n.line()),
        Some(n @ Notice::Cleared { .. }) => log::info!("{}", n.line()),
        None => {}
    }
    stats.set_workers_busy(watch.busy() as u64);
    stats.set_oldest_wait(watch.oldest());
}

/// Drops the waiting checks of targets removed since the last tick; each counts as ended
/// for the wheel, which forgets a removed target once its check has ended.
fn drop_removed(
    ready: &mut VecDeque<Job>,
    removed: &mut HashSet<TargetId>,
    wheel: &mut Wheel,
    now: Instant,
) {
    let mut dropped = Vec::new();
    ready.retain(|job| {
        let keep = !removed.contains(&job.target.id);
        if !keep {
            dropped.push(job.target.id);
        }
        keep
    });
    for id in dropped {
        wheel.check_done(id, now);
    }
    removed.clear();
}

/// Sends ready jobs until the queue is full; the rest wait (and their lag shows it).
fn hand_out(ready: &mut VecDeque<Job>, jobs: &JobSender, watch: &mut Watch) {
    while let Some(job) = ready.pop_front() {
        let due = job.due;
        if let Err(job) = jobs.try_send(job) {
            ready.push_front(job);
            return;
        }
        watch.sent(due);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: TargetId, seconds: u64) -> Arc<Target> {
        let frequency = Duration::from_secs(seconds);
        Arc::new(Target {
            frequency,
            ..Target::new(id, "http://127.0.0.1/")
        })
    }

    fn due_ids(w: &mut Wheel, at: Instant) -> Vec<TargetId> {
        let mut out = Vec::new();
        w.advance(at, &mut out);
        let mut ids: Vec<_> = out.iter().map(|j| j.target.id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_target_added_later_is_checked_at_once_then_every_period() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.upsert(target(1, 2), false, t0);
        assert_eq!(due_ids(&mut w, t0), vec![1]);
        w.check_done(1, t0 + Duration::from_millis(30));
        assert_eq!(
            due_ids(&mut w, t0 + Duration::from_millis(1990)),
            Vec::<TargetId>::new()
        );
        assert_eq!(due_ids(&mut w, t0 + Duration::from_millis(2010)), vec![1]);
    }

    #[test]
    fn a_node_waking_from_a_freeze_checks_each_target_once_and_counts_the_rounds_missed() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.upsert(target(1, 1), false, t0);
        assert_eq!(due_ids(&mut w, t0), vec![1]);
        w.check_done(1, t0 + Duration::from_millis(20));
        // Frozen from 0.5 s to 30.5 s: one check on waking, the next a period on.
        let woke = t0 + Duration::from_millis(30_500);
        assert_eq!(due_ids(&mut w, woke), vec![1]);
        w.check_done(1, woke + Duration::from_millis(20));
        assert_eq!(w.take_missed(), 29, "the rounds due at 2 s .. 30 s");
        assert!(due_ids(&mut w, woke + Duration::from_millis(400)).is_empty());
        assert_eq!(due_ids(&mut w, woke + Duration::from_millis(510)), vec![1]);
        // A check that overran its period (no freeze) runs again at once, as before.
        let slow = woke + Duration::from_millis(2700);
        w.check_done(1, slow);
        assert_eq!(due_ids(&mut w, slow + TICK), vec![1]);
        assert_eq!(w.take_missed(), 0);
    }

    #[test]
    fn a_running_target_is_not_dispatched_again() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.upsert(target(1, 1), false, t0);
        assert_eq!(due_ids(&mut w, t0), vec![1]);
        assert!(due_ids(&mut w, t0 + Duration::from_secs(5)).is_empty());
        w.check_done(1, t0 + Duration::from_secs(5));
        assert_eq!(due_ids(&mut w, t0 + Duration::from_millis(5010)), vec![1]);
    }

    #[test]
    fn first_checks_are_spread_over_the_period() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        for id in 1..=1000 {
            w.upsert(target(id, 10), true, t0);
        }
        let mut per_second = Vec::new();
        for s in 1..=10 {
            per_second.push(due_ids(&mut w, t0 + Duration::from_secs(s)).len());
        }
        assert_eq!(per_second.iter().sum::<usize>(), 1000);
        assert!(
            per_second.iter().all(|n| (80..=120).contains(n)),
            "{per_second:?}"
        );
    }

    #[test]
    fn targets_due_beyond_one_turn_wait_for_their_turn() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.upsert(target(1, 60), false, t0);
        assert_eq!(due_ids(&mut w, t0), vec![1]);
        w.check_done(1, t0);
        for s in 1..60 {
            assert!(
                due_ids(&mut w, t0 + Duration::from_secs(s)).is_empty(),
                "fired early at {s}s"
            );
        }
        assert_eq!(due_ids(&mut w, t0 + Duration::from_secs(60)), vec![1]);
    }

    #[test]
    fn removed_targets_never_fire_and_edits_take_effect() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.upsert(target(1, 5), false, t0);
        w.upsert(target(2, 5), false, t0);
        w.remove(1);
        assert_eq!(due_ids(&mut w, t0), vec![2]);
        w.check_done(2, t0);
        w.upsert(target(2, 1), false, t0);
        assert_eq!(due_ids(&mut w, t0 + Duration::from_millis(1010)), vec![2]);
    }

    #[test]
    fn removed_and_added_back_while_running_is_never_dispatched_twice() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.upsert(target(1, 1), false, t0);
        assert_eq!(due_ids(&mut w, t0), vec![1]);
        w.remove(1);
        w.upsert(target(1, 1), false, t0 + Duration::from_millis(10));
        w.remove(1);
        w.upsert(target(1, 1), false, t0 + Duration::from_millis(20));
        assert!(
            due_ids(&mut w, t0 + Duration::from_secs(3)).is_empty(),
            "its first check still runs"
        );
        w.check_done(1, t0 + Duration::from_secs(3));
        assert_eq!(
            due_ids(&mut w, t0 + Duration::from_millis(3010)),
            vec![1],
            "checked again at once with the new definition"
        );
        assert!(due_ids(&mut w, t0 + Duration::from_millis(3500)).is_empty());
    }

    #[test]
    fn removed_while_running_is_forgotten_when_the_check_ends() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.upsert(target(1, 1), false, t0);
        assert_eq!(due_ids(&mut w, t0), vec![1]);
        w.remove(1);
        w.check_done(1, t0 + Duration::from_millis(100));
        assert!(w.entries.is_empty());
        assert!(due_ids(&mut w, t0 + Duration::from_secs(5)).is_empty());
    }

    #[test]
    fn a_push_target_is_checked_when_pushed_and_when_its_window_closes() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        let push = Arc::new(Target {
            method: Method::Push,
            ..(*target(3, 60)).clone()
        });
        w.upsert(push, false, t0);
        assert_eq!(due_ids(&mut w, t0), vec![3]);
        // Pushed while its look runs: looked at again as soon as it ends.
        w.check_soon(3, t0 + TICK);
        w.check_done_with(3, t0 + 2 * TICK, || Some(t0 + Duration::from_secs(75)));
        assert_eq!(due_ids(&mut w, t0 + 3 * TICK), vec![3]);
        w.check_done_with(3, t0 + 4 * TICK, || Some(t0 + Duration::from_secs(75)));
        assert!(due_ids(&mut w, t0 + Duration::from_secs(74)).is_empty());
        // Pushed while it waits: now.
        w.check_soon(3, t0 + Duration::from_secs(74));
        assert_eq!(
            due_ids(&mut w, t0 + Duration::from_secs(74) + TICK),
            vec![3]
        );
        w.check_done_with(3, t0 + Duration::from_secs(75), || None);
        assert!(due_ids(&mut w, t0 + Duration::from_secs(133)).is_empty());
        assert_eq!(due_ids(&mut w, t0 + Duration::from_secs(135)), vec![3]);
        // A target of another node is not this wheel's to check.
        w.check_soon(99, t0);
        assert!(!w.entries.contains_key(&99));
    }

    #[test]
    fn a_waiting_check_of_a_target_handed_over_is_dropped_and_it_can_come_back() {
        let t0 = Instant::now();
        let mut w = Wheel::new(t0);
        w.upsert(target(5, 1), false, t0);
        let mut ready: VecDeque<Job> = VecDeque::new();
        let mut out = Vec::new();
        w.advance(t0 + TICK, &mut out);
        ready.extend(out.drain(..));
        assert_eq!(ready.len(), 1, "due and waiting for a worker");

        w.remove(5);
        let mut removed: HashSet<TargetId> = [5].into_iter().collect();
        drop_removed(&mut ready, &mut removed, &mut w, t0 + TICK);
        assert!(ready.is_empty() && removed.is_empty());

        // Handed back later: checked again, not waiting for a check that never ran.
        let later = t0 + Duration::from_secs(3);
        w.upsert(target(5, 1), false, later);
        w.advance(later + TICK, &mut out);
        assert_eq!(out.len(), 1);
    }
}
