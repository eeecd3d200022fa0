//! The confirming checks ("skypunch-confirm-N", in the workers' stage): each thread takes a
//! request the confirm thread took for another node, checks the target with the workers'
//! check function (same checker, same timeouts, same trace), and hands back what it found.
//! Touches no database; its result is not recorded on the target's row (the node that owns
//! the target records its own checks).

use crossbeam_channel::{Receiver, Sender};

use super::Job;
use crate::base::model::Verdict;
use crate::base::sight::Sight;
use crate::check::sockets::{Ended, InFlight};
use crate::check::Checker;
use crate::db::confirm::poll::{Answer, Claim};

/// A confirming check's answer, for the confirm thread to write.
#[derive(Debug)]
pub struct Done {
    pub claim: Claim,
    pub answer: Answer,
    /// The check's trace; for [`Answer::None`], why there is none, on its first line.
    pub trace: String,
    /// The check line, as a worker logs it.
    pub line: String,
}

/// The thread body: until the confirm thread closes the queue.
pub fn run(
    checker: &Checker,
    sight: &Sight,
    in_flight: &InFlight,
    jobs: Receiver<Job>,
    done: Sender<Done>,
) {
    let slot = in_flight.join();
    for job in jobs {
        let Job { claim, target } = job;
        let line_of = |answer: &str| format!("[{}] {answer}", target.id);
        if !slot.begin() {
            let why = "this node is stopping";
            let _ = done.send(none(claim, why, line_of(why)));
            continue;
        }
        let outcome = crate::worker::check_safely(checker, &target);
        // A failure the stop caused by cutting the check's sockets says nothing of the target.
        let cut = slot.end(outcome.verdict == Verdict::Pass) == Ended::Abandoned;
        let line = crate::worker::check_line(&target, &outcome);
        let reply = match outcome.verdict {
            _ if cut => none(claim, "this node stopped during the check", line),
            Verdict::Pass => answer(claim, Answer::Pass, outcome.trace.to_string(), line),
            // A node that cannot reach its network would confirm every failure it is asked
            // about: it says it could not tell instead.
            Verdict::Fail if sight.blind() => {
                none(claim, "this node cannot reach its network", line)
            }
            Verdict::Fail => answer(claim, Answer::Fail, outcome.trace.to_string(), line),
        };
        if done.send(reply).is_err() {
            return;
        }
    }
}

fn answer(claim: Claim, answer: Answer, trace: String, line: String) -> Done {
    Done {
        claim,
        answer,
        trace,
        line,
    }
}

fn none(claim: Claim, why: &str, line: String) -> Done {
    answer(claim, Answer::None, format!("{why}\n"), line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::model::Target;
    use std::sync::Arc;

    #[test]
    fn a_target_is_checked_with_the_workers_check_and_its_trace_comes_back() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let checker = Checker::new(crate::check::CheckSettings::default());
        let (sight, in_flight) = (Sight::new(false).0, InFlight::default());
        let claim = Claim {
            id: 9,
            target_id: 3,
            requested_by: "mon-1".into(),
        };
        let target = Arc::new(Target::new(3, &url));
        jobs_tx.send(Job { claim, target }).unwrap();
        drop(jobs_tx);
        run(&checker, &sight, &in_flight, jobs_rx, done_tx);
        let d = done_rx.recv().unwrap();
        assert_eq!(
            (d.claim.id, d.answer),
            (9, Answer::Fail),
            "nothing listens there"
        );
        assert!(d.trace.contains("[Fail]"), "{}", d.trace);
        assert!(d.line.starts_with("[3] "), "{}", d.line);
    }
}
