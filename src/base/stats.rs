//! The daemon's own counters: checks made, dispatch lag, check duration, write latency and
//! batch size, queue depth and results held. Atomics only, no lock. Read through [`Stats`]'s
//! methods by the stats line the daemon logs every `StatsInterval` seconds (which the
//! benchmark parses), `/metrics`, `/healthz`, systemd's watchdog and the account at stop.
//! Set only through the handle each stage is given by [`new`] ([`WheelStats`],
//! [`WorkerStats`], [`WriterStats`], [`StoreStats`], [`ClusterStats`], [`MainStats`]): a
//! counter can be moved only by the stage that owns it.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::base::model::CheckError;

/// A histogram of durations with buckets about 19% wide (4 per power of two), in microseconds,
/// and beside them the sum and the counts in [`EXPORT_BOUNDS_US`], for `/metrics`: the
/// exported buckets are exact (each observation lands in one), so `le` values stay round.
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    max: AtomicU64,
    sum_us: AtomicU64,
    exported: [AtomicU64; EXPORT_BOUNDS_US.len() + 1],
}

/// Upper bounds of the buckets `/metrics` shows, in microseconds (1 ms to 60 s); the last
/// exported bucket is everything above.
pub const EXPORT_BOUNDS_US: [u64; 14] = [
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// A histogram as Prometheus shows it: the sum in seconds, the count, and the count of each
/// bucket (not cumulative) by upper bound in seconds, the last one `+Inf`.
pub struct Exported {
    pub sum_s: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

const SUB: u32 = 4;
const BUCKETS: usize = 64 * SUB as usize;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            exported: Default::default(),
        }
    }
}

fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let power = 63 - us.leading_zeros();
    let fraction = (us >> (power - 2)) & (SUB as u64 - 1);
    (power * SUB) as usize + fraction as usize
}

/// The upper edge of a bucket, in microseconds.
fn bucket_top(index: usize) -> u64 {
    if index < SUB as usize {
        return index as u64;
    }
    let power = index as u32 / SUB;
    let fraction = index as u64 % SUB as u64;
    ((SUB as u64 + fraction + 1) << (power - 2)) - 1
}

impl Histogram {
    /// Private to this module: a stage records through its handle.
    fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.buckets[bucket_of(us).min(BUCKETS - 1)].fetch_add(1, Relaxed);
        self.max.fetch_max(us, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        let slot = EXPORT_BOUNDS_US.partition_point(|&top| top < us);
        self.exported[slot].fetch_add(1, Relaxed);
    }

    /// The exported buckets, sum and count, read without a lock: a scrape during a record
    /// may see the count one ahead of the sum, which Prometheus tolerates.
    pub fn exported(&self) -> Exported {
        let buckets: Vec<(f64, u64)> = EXPORT_BOUNDS_US
            .iter()
            .map(|&us| us as f64 / 1e6)
            .chain([f64::INFINITY])
            .zip(&self.exported)
            .map(|(le, n)| (le, n.load(Relaxed)))
            .collect();
        Exported {
            sum_s: self.sum_us.load(Relaxed) as f64 / 1e6,
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
        }
    }

    /// A snapshot of the counts, to diff against a later one.
    pub fn snapshot(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Relaxed)).collect()
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max.load(Relaxed))
    }
}

/// The `q` quantile (0..1) of the counts between two snapshots, as the bucket's upper edge.
pub fn quantile(before: &[u64], after: &[u64], q: f64) -> Duration {
    let counts: Vec<u64> = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b))
        .collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Duration::ZERO;
    }
    let wanted = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= wanted {
            return Duration::from_micros(bucket_top(i));
        }
    }
    Duration::ZERO
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_within_a_fifth() {
        for us in [1u64, 5, 17, 100, 999, 12_345, 10_000_000] {
            let top = bucket_top(bucket_of(us));
            assert!(
                top >= us && (top as f64) <= us as f64 * 1.26 + 1.0,
                "{us} -> {top}"
            );
        }
    }

    #[test]
    fn exported_buckets_are_exact() {
        let h = Histogram::default();
        for ms in [0, 1, 2, 7, 70_000] {
            h.record(Duration::from_millis(ms));
        }
        let e = h.exported();
        assert_eq!(e.count, 5);
        assert_eq!(e.buckets[0], (0.001, 2), "0 and 1 ms are <= 1 ms");
        assert_eq!(e.buckets[1], (0.005, 1));
        assert_eq!(e.buckets[2], (0.01, 1));
        assert_eq!(e.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((e.sum_s - 70.010).abs() < 1e-9, "{}", e.sum_s);
    }

    #[test]
    fn each_handle_moves_its_own_counters_and_every_reader_sees_them() {
        let (stats, stages) = new();
        stages.workers.checked();
        stages.workers.checked();
        stages.workers.failed_as(&CheckError::Internal);
        stages.store.add_results_written(1);
        stages.writer.add_results_dropped(1);
        stages.cluster.set_share(10, 4);
        stages.wheel.set_oldest_wait(Duration::from_millis(1500));
        stages.main.set_abandoned(3);
        assert_eq!(stats.checks(), 2);
        assert_eq!(stats.unwritten(), 0);
        assert_eq!((stats.targets_known(), stats.targets_owned()), (10, 4));
        assert_eq!(stats.oldest_wait_ms(), 1500);
        assert_eq!(stages.writer.abandoned(), 3, "a handle reads everything");
        let internal = stats.fails_by_kind().find(|(k, _)| *k == "internal");
        assert_eq!(internal, Some(("internal", 1)));
        assert_eq!(WorkerStats::default().checks(), 0, "a handle of its own");
    }

    #[test]
    fn quantiles_of_a_window() {
        let h = Histogram::default();
        let before = h.snapshot();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let after = h.snapshot();
        let p50 = quantile(&before, &after, 0.5).as_millis();
        let p99 = quantile(&before, &after, 0.99).as_millis();
        assert!((45..=62).contains(&p50), "{p50}");
        assert!((95..=125).contains(&p99), "{p99}");
    }
}
