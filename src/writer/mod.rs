//! The writer thread ("skypunch-writer"): owns every target's result state, turns finished
//! checks into row updates and alerts, and hands them in batches to the store thread
//! (`store.rs`), which writes each batch in one transaction. Reads [`Finished`] from the
//! workers; wakes the notifier after a batch that queued alerts. It never waits for the
//! database itself, so a hanging write cannot hold up the workers.
//!
//! While the database is away, results fold into one pending update per target (so memory is
//! bounded by the number of targets) and alerts queue up to `MaxPendingAlerts`; all are written
//! when it is back. Nothing is dropped unless that bound is passed, and then it is logged.

mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};

use crate::db::results::NewAlert;
use crate::db::{self, Pool};
use crate::model::{Finished, TargetId, TargetState};
use crate::state::{self, RowUpdate};
use crate::stats::Stats;
use store::{Batch, Outcome};

/// Write at least this often while results come in.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Room for the results that arrive while the writer sleeps and writes: seconds of checks at
/// 15,000 a second. When it is full, workers wait for the writer (back-pressure).
pub const RESULTS_QUEUE: usize = 32_768;
/// Between tries while the database is away.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long shutdown waits for the database to take what is held.
const FINAL_FLUSH_LIMIT: Duration = Duration::from_secs(15);

/// What the writer knows of one target.
struct Known {
    revision: i64,
    state: TargetState,
}

/// The writer's memory: state per target, and what the database is owed.
pub struct Writer {
    stats: Arc<Stats>,
    wake_notifier: Sender<()>,
    max_alerts: usize,
    known: HashMap<TargetId, Known>,
    pending: BTreeMap<TargetId, RowUpdate>,
    alerts: VecDeque<NewAlert>,
    /// The targets of the batch the store thread is writing, if any.
    in_flight: Option<BTreeSet<TargetId>>,
    /// Alerts dropped past `MaxPendingAlerts` during the current outage.
    dropped_alerts: u64,
    outage: Option<Outage>,
}

/// An ongoing database outage, for the two log lines that bracket it.
struct Outage {
    since: Instant,
    retry_at: Instant,
    delay: Duration,
}

impl Writer {
    pub fn new(stats: Arc<Stats>, wake_notifier: Sender<()>, max_alerts: usize) -> Writer {
        Writer {
            stats,
            wake_notifier,
            max_alerts,
            known: HashMap::new(),
            pending: BTreeMap::new(),
            alerts: VecDeque::new(),
            in_flight: None,
            dropped_alerts: 0,
            outage: None,
        }
    }

    /// Applies one finished check to the target's state and to what is owed.
    pub fn add(&mut self, f: Finished) {
        let t = &f.target;
        let has_pending = self.pending.contains_key(&t.id)
            || self
                .in_flight
                .as_ref()
                .is_some_and(|ids| ids.contains(&t.id));
        let known = self.known.entry(t.id).or_insert(Known {
            revision: t.revision,
            state: t.stored,
        });
        // A new revision of the row (an edit, or a re-enable) is read fresh from the database,
        // unless this writer still owes the row a newer state of its own.
        if known.revision != t.revision {
            known.revision = t.revision;
            if !has_pending {
                known.state = t.stored;
            }
        }
        let transition = state::apply(known.state, f.outcome.verdict, t.fail_threshold);
        known.state = transition.next;
        let at = crate::trace::Stamp(&f.at, '.').to_string();
        let update = RowUpdate::new(&transition, &f.outcome, at);
        match self.pending.get_mut(&t.id) {
            Some(owed) => owed.merge(update),
            None => {
                self.pending.insert(t.id, update);
            }
        }
        if let Some(kind) = transition.alert {
            self.queue_alert(NewAlert {
                target_id: t.id,
                kind,
                trace: f.outcome.trace.to_string(),
            });
        }
    }

    fn queue_alert(&mut self, alert: NewAlert) {
        self.push_alert(alert);
        Stats::add(&self.stats.alerts_queued, 1);
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
            }
        }
        self.alerts.push_back(alert);
    }

    pub fn owed_rows(&self) -> usize {
        self.pending.len()
    }

    fn held_checks(&self) -> u64 {
        self.pending.values().map(|u| u.counts.checks()).sum()
    }

    /// True when nothing is owed and nothing is being written.
    fn settled(&self) -> bool {
        self.pending.is_empty() && self.alerts.is_empty() && self.in_flight.is_none()
    }

    /// The batch to write now, if one is owed and neither a write in flight nor an outage's
    /// backoff says to wait.
    fn next_batch(&mut self) -> Option<Batch> {
        let waiting = self
            .outage
            .as_ref()
            .is_some_and(|o| Instant::now() < o.retry_at);
        if self.in_flight.is_some()
            || waiting
            || (self.pending.is_empty() && self.alerts.is_empty())
        {
            return None;
        }
        let batch = Batch {
            updates: std::mem::take(&mut self.pending),
            alerts: std::mem::take(&mut self.alerts).into(),
        };
        self.in_flight = Some(batch.updates.keys().copied().collect());
        Some(batch)
    }

    /// Takes in what the store thread did with the batch in flight.
    fn settle(&mut self, outcome: Outcome) {
        self.in_flight = None;
        match outcome {
            Outcome::Written {
                checks,
                rows,
                alerts,
                refused,
                took,
            } => {
                self.stats.write_latency.record(took);
                Stats::add(&self.stats.batches, 1);
                Stats::add(&self.stats.rows_written, rows as u64);
                Stats::add(&self.stats.results_written, checks);
                for r in refused {
                    log::error!(
                        "[{}] the results of {} checks and {} alerts were dropped: the row refused \
                         them ({}); fix the row's values",
                        r.id,
                        r.checks,
                        r.alerts,
                        r.error
                    );
                }
                if alerts > 0 {
                    // A full channel means a wake is already waiting: nothing is lost.
                    let _ = self.wake_notifier.try_send(());
                }
                self.recovered(checks, rows, alerts);
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
    }

    fn failed(&mut self, e: &db::Error, tried: Instant) {
        let now = Instant::now();
        match &mut self.outage {
            None => {
                log::error!("cannot write check results, holding them in memory and retrying: {e}");
                self.outage = Some(Outage {
                    // From the try, not its failure: a checkout waits up to ConnectTimeout
                    // before it fails, and that wait was already part of the outage.
                    since: tried,
                    retry_at: now + RETRY_MIN,
                    delay: RETRY_MIN,
                });
            }
            Some(o) => {
                o.delay = (o.delay * 2).min(RETRY_MAX);
                o.retry_at = now + o.delay;
            }
        }
    }

    fn recovered(&mut self, checks: u64, rows: usize, alerts: usize) {
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

/// The thread body: runs until every worker has dropped its results sender, then writes what
/// is left (trying for a bounded time if the database is away). Starts the store thread and
/// ends it.
///
/// It sleeps between rounds and takes the results that came meanwhile all at once, rather
/// than waking for each: at thousands of checks a second, a wake-up per result cost more than
/// the result itself. The results channel is sized to hold what arrives between rounds.
pub fn run(mut writer: Writer, pool: Pool, results: Receiver<Finished>) {
    let (batch_tx, batch_rx) = bounded::<Batch>(1);
    let (outcome_tx, outcome_rx) = bounded::<Outcome>(1);
    let store = std::thread::Builder::new()
        .name("skypunch-store".into())
        .spawn(move || store::run(pool, batch_rx, outcome_tx))
        .expect("spawning the store thread");
    loop {
        let started = Instant::now();
        let open = drain(&mut writer, &results);
        round(&mut writer, &batch_tx, &outcome_rx);
        if !open {
            break;
        }
        std::thread::sleep(FLUSH_EVERY.saturating_sub(started.elapsed()));
    }
    let settled = final_rounds(&mut writer, &batch_tx, &outcome_rx);
    drop(batch_tx);
    // A write still hanging on the database is left to the process's exit.
    if settled {
        let _ = store.join();
    }
}

/// Takes every result waiting; false once the workers are all gone.
fn drain(writer: &mut Writer, results: &Receiver<Finished>) -> bool {
    loop {
        match results.try_recv() {
            Ok(f) => writer.add(f),
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => return false,
        }
    }
}

/// Settles the write in flight if it is done, and starts the next one if one is owed.
fn round(writer: &mut Writer, batches: &Sender<Batch>, outcomes: &Receiver<Outcome>) {
    if let Ok(outcome) = outcomes.try_recv() {
        writer.settle(outcome);
    }
    if let Some(batch) = writer.next_batch() {
        // The store thread takes one batch at a time and only fails to if it died.
        if let Err(e) = batches.send(batch) {
            writer.settle(Outcome::Failed {
                batch: e.into_inner(),
                error: db::Error::Connect {
                    db: "(store thread)".into(),
                    reason: "stopped".into(),
                },
                tried: Instant::now(),
            });
        }
    }
}

/// Writes what is left at shutdown; false when the database did not take it in time.
fn final_rounds(
    writer: &mut Writer,
    batches: &Sender<Batch>,
    outcomes: &Receiver<Outcome>,
) -> bool {
    let deadline = Instant::now() + FINAL_FLUSH_LIMIT;
    while !writer.settled() {
        if Instant::now() >= deadline {
            log::error!(
                "shutdown: the database did not come back within {}s; {} checks of {} targets and \
                 {} alerts were not written",
                FINAL_FLUSH_LIMIT.as_secs(),
                writer.held_checks(),
                writer.owed_rows(),
                writer.alerts.len()
            );
            return false;
        }
        round(writer, batches, outcomes);
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertKind, Status};
    use crate::state::Counts;

    fn update(status: Status, counts: Counts, at: &str) -> RowUpdate {
        RowUpdate {
            status,
            previous_status: Status::New,
            description: String::new(),
            at: at.into(),
            counts,
            repeated_fails: 0,
            alerted: false,
            http_status: None,
            response_ms: 0,
            trace: String::new(),
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
        let mut w = Writer::new(Arc::new(Stats::default()), wake, 100);
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
        let mut w = Writer::new(Arc::new(Stats::default()), wake, 3);
        for id in 1..=5 {
            w.queue_alert(alert(id));
        }
        let held: Vec<TargetId> = w.alerts.iter().map(|a| a.target_id).collect();
        assert_eq!(held, vec![3, 4, 5]);
        assert_eq!(w.dropped_alerts, 2);
    }
}
