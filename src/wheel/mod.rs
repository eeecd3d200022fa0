//! The timer-wheel thread ("skypunch-wheel"): owns the schedule of every enabled target and
//! hands due checks to the workers. Reads target changes from the loader and "finished"
//! notices from the workers; writes [`Job`]s to the bounded job channel, never blocking on it.
//!
//! [`Wheel`] is the pure schedule (a hashed timing wheel, clock passed in; `schedule.rs`);
//! [`run`], here, is the thread around it.

mod schedule;
#[cfg(test)]
mod tests;

pub use schedule::{Wheel, TICK};

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{select, Receiver};

use crate::backlog::{Notice, Watch};
use crate::jobs::{JobReceiver, JobSender};

use crate::base::model::{Control, Job, Method, TargetId};
use crate::base::stats::WheelStats;
use crate::base::stop::Stop;
use crate::check::Heartbeats;

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
        // First: a gap since the last tick (a freeze) voids the leases begun before it.
        ports.member.tick(now);
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
        if ports.member.may_dispatch(now) {
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
