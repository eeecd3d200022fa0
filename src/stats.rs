//! The daemon's own counters: checks made, dispatch lag, check duration, write latency and
//! batch size, queue depth and results held. Shared by every thread as `Arc<Stats>` (atomics
//! only, no lock); read by the stats line the daemon logs every `StatsInterval` seconds and
//! by the benchmark, which parses that line.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::model::CheckError;

/// A histogram of durations with buckets about 19% wide (4 per power of two), in microseconds.
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    max: AtomicU64,
}

const SUB: u32 = 4;
const BUCKETS: usize = 64 * SUB as usize;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
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
    pub alerts_queued: AtomicU64,
    /// Alerts the writer gave up past `MaxPendingAlerts` during an outage.
    pub alerts_dropped: AtomicU64,
    /// Now: checks the writer holds (waiting for a write, being written, or waiting for
    /// their target's stored state) and alerts it holds (not yet in the outbox).
    pub held_checks: AtomicU64,
    pub held_alerts: AtomicU64,
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
