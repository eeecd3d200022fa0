//! The throughput run's table on stdout (and kept in BENCHMARKS.md): one row per figure.

use super::{asked, per_check_us, Results, TlsFigures};
use crate::bench::blackbox;
use crate::bench::database::ScanCost;
use crate::bench::statsline::Spread;

impl TlsFigures {
    fn summary(&self) -> String {
        match (self.quantile(0.5), self.quantile(0.99)) {
            (Some(p50), Some(p99)) => format!(
                "{p50:.1} median, {p99:.1} p99 ({} targets' last checks)",
                self.handshake_ms.len()
            ),
            _ => "n/a (no trace with a handshake)".into(),
        }
    }
}

impl Results {
    /// The table printed on stdout (and kept in BENCHMARKS.md).
    pub fn table(&self) -> String {
        let mut rows = self.window_rows();
        if let Some(t) = &self.tls {
            rows.push(("TLS key (CA and server)".into(), t.key.clone()));
            rows.push(("daemon TLS handshake ms".into(), t.summary()));
        }
        if let Some(m) = &self.mix {
            rows.extend(m.rows(self.window.seconds));
        }
        rows.extend(self.cost_rows());
        if let Some(c) = &self.callgrind {
            rows.push((
                "daemon instructions per check (callgrind)".into(),
                format!(
                    "{:.0} ({} in the window, user space, all threads)",
                    self.instructions_per_check().unwrap_or(0.0),
                    c.instructions
                ),
            ));
        }
        rows.extend(self.verify_rows());
        if let Some(b) = &self.blackbox {
            rows.extend(self.blackbox_rows(b));
        }
        let width = rows
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("| {k:<width$} | {v} |\n"));
        }
        out
    }

    /// What the window measured: rates, latencies, CPU, memory, start-up and scans.
    fn window_rows(&self) -> Vec<(String, String)> {
        let w = &self.window;
        let sp = |s: Spread| format!("{:.1} (worst second {:.1})", s.median, s.max);
        vec![
            (
                "targets / frequency / workers".into(),
                format!("{} / {} s / {}", self.targets, self.frequency, self.workers),
            ),
            ("HTTP server".into(), self.server.clone()),
            (
                "measured window".into(),
                format!(
                    "{:.1} s ({} stats lines) after {:.0} s warm-up",
                    w.seconds, w.lines, self.warmup_s
                ),
            ),
            (
                "checks/s (daemon counter)".into(),
                format!("{:.0}", self.rate()),
            ),
            (
                "checks/s (database counters)".into(),
                format!(
                    "{:.0}",
                    self.db_checks_in_window as f64 / w.seconds.max(1e-9)
                ),
            ),
            ("dispatch lag p50 ms".into(), sp(w.lag_p50)),
            ("dispatch lag p99 ms".into(), sp(w.lag_p99)),
            (
                "dispatch lag max ms (window)".into(),
                w.lag_max.map_or("n/a".into(), |m| format!("{m:.1}")),
            ),
            ("check duration p50 ms".into(), sp(w.check_p50)),
            ("check duration p99 ms".into(), sp(w.check_p99)),
            ("DB write latency p50 ms".into(), sp(w.write_p50)),
            ("DB write latency p99 ms".into(), sp(w.write_p99)),
            ("rows per write batch".into(), sp(w.rows_per_batch)),
            ("jobs queued for workers".into(), sp(w.queue)),
            ("workers busy".into(), sp(w.busy)),
            (
                "checks started over 1 s late (window)".into(),
                w.late_starts.map_or("n/a".into(), |n| n.to_string()),
            ),
        ]
    }

    /// What the checks cost: CPU, memory, start-up and reload scans.
    fn cost_rows(&self) -> Vec<(String, String)> {
        let n = self.window.checks;
        let scan = |c: &ScanCost| {
            format!(
                "{:.1} median, {:.1} max of 7 (changed_since {:.1} + fingerprint {:.1}; {} rows)",
                c.total_median, c.total_max, c.changed_since_median, c.fingerprint_median, c.rows
            )
        };
        let opt_us =
            |c: Option<f64>| c.map_or("n/a".into(), |c| format!("{:.1}", per_check_us(c, n)));
        vec![
            (
                "daemon CPU µs/check".into(),
                format!("{:.1}", per_check_us(self.cpu.daemon, n)),
            ),
            ("MariaDB CPU µs/check".into(), opt_us(self.cpu.mariadb)),
            ("HTTP server CPU µs/check".into(), opt_us(self.cpu.server)),
            (
                "bench tool CPU µs/check".into(),
                format!("{:.1}", per_check_us(self.cpu.bench, n)),
            ),
            (
                "daemon checks per CPU-second".into(),
                format!("{:.0}", self.checks_per_cpu_second()),
            ),
            (
                "daemon peak RSS MiB (VmHWM)".into(),
                format!("{:.1}", self.peak_rss_mib),
            ),
            (
                "daemon RSS at first check / window end MiB".into(),
                format!("{:.1} / {:.1}", self.rss_first_check_mib, self.rss_end_mib),
            ),
            (
                "start-up: spawn to first check s".into(),
                format!("{:.2}", self.startup_s),
            ),
            (
                "  of which loading targets ms".into(),
                self.load_ms.map_or("n/a".into(), |m| format!("{m:.0}")),
            ),
            (
                "reload scan ms, after bulk insert".into(),
                scan(&self.reload_scan.0),
            ),
            (
                "reload scan ms, nothing changed".into(),
                scan(&self.reload_scan.1),
            ),
        ]
    }

    /// What was lost, and how the daemon ended.
    fn verify_rows(&self) -> Vec<(String, String)> {
        let v = &self.verify;
        let mut rows = Vec::new();
        rows.push((
            "checks made (final stats line)".into(),
            v.daemon_total.map_or("n/a".into(), |t| t.to_string()),
        ));
        rows.push(("checks recorded (database)".into(), v.db_total.to_string()));
        rows.push((
            "LOST".into(),
            v.lost().map_or("unknown".into(), |l| l.to_string()),
        ));
        rows.push((
            "checks per target min/median/max".into(),
            if v.per_target_expected > 0.0 {
                format!(
                    "{} / {} / {} (expected about {:.1})",
                    v.per_target_min, v.per_target_median, v.per_target_max, v.per_target_expected
                )
            } else {
                format!(
                    "{} / {} / {} (frequencies differ)",
                    v.per_target_min, v.per_target_median, v.per_target_max
                )
            },
        ));
        rows.push((
            "targets with a failed check".into(),
            match &v.failure_example {
                Some(e) => format!("{} (e.g. {e})", v.targets_failed),
                None => v.targets_failed.to_string(),
            },
        ));
        rows.push(("targets never checked".into(), v.never_checked.to_string()));
        rows.push((
            "warnings: checks waiting for a worker".into(),
            match v.worker_warnings.first() {
                Some(first) => format!(
                    "{} lines, the first: {}",
                    v.worker_warnings.len(),
                    first.get(24..).unwrap_or(first)
                ),
                None => "none".into(),
            },
        ));
        rows.push((
            "daemon exit / shutdown time".into(),
            format!("{} / {:.2} s", v.exit_status, v.shutdown_seconds),
        ));
        rows
    }

    /// Prometheus blackbox_exporter on the same server, for comparison.
    fn blackbox_rows(&self, b: &blackbox::Outcome) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        rows.push(("blackbox_exporter target".into(), b.target.clone()));
        if let Some(ms) = b.tls_phase_ms() {
            rows.push((
                "blackbox_exporter TLS phase ms (mean)".into(),
                format!("{ms:.2}"),
            ));
        }
        rows.push((
            "blackbox_exporter probes/s".into(),
            format!(
                "{:.0} (asked {}; {} ok, {} failed in {:.1} s)",
                b.rate(),
                asked(b.rate_asked),
                b.probes_ok,
                b.probes_failed,
                b.seconds
            ),
        ));
        rows.push((
            "blackbox_exporter CPU µs/probe".into(),
            format!("{:.1}", per_check_us(b.exporter_cpu, b.probes_ok)),
        ));
        rows.push((
            "blackbox_exporter probes per CPU-second".into(),
            format!("{:.0}", b.probes_per_cpu_second()),
        ));
        rows.push((
            "skypunch / blackbox_exporter (per CPU-second)".into(),
            format!("{:.2}x", self.ratio().unwrap_or(0.0)),
        ));
        rows
    }
}
