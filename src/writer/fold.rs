//! Writer thread: folds finished checks into each target's state (the state machine) and into
//! the one row update per target the database is owed; adopts the stored state of targets met
//! for the first time, and forgets targets no longer scheduled here. No I/O.

use std::collections::BTreeSet;
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use super::Writer;
use crate::base::model::{
    AlertKind, CheckResult, Method, NewAlert, Status, TargetId, TargetState, Verdict,
};
use crate::base::rollup;
use crate::base::sight::Seen;
use crate::base::state::{self, RowUpdate};

/// What the writer knows of one target.
pub(super) struct OwnedState {
    pub(super) state: TargetState,
    /// No longer scheduled here: forget it once its row is owed nothing.
    pub(super) forget: bool,
    /// When the last check here ended and what it found, for the time spent in FAIL.
    pub(super) last: Option<(DateTime<Utc>, Status)>,
    /// Its latest check as the sight's window counts it.
    pub(super) seen: Option<Seen>,
}

impl Writer {
    /// One finished check: applied now if the target's state is known, parked otherwise.
    pub(super) fn add(&mut self, f: CheckResult) {
        let id = f.target.id;
        if self.states.contains_key(&id) {
            self.fold(f);
            return;
        }
        self.parked.entry(id).or_default().push(f);
        let reading = self
            .in_flight
            .as_ref()
            .is_some_and(|b| b.reading.contains(&id));
        if !reading {
            self.to_read.insert(id);
        }
    }

    /// Applies a finished check to a known target's state and to what its row is owed.
    pub(super) fn fold(&mut self, f: CheckResult) {
        let t = &f.target;
        let Some(before) = self.states.get(&t.id).map(|o| o.seen) else {
            return;
        };
        let seen = self.see(&f, before);
        let Some(owned) = self.states.get_mut(&t.id) else {
            return;
        };
        owned.seen = Some(seen);
        let at_ms = f.at.timestamp_millis();
        let mut transition = state::transition(
            owned.state,
            f.outcome.verdict,
            state::Thresholds::of(t),
            at_ms,
        );
        let cert = f.outcome.cert.as_deref();
        let cert_due = state::certificate_due(&transition.next, cert, t.cert_warn_days, at_ms);
        if cert_due.is_some() {
            transition.next.cert_alerted_for = cert_due;
        }
        owned.state = transition.next;
        let failed = f.outcome.verdict == Verdict::Fail;
        let ms = f.outcome.elapsed.as_millis() as u64;
        rollup::add_check(&mut self.rollups, t.id, f.at, ms, failed);
        if let Some((since, Status::Fail)) = owned.last {
            rollup::add_fail_time(&mut self.rollups, t.id, since, f.at);
        }
        owned.last = Some((f.at, transition.next.status));
        let at = crate::base::trace::Stamp(&f.at, '.').to_string();
        let update = RowUpdate::new(&transition, &f.outcome, t.url.is_https(), at);
        match self.pending.get_mut(&t.id) {
            Some(owed) => owed.merge(update),
            None => {
                self.pending.insert(t.id, update);
            }
        }
        let certificate = cert_due.map(|_| AlertKind::Certificate);
        let network = f.outcome.error.as_ref().is_some_and(|e| e.is_network());
        for kind in transition.alert.into_iter().chain(certificate) {
            if network && kind == AlertKind::Failure {
                self.raised_from_network(t.id);
            }
            self.push_alert(NewAlert {
                target_id: t.id,
                kind,
                trace: f.outcome.trace.to_string(),
                parent: t.depends_on,
                network: network.then(|| SystemTime::from(f.at)),
                blind: false,
                confirm: (t.method != Method::Push).then_some(t.timeout),
            });
            self.stats.alert_queued();
        }
    }

    /// Whether a check's result came after its target was handed to another node: then it is
    /// dropped, logged and counted, never written.
    pub(super) fn stale(&mut self, f: &CheckResult) -> bool {
        let id = f.target.id;
        let Some(&handed) = self.handed.get(&id) else {
            return false;
        };
        if f.generation > handed {
            // Dispatched after the target came back: results of older checks came before.
            self.handed.remove(&id);
            return false;
        }
        self.stats.add_stale_results(1);
        log::info!(
            "[{id}] check result dropped: the check started before the target was handed to \
             another node, which checks it now"
        );
        true
    }

    /// The target was handed to another node at `generation`: forgotten, and its parked
    /// results of checks dispatched before are dropped like the ones still to come.
    pub(super) fn handed_over(&mut self, id: TargetId, generation: u64) {
        self.handed.insert(id, generation);
        self.forget(id);
        let Some(parked) = self.parked.get_mut(&id) else {
            return;
        };
        let before = parked.len();
        parked.retain(|f| f.generation > generation);
        let dropped = (before - parked.len()) as u64;
        if parked.is_empty() {
            self.parked.remove(&id);
        }
        if dropped > 0 {
            self.stats.add_stale_results(dropped);
            log::info!(
                "[{id}] {dropped} check results dropped: their checks started before the \
                 target was handed to another node, which checks it now"
            );
        }
    }

    pub(super) fn forget(&mut self, id: TargetId) {
        match self.states.get_mut(&id) {
            Some(owned) => owned.forget = true,
            None if self.parked.contains_key(&id) => {
                self.forget_after_read.insert(id);
            }
            None => {}
        }
    }

    /// Drops the state of targets no longer scheduled here whose rows are owed nothing.
    pub(super) fn purge(&mut self) {
        let in_flight = self.in_flight.as_ref().map(|b| &b.ids);
        let pending = &self.pending;
        let window = &mut self.suspicion.window;
        self.states.retain(|id, k| {
            let keep = !k.forget
                || pending.contains_key(id)
                || in_flight.is_some_and(|ids| ids.contains(id));
            if let (false, Some(seen)) = (keep, k.seen) {
                window.forget(seen);
            }
            keep
        });
    }

    /// After a write: the rows written moved on by one; the stale ones (another writer
    /// wrote them since this one read them) are forgotten with what was folded into them
    /// since, so that their next check starts from the row as it is now.
    pub(super) fn moved_on(&mut self, written: &BTreeSet<TargetId>, stale: &[(TargetId, u64)]) {
        let stale_ids: BTreeSet<TargetId> = stale.iter().map(|(id, _)| *id).collect();
        for id in written.difference(&stale_ids) {
            if let Some(owned) = self.states.get_mut(id) {
                owned.state.seq += 1;
            }
        }
        let mut lost = 0;
        for (id, checks) in stale {
            if let Some(seen) = self.states.remove(id).and_then(|o| o.seen) {
                self.suspicion.window.forget(seen);
            }
            let later = self.pending.remove(id).map_or(0, |u| u.counts.checks());
            self.alerts.retain(|a| a.target_id != *id);
            self.stats.add_results_dropped(later);
            lost += checks + later;
            log::debug!("[{id}] written by another writer meanwhile; its state is read again");
        }
        if !stale.is_empty() {
            // Expected when targets change hands: the node giving them up wrote them until
            // its next heartbeat.
            log::info!(
                "{} targets were written meanwhile by another writer (a node taking them \
                 over): {lost} checks of this node not recorded; their state is read again",
                stale.len()
            );
        }
    }

    /// Takes the states read for targets new to the writer, and applies their parked checks.
    pub(super) fn adopt(
        &mut self,
        asked: BTreeSet<TargetId>,
        states: Vec<(TargetId, TargetState)>,
    ) {
        let mut found = BTreeSet::new();
        for (id, state) in states {
            found.insert(id);
            let forget = self.forget_after_read.remove(&id);
            self.states.insert(
                id,
                OwnedState {
                    state,
                    forget,
                    last: None,
                    seen: None,
                },
            );
            for f in self.parked.remove(&id).unwrap_or_default() {
                self.fold(f);
            }
        }
        for id in asked.difference(&found) {
            self.forget_after_read.remove(id);
            let lost = self.parked.remove(id).map_or(0, |p| p.len());
            if lost > 0 {
                self.stats.add_results_dropped(lost as u64);
                log::info!(
                    "[{id}] target deleted before its first write: {lost} checks not recorded"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::base::stats::WriterStats;
    use std::time::Duration;

    use super::*;
    use crate::base::model::{CheckOutcome, Target, ToWriter};
    use crate::writer::batch::Outcome;
    use crossbeam_channel::bounded;

    fn result(id: TargetId, verdict: Verdict) -> CheckResult {
        CheckResult {
            target: Arc::new(Target::new(id, "http://127.0.0.1/")),
            outcome: CheckOutcome {
                verdict,
                error: None,
                description: String::new(),
                http_status: None,
                elapsed: Duration::ZERO,
                trace: crate::base::trace::Trace::new(),
                cert: None,
                phases: None,
            },
            at: chrono::Utc::now(),
            generation: 0,
        }
    }

    fn written(states: Vec<(TargetId, TargetState)>) -> Outcome {
        Outcome::Written {
            checks: 0,
            rows: 0,
            alerts: 0,
            refused: Vec::new(),
            held: None,
            states,
            stale: Vec::new(),
            withheld: Vec::new(),
            withdrawn: Vec::new(),
            took: Duration::ZERO,
        }
    }

    #[test]
    fn a_new_targets_checks_wait_for_its_stored_state_then_apply_in_order() {
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(WriterStats::default(), wake, 100);
        w.take(ToWriter::Checked(result(7, Verdict::Pass)));
        w.take(ToWriter::Checked(result(7, Verdict::Pass)));
        let batch = w.next_batch().expect("a read is owed");
        assert_eq!(batch.read, vec![7]);
        assert!(batch.updates.is_empty());
        w.take(ToWriter::Checked(result(7, Verdict::Pass)));
        assert!(
            w.to_read.is_empty(),
            "not asked twice while the read is in flight"
        );
        let stored = TargetState {
            status: Status::Fail,
            repeated_fails: 4,
            alerted: true,
            repeated_passes: 0,
            last_alerted_ms: None,
            seq: 9,
            cert_alerted_for: None,
        };
        w.settle(written(vec![(7, stored)]));
        let owed = &w.pending[&7];
        assert_eq!(owed.counts.pass, 3);
        assert_eq!(owed.previous_status, Status::Pass);
        let kinds: Vec<AlertKind> = w.alerts.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            vec![AlertKind::Success],
            "one recovery from the stored state"
        );
    }

    #[test]
    fn a_forgotten_target_goes_once_its_row_is_owed_nothing() {
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(WriterStats::default(), wake, 100);
        w.take(ToWriter::Checked(result(3, Verdict::Fail)));
        let _ = w.next_batch();
        w.settle(written(vec![(3, TargetState::default())]));
        w.take(ToWriter::Forget(3));
        assert!(w.states.contains_key(&3), "kept while its update is owed");
        let _ = w.next_batch();
        w.settle(written(Vec::new()));
        assert!(!w.states.contains_key(&3));
    }

    #[test]
    fn a_result_of_a_check_started_before_a_hand_over_is_dropped_and_counted() {
        let stats = WriterStats::default();
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(stats.clone(), wake, 100);
        let at = |generation, verdict| CheckResult {
            generation,
            ..result(4, verdict)
        };
        w.take(ToWriter::Checked(at(1, Verdict::Pass)));
        let _ = w.next_batch();
        w.settle(written(vec![(4, TargetState::default())]));
        let _ = w.next_batch();
        w.settle(written(Vec::new()));
        assert!(!w.states.contains_key(&4) || w.pending.is_empty());
        // Handed over at generation 3; a check dispatched at 2 ends afterwards, failed.
        w.take(ToWriter::HandedOver {
            id: 4,
            generation: 3,
        });
        w.take(ToWriter::Checked(at(2, Verdict::Fail)));
        w.take(ToWriter::Checked(at(3, Verdict::Fail)));
        assert!(w.pending.is_empty() && w.parked.is_empty() && w.alerts.is_empty());
        assert_eq!((stats.stale_results(), stats.results_dropped()), (2, 2));
        // Handed back: a check dispatched since is written as usual.
        w.take(ToWriter::Checked(at(5, Verdict::Pass)));
        assert!(w.pending.contains_key(&4) || w.to_read.contains(&4));
        assert!(w.handed.is_empty());
    }

    #[test]
    fn parked_results_from_before_a_hand_over_are_dropped() {
        let stats = WriterStats::default();
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(stats.clone(), wake, 100);
        w.take(ToWriter::Checked(CheckResult {
            generation: 1,
            ..result(6, Verdict::Fail)
        }));
        assert!(w.parked.contains_key(&6));
        w.take(ToWriter::HandedOver {
            id: 6,
            generation: 1,
        });
        assert!(!w.parked.contains_key(&6));
        assert_eq!(stats.stale_results(), 1);
        let _ = w.next_batch();
        let stored = TargetState::default();
        w.settle(written(vec![(6, stored)]));
        assert!(w.alerts.is_empty() && w.pending.is_empty());
        let _ = w.next_batch();
        w.settle(written(Vec::new()));
        assert!(!w.states.contains_key(&6), "forgotten once read");
    }

    #[test]
    fn checks_of_a_deleted_target_are_counted_as_dropped() {
        let stats = WriterStats::default();
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(stats.clone(), wake, 100);
        w.take(ToWriter::Checked(result(9, Verdict::Pass)));
        let _ = w.next_batch();
        w.settle(written(Vec::new()));
        assert!(w.settled());
        assert_eq!(stats.results_dropped(), 1);
    }
}
