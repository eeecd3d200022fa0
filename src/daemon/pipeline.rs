//! The value that owns the daemon's threads, on the main thread: [`Pipeline`], whose fields
//! are the stages in the order the stop ends them. [`Pipeline::stop`] walks them in that
//! order, each within its share of the stop's time; dropping a pipeline that was not stopped
//! (a start that failed half-way, a panic on the main thread) stops it the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::base::stats::MainStats;
use crate::base::stop::{self, Stop, StopTrigger};
use crate::base::threads::{Ended, Group, Liveness, Supervisor};
use crate::check::sockets::InFlight;

/// How long the workers get to leave once their checks were abandoned: a check whose sockets
/// were shut down ends at once; a worker still busy after this is blocked where no socket
/// reaches (a name lookup) and is left to the process's exit.
const ABANDONED_EXIT: Duration = Duration::from_millis(500);

/// Every thread the daemon started, by stage. The fields are in shutdown order, and
/// [`Pipeline::stop`] takes them in that order, on SIGTERM or SIGINT or when a thread ended
/// unexpectedly:
///
/// 1. the stop trigger is pulled with a deadline of `StopTimeout`: the wheel dispatches
///    nothing more, the loader, the notifier, the prune and sight threads leave between two
///    statements or two deliveries, the cluster thread marks the node `stopping` (the others take its targets
///    at their next heartbeat), and the HTTP server closes its listening sockets and the
///    connections still sending their request (its handlers drop the requests queued and
///    finish the answer in hand within 2 s), so that a load balancer sees the node go at once;
/// 2. the wheel's return closes the job queue: workers finish the check in hand and leave;
/// 3. the workers get `StopGrace`; past it, the checks still in flight are abandoned
///    (`check::sockets`: their sockets are shut down, so they end at once and record
///    nothing), and the workers get [`ABANDONED_EXIT`] more; a worker still blocked then (in
///    a name lookup, which no socket reaches) is not waited for;
/// 4. the writer is told that the checks are over (`StopTrigger::checks_over`): it writes
///    what is left, the rollups of the current minute included, until shortly before the
///    deadline, then returns, dropping the notifier's `wake` and the store thread's batches;
/// 5. once the writer has ended, `pipeline_done` is dropped: the stats thread logs its final
///    line (with the checks abandoned), and the cluster thread removes the node's row;
/// 6. the notifier makes its last, bounded pass and returns.
///
/// Every stage after the workers has until the deadline; a second SIGTERM or SIGINT cuts the
/// wait short. Threads still running at the deadline are left to the process's exit.
pub struct Pipeline {
    /// Step 1: the stop request every thread watches, and its deadline.
    trigger: StopTrigger,
    /// The loader: owns the feed of targets to the cluster thread and a sender of the
    /// writer's reports; leaves at the stop. The heartbeat thread (PUSH targets' pushes,
    /// read into a map the wheel and workers share; no channel) is in this group too.
    loader: Group,
    /// The confirm thread: leaves at the stop (step 1), closing its checking threads' queue;
    /// those are in the workers' stage. Owns a sender of word to the writer and a `wake` of
    /// the notifier.
    confirm: Group,
    /// Step 2: the wheel: owns the job queue's sender, which its return closes.
    wheel: Group,
    /// Step 3: the workers: each owns a sender of reports to the writer and of "finished"
    /// notices to the wheel; and the confirming checks' threads, whose queue the confirm
    /// thread closes when it leaves.
    workers: Group,
    /// The checks in flight, abandoned past `StopGrace`.
    in_flight: Arc<InFlight>,
    /// Set when workers were still busy after their checks were abandoned: not waited for.
    workers_left: bool,
    /// Step 4: the writer: owns the reports' receiver, the batches' sender to the store
    /// thread and the notifier's `wake`.
    writer: Group,
    /// Step 5: dropped once the writer has ended.
    pipeline_done: Option<Sender<()>>,
    /// The store thread: ends when the writer drops its batches (a write still hanging on
    /// the database is left to the process's exit).
    store: Group,
    /// The cluster thread: owns the receiver of the loader's feed and the feed to the wheel
    /// (dropped at the stop); removes the node's row once `pipeline_done` closes.
    cluster: Group,
    /// The stats thread: logs its final line once `pipeline_done` closes.
    stats_line: Group,
    /// Step 6: the notifier: its last pass, once the writer dropped `wake`.
    notifier: Group,
    /// The prune thread: leaves at the stop between two statements (step 1).
    prune: Group,
    /// The sight thread: leaves at the stop between two probe rounds or notices (step 1);
    /// a store thread waiting for its verdict then takes the last one at once.
    sight: Group,
    /// Beside the pipeline: the HTTP server (stopped at step 1) and systemd's watchdog.
    http: Group,
    watchdog: Group,
    /// Where every thread reports its end; last, so that it outlives every group.
    supervisor: Supervisor,
    /// `StopTimeout` and `StopGrace`.
    timeout: Duration,
    grace: Duration,
    /// Counts the checks abandoned, for the final stats line and the account.
    stats: MainStats,
    /// Set once the stop has run, so that dropping the pipeline does not run it again.
    stopped: bool,
}

/// What the main thread heard while it waited for threads to end.
pub enum Heard {
    /// A thread ended.
    Ended(Ended),
    /// Nothing, until the time waited for.
    Nothing,
    /// A second SIGTERM or SIGINT (its name): stop waiting.
    Interrupted(&'static str),
}

/// How the wait for the threads at stop ended.
pub enum WindDown {
    /// Every thread ended (but workers left behind after their checks were abandoned).
    Done,
    /// The deadline passed first.
    Overdue,
    /// A second SIGTERM or SIGINT.
    Interrupted(&'static str),
}

/// A pipeline after its stop: how the stop went, and the threads still running, which are
/// left to the process's exit (and `pipeline_done` dropped, if the writer never ended) when
/// this is dropped, after the account.
pub struct Stopped {
    pub how: WindDown,
    pipeline: Pipeline,
}

impl Stopped {
    /// The threads still running, by name, in shutdown order.
    pub fn busy(&self) -> Vec<&str> {
        self.pipeline.running()
    }
}

/// Where the main thread waits for the next end until a time, and what else may cut the
/// wait short (the signals, see `supervise`).
pub type Listen<'a> = dyn FnMut(&Receiver<Ended>, Instant) -> Heard + 'a;

/// What a thread needs of the pipeline while it is being started.
pub struct Handles {
    pub stop: Stop,
    /// Disconnected once the writer has ended (its last writes done).
    pub pipeline_done: Receiver<()>,
}

impl Pipeline {
    /// An empty pipeline, to start the stages in; stopped within `timeout` (`StopTimeout`),
    /// the workers within `grace` (`StopGrace`).
    pub fn new(timeout: Duration, grace: Duration, stats: MainStats) -> (Pipeline, Handles) {
        let (trigger, stop) = stop::request();
        let (pipeline_done, done_rx) = bounded::<()>(0);
        let supervisor = Supervisor::default();
        let group = || supervisor.group();
        let pipeline = Pipeline {
            trigger,
            loader: group(),
            confirm: group(),
            wheel: group(),
            workers: group(),
            in_flight: Arc::new(InFlight::default()),
            workers_left: false,
            writer: group(),
            pipeline_done: Some(pipeline_done),
            store: group(),
            cluster: group(),
            stats_line: group(),
            notifier: group(),
            prune: group(),
            sight: group(),
            http: group(),
            watchdog: group(),
            supervisor,
            timeout,
            grace,
            stats,
            stopped: false,
        };
        let handles = Handles {
            stop,
            pipeline_done: done_rx,
        };
        (pipeline, handles)
    }

    /// The stages' groups, to start threads in.
    pub fn loader(&mut self) -> &mut Group {
        &mut self.loader
    }
    pub fn confirm(&mut self) -> &mut Group {
        &mut self.confirm
    }
    pub fn wheel(&mut self) -> &mut Group {
        &mut self.wheel
    }
    pub fn workers(&mut self) -> &mut Group {
        &mut self.workers
    }
    pub fn writer(&mut self) -> &mut Group {
        &mut self.writer
    }
    pub fn store(&mut self) -> &mut Group {
        &mut self.store
    }
    pub fn cluster(&mut self) -> &mut Group {
        &mut self.cluster
    }
    pub fn stats_line(&mut self) -> &mut Group {
        &mut self.stats_line
    }
    pub fn notifier(&mut self) -> &mut Group {
        &mut self.notifier
    }
    pub fn prune(&mut self) -> &mut Group {
        &mut self.prune
    }
    pub fn sight(&mut self) -> &mut Group {
        &mut self.sight
    }
    pub fn http(&mut self) -> &mut Group {
        &mut self.http
    }
    pub fn watchdog(&mut self) -> &mut Group {
        &mut self.watchdog
    }

    /// The workers' checks in flight, shared with them.
    pub fn in_flight(&self) -> Arc<InFlight> {
        self.in_flight.clone()
    }

    /// The names of the threads that ended, for `/healthz` and the watchdog.
    pub fn liveness(&self) -> Arc<Liveness> {
        self.supervisor.liveness()
    }

    /// Where the threads report their end.
    pub fn ended(&self) -> &Receiver<Ended> {
        self.supervisor.ended()
    }

    /// Joins the thread whose end was reported.
    pub fn reap(&mut self, ended: &Ended) {
        let _ = self.groups_mut().any(|g| g.reap(ended));
    }

    /// The threads that have not ended, by name, in shutdown order.
    pub fn running(&self) -> Vec<&str> {
        self.groups().flat_map(Group::running).collect()
    }

    fn groups(&self) -> impl Iterator<Item = &Group> {
        [
            &self.loader,
            &self.confirm,
            &self.wheel,
            &self.workers,
            &self.writer,
            &self.store,
            &self.cluster,
            &self.stats_line,
            &self.notifier,
            &self.prune,
            &self.sight,
            &self.http,
            &self.watchdog,
        ]
        .into_iter()
    }

    fn groups_mut(&mut self) -> impl Iterator<Item = &mut Group> {
        [
            &mut self.loader,
            &mut self.confirm,
            &mut self.wheel,
            &mut self.workers,
            &mut self.writer,
            &mut self.store,
            &mut self.cluster,
            &mut self.stats_line,
            &mut self.notifier,
            &mut self.prune,
            &mut self.sight,
            &mut self.http,
            &mut self.watchdog,
        ]
        .into_iter()
    }

    /// Stops every stage in the order of the fields (see [`Pipeline`]), hearing of the
    /// threads' ends and of interruptions through `listen`.
    pub fn stop(mut self, listen: &mut Listen) -> Stopped {
        self.stopped = true;
        let how = match self.wind_down(listen) {
            Ok(true) => WindDown::Done,
            Ok(false) => WindDown::Overdue,
            Err(name) => WindDown::Interrupted(name),
        };
        Stopped {
            how,
            pipeline: self,
        }
    }

    /// Steps 1 to 6; `Ok(false)` when the deadline passed first, `Err` on an interruption.
    fn wind_down(&mut self, listen: &mut Listen) -> Result<bool, &'static str> {
        self.trigger.pull(self.timeout);
        let deadline = self.trigger.deadline().unwrap_or_else(Instant::now);
        self.end_checks(deadline, listen)?;
        if !self.wait_until(deadline, listen, |p| p.writer.is_empty())? {
            return Ok(false);
        }
        self.pipeline_done = None;
        let skip_workers = self.workers_left;
        self.wait_until(deadline, listen, |p| {
            p.running().iter().all(|n| skip_workers && is_worker(n))
        })
    }

    /// Steps 2 to 4: waits up to `StopGrace` for the wheel and the workers, abandons the
    /// checks still in flight, and tells the writer the checks are over.
    fn end_checks(&mut self, deadline: Instant, listen: &mut Listen) -> Result<(), &'static str> {
        let checks_done = |p: &Pipeline| p.wheel.is_empty() && p.workers.is_empty();
        let until = (Instant::now() + self.grace).min(deadline);
        if !self.wait_until(until, listen, checks_done)? {
            let cut = self.in_flight.abandon();
            log::info!(
                "stop: {cut} checks still in flight after StopGrace ({} s) abandoned: their \
                 connections closed, their results not recorded",
                self.grace.as_secs()
            );
            let until = (Instant::now() + ABANDONED_EXIT).min(deadline);
            if !self.wait_until(until, listen, checks_done)? {
                let busy = self.workers.running().count();
                log::warn!(
                    "stop: {busy} workers still busy {} ms after their checks were abandoned \
                     (blocked where a closed connection does not reach them, such as a name \
                     lookup): not waited for",
                    ABANDONED_EXIT.as_millis()
                );
                self.workers_left = true;
            }
        }
        self.stats.set_abandoned(self.in_flight.abandoned());
        self.trigger.checks_over();
        Ok(())
    }

    /// Takes the threads' ends until `done` holds (`Ok(true)`) or `until` has passed
    /// (`Ok(false)`); `Err` on a second SIGTERM or SIGINT.
    fn wait_until(
        &mut self,
        until: Instant,
        listen: &mut Listen,
        done: impl Fn(&Pipeline) -> bool,
    ) -> Result<bool, &'static str> {
        loop {
            if done(self) {
                return Ok(true);
            }
            match listen(self.supervisor.ended(), until) {
                Heard::Ended(ended) => {
                    log::debug!("thread {} ended", ended.name);
                    self.reap(&ended);
                }
                Heard::Nothing => return Ok(false),
                Heard::Interrupted(name) => return Err(name),
            }
        }
    }
}

/// A thread of the workers' stage: a worker, or a confirming check's thread.
fn is_worker(thread: &str) -> bool {
    thread.starts_with("skypunch-worker-") || thread.starts_with("skypunch-confirm-")
}

/// The safety net: a pipeline dropped without [`Pipeline::stop`] (a start that failed after
/// some threads started, a panic on the main thread) is stopped the same way, within the same
/// bounds, hearing only of the threads' ends.
impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let mut quiet = |ended: &Receiver<Ended>, until: Instant| match ended.recv_deadline(until) {
            Ok(ended) => Heard::Ended(ended),
            Err(_) => Heard::Nothing,
        };
        if let Ok(false) = self.wind_down(&mut quiet) {
            log::error!(
                "the stop deadline passed with threads still busy: {}",
                self.running().join(", ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A pipeline whose stages log their end, and the log.
    fn traced() -> (Pipeline, Handles, Arc<Mutex<Vec<&'static str>>>) {
        let (_, stages) = crate::base::stats::new();
        let (p, h) = Pipeline::new(Duration::from_secs(5), Duration::from_secs(1), stages.main);
        (p, h, Arc::default())
    }

    fn note(log: &Arc<Mutex<Vec<&'static str>>>, what: &'static str) {
        log.lock().unwrap().push(what);
    }

    #[test]
    fn the_stop_ends_the_stages_in_field_order() {
        let (mut p, h, log) = traced();
        // The stats thread waits for the writer's end; the writer for the checks to be
        // over, which comes only once the workers are gone; the workers for the stop.
        let (l, done) = (log.clone(), h.pipeline_done.clone());
        p.stats_line()
            .spawn("skypunch-stats", None, move || {
                let _ = done.recv();
                note(&l, "stats");
            })
            .unwrap();
        let (l, stop) = (log.clone(), h.stop.clone());
        p.writer()
            .spawn("skypunch-writer", None, move || {
                while !stop.checks_over() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                note(&l, "writer");
            })
            .unwrap();
        let (l, stop) = (log.clone(), h.stop.clone());
        p.workers()
            .spawn("skypunch-worker-0", None, move || {
                let _ = stop.channel().recv();
                note(&l, "worker");
            })
            .unwrap();
        let listen = &mut |ended: &Receiver<Ended>, until: Instant| match ended.recv_deadline(until)
        {
            Ok(e) => Heard::Ended(e),
            Err(_) => Heard::Nothing,
        };
        let stopped = p.stop(listen);
        assert!(matches!(stopped.how, WindDown::Done));
        assert!(stopped.busy().is_empty(), "{:?}", stopped.busy());
        assert_eq!(*log.lock().unwrap(), ["worker", "writer", "stats"]);
    }

    #[test]
    fn a_dropped_pipeline_stops_its_threads_too() {
        let (mut p, h, log) = traced();
        let l = log.clone();
        p.cluster()
            .spawn("skypunch-cluster", None, move || {
                let _ = h.pipeline_done.recv();
                note(&l, "cluster");
            })
            .unwrap();
        drop(p);
        assert_eq!(*log.lock().unwrap(), ["cluster"]);
    }
}
