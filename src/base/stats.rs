//! The daemon's own counters: checks made, dispatch lag, check duration, write latency and
//! batch size, queue depth and results held. Shared by every thread as `Arc<Stats>` (atomics
//! only, no lock); read by the stats line the daemon logs every `StatsInterval` seconds and
//! by the benchmark, which parses that line.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
    pub fn record(&self, d: Duration) {
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

/// Every counter the daemon keeps.
#[derive(Default)]
pub struct Stats {
    pub checks: AtomicU64,
    pub fails: AtomicU64,
    /// Failed checks since start by kind, in `CheckError::KINDS` order.
    pub fails_by_kind: [AtomicU64; CheckError::KINDS.len()],
    pub lag: Histogram,
    pub duration: Histogram,
    pub write_latency: Histogram,
    pub batches: AtomicU64,
    pub rows_written: AtomicU64,
    /// Checks whose results are written, counted at the commit.
    pub results_written: AtomicU64,
    /// Checks whose results will never be written (a row refused them for their values, or
    /// the target was deleted before its first write), each logged with its reason. So
    /// `checks - results_written - results_dropped` are still owed to the database.
    pub results_dropped: AtomicU64,
    pub queue_depth: AtomicU64,
    /// Workers running a check, as of the wheel's last tick.
    pub workers_busy: AtomicU64,
    /// How long the oldest due check not yet started had waited, in ms, as of the wheel's
    /// last tick (0: none waits).
    pub oldest_wait_ms: AtomicU64,
    /// Checks started more than `backlog::WAIT_LIMIT` after they were due: they waited for
    /// a free worker (or the machine stalled).
    pub late_starts: AtomicU64,
    /// Checks in flight when `StopGrace` ran out at a stop: abandoned, not recorded (set
    /// once, before the final stats line).
    pub abandoned: AtomicU64,
    pub alerts_queued: AtomicU64,
    /// Alerts the writer gave up past `MaxPendingAlerts` during an outage.
    pub alerts_dropped: AtomicU64,
    /// Now: checks the writer holds (waiting for a write, being written, or waiting for
    /// their target's stored state) and alerts it holds (not yet in the outbox).
    pub held_checks: AtomicU64,
    pub held_alerts: AtomicU64,
    /// When (Unix ms) a database write last succeeded (a heartbeat or a batch of results),
    /// and when one last failed for an outage; 0: never. Read by `/healthz` and `/metrics`.
    pub db_ok_ms: AtomicU64,
    pub db_failed_ms: AtomicU64,
    /// Enabled targets this node knows, those it checks, and the live nodes, as of the last
    /// heartbeat (the cluster thread sets them).
    pub targets_known: AtomicU64,
    pub targets_owned: AtomicU64,
    pub live_nodes: AtomicU64,
}

impl Stats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn set(counter: &AtomicU64, n: u64) {
        counter.store(n, Relaxed);
    }

    /// Records a database write that succeeded (`ok`) or failed for an outage, now.
    pub fn db_write(&self, ok: bool) {
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        let field = if ok {
            &self.db_ok_ms
        } else {
            &self.db_failed_ms
        };
        field.store(now, Relaxed);
    }

    /// Checks made but neither written nor dropped: held by the writer, or on their way to it.
    pub fn unwritten(&self) -> u64 {
        Stats::get(&self.checks)
            .saturating_sub(Stats::get(&self.results_written))
            .saturating_sub(Stats::get(&self.results_dropped))
    }
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
