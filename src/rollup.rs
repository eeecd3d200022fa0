//! Hourly rollups of checks: counts, time in FAIL, and response times in fixed buckets. Pure;
//! the writer thread accumulates them in memory and hands them to the store thread at most
//! once a minute, so their cost grows with the number of targets, not with the check rate.
//! The buckets are fixed (the schema names them), so rows add up across hours, days and
//! daemons, and percentiles are read back from the sums.

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike, Utc};

use crate::model::TargetId;

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

    /// The response time below which `q` of the checks fell, as its bucket's upper bound
    /// (the largest time seen, for the last bucket); `None` without checks.
    pub fn percentile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= wanted {
                return Some(BOUNDS_MS.get(i).copied().unwrap_or(self.response_ms_max));
            }
        }
        Some(self.response_ms_max)
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
    fn percentiles_come_from_the_buckets() {
        let mut r = Rollup::default();
        assert_eq!(r.percentile(0.5), None);
        r.buckets[1] = 90; // ≤ 25 ms
        r.buckets[6] = 9; // ≤ 1000 ms
        r.buckets[10] = 1;
        r.response_ms_max = 31000;
        assert_eq!(r.percentile(0.5), Some(25));
        assert_eq!(r.percentile(0.95), Some(1000));
        assert_eq!(r.percentile(1.0), Some(31000));
    }
}
