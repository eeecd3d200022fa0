//! Parsing the daemon's log: the periodic `stats:` line (src/statsline.rs) and the time stamp
//! every line starts with, and summarizing the lines of a measured window.

use chrono::{Local, NaiveDateTime, TimeZone};

/// Seconds since the epoch of a log line's `2024-05-01 10:00:00,123` prefix.
pub fn timestamp(line: &str) -> Option<f64> {
    let stamp = line.get(..23)?;
    let naive = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S,%3f").ok()?;
    let local = Local.from_local_datetime(&naive).earliest()?;
    Some(local.timestamp_millis() as f64 / 1000.0)
}

/// True for a check line: `<stamp> INFO [id] name ...` or the same at ERROR.
pub fn is_check_line(line: &str) -> bool {
    let rest = line.get(24..).unwrap_or("");
    rest.starts_with("INFO [") || rest.starts_with("ERROR [")
}

/// One `stats:` line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsLine {
    /// When it was logged, seconds since the epoch.
    pub at: f64,
    pub checks: u64,
    pub total_checks: u64,
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    /// Since the daemon started (the daemon's histogram maximum is never reset).
    pub lag_max_ms: f64,
    /// Over this line's interval, to the histogram's resolution; absent from older daemons.
    pub lag_window_max_ms: Option<f64>,
    pub check_p50_ms: f64,
    pub check_p99_ms: f64,
    pub write_p50_ms: f64,
    pub write_p99_ms: f64,
    pub batches: u64,
    pub rows_per_batch: f64,
    pub results_written: u64,
    pub results_held: u64,
    pub queue: u64,
    /// Workers running a check at the wheel's last tick; absent from older daemons.
    pub busy: Option<u64>,
    /// Checks started more than 1 s after they were due, since start; absent from older daemons.
    pub late_starts: Option<u64>,
    /// The line logged once the pipeline has stopped.
    pub last: bool,
}

/// Parses a log line if it is a stats line.
pub fn parse(line: &str) -> Option<StatsLine> {
    let body = &line[line.find(" stats: ")? + 8..];
    let at = timestamp(line)?;
    let mut s = StatsLine {
        at,
        ..StatsLine::default()
    };
    let mut seen_total = false;
    for pair in body.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let value = value.trim_end_matches("/s");
        let f = || value.parse::<f64>().ok();
        let u = || value.parse::<u64>().ok();
        match key {
            "checks" => s.checks = u()?,
            "total_checks" => {
                s.total_checks = u()?;
                seen_total = true;
            }
            "lag_p50_ms" => s.lag_p50_ms = f()?,
            "lag_p99_ms" => s.lag_p99_ms = f()?,
            "lag_max_ms" => s.lag_max_ms = f()?,
            "lag_window_max_ms" => s.lag_window_max_ms = Some(f()?),
            "check_p50_ms" => s.check_p50_ms = f()?,
            "check_p99_ms" => s.check_p99_ms = f()?,
            "write_p50_ms" => s.write_p50_ms = f()?,
            "write_p99_ms" => s.write_p99_ms = f()?,
            "batches" => s.batches = u()?,
            "rows_per_batch" => s.rows_per_batch = f()?,
            "results_written" => s.results_written = u()?,
            "results_held" => s.results_held = u()?,
            "queue" => s.queue = u()?,
            "busy" => s.busy = Some(u()?),
            "late_starts" => s.late_starts = Some(u()?),
            "final" => s.last = value == "1",
            _ => {}
        }
    }
    seen_total.then_some(s)
}

/// Median, and maximum, of one quantity over a window's lines.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub max: f64,
}

fn spread(values: impl Iterator<Item = f64>) -> Spread {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return Spread::default();
    }
    v.sort_by(f64::total_cmp);
    Spread {
        median: v[v.len() / 2],
        max: v[v.len() - 1],
    }
}

/// A window's figures, from the lines logged after `start` up to and including `end`.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub seconds: f64,
    pub checks: u64,
    pub lines: usize,
    pub lag_p50: Spread,
    pub lag_p99: Spread,
    /// Worst per-interval maximum within the window (None when the daemon does not log it).
    pub lag_max: Option<f64>,
    pub check_p50: Spread,
    pub check_p99: Spread,
    pub write_p50: Spread,
    pub write_p99: Spread,
    pub rows_per_batch: Spread,
    pub queue: Spread,
    pub busy: Spread,
    /// Checks started more than 1 s late within the window (None: the daemon does not say).
    pub late_starts: Option<u64>,
}

pub fn window(start: &StatsLine, inside: &[StatsLine]) -> Window {
    let end = inside.last().unwrap_or(start);
    let get = |f: fn(&StatsLine) -> f64| spread(inside.iter().map(f));
    Window {
        seconds: end.at - start.at,
        checks: end.total_checks - start.total_checks,
        lines: inside.len(),
        lag_p50: get(|s| s.lag_p50_ms),
        lag_p99: get(|s| s.lag_p99_ms),
        lag_max: inside
            .iter()
            .map(|s| s.lag_window_max_ms)
            .try_fold(0.0f64, |m, v| v.map(|v| m.max(v))),
        check_p50: get(|s| s.check_p50_ms),
        check_p99: get(|s| s.check_p99_ms),
        write_p50: get(|s| s.write_p50_ms),
        write_p99: get(|s| s.write_p99_ms),
        rows_per_batch: get(|s| s.rows_per_batch),
        queue: get(|s| s.queue as f64),
        busy: get(|s| s.busy.unwrap_or(0) as f64),
        late_starts: end.late_starts.zip(start.late_starts).map(|(b, a)| b - a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "2025-03-01 10:00:01,250 INFO stats: checks=1000 total_checks=5000 \
        rate=999.5/s lag_p50_ms=0.5 lag_p99_ms=3.1 lag_max_ms=40.0 check_p50_ms=0.3 \
        check_p99_ms=1.2 write_p50_ms=4.0 write_p99_ms=9.5 batches=10 rows_per_batch=100.0 \
        results_written=4990 results_held=10 queue=2 lag_window_max_ms=3.6 final=0";

    #[test]
    fn a_stats_line_is_read_whole() {
        let s = parse(LINE).unwrap();
        assert_eq!(s.checks, 1000);
        assert_eq!(s.total_checks, 5000);
        assert_eq!(s.lag_p99_ms, 3.1);
        assert_eq!(s.lag_window_max_ms, Some(3.6));
        assert_eq!(s.results_held, 10);
        assert!(!s.last);
        let t0 = timestamp("2025-03-01 10:00:00,000 INFO x").unwrap();
        assert!((s.at - t0 - 1.25).abs() < 1e-6);
    }

    #[test]
    fn other_lines_are_not_stats() {
        assert!(parse("2025-03-01 10:00:01,250 INFO [1] x GET http://a PASS (OK) 1ms").is_none());
        assert!(is_check_line(
            "2025-03-01 10:00:01,250 INFO [1] x GET http://a PASS (OK) 1ms"
        ));
        assert!(is_check_line(
            "2025-03-01 10:00:01,250 ERROR [1] x GET http://a FAIL (x) 1ms"
        ));
        assert!(!is_check_line(LINE));
    }

    #[test]
    fn a_window_takes_medians_and_worsts() {
        let start = parse(LINE).unwrap();
        let mut a = start.clone();
        a.at += 1.0;
        a.total_checks += 900;
        a.lag_p99_ms = 10.0;
        let mut b = a.clone();
        b.at += 1.0;
        b.total_checks += 1100;
        b.lag_p99_ms = 2.0;
        let mut c = b.clone();
        c.at += 1.0;
        c.total_checks += 1000;
        c.lag_p99_ms = 3.0;
        let w = window(&start, &[a, b, c]);
        assert_eq!(w.checks, 3000);
        assert!((w.seconds - 3.0).abs() < 1e-9);
        assert_eq!(w.lag_p99.median, 3.0);
        assert_eq!(w.lag_p99.max, 10.0);
        assert_eq!(w.lag_max, Some(3.6));
    }
}
