//! The writer thread ("skypunch-writer"): owns every target's result state, turns finished
//! checks into row updates and alerts, and writes them in batches through the pool, each batch
//! one transaction. Reads [`Finished`] from the workers; wakes the notifier after a batch that
//! queued alerts.
//!
//! While the database is away, results fold into one pending update per target (so memory is
//! bounded by the number of targets) and alerts queue up to `MaxPendingAlerts`; all are written
//! when it is back. Nothing is dropped unless that bound is passed, and then it is logged.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::db::results::{self, NewAlert};
use crate::db::{self, Pool};
use crate::model::{Finished, TargetId, TargetState};
use crate::state::{self, RowUpdate};
use crate::stats::Stats;

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
    pool: Pool,
    stats: Arc<Stats>,
    wake_notifier: Sender<()>,
    max_alerts: usize,
    known: HashMap<TargetId, Known>,
    pending: BTreeMap<TargetId, RowUpdate>,
    alerts: VecDeque<NewAlert>,
    outage: Option<Outage>,
}

/// An ongoing database outage, for the two log lines that bracket it.
struct Outage {
    since: Instant,
    retry_at: Instant,
    delay: Duration,
}

impl Writer {
    pub fn new(
        pool: Pool,
        stats: Arc<Stats>,
        wake_notifier: Sender<()>,
        max_alerts: usize,
    ) -> Writer {
        Writer {
            pool,
            stats,
            wake_notifier,
            max_alerts,
            known: HashMap::new(),
            pending: BTreeMap::new(),
            alerts: VecDeque::new(),
            outage: None,
        }
    }

    /// Applies one finished check to the target's state and to what is owed.
    pub fn add(&mut self, f: Finished) {
        let t = &f.target;
        let has_pending = self.pending.contains_key(&t.id);
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
        if self.alerts.len() >= self.max_alerts {
            if let Some(lost) = self.alerts.pop_front() {
                log::error!(
                    "alert buffer full ({} held while the database is away): dropped the oldest, \
                     a {} alert for target {}; raise MaxPendingAlerts to hold more",
                    self.max_alerts,
                    lost.kind.as_str(),
                    lost.target_id
                );
            }
        }
        self.alerts.push_back(alert);
        Stats::add(&self.stats.alerts_queued, 1);
    }

    pub fn owed_rows(&self) -> usize {
        self.pending.len()
    }

    fn held_checks(&self) -> u64 {
        self.pending.values().map(|u| u.counts.checks()).sum()
    }

    /// Writes what is owed, unless an outage says to wait. True when nothing is left owed.
    pub fn flush(&mut self) -> bool {
        if self.pending.is_empty() && self.alerts.is_empty() {
            return true;
        }
        if self
            .outage
            .as_ref()
            .is_some_and(|o| Instant::now() < o.retry_at)
        {
            return false;
        }
        let started = Instant::now();
        let written = match self.write() {
            Err(e) if !e.is_outage() => {
                log::error!(
                    "a batch of check results was refused ({e}); writing each target alone"
                );
                self.write_each()
            }
            other => other,
        };
        match written {
            Ok((checks, rows, alerts)) => {
                self.stats.write_latency.record(started.elapsed());
                self.recovered(checks, rows, alerts);
                true
            }
            Err(e) => {
                self.failed(&e, started);
                false
            }
        }
    }

    /// Writes everything owed; returns the checks, rows and alerts written.
    fn write(&mut self) -> Result<(u64, usize, usize), db::Error> {
        let mut conn = db::checkout(&self.pool)?;
        let alerts: Vec<NewAlert> = self.alerts.iter().cloned().collect();
        results::write(&mut conn, &self.pending, &alerts)?;
        let checks = self.held_checks();
        Stats::add(&self.stats.batches, 1);
        Stats::add(&self.stats.rows_written, self.pending.len() as u64);
        Stats::add(&self.stats.results_written, checks);
        let rows = self.pending.len();
        self.pending.clear();
        self.alerts.clear();
        if !alerts.is_empty() {
            // A full channel means a wake is already waiting: nothing is lost.
            let _ = self.wake_notifier.try_send(());
        }
        Ok((checks, rows, alerts.len()))
    }

    /// A write that began at `tried` failed.
    /// The batch was refused for a reason other than an outage: most likely one row cannot
    /// take its update (a counter hand-edited to the edge of its range). Writes each target in
    /// its own transaction, so that one bad row does not hold every other result forever.
    /// A target that still fails is logged and its update dropped, unless several were tried
    /// and none could be written (a problem with the table, not a row): then nothing is
    /// dropped and it is retried like an outage.
    fn write_each(&mut self) -> Result<(u64, usize, usize), db::Error> {
        let mut conn = db::checkout(&self.pool)?;
        let ids: BTreeSet<TargetId> = self
            .pending
            .keys()
            .copied()
            .chain(self.alerts.iter().map(|a| a.target_id))
            .collect();
        let mut refused = Vec::new();
        let (mut checks, mut rows, mut alerts_written) = (0, 0, 0);
        for id in ids {
            let one: BTreeMap<TargetId, RowUpdate> = self
                .pending
                .get(&id)
                .map(|u| (id, u.clone()))
                .into_iter()
                .collect();
            let alerts: Vec<NewAlert> = self
                .alerts
                .iter()
                .filter(|a| a.target_id == id)
                .cloned()
                .collect();
            match results::write(&mut conn, &one, &alerts) {
                Ok(_) => {
                    if let Some(u) = self.pending.remove(&id) {
                        checks += u.counts.checks();
                        rows += 1;
                    }
                    self.alerts.retain(|a| a.target_id != id);
                    alerts_written += alerts.len();
                }
                Err(e) if e.is_outage() => return Err(e),
                Err(e) => refused.push((id, e)),
            }
        }
        if rows + alerts_written == 0 && refused.len() > 1 {
            if let Some((_, e)) = refused.pop() {
                return Err(e);
            }
        }
        for (id, e) in refused {
            let lost = self.pending.remove(&id);
            let before = self.alerts.len();
            self.alerts.retain(|a| a.target_id != id);
            log::error!(
                "[{id}] the results of {} checks and {} alerts were dropped: the row refused them \
                 ({e}); fix the row's values",
                lost.map_or(0, |u| u.counts.checks()),
                before - self.alerts.len()
            );
        }
        Stats::add(&self.stats.batches, 1);
        Stats::add(&self.stats.rows_written, rows as u64);
        Stats::add(&self.stats.results_written, checks);
        if alerts_written > 0 {
            let _ = self.wake_notifier.try_send(());
        }
        Ok((checks, rows, alerts_written))
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
    }
}

/// The thread body: runs until every worker has dropped its results sender, then writes what
/// is left (trying for a bounded time if the database is away).
///
/// It sleeps between flushes and takes the results that came meanwhile all at once, rather
/// than waking for each: at thousands of checks a second, a wake-up per result cost more than
/// the result itself. The results channel is sized to hold what arrives between flushes.
pub fn run(mut writer: Writer, results: Receiver<Finished>) {
    loop {
        let started = Instant::now();
        let mut open = true;
        loop {
            match results.try_recv() {
                Ok(f) => writer.add(f),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if !open {
            break;
        }
        writer.flush();
        std::thread::sleep(FLUSH_EVERY.saturating_sub(started.elapsed()));
    }
    final_flush(&mut writer);
}

fn final_flush(writer: &mut Writer) {
    let deadline = Instant::now() + FINAL_FLUSH_LIMIT;
    while !writer.flush() {
        if Instant::now() >= deadline {
            log::error!(
                "shutdown: the database did not come back within {}s; {} checks of {} targets and \
                 {} alerts were not written",
                FINAL_FLUSH_LIMIT.as_secs(),
                writer.held_checks(),
                writer.owed_rows(),
                writer.alerts.len()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
