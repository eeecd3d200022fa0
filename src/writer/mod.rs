//! The writer thread ("skypunch-writer"): the thread loop and its channels. The one owner of
//! every target's result state (status, `repeated_fails`, `alerted`): it turns finished checks
//! into row updates and alerts (`fold.rs`), and hands them in batches to the store thread
//! (`store.rs`), which writes each batch in one transaction; what then becomes of the batch is
//! `policy.rs`. Reads [`ToWriter`] messages (finished checks from the workers, targets to
//! forget from the loader and the cluster thread); wakes the notifier after a batch that
//! queued alerts. It never waits for the database itself, so a hanging write cannot hold up
//! the workers.
//!
//! The first time it meets a target it has the store thread read the row's state, and parks
//! that target's results until the answer comes; after that the row is only written, never
//! read back, so an edit of the row cannot bring back an older state. A target the loader no
//! longer schedules is forgotten once its row is owed nothing. A result of a check dispatched
//! before its target was handed to another node (its generation at or below the hand-over's)
//! is dropped and counted: read afresh, the row would take it, and a late FAIL would alert
//! for a target another node checks.
//!
//! While the database is away, results fold into one pending update per target (so memory is
//! bounded by the number of targets) and alerts queue up to `MaxPendingAlerts`; all are
//! written when it is back. A passing conflict (lock wait timeout, deadlock) is retried at
//! once. Only a row refused for its values is dropped, logged with the reason and counted.

mod batch;
mod fold;
mod policy;
mod sight;
mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::base::model::{CheckResult, NewAlert, TargetId, ToWriter};
use crate::base::rollup::Rollups;
use crate::base::sight::Sight;
use crate::base::state::RowUpdate;
use crate::base::stats::{StoreStats, WriterStats};
use crate::base::stop::Stop;
use crate::db;
use batch::{Batch, Outcome};
use fold::OwnedState;
use policy::Outage;

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
    /// The node's sight of its network, and the writer's suspicion of it (`sight.rs`).
    sight: Arc<Sight>,
    suspicion: sight::Suspicion,
    /// Targets whose FAILUREs of the last minute the next batch withdraws.
    retract: BTreeSet<TargetId>,
    /// Targets handed to another node, by the ownership generation of the hand-over, until
    /// a result of a later generation comes (none older can follow it).
    handed: HashMap<TargetId, u64>,
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
            sight: Arc::new(Sight::new(false).0),
            suspicion: sight::Suspicion::new(100),
            retract: BTreeSet::new(),
            handed: HashMap::new(),
        }
    }

    /// The node's sight, which the writer tells its suspicion, past `BlindPercent` percent
    /// of the targets failing with network errors.
    pub fn with_sight(mut self, sight: Arc<Sight>, blind_percent: u32) -> Writer {
        self.sight = sight;
        self.suspicion = sight::Suspicion::new(blind_percent);
        self
    }

    /// Takes in one message from a worker, the loader or the cluster thread.
    pub fn take(&mut self, msg: ToWriter) {
        match msg {
            ToWriter::Checked(f) => {
                if !self.stale(&f) {
                    self.add(f);
                }
            }
            ToWriter::Forget(id) => self.forget(id),
            ToWriter::HandedOver { id, generation } => self.handed_over(id, generation),
            ToWriter::Unconfirmed(id) => self.withheld(&[id]),
        }
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
            && self.retract.is_empty()
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
            && self.retract.is_empty()
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
            retract: std::mem::take(&mut self.retract).into_iter().collect(),
        };
        self.in_flight = Some(InFlight {
            ids: batch.updates.keys().copied().collect(),
            reading: batch.read.iter().copied().collect(),
            checks: batch.checks(),
            alerts: batch.alerts.len(),
        });
        Some(batch)
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

/// The store thread's body. `confirm`: the FAILUREs it writes are confirmed by another node
/// whose heartbeat is this fresh, when one is (`[cluster] ConfirmFailures`).
pub fn run_store(
    pool: db::Pool,
    stats: StoreStats,
    node: (Arc<crate::cluster::Member>, Arc<Sight>),
    confirm: Option<Duration>,
    ends: StoreEnds,
) {
    store::run(pool, stats, node, confirm, ends.batches, ends.outcomes)
}

/// The thread body: runs until the checks in flight at a stop are over (finished, or
/// abandoned past `StopGrace`) or every worker and the loader have dropped their senders,
/// then writes what is left, the rollups of the current minute included, for as long as the
/// stop deadline allows.
///
/// It sleeps between rounds and takes the results that came meanwhile all at once, rather
/// than waking for each: at thousands of checks a second, a wake-up per result cost more than
/// the result itself. The results channel is sized to hold what arrives between rounds.
pub fn run(mut writer: Writer, inbox: Receiver<ToWriter>, store: StorePorts, stop: Stop) {
    loop {
        let started = Instant::now();
        crate::base::fault::point("writer");
        // Looked at before the drain: every result handed in before the checks were over is
        // in the channel by then, so this drain takes the last of them.
        let over = stop.checks_over();
        let open = drain(&mut writer, &inbox);
        writer.judge_sight();
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

/// Takes every message waiting; false once the workers, the loader and the cluster thread
/// are all gone.
fn drain(writer: &mut Writer, inbox: &Receiver<ToWriter>) -> bool {
    loop {
        match inbox.try_recv() {
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
