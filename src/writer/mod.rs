//! The writer thread ("skypunch-writer"): the one owner of every target's result state
//! (status, `repeated_fails`, `alerted`). It turns finished checks into row updates and
//! alerts, and hands them in batches to the store thread (`store.rs`), which writes each
//! batch in one transaction. Reads [`Report`]s (finished checks from the workers, targets to
//! forget from the loader); wakes the notifier after a batch that queued alerts. It never
//! waits for the database itself, so a hanging write cannot hold up the workers.
//!
//! The first time it meets a target it has the store thread read the row's state, and parks
//! that target's results until the answer comes; after that the row is only written, never
//! read back, so an edit of the row cannot bring back an older state. A target the loader no
//! longer schedules is forgotten once its row is owed nothing.
//!
//! While the database is away, results fold into one pending update per target (so memory is
//! bounded by the number of targets) and alerts queue up to `MaxPendingAlerts`; all are
//! written when it is back. A passing conflict (lock wait timeout, deadlock) is retried at
//! once. Only a row refused for its values is dropped, logged with the reason and counted.

mod batch;
mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::base::model::{
    AlertKind, CheckResult, NewAlert, Report, Status, TargetId, TargetState, Verdict,
};
use crate::base::rollup::{self, Rollups};
use crate::base::state::{self, RowUpdate};
use crate::base::stats::{StoreStats, WriterStats};
use crate::base::stop::Stop;
use crate::db::{self, Class};
use batch::{Batch, Outcome};

/// Write at least this often while results come in.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Room for the results that arrive while the writer sleeps and writes: seconds of checks at
/// 15,000 a second. When it is full, workers wait for the writer (back-pressure).
pub const RESULTS_QUEUE: usize = 32_768;
/// Between tries while the database is away.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long shutdown waits for the database when no stop deadline was set (the workers all
/// ended without a stop request).
const FINAL_FLUSH_DEFAULT: Duration = Duration::from_secs(15);
/// Left of the stop deadline for the main thread to log its account and exit.
const FINAL_MARGIN: Duration = Duration::from_secs(1);

/// Rollups go to the database this often (and at stop): their cost grows with the number
/// of targets, not the check rate; a SIGKILL loses at most this much of them.
const ROLLUP_EVERY: Duration = Duration::from_secs(60);

/// What the writer knows of one target.
struct OwnedState {
    state: TargetState,
    /// No longer scheduled here: forget it once its row is owed nothing.
    forget: bool,
    /// When the last check here ended and what it found, for the time spent in FAIL.
    last: Option<(DateTime<Utc>, Status)>,
}

/// The batch the store thread is writing.
struct InFlight {
    ids: BTreeSet<TargetId>,
    reading: BTreeSet<TargetId>,
    checks: u64,
    alerts: usize,
}

/// The writer's memory: state per target, and what the database is owed.
pub struct Writer {
    stats: WriterStats,
    wake_notifier: Sender<()>,
    max_alerts: usize,
    states: HashMap<TargetId, OwnedState>,
    /// Checks of targets whose stored state is still to be read, in arrival order.
    parked: HashMap<TargetId, Vec<CheckResult>>,
    /// Targets whose state the next batch reads.
    to_read: BTreeSet<TargetId>,
    /// Targets to forget as soon as their state has been read.
    forget_after_read: HashSet<TargetId>,
    pending: BTreeMap<TargetId, RowUpdate>,
    alerts: VecDeque<NewAlert>,
    in_flight: Option<InFlight>,
    /// No batch before this instant (after a failed write).
    retry_at: Option<Instant>,
    outage: Option<Outage>,
    /// Alerts dropped past `MaxPendingAlerts` during the current outage.
    dropped_alerts: u64,
    /// Rollups not yet handed to the store thread, and when they last were.
    rollups: Rollups,
    rollups_sent: Instant,
    /// Stopping: the rollups go with the next batch, whatever their age.
    flush_all: bool,
    /// A write was refused by the cluster fence and logged, and none got through since.
    fence_logged: bool,
}

/// An ongoing database outage, for the two log lines that bracket it.
struct Outage {
    since: Instant,
    delay: Duration,
}

impl Writer {
    pub fn new(stats: WriterStats, wake_notifier: Sender<()>, max_alerts: usize) -> Writer {
        Writer {
            stats,
            wake_notifier,
            max_alerts,
            states: HashMap::new(),
            parked: HashMap::new(),
            to_read: BTreeSet::new(),
            forget_after_read: HashSet::new(),
            pending: BTreeMap::new(),
            alerts: VecDeque::new(),
            in_flight: None,
            retry_at: None,
            outage: None,
            dropped_alerts: 0,
            rollups: Rollups::new(),
            rollups_sent: Instant::now(),
            flush_all: false,
            fence_logged: false,
        }
    }

    /// Takes in one report from a worker or the loader.
    pub fn take(&mut self, report: Report) {
        match report {
            Report::Checked(f) => self.add(f),
            Report::Forget(id) => self.forget(id),
        }
    }

    /// One finished check: applied now if the target's state is known, parked otherwise.
    fn add(&mut self, f: CheckResult) {
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
    fn fold(&mut self, f: CheckResult) {
        let t = &f.target;
        let Some(owned) = self.states.get_mut(&t.id) else {
            return;
        };
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
        for kind in transition.alert.into_iter().chain(certificate) {
            self.push_alert(NewAlert {
                target_id: t.id,
                kind,
                trace: f.outcome.trace.to_string(),
            });
            self.stats.alert_queued();
        }
    }

    fn forget(&mut self, id: TargetId) {
        match self.states.get_mut(&id) {
            Some(owned) => owned.forget = true,
            None if self.parked.contains_key(&id) => {
                self.forget_after_read.insert(id);
            }
            None => {}
        }
    }

    /// Drops the state of targets no longer scheduled here whose rows are owed nothing.
    fn purge(&mut self) {
        let in_flight = self.in_flight.as_ref().map(|b| &b.ids);
        let pending = &self.pending;
        self.states.retain(|id, k| {
            !k.forget || pending.contains_key(id) || in_flight.is_some_and(|ids| ids.contains(id))
        });
    }

    /// Holds an alert, dropping the oldest past `MaxPendingAlerts`: logged for the first drop
    /// and counted after that, so a long outage does not flood the log.
    fn push_alert(&mut self, alert: NewAlert) {
        if self.alerts.len() >= self.max_alerts {
            if let Some(lost) = self.alerts.pop_front() {
                if self.dropped_alerts == 0 {
                    log::error!(
                        "alert buffer full ({} held while the database is away): dropping the \
                         oldest, starting with a {} alert for target {}; raise MaxPendingAlerts \
                         to hold more",
                        self.max_alerts,
                        lost.kind.as_str(),
                        lost.target_id
                    );
                }
                self.dropped_alerts += 1;
                self.stats.alert_dropped();
            }
        }
        self.alerts.push_back(alert);
    }

    fn held_checks(&self) -> u64 {
        let pending: u64 = self.pending.values().map(|u| u.counts.checks()).sum();
        let parked: usize = self.parked.values().map(Vec::len).sum();
        pending + parked as u64 + self.in_flight.as_ref().map_or(0, |b| b.checks)
    }

    fn held_alerts(&self) -> usize {
        self.alerts.len() + self.in_flight.as_ref().map_or(0, |b| b.alerts)
    }

    /// Publishes what is held, for the stats line and the account given at stop.
    fn publish(&self) {
        self.stats
            .set_held(self.held_checks(), self.held_alerts() as u64);
    }

    /// True when nothing is owed and nothing is being written or read.
    fn settled(&self) -> bool {
        self.pending.is_empty()
            && self.alerts.is_empty()
            && self.parked.is_empty()
            && self.in_flight.is_none()
            && self.rollups.is_empty()
    }

    /// The batch to write now, if one is owed and neither a write in flight nor a retry
    /// delay says to wait.
    fn next_batch(&mut self) -> Option<Batch> {
        let waiting = self.retry_at.is_some_and(|t| Instant::now() < t);
        let rollups_due = !self.rollups.is_empty()
            && (self.flush_all || self.rollups_sent.elapsed() >= ROLLUP_EVERY);
        let idle = self.pending.is_empty()
            && self.alerts.is_empty()
            && self.to_read.is_empty()
            && !rollups_due;
        if self.in_flight.is_some() || waiting || idle {
            return None;
        }
        let rollups = if rollups_due {
            self.rollups_sent = Instant::now();
            std::mem::take(&mut self.rollups)
        } else {
            Rollups::new()
        };
        let mut updates = std::mem::take(&mut self.pending);
        for (id, update) in &mut updates {
            // Written only if the row still holds what this writer last wrote or read.
            update.seq = self.states.get(id).map_or(0, |o| o.state.seq);
        }
        let batch = Batch {
            updates,
            alerts: std::mem::take(&mut self.alerts).into(),
            read: std::mem::take(&mut self.to_read).into_iter().collect(),
            rollups,
        };
        self.in_flight = Some(InFlight {
            ids: batch.updates.keys().copied().collect(),
            reading: batch.read.iter().copied().collect(),
            checks: batch.checks(),
            alerts: batch.alerts.len(),
        });
        Some(batch)
    }

    /// Takes in what the store thread did with the batch in flight.
    fn settle(&mut self, outcome: Outcome) {
        let (reading, written_ids) = self
            .in_flight
            .take()
            .map(|b| (b.reading, b.ids))
            .unwrap_or_default();
        match outcome {
            Outcome::Written {
                checks,
                rows,
                alerts,
                refused,
                held,
                states,
                stale,
                took,
            } => {
                self.stats.batch_written(took, rows as u64);
                if rows + alerts > 0 {
                    log::debug!(
                        "wrote {checks} checks of {rows} targets and {alerts} alerts in {} ms",
                        took.as_millis()
                    );
                }
                let mut written_ids = written_ids;
                for r in &refused {
                    written_ids.remove(&r.id);
                }
                if let Some((batch, _)) = &held {
                    written_ids.retain(|id| !batch.updates.contains_key(id));
                }
                self.drop_refused(refused);
                self.moved_on(&written_ids, &stale);
                self.adopt(reading, states);
                if alerts > 0 {
                    // A full channel means a wake is already waiting: nothing is lost.
                    let _ = self.wake_notifier.try_send(());
                }
                match held {
                    Some((batch, error)) => {
                        self.take_back(batch);
                        self.failed(&error, Instant::now());
                    }
                    None => self.recovered(checks, rows, alerts),
                }
            }
            Outcome::Failed { batch, error, .. } if error.class() == Class::Fenced => {
                self.fenced(batch, &error);
            }
            Outcome::Failed {
                batch,
                error,
                tried,
            } => {
                self.take_back(batch);
                self.failed(&error, tried);
            }
        }
        self.purge();
    }

    /// After a write: the rows written moved on by one; the stale ones (another writer
    /// wrote them since this one read them) are forgotten with what was folded into them
    /// since, so that their next check starts from the row as it is now.
    fn moved_on(&mut self, written: &BTreeSet<TargetId>, stale: &[(TargetId, u64)]) {
        let stale_ids: BTreeSet<TargetId> = stale.iter().map(|(id, _)| *id).collect();
        for id in written.difference(&stale_ids) {
            if let Some(owned) = self.states.get_mut(id) {
                owned.state.seq += 1;
            }
        }
        let mut lost = 0;
        for (id, checks) in stale {
            self.states.remove(id);
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
                "{} targets were written meanwhile by another writer (a node taking them over, \
                 or `targets ID test`): {lost} checks of this node not recorded; their state \
                 is read again",
                stale.len()
            );
        }
    }

    /// This node was declared dead by the others, who took its targets over: what it holds
    /// is theirs to record now. Dropped, counted and logged; the cluster thread joins again.
    fn fenced(&mut self, batch: Batch, error: &db::Error) {
        self.take_back(batch);
        let checks = self
            .pending
            .values()
            .map(|u| u.counts.checks())
            .sum::<u64>();
        let alerts = self.alerts.len();
        self.stats.add_results_dropped(checks);
        self.pending.clear();
        self.alerts.clear();
        self.states.clear();
        // The hourly rollups of those checks go too: the nodes that took the targets over
        // count their own.
        self.rollups.clear();
        if checks + alerts as u64 > 0 || !self.fence_logged {
            log::error!(
                "{error}: the {checks} checks and {alerts} alerts this node held are not recorded"
            );
        }
        self.fence_logged = true;
        self.retry_at = Some(Instant::now() + FLUSH_EVERY);
    }

    fn drop_refused(&mut self, refused: Vec<batch::RefusedRow>) {
        for r in refused {
            self.stats.add_results_dropped(r.checks);
            log::error!(
                "[{}] the results of {} checks and {} alerts were dropped: the row refused them \
                 ({}); fix the row's values",
                r.id,
                r.checks,
                r.alerts,
                r.error
            );
        }
    }

    /// Takes the states read for targets new to the writer, and applies their parked checks.
    fn adopt(&mut self, asked: BTreeSet<TargetId>, states: Vec<(TargetId, TargetState)>) {
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

    /// Puts a batch that could not be written back in front of what came since.
    fn take_back(&mut self, batch: Batch) {
        for (id, mut older) in batch.updates {
            if let Some(newer) = self.pending.remove(&id) {
                older.merge(newer);
            }
            self.pending.insert(id, older);
        }
        let newer = std::mem::take(&mut self.alerts);
        for alert in batch.alerts.into_iter().chain(newer) {
            self.push_alert(alert);
        }
        self.to_read.extend(batch.read);
        rollup::merge(&mut self.rollups, batch.rollups);
    }

    /// A write that did not go through: a passing conflict is retried at once; anything else
    /// starts (or continues) an outage with backoff.
    fn failed(&mut self, e: &db::Error, tried: Instant) {
        let now = Instant::now();
        if e.class() == Class::Transient && self.outage.is_none() {
            log::warn!("writing check results met a passing conflict, retrying: {e}");
            self.retry_at = Some(now + FLUSH_EVERY);
            return;
        }
        let delay = match &mut self.outage {
            None => {
                log::error!("cannot write check results, holding them in memory and retrying: {e}");
                // From the try, not its failure: a checkout waits up to ConnectTimeout
                // before it fails, and that wait was already part of the outage.
                self.outage = Some(Outage {
                    since: tried,
                    delay: RETRY_MIN,
                });
                RETRY_MIN
            }
            Some(o) => {
                o.delay = (o.delay * 2).min(RETRY_MAX);
                log::debug!(
                    "writing check results failed again, retrying in {} ms: {e}",
                    o.delay.as_millis()
                );
                o.delay
            }
        };
        self.retry_at = Some(now + delay);
    }

    fn recovered(&mut self, checks: u64, rows: usize, alerts: usize) {
        self.retry_at = None;
        self.fence_logged = false;
        if let Some(o) = self.outage.take() {
            log::warn!(
                "database writes work again after {:.1}s: wrote the {checks} checks of {rows} \
                 targets and {alerts} alerts held meanwhile",
                o.since.elapsed().as_secs_f64()
            );
        }
        if self.dropped_alerts > 0 {
            log::error!(
                "{} alerts were dropped during the outage (MaxPendingAlerts {})",
                self.dropped_alerts,
                self.max_alerts
            );
            self.dropped_alerts = 0;
        }
    }
}

/// The writer's two channel ends to the store thread.
pub struct StorePorts {
    pub batches: Sender<Batch>,
    pub outcomes: Receiver<Outcome>,
}

/// The store thread's ends.
pub struct StoreEnds {
    pub batches: Receiver<Batch>,
    pub outcomes: Sender<Outcome>,
}

/// The channels between the writer and the store thread: one batch at a time.
pub fn store_channels() -> (StorePorts, StoreEnds) {
    let (batch_tx, batch_rx) = crossbeam_channel::bounded(1);
    let (outcome_tx, outcome_rx) = crossbeam_channel::bounded(1);
    (
        StorePorts {
            batches: batch_tx,
            outcomes: outcome_rx,
        },
        StoreEnds {
            batches: batch_rx,
            outcomes: outcome_tx,
        },
    )
}

/// The store thread's body.
pub fn run_store(
    pool: db::Pool,
    stats: StoreStats,
    member: Arc<crate::cluster::Member>,
    ends: StoreEnds,
) {
    store::run(pool, stats, member, ends.batches, ends.outcomes)
}

/// The thread body: runs until the checks in flight at a stop are over (finished, or
/// abandoned past `StopGrace`) or every worker and the loader have dropped their senders,
/// then writes what is left, the rollups of the current minute included, for as long as the
/// stop deadline allows.
///
/// It sleeps between rounds and takes the results that came meanwhile all at once, rather
/// than waking for each: at thousands of checks a second, a wake-up per result cost more than
/// the result itself. The results channel is sized to hold what arrives between rounds.
pub fn run(mut writer: Writer, reports: Receiver<Report>, store: StorePorts, stop: Stop) {
    loop {
        let started = Instant::now();
        crate::base::fault::point("writer");
        // Looked at before the drain: every result handed in before the checks were over is
        // in the channel by then, so this drain takes the last of them.
        let over = stop.checks_over();
        let open = drain(&mut writer, &reports);
        // A dead store thread is the supervisor's to act on: it stops the daemon.
        round(&mut writer, &store);
        if !open || over {
            break;
        }
        std::thread::sleep(FLUSH_EVERY.saturating_sub(started.elapsed()));
    }
    let allowed = stop.time_left().map_or(FINAL_FLUSH_DEFAULT, |left| {
        left.saturating_sub(FINAL_MARGIN)
    });
    final_rounds(&mut writer, &store, Instant::now() + allowed);
    // Dropping the batch sender ends the store thread, unless a write still hangs on the
    // database: that one is left to the process's exit.
}

/// Takes every report waiting; false once the workers and the loader are all gone.
fn drain(writer: &mut Writer, reports: &Receiver<Report>) -> bool {
    loop {
        match reports.try_recv() {
            Ok(r) => writer.take(r),
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
}

/// Settles the write in flight if it is done, and starts the next one if one is owed; false
/// once the store thread is gone (it died: nothing more can be written).
fn round(writer: &mut Writer, store: &StorePorts) -> bool {
    match store.outcomes.try_recv() {
        Ok(outcome) => writer.settle(outcome),
        Err(TryRecvError::Empty) => {}
        Err(TryRecvError::Disconnected) => {
            writer.publish();
            return false;
        }
    }
    if let Some(batch) = writer.next_batch() {
        // The store thread takes one batch at a time and only fails to if it died; the
        // supervisor then stops the daemon, and the batch is accounted for as unwritten.
        if let Err(e) = store.batches.send(batch) {
            writer.in_flight = None;
            writer.take_back(e.into_inner());
            writer.retry_at = Some(Instant::now() + RETRY_MAX);
        }
    }
    writer.publish();
    true
}

/// Writes what is left at shutdown, until `deadline`; the main thread's account says what
/// was left if the database did not take it in time.
fn final_rounds(writer: &mut Writer, store: &StorePorts, deadline: Instant) {
    writer.flush_all = true;
    // Without a store thread the rest cannot be written: waiting out the deadline would
    // only delay the exit.
    while !writer.settled() && Instant::now() < deadline && round(writer, store) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !writer.settled() {
        log::error!(
            "shutdown: the database did not take the last results in time; {} checks and {} \
             alerts are not written",
            writer.held_checks(),
            writer.held_alerts()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::model::{AlertKind, CheckOutcome, Status, Target, Verdict};
    use crate::base::state::Counts;
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
            },
            at: chrono::Utc::now(),
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
            took: Duration::ZERO,
        }
    }

    #[test]
    fn a_new_targets_checks_wait_for_its_stored_state_then_apply_in_order() {
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(WriterStats::default(), wake, 100);
        w.take(Report::Checked(result(7, Verdict::Pass)));
        w.take(Report::Checked(result(7, Verdict::Pass)));
        let batch = w.next_batch().expect("a read is owed");
        assert_eq!(batch.read, vec![7]);
        assert!(batch.updates.is_empty());
        w.take(Report::Checked(result(7, Verdict::Pass)));
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
        w.take(Report::Checked(result(3, Verdict::Fail)));
        let _ = w.next_batch();
        w.settle(written(vec![(3, TargetState::default())]));
        w.take(Report::Forget(3));
        assert!(w.states.contains_key(&3), "kept while its update is owed");
        let _ = w.next_batch();
        w.settle(written(Vec::new()));
        assert!(!w.states.contains_key(&3));
    }

    #[test]
    fn checks_of_a_deleted_target_are_counted_as_dropped() {
        let stats = WriterStats::default();
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(stats.clone(), wake, 100);
        w.take(Report::Checked(result(9, Verdict::Pass)));
        let _ = w.next_batch();
        w.settle(written(Vec::new()));
        assert!(w.settled());
        assert_eq!(stats.results_dropped(), 1);
    }

    #[test]
    fn a_deadlock_is_retried_at_once_without_an_outage() {
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(WriterStats::default(), wake, 100);
        w.pending
            .insert(1, update(Status::Pass, Counts::default(), "t"));
        let batch = w.next_batch().unwrap();
        let deadlock = mysql::Error::MySqlError(mysql::MySqlError {
            state: "40001".into(),
            message: "Deadlock found".into(),
            code: 1213,
        });
        w.settle(Outcome::Failed {
            batch,
            error: db::Error::query("writing")(deadlock),
            tried: Instant::now(),
        });
        assert!(w.outage.is_none());
        assert!(w.pending.contains_key(&1));
        assert!(w.retry_at.unwrap() <= Instant::now() + FLUSH_EVERY);
    }

    fn update(status: Status, counts: Counts, at: &str) -> RowUpdate {
        RowUpdate {
            status,
            previous_status: Status::New,
            description: String::new(),
            at: at.into(),
            counts,
            repeated_fails: 0,
            repeated_passes: 0,
            alerted: false,
            last_alerted: None,
            http_status: None,
            response_ms: 0,
            trace: String::new(),
            incidents: Vec::new(),
            seq: 0,
            cert: crate::base::state::CertSeen::NotTls,
            cert_alerted_for: None,
        }
    }

    fn alert(id: TargetId) -> NewAlert {
        NewAlert {
            target_id: id,
            kind: AlertKind::Failure,
            trace: String::new(),
        }
    }

    #[test]
    fn a_failed_batch_goes_back_in_front_of_newer_results_losing_nothing() {
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(WriterStats::default(), wake, 100);
        let fail = Counts {
            fail: 1,
            network: 1,
            ..Counts::default()
        };
        let pass = Counts {
            pass: 1,
            c200: 1,
            ..Counts::default()
        };
        w.pending.insert(1, update(Status::Fail, fail, "old"));
        w.alerts.push_back(alert(1));
        let batch = w.next_batch().expect("a batch is owed");
        assert!(w.next_batch().is_none(), "one write at a time");

        w.pending.insert(1, update(Status::Pass, pass, "new"));
        w.pending.insert(2, update(Status::Pass, pass, "new"));
        w.alerts.push_back(alert(2));
        let error = db::Error::Connect {
            db: "x".into(),
            reason: "down".into(),
            source: None,
        };
        w.settle(Outcome::Failed {
            batch,
            error,
            tried: Instant::now(),
        });

        let one = &w.pending[&1];
        assert_eq!(
            (one.status, one.at.as_str()),
            (Status::Pass, "new"),
            "the latest check wins"
        );
        assert_eq!(
            (one.counts.pass, one.counts.fail, one.counts.network),
            (1, 1, 1),
            "counters add up"
        );
        let order: Vec<TargetId> = w.alerts.iter().map(|a| a.target_id).collect();
        assert_eq!(order, vec![1, 2], "older alerts first");
        assert!(
            w.next_batch().is_none(),
            "the outage's backoff holds the retry"
        );
    }

    #[test]
    fn past_the_alert_bound_the_oldest_are_dropped_and_counted() {
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(WriterStats::default(), wake, 3);
        for id in 1..=5 {
            w.push_alert(alert(id));
        }
        let held: Vec<TargetId> = w.alerts.iter().map(|a| a.target_id).collect();
        assert_eq!(held, vec![3, 4, 5]);
        assert_eq!(w.dropped_alerts, 2);
    }
}
