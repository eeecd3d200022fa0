//! The sight thread ("skypunch-sight"): whether this node can reach its network. Every
//! [`EVERY`] (and at once when the store thread waits for a verdict or the writer's suspicion
//! changes) it probes `[settings] Connectivity` by TCP connect ([`probe`]); without a
//! Connectivity list, it takes the writer's suspicion (most of the targets failing with
//! network errors) and, while it holds, probes a sample of the targets the node could not
//! reach, to tell when it sees again. It publishes the verdict on the shared
//! `base::sight::Sight`, and when it changes, logs one line and sends one notice to every
//! enabled notifier ([`crate::notifier::notice`]). Reads the `notifiers` table; writes
//! nothing to the database.
//!
//! What a blind node does is the other stages' doing: the store thread holds the FAILURE
//! alerts of network errors, the cluster thread hands the targets to the other nodes.

mod probe;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{after, select, Receiver};

use crate::base::sight::{Sight, MIN_TARGETS};
use crate::base::stop::Stop;
use crate::config::Config;
use crate::db::Pool;
use crate::notifier::notice::{self, Notice};

/// Between two probe rounds while nothing asks for one.
pub const EVERY: Duration = Duration::from_secs(10);
/// The longest probe round: every connect (and name lookup) of it.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Rounds asked for by waiting store threads come no closer together than this, so that a
/// node blind behind a closed port does not probe in a loop.
const MIN_GAP: Duration = Duration::from_millis(200);

/// The thread's state.
pub struct Watch {
    sight: Arc<Sight>,
    config: Arc<Config>,
    pool: Pool,
    /// Connectivity, as `host:port`.
    list: Vec<String>,
    /// When the node went blind, while it is.
    since: Option<Instant>,
}

impl Watch {
    pub fn new(sight: Arc<Sight>, config: Arc<Config>, pool: Pool) -> Watch {
        let list = config.connectivity.iter().map(|e| e.to_string()).collect();
        Watch {
            sight,
            config,
            pool,
            list,
            since: None,
        }
    }

    /// One look: a probe round when one is due, the verdict published, and the notice sent
    /// when it changed.
    fn look(&mut self, stop: &Stop) {
        let started = SystemTime::now();
        let (blind, why) = if self.sight.probing() {
            self.probe_connectivity(started)
        } else {
            self.judge_suspicion()
        };
        if self.sight.publish(blind, started) {
            self.changed(blind, why, stop);
        }
    }

    /// Blind when no Connectivity address answered.
    fn probe_connectivity(&self, started: SystemTime) -> (bool, String) {
        let answers = probe::round(&self.list, PROBE_TIMEOUT, self.config.source_address);
        let blind = answers.iter().all(Result::is_err);
        self.sight.record_probe(started, blind);
        let failures: Vec<String> = self
            .list
            .iter()
            .zip(&answers)
            .filter_map(|(entry, a)| a.as_ref().err().map(|e| format!("{entry}: {e}")))
            .collect();
        if blind {
            log::debug!(
                "sight: no Connectivity address answered: {}",
                failures.join("; ")
            );
        }
        let why = if blind {
            format!(
                "none of its Connectivity addresses answered ({})",
                failures.join("; ")
            )
        } else {
            "a Connectivity address answers".to_string()
        };
        (blind, why)
    }

    /// Blind while the writer suspects the node, until more than half of the sample of
    /// addresses it could not reach answers again.
    fn judge_suspicion(&self) -> (bool, String) {
        let (_, suspect, sample) = self.sight.inputs();
        let percent = self.config.blind_percent;
        if !suspect {
            let why = format!(
                "of the targets it checked in the last minute (at least {MIN_TARGETS}), no more \
                 than {percent}% failed with network errors"
            );
            return (false, why);
        }
        let why = format!(
            "more than {percent}% of the targets it checked in the last minute (at least \
             {MIN_TARGETS}) failed with network errors (BlindPercent)"
        );
        if sample.is_empty() {
            return (true, why);
        }
        let answers = probe::round(&sample, PROBE_TIMEOUT, self.config.source_address);
        let answered = answers.iter().filter(|a| a.is_ok()).count();
        if answered * 2 > sample.len() {
            self.sight.clear_suspicion();
            return (
                false,
                format!(
                    "{answered} of {} targets it could not reach answer again",
                    sample.len()
                ),
            );
        }
        (true, why)
    }

    /// The verdict changed: one line in the log, one notice to every notifier.
    fn changed(&mut self, blind: bool, why: String, stop: &Stop) {
        let node = self.config.cluster.node_name();
        let reason = if blind {
            self.since = Some(Instant::now());
            log::error!(
                "sight: this node ({node}) cannot reach its network: {why}; it holds the \
                 FAILURE alerts of network errors and, in a cluster, hands its targets to the \
                 other nodes until it sees again"
            );
            format!(
                "{why}. Its FAILURE alerts of network errors are held; in a cluster, the other \
                 nodes check its targets until it sees again."
            )
        } else {
            let secs = self.since.take().map_or(0, |t| t.elapsed().as_secs());
            log::warn!(
                "sight: this node ({node}) sees its network again after {secs} s ({why}); \
                 targets still failing alert at their next check"
            );
            format!(
                "{why}. Blind for {secs} s: targets still failing alert at their next check; \
                 those fine now send nothing."
            )
        };
        let notice = Notice {
            node,
            blind,
            reason,
        };
        notice::send(&self.config, &self.pool, &notice, stop);
    }
}

/// The thread body: a look at start, then one every [`EVERY`] or when asked on `wanted`,
/// until the stop.
pub fn run(mut watch: Watch, wanted: Receiver<()>, stop: Stop) {
    loop {
        crate::base::fault::point("sight");
        let started = Instant::now();
        // A look that panics (a bug) is logged by the panic hook and tried at the next one:
        // the node's sight must not stop the daemon.
        let looked = catch_unwind(AssertUnwindSafe(|| watch.look(&stop)));
        if looked.is_err() {
            log::error!("sight: a look panicked; trying again at the next one");
        }
        let gap = MIN_GAP.saturating_sub(started.elapsed());
        select! {
            recv(wanted) -> msg => if msg.is_err() { break },
            recv(after(EVERY)) -> _ => continue,
            recv(stop.channel()) -> _ => break,
        }
        if stop.sleep(gap) {
            break;
        }
    }
    watch.sight.retire();
}
