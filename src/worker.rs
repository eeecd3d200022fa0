//! The worker pool ("skypunch-worker-N"): a fixed number of threads that take due checks
//! from the job channel, run them (blocking HTTP with timeouts), log the check line, and hand
//! the outcome to the writer and the "finished" notice to the wheel. Workers never touch the
//! database and hold no lock across a check. A check still queued when the node's cluster
//! lease runs out is dropped unstarted (see `cluster`). A check the stop abandons (its
//! sockets shut down past `StopGrace`, see `check::sockets`) is not recorded: no check line,
//! no result; one that had its complete answer before the cut is recorded as usual.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use crate::jobs::JobReceiver;

use crate::base::model::{
    CheckError, CheckOutcome, CheckResult, Method, Target, TargetId, ToWriter, Verdict,
};
use crate::base::stats::WorkerStats;
use crate::base::threads::{Group, SpawnError};
use crate::base::trace::Trace;
use crate::check::sockets::{Ended, InFlight};
use crate::check::Checker;
use crate::logging::NameColumn;

/// The channels a worker works with; cloned for each worker.
#[derive(Clone)]
pub struct Ports {
    pub jobs: JobReceiver,
    pub done: Sender<TargetId>,
    pub results: Sender<ToWriter>,
    /// This node's cluster lease, looked at again as each check is taken from the queue.
    pub member: Arc<crate::cluster::Member>,
    /// The checks in flight, which a stop past `StopGrace` abandons.
    pub in_flight: Arc<InFlight>,
}

/// A worker's stack: checks are shallow, and hundreds of workers should cost little memory.
pub const STACK: usize = 256 * 1024;

/// Starts `count` workers in `group`. They leave their loop when the job channel closes.
pub fn spawn(
    group: &mut Group,
    count: usize,
    checker: Arc<Checker>,
    ports: Ports,
    stats: WorkerStats,
) -> Result<(), SpawnError> {
    for n in 0..count {
        let (checker, ports, stats) = (checker.clone(), ports.clone(), stats.clone());
        let name = format!("skypunch-worker-{n}");
        group.spawn(&name, Some(STACK), move || run(&checker, ports, &stats))?;
    }
    Ok(())
}

fn run(checker: &Checker, ports: Ports, stats: &WorkerStats) {
    let slot = ports.in_flight.join();
    loop {
        crate::base::fault::point("worker");
        let Some(job) = ports.jobs.recv() else {
            return;
        };
        let started = Instant::now();
        // A check queued before the node froze (or lost the database) must not start once
        // its lease has run out: another node owns that target by now.
        if !ports.member.may_check(started) {
            let _ = ports.done.send(job.target.id);
            continue;
        }
        // Past the stop's grace nothing starts (the job queue is closing as well).
        if !slot.begin() {
            let _ = ports.done.send(job.target.id);
            continue;
        }
        let lag = started.saturating_duration_since(job.due);
        stats.record_lag(lag);
        if lag > crate::backlog::WAIT_LIMIT {
            stats.late_start();
        }
        let Some(outcome) = run_check(checker, &job.target) else {
            // A PUSH target with nothing new to say: no result, no line (see check::push).
            slot.end(true);
            let _ = ports.done.send(job.target.id);
            continue;
        };
        if slot.end(has_verdict(&outcome)) == Ended::Abandoned {
            log::debug!(
                "[{}] check abandoned at stop after {} ms: not recorded",
                job.target.id,
                outcome.elapsed.as_millis()
            );
            let _ = ports.done.send(job.target.id);
            continue;
        }
        // A PUSH target's look takes no time: it would only blur how long requests take.
        if job.target.method != Method::Push {
            stats.record_duration(outcome.elapsed);
        }
        log_line(&job.target, &outcome);
        stats.checked();
        if outcome.verdict == Verdict::Fail {
            stats.failed();
        }
        if let Some(error) = &outcome.error {
            stats.failed_as(error);
        }
        let id = job.target.id;
        let result = CheckResult {
            target: job.target,
            outcome,
            at: chrono::Utc::now(),
            generation: job.generation,
        };
        // The writer outlives the workers; a send error only happens if it died, and then
        // the supervisor stops the daemon and counts this check as not written.
        let _ = ports.results.send(ToWriter::Checked(result));
        let _ = ports.done.send(id);
    }
}

/// Whether an outcome stands even if the stop cut the check's sockets just before it ended:
/// true when it was decided from a complete answer (a status, a body, a time) or by a panic.
/// A failure to get an answer (Keystone's, the OAuth2 server's or the target's) may be the
/// cut's doing.
fn has_verdict(outcome: &CheckOutcome) -> bool {
    !matches!(
        outcome.error,
        Some(
            CheckError::Keystone(_)
                | CheckError::OAuth2(_)
                | CheckError::NoResponse { .. }
                | CheckError::Body { .. }
        )
    )
}

/// The check of a due target: an HTTP check, or a PUSH target's look at its pushes, which
/// has a result only when there is something new to say.
fn run_check(checker: &Checker, target: &Target) -> Option<CheckOutcome> {
    match target.method {
        Method::Push => checker.heartbeat(target),
        _ => Some(check_safely(checker, target)),
    }
}

/// Runs the check; a panic in it (a bug) becomes a failed check instead of a dead worker.
pub fn check_safely(checker: &Checker, target: &Target) -> CheckOutcome {
    let start = Instant::now();
    catch_unwind(AssertUnwindSafe(|| checker.check(target))).unwrap_or_else(|_| {
        let mut trace = Trace::new();
        let error = CheckError::Internal;
        trace.fail(&error.to_string());
        CheckOutcome {
            verdict: Verdict::Fail,
            description: error.to_string(),
            error: Some(error),
            http_status: None,
            elapsed: start.elapsed(),
            trace,
            cert: None,
            phases: None,
        }
    })
}

/// The original's line, with the response time added:
/// `[1] HP Cloud Dot COM               GET https://www.hpcloud.com PASS (OK) 12ms`.
/// A PUSH target, which requests nothing, shows `/push/` in place of a URL.
pub fn check_line(target: &Target, outcome: &CheckOutcome) -> String {
    let url = match target.method {
        Method::Push => "/push/",
        _ => target.url.shown(),
    };
    format!(
        "[{}] {} {} {} {} ({}) {}ms",
        target.id,
        NameColumn(&target.name),
        target.method,
        url,
        outcome.verdict.status(),
        outcome.description,
        outcome.elapsed.as_millis()
    )
}

fn log_line(target: &Target, outcome: &CheckOutcome) {
    let line = check_line(target, outcome);
    match outcome.verdict {
        Verdict::Pass => log::info!("{line}"),
        Verdict::Fail => log::error!("{line}"),
    }
}
