//! The stats thread ("skypunch-stats"): every `StatsInterval` seconds, one log line with the
//! daemon's counters over the interval, and a last one (`final=1`) once the pipeline has
//! stopped, whose `total_checks` is every check the daemon made and whose `abandoned` counts
//! the checks a stop cut short past `StopGrace` (not recorded). The benchmark parses these
//! lines; keep their keys stable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::base::stats::{quantile, Stats};

/// The thread body: reports until `pipeline_done` closes, which the daemon does once the
/// wheel, every worker and the writer have finished, so the final line's counters are
/// complete. An interval of 0 turns reporting off.
pub fn run(stats: &Arc<Stats>, interval: Duration, pipeline_done: Receiver<()>) {
    if interval.is_zero() {
        let _ = pipeline_done.recv();
        return;
    }
    let mut last = Window::take(stats);
    while let Err(RecvTimeoutError::Timeout) = pipeline_done.recv_timeout(interval) {
        crate::base::fault::point("stats");
        let now = Window::take(stats);
        log::info!("{}", line(stats, &last, &now, false));
        last = now;
    }
    let now = Window::take(stats);
    log::info!("{}", line(stats, &last, &now, true));
}

/// The counters at one moment.
struct Window {
    at: Instant,
    checks: u64,
    fails: u64,
    alerts: u64,
    written: u64,
    batches: u64,
    rows: u64,
    lag: Vec<u64>,
    duration: Vec<u64>,
    write: Vec<u64>,
}

impl Window {
    fn take(s: &Stats) -> Window {
        Window {
            at: Instant::now(),
            checks: s.checks(),
            fails: s.fails(),
            alerts: s.alerts_queued(),
            written: s.results_written(),
            batches: s.batches(),
            rows: s.rows_written(),
            lag: s.lag().snapshot(),
            duration: s.duration().snapshot(),
            write: s.write_latency().snapshot(),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn line(s: &Stats, a: &Window, b: &Window, last: bool) -> String {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(0.001);
    let checks = b.checks - a.checks;
    let batches = b.batches - a.batches;
    format!(
        "stats: checks={} total_checks={} rate={:.1}/s lag_p50_ms={} lag_p99_ms={} lag_max_ms={} \
         check_p50_ms={} check_p99_ms={} write_p50_ms={} write_p99_ms={} batches={} \
         rows_per_batch={:.1} results_written={} results_held={} queue={} \
         lag_window_max_ms={} fails={} alerts={} results_dropped={} fails_by_kind={} busy={} \
         oldest_wait_ms={} late_starts={} abandoned={} rows_skipped={} stale_results={} \
         missed_rounds={} clock_offset_ms={} final={}",
        checks,
        b.checks,
        checks as f64 / secs,
        ms(quantile(&a.lag, &b.lag, 0.5)),
        ms(quantile(&a.lag, &b.lag, 0.99)),
        ms(s.lag().max()),
        ms(quantile(&a.duration, &b.duration, 0.5)),
        ms(quantile(&a.duration, &b.duration, 0.99)),
        ms(quantile(&a.write, &b.write, 0.5)),
        ms(quantile(&a.write, &b.write, 0.99)),
        batches,
        (b.rows - a.rows) as f64 / batches.max(1) as f64,
        b.written,
        s.unwritten(),
        s.queue_depth(),
        ms(quantile(&a.lag, &b.lag, 1.0)),
        b.fails - a.fails,
        b.alerts - a.alerts,
        s.results_dropped(),
        fails_by_kind(s),
        s.workers_busy(),
        s.oldest_wait_ms(),
        s.late_starts(),
        s.abandoned(),
        crate::db::decode::skipped(),
        s.stale_results(),
        s.missed_rounds(),
        s.clock_offset_ms(),
        u8::from(last),
    )
}

/// `status:3,no_response:1`: failed checks since start by kind, `-` when none failed.
fn fails_by_kind(s: &Stats) -> String {
    let kinds: Vec<String> = s
        .fails_by_kind()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name}:{n}"))
        .collect();
    if kinds.is_empty() {
        "-".to_string()
    } else {
        kinds.join(",")
    }
}
