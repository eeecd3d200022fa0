//! Hourly rollups of checks: counts, time in FAIL, and response times in fixed buckets. Pure;
//! the writer thread accumulates them in memory and hands them to the store thread at most
//! once a minute, so their cost grows with the number of targets, not with the check rate.
//! The buckets are fixed (the schema names them), so rows add up across hours, days and
//! daemons, and percentiles are read back from the sums.

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike, Utc};

use crate::base::model::TargetId;

/// Upper bounds of the response-time buckets, in ms; a last bucket takes everything above.
pub const BOUNDS_MS: [u64; 10] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
/// The bucket columns of `target_hours` and `target_days`, in [`BOUNDS_MS`] order.
pub const BUCKET_COLUMNS: [&str; 11] = [
    "b10", "b25", "b50", "b100", "b250", "b500", "b1000", "b2500", "b5000", "b10000", "b_over",
];

/// What the checks of one target in one hour add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rollup {
    pub checks: u64,
    pub failures: u64,
    pub fail_seconds: f64,
    pub response_ms_sum: u64,
    pub response_ms_max: u64,
    pub buckets: [u64; 11],
}

/// Rollups by target and hour (the hour's start, seconds since the epoch).
pub type Rollups = BTreeMap<(TargetId, i64), Rollup>;

impl Rollup {
    pub fn add(&mut self, o: &Rollup) {
        self.checks += o.checks;
        self.failures += o.failures;
        self.fail_seconds += o.fail_seconds;
        self.response_ms_sum += o.response_ms_sum;
        self.response_ms_max = self.response_ms_max.max(o.response_ms_max);
        for (b, n) in self.buckets.iter_mut().zip(o.buckets) {
            *b += n;
        }
    }

    /// The response time (ms) below which `q` of the checks fell, estimated as Prometheus's
    /// `histogram_quantile` does: linearly within the bucket that holds it, from the bucket's
    /// lower bound (0 for the first) to its upper one, never a bound given as a measurement.
    /// The rollups know one more thing: no check took longer than `response_ms_max`, so the
    /// bucket holding it (the open last one included) ends there. Checks of 0-3 ms thus give
    /// a p50 of 1.5 ms, not the first bucket's 10. `None` without checks.
    pub fn percentile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let max = self.response_ms_max as f64;
        let top = bucket(self.response_ms_max);
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 || ((below + n) as f64) < rank {
                below += n;
                continue;
            }
            let lower = i.checked_sub(1).map_or(0.0, |j| BOUNDS_MS[j] as f64);
            let upper = match BOUNDS_MS.get(i) {
                Some(b) if i != top => *b as f64,
                // A maximum below the bucket is a hand-edited row: keep within the bucket.
                _ => max.max(lower),
            };
            return Some(lower + (upper - lower) * (rank - below as f64) / n as f64);
        }
        Some(max)
    }
}

fn bucket(ms: u64) -> usize {
    BOUNDS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(BOUNDS_MS.len())
}

/// The start of the UTC hour holding `at`, in seconds since the epoch.
pub fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp() - i64::from(at.minute()) * 60 - i64::from(at.second())
}

/// Adds one check that ended at `at`, took `response_ms`, and failed or not.
pub fn add_check(rollups: &mut Rollups, id: TargetId, at: DateTime<Utc>, ms: u64, failed: bool) {
    let r = rollups.entry((id, hour_of(at))).or_default();
    r.checks += 1;
    r.failures += u64::from(failed);
    r.response_ms_sum += ms;
    r.response_ms_max = r.response_ms_max.max(ms);
    r.buckets[bucket(ms)] += 1;
}

/// Adds the time from `from` to `to` spent in FAIL, split at hour boundaries.
pub fn add_fail_time(rollups: &mut Rollups, id: TargetId, from: DateTime<Utc>, to: DateTime<Utc>) {
    let (mut start, end) = (from.timestamp_millis(), to.timestamp_millis());
    while start < end {
        let hour = start.div_euclid(3_600_000) * 3600;
        let hour_end = (hour + 3600) * 1000;
        let upto = end.min(hour_end);
        let r = rollups.entry((id, hour)).or_default();
        r.fail_seconds += (upto - start) as f64 / 1000.0;
        start = upto;
    }
}

/// Adds every rollup of `more` into `into`.
pub fn merge(into: &mut Rollups, more: Rollups) {
    for (key, r) in more {
        into.entry(key).or_default().add(&r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, h, m, s).unwrap()
    }

    #[test]
    fn checks_fall_in_their_hour_and_bucket() {
        let mut r = Rollups::new();
        add_check(&mut r, 1, at(10, 59, 59), 7, false);
        add_check(&mut r, 1, at(10, 0, 0), 120, true);
        add_check(&mut r, 1, at(11, 0, 0), 20000, false);
        let ten = r[&(1, hour_of(at(10, 0, 0)))];
        assert_eq!((ten.checks, ten.failures, ten.response_ms_max), (2, 1, 120));
        assert_eq!((ten.buckets[0], ten.buckets[4]), (1, 1));
        assert_eq!(r[&(1, hour_of(at(11, 0, 0)))].buckets[10], 1);
    }

    #[test]
    fn fail_time_is_split_at_the_hour() {
        let mut r = Rollups::new();
        add_fail_time(&mut r, 3, at(10, 59, 30), at(12, 0, 15));
        assert_eq!(r[&(3, hour_of(at(10, 0, 0)))].fail_seconds, 30.0);
        assert_eq!(r[&(3, hour_of(at(11, 0, 0)))].fail_seconds, 3600.0);
        assert_eq!(r[&(3, hour_of(at(12, 0, 0)))].fail_seconds, 15.0);
    }

    #[test]
    fn percentiles_are_interpolated_within_their_bucket() {
        let mut r = Rollup::default();
        assert_eq!(r.percentile(0.5), None);
        r.buckets[1] = 90; // 10-25 ms
        r.buckets[6] = 9; // 500-1000 ms
        r.buckets[10] = 1; // above 10 s
        r.response_ms_max = 31000;
        let near = |got: Option<f64>, want: f64| {
            let got = got.unwrap();
            assert!((got - want).abs() < 1e-9, "{got} != {want}");
        };
        near(r.percentile(0.5), 10.0 + 15.0 * 50.0 / 90.0);
        near(r.percentile(0.95), 500.0 + 500.0 * 5.0 / 9.0);
        near(r.percentile(1.0), 31000.0);
        near(r.percentile(0.0), 10.0);
    }

    #[test]
    fn checks_of_0_to_3_ms_are_not_reported_as_10_ms() {
        let mut r = Rollups::new();
        for ms in [0, 1, 2, 3].repeat(25) {
            add_check(&mut r, 1, at(10, 0, 0), ms, false);
        }
        let r = r[&(1, hour_of(at(10, 0, 0)))];
        assert_eq!((r.buckets[0], r.response_ms_max), (100, 3));
        let p50 = r.percentile(0.5).unwrap();
        let p95 = r.percentile(0.95).unwrap();
        assert!((p50 - 1.5).abs() < 1e-9, "p50 {p50}");
        assert!((p95 - 2.85).abs() < 1e-9, "p95 {p95}");
        assert!(p95 <= 3.0, "never above the slowest check");
    }

    #[test]
    fn a_maximum_that_contradicts_the_buckets_keeps_the_estimate_in_its_bucket() {
        let r = Rollup {
            buckets: [0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0], // 50-100 ms
            response_ms_max: 0,
            ..Rollup::default()
        };
        let p = r.percentile(0.5).unwrap();
        assert!((50.0..=100.0).contains(&p), "{p}");
    }
}
