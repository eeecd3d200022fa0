//! A histogram of durations, recorded with atomics only: fine buckets for the stats line's
//! quantiles, and beside them the exact buckets, sum and count `/metrics` exports.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

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

pub(super) fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let power = 63 - us.leading_zeros();
    let fraction = (us >> (power - 2)) & (SUB as u64 - 1);
    (power * SUB) as usize + fraction as usize
}

/// The upper edge of a bucket, in microseconds.
pub(super) fn bucket_top(index: usize) -> u64 {
    if index < SUB as usize {
        return index as u64;
    }
    let power = index as u32 / SUB;
    let fraction = index as u64 % SUB as u64;
    ((SUB as u64 + fraction + 1) << (power - 2)) - 1
}

impl Histogram {
    /// Private to `stats`: a stage records through its handle.
    pub(super) fn record(&self, d: Duration) {
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
