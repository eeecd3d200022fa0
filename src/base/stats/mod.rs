//! The daemon's own counters: checks made, dispatch lag, check duration, write latency and
//! batch size, queue depth and results held. Atomics only, no lock. Read through [`Stats`]'s
//! methods by the stats line the daemon logs every `StatsInterval` seconds (which the
//! benchmark parses), `/metrics`, `/healthz`, systemd's watchdog and the account at stop.
//! Set only through the handle each stage is given by [`new`] ([`WheelStats`],
//! [`WorkerStats`], [`WriterStats`], [`StoreStats`], [`ClusterStats`], [`MainStats`]): a
//! counter can be moved only by the stage that owns it.
//!
//! This file holds the counters and the stages' handles; `histogram.rs` the lock-free
//! histograms of durations (lag, check duration, write latency) and their quantiles.

mod histogram;
#[cfg(test)]
mod tests;

pub use histogram::{quantile, Exported, Histogram};

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::base::model::CheckError;

/// Every counter the daemon keeps, read through its methods. Shared as one `Arc<Stats>` by
/// the readers and by every stage's handle; the fields are private, so only the handles
/// below move them.
#[derive(Default)]
pub struct Stats {
    checks: AtomicU64,
    fails: AtomicU64,
    /// Failed checks since start by kind, in `CheckError::KINDS` order.
    fails_by_kind: [AtomicU64; CheckError::KINDS.len()],
    lag: Histogram,
    duration: Histogram,
    write_latency: Histogram,
    batches: AtomicU64,
    rows_written: AtomicU64,
    /// Checks whose results are written, counted at the commit.
    results_written: AtomicU64,
    /// Checks whose results will never be written (a row refused them for their values, or
    /// the target was deleted before its first write), each logged with its reason. So
    /// `checks - results_written - results_dropped` are still owed to the database.
    results_dropped: AtomicU64,
    queue_depth: AtomicU64,
    /// Workers running a check, as of the wheel's last tick.
    workers_busy: AtomicU64,
    /// How long the oldest due check not yet started had waited, in ms, as of the wheel's
    /// last tick (0: none waits).
    oldest_wait_ms: AtomicU64,
    /// Checks started more than `backlog::WAIT_LIMIT` after they were due: they waited for
    /// a free worker (or the machine stalled).
    late_starts: AtomicU64,
    /// Checks in flight when `StopGrace` ran out at a stop: abandoned, not recorded (set
    /// once, before the final stats line).
    abandoned: AtomicU64,
    alerts_queued: AtomicU64,
    /// Alerts the writer gave up past `MaxPendingAlerts` during an outage.
    alerts_dropped: AtomicU64,
    /// Result writes that met a passing conflict (a lock wait timeout, a deadlock, a Galera
    /// certification conflict) and were tried again.
    write_conflicts: AtomicU64,
    /// Now: checks the writer holds (waiting for a write, being written, or waiting for
    /// their target's stored state) and alerts it holds (not yet in the outbox).
    held_checks: AtomicU64,
    held_alerts: AtomicU64,
    /// When (Unix ms) a database write last succeeded (a heartbeat or a batch of results),
    /// and when one last failed for an outage; 0: never.
    db_ok_ms: AtomicU64,
    db_failed_ms: AtomicU64,
    /// Enabled targets this node knows, those it checks, and the live nodes, as of the last
    /// heartbeat.
    targets_known: AtomicU64,
    targets_owned: AtomicU64,
    live_nodes: AtomicU64,
    /// 1 while this node cannot reach its network (`base::sight`), as of the last heartbeat.
    blind: AtomicU64,
    /// Results of checks dispatched before their target was handed to another node, which
    /// arrived after: dropped, never written (issue 25). Also in `results_dropped`.
    stale_results: AtomicU64,
    /// Rounds of checks not made because the node was frozen or stalled past them: on
    /// waking, a target is checked once, not once per missed period.
    missed_rounds: AtomicU64,
    /// This node's clock minus the database's at the last heartbeat, ms (an `i64`'s bits),
    /// and 1 while that is past `[cluster] MaxClockSkew` (the node checks nothing).
    clock_offset_ms: AtomicU64,
    skewed: AtomicU64,
}

/// A reader per counter, by the counter's name.
macro_rules! readers {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $( $(#[$doc])* pub fn $name(&self) -> u64 { self.$name.load(Relaxed) } )*
    };
}

impl Stats {
    readers!(
        checks,
        fails,
        batches,
        rows_written,
        results_written,
        results_dropped,
        queue_depth,
        workers_busy,
        oldest_wait_ms,
        late_starts,
        abandoned,
        alerts_queued,
        alerts_dropped,
        write_conflicts,
        held_checks,
        held_alerts,
        /// When (Unix ms) a database write last succeeded; 0: never.
        db_ok_ms,
        /// When (Unix ms) a database write last failed for an outage; 0: never.
        db_failed_ms,
        targets_known,
        targets_owned,
        live_nodes,
        /// 1 while this node cannot reach its network.
        blind,
        stale_results,
        missed_rounds,
        /// 1 while this node's clock is past `MaxClockSkew`.
        skewed,
    );

    /// This node's clock minus the database's at the last heartbeat, ms.
    pub fn clock_offset_ms(&self) -> i64 {
        self.clock_offset_ms.load(Relaxed) as i64
    }

    /// Failed checks since start by kind, in `CheckError::KINDS` order, with the kind's name.
    pub fn fails_by_kind(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CheckError::KINDS
            .iter()
            .zip(&self.fails_by_kind)
            .map(|(kind, n)| (*kind, n.load(Relaxed)))
    }

    /// How late checks started after they were due.
    pub fn lag(&self) -> &Histogram {
        &self.lag
    }

    /// How long checks took.
    pub fn duration(&self) -> &Histogram {
        &self.duration
    }

    /// How long the writes of result batches took.
    pub fn write_latency(&self) -> &Histogram {
        &self.write_latency
    }

    /// Checks made but neither written nor dropped: held by the writer, or on their way to it.
    pub fn unwritten(&self) -> u64 {
        self.checks()
            .saturating_sub(self.results_written())
            .saturating_sub(self.results_dropped())
    }

    fn db_write(&self, ok: bool) {
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let field = if ok {
            &self.db_ok_ms
        } else {
            &self.db_failed_ms
        };
        field.store(now, Relaxed);
    }
}

/// A stage's handle: it reads every counter (through `Deref`) and sets only its own. Clones
/// share the counters (workers hold one each); `Default` gives a handle on counters of its
/// own, which nobody else reads (for tests).
macro_rules! handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default)]
        pub struct $name(Arc<Stats>);

        impl Deref for $name {
            type Target = Stats;
            fn deref(&self) -> &Stats {
                &self.0
            }
        }
    };
}

handle!(
    /// The wheel's counters: the queues as of its last tick.
    WheelStats
);
handle!(
    /// The workers' counters: checks made, failed, how late and how long.
    WorkerStats
);
handle!(
    /// The writer's counters: batches settled, alerts queued and dropped, what it holds.
    WriterStats
);
handle!(
    /// The store thread's counters: results at the commit, database writes.
    StoreStats
);
handle!(
    /// The cluster thread's counters: the share of targets, the live nodes, heartbeats.
    ClusterStats
);
handle!(
    /// The main thread's counter: the checks a stop abandoned.
    MainStats
);

impl WheelStats {
    pub fn set_queue_depth(&self, n: u64) {
        self.0.queue_depth.store(n, Relaxed);
    }

    pub fn set_workers_busy(&self, n: u64) {
        self.0.workers_busy.store(n, Relaxed);
    }

    pub fn set_oldest_wait(&self, d: Duration) {
        self.0.oldest_wait_ms.store(d.as_millis() as u64, Relaxed);
    }

    pub fn add_missed_rounds(&self, n: u64) {
        self.0.missed_rounds.fetch_add(n, Relaxed);
    }
}

impl WorkerStats {
    pub fn record_lag(&self, d: Duration) {
        self.0.lag.record(d);
    }

    pub fn late_start(&self) {
        self.0.late_starts.fetch_add(1, Relaxed);
    }

    pub fn record_duration(&self, d: Duration) {
        self.0.duration.record(d);
    }

    /// A check made (and logged).
    pub fn checked(&self) {
        self.0.checks.fetch_add(1, Relaxed);
    }

    pub fn failed(&self) {
        self.0.fails.fetch_add(1, Relaxed);
    }

    pub fn failed_as(&self, error: &CheckError) {
        self.0.fails_by_kind[error.index()].fetch_add(1, Relaxed);
    }
}

impl WriterStats {
    pub fn alert_queued(&self) {
        self.0.alerts_queued.fetch_add(1, Relaxed);
    }

    pub fn alert_dropped(&self) {
        self.0.alerts_dropped.fetch_add(1, Relaxed);
    }

    /// A result write met a passing conflict; it is tried again.
    pub fn write_conflict(&self) {
        self.0.write_conflicts.fetch_add(1, Relaxed);
    }

    /// What the writer holds now.
    pub fn set_held(&self, checks: u64, alerts: u64) {
        self.0.held_checks.store(checks, Relaxed);
        self.0.held_alerts.store(alerts, Relaxed);
    }

    /// A batch the store thread wrote, with its rows.
    pub fn batch_written(&self, took: Duration, rows: u64) {
        self.0.write_latency.record(took);
        self.0.batches.fetch_add(1, Relaxed);
        self.0.rows_written.fetch_add(rows, Relaxed);
    }

    pub fn add_results_dropped(&self, n: u64) {
        self.0.results_dropped.fetch_add(n, Relaxed);
    }

    /// Results dropped for arriving after their target was handed over (counted in
    /// `results_dropped` too).
    pub fn add_stale_results(&self, n: u64) {
        self.0.stale_results.fetch_add(n, Relaxed);
        self.0.results_dropped.fetch_add(n, Relaxed);
    }
}

impl StoreStats {
    /// Records a database write that succeeded (`ok`) or failed for an outage, now.
    pub fn db_write(&self, ok: bool) {
        self.0.db_write(ok);
    }

    pub fn add_results_written(&self, n: u64) {
        self.0.results_written.fetch_add(n, Relaxed);
    }

    pub fn add_results_dropped(&self, n: u64) {
        self.0.results_dropped.fetch_add(n, Relaxed);
    }
}

impl ClusterStats {
    /// Records a database write (a heartbeat, the join) that succeeded (`ok`) or failed for
    /// an outage, now.
    pub fn db_write(&self, ok: bool) {
        self.0.db_write(ok);
    }

    /// The share of targets: those this node knows, and those it checks.
    pub fn set_share(&self, known: u64, owned: u64) {
        self.0.targets_known.store(known, Relaxed);
        self.0.targets_owned.store(owned, Relaxed);
    }

    pub fn set_live_nodes(&self, n: u64) {
        self.0.live_nodes.store(n, Relaxed);
    }

    /// Whether the node beat as blind (it cannot reach its network).
    pub fn set_blind(&self, blind: bool) {
        self.0.blind.store(u64::from(blind), Relaxed);
    }

    /// The clock's offset from the database's, and whether it is past `MaxClockSkew`.
    pub fn set_clock(&self, offset_ms: i64, skewed: bool) {
        self.0.clock_offset_ms.store(offset_ms as u64, Relaxed);
        self.0.skewed.store(u64::from(skewed), Relaxed);
    }
}

impl MainStats {
    pub fn set_abandoned(&self, n: u64) {
        self.0.abandoned.store(n, Relaxed);
    }
}

/// Each stage's handle, made once by [`new`]; the daemon hands each to its stage.
pub struct StageStats {
    pub wheel: WheelStats,
    pub workers: WorkerStats,
    pub writer: WriterStats,
    pub store: StoreStats,
    pub cluster: ClusterStats,
    pub main: MainStats,
}

/// The daemon's counters: the readers' `Arc<Stats>`, and the stages' handles on it.
pub fn new() -> (Arc<Stats>, StageStats) {
    let stats = Arc::new(Stats::default());
    let handles = StageStats {
        wheel: WheelStats(stats.clone()),
        workers: WorkerStats(stats.clone()),
        writer: WriterStats(stats.clone()),
        store: StoreStats(stats.clone()),
        cluster: ClusterStats(stats.clone()),
        main: MainStats(stats.clone()),
    };
    (stats, handles)
}
