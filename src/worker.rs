//! The worker pool ("skypunch-worker-N"): a fixed number of threads that take due checks
//! from the job channel, run them (blocking HTTP with timeouts), log the check line, and hand
//! the outcome to the writer and the "finished" notice to the wheel. Workers never touch the
//! database and hold no lock across a check.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;

use crate::jobs::JobReceiver;

use crate::check::Checker;
use crate::logging::name_column;
use crate::model::{CheckOutcome, Finished, Target, TargetId, Verdict};
use crate::stats::Stats;
use crate::trace::Trace;

/// The channels a worker works with; cloned for each worker.
#[derive(Clone)]
pub struct Ports {
    pub jobs: JobReceiver,
    pub finished: Sender<TargetId>,
    pub results: Sender<Finished>,
}

/// Starts `count` workers. They leave their loop when the job channel closes.
pub fn spawn(
    count: usize,
    checker: Arc<Checker>,
    ports: Ports,
    stats: Arc<Stats>,
) -> Vec<JoinHandle<()>> {
    (0..count)
        .map(|n| {
            let (checker, ports, stats) = (checker.clone(), ports.clone(), stats.clone());
            std::thread::Builder::new()
                .name(format!("skypunch-worker-{n}"))
                .stack_size(256 * 1024)
                .spawn(move || run(&checker, ports, &stats))
                .expect("spawning a worker thread")
        })
        .collect()
}

fn run(checker: &Checker, ports: Ports, stats: &Stats) {
    while let Some(job) = ports.jobs.recv() {
        let started = Instant::now();
        let lag = started.saturating_duration_since(job.due);
        stats.lag.record(lag);
        let outcome = check_safely(checker, &job.target);
        stats.duration.record(outcome.elapsed);
        log_line(&job.target, &outcome);
        Stats::add(&stats.checks, 1);
        if outcome.verdict == Verdict::Fail {
            Stats::add(&stats.fails, 1);
        }
        let id = job.target.id;
        let finished = Finished {
            target: job.target,
            outcome,
            at: chrono::Local::now(),
            lag,
        };
        // The writer outlives the workers; a send error only happens if it died, and then
        // there is nobody left to give the result to.
        let _ = ports.results.send(finished);
        let _ = ports.finished.send(id);
    }
}

/// Runs the check; a panic in it (a bug) becomes a failed check instead of a dead worker.
pub fn check_safely(checker: &Checker, target: &Target) -> CheckOutcome {
    let start = Instant::now();
    catch_unwind(AssertUnwindSafe(|| checker.check(target))).unwrap_or_else(|_| {
        let mut trace = Trace::new();
        let description = "internal error: the check panicked (see stderr); please report it";
        trace.fail(description);
        CheckOutcome {
            verdict: Verdict::Fail,
            description: description.into(),
            http_status: None,
            elapsed: start.elapsed(),
            trace,
        }
    })
}

/// The original's line, with the response time added:
/// `[1] HP Cloud Dot COM               GET https://www.hpcloud.com PASS (OK) 12ms`.
pub fn check_line(target: &Target, outcome: &CheckOutcome) -> String {
    format!(
        "[{}] {} {} {} {} ({}) {}ms",
        target.id,
        name_column(&target.name),
        target.method,
        crate::check::redact_url(&target.url),
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
