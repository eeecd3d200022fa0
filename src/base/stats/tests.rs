//! Unit tests of the histograms and of the stages' handles.

use super::histogram::{bucket_of, bucket_top};
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
