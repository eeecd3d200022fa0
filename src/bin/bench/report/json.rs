//! The throughput run's figures as JSON, the form kept beside BENCHMARKS.md.

use serde_json::{json, Value};

use super::{per_check_us, Results};
use crate::bench::database::ScanCost;
use crate::bench::mix::MixFigures;
use crate::bench::statsline::Spread;

fn scan_json(c: &ScanCost) -> Value {
    json!({"median": c.total_median, "max": c.total_max, "changed_since_median": c.changed_since_median,
           "fingerprint_median": c.fingerprint_median, "rows": c.rows})
}

impl Results {
    pub fn json(&self) -> Value {
        let w = &self.window;
        let sp = |s: Spread| json!({"median_of_seconds": s.median, "worst_second": s.max});
        let v = &self.verify;
        json!({
            "date": self.date,
            "command": self.command,
            "machine": {"cpus": self.machine.cpus, "cpu_model": self.machine.cpu_model,
                        "memory_gib": self.machine.memory_gib, "load_before": self.machine.load_before},
            "settings": {"targets": self.targets, "frequency_s": self.frequency, "workers": self.workers,
                         "warmup_s": self.warmup_s, "server": self.server},
            "window_s": w.seconds,
            "checks_in_window": w.checks,
            "checks_per_s": self.rate(),
            "db_checks_per_s": self.db_checks_in_window as f64 / w.seconds.max(1e-9),
            "lag_ms": {"p50": sp(w.lag_p50), "p99": sp(w.lag_p99), "max_in_window": w.lag_max},
            "check_ms": {"p50": sp(w.check_p50), "p99": sp(w.check_p99)},
            "db_write_ms": {"p50": sp(w.write_p50), "p99": sp(w.write_p99)},
            "rows_per_batch": sp(w.rows_per_batch),
            "queue_depth": sp(w.queue),
            "workers_busy": sp(w.busy),
            "late_starts_in_window": w.late_starts,
            "tls": self.tls.as_ref().map(|t| json!({"key": t.key, "handshake_ms": {
                "median": t.quantile(0.5), "p99": t.quantile(0.99), "n": t.handshake_ms.len()}})),
            "mix": self.mix.as_ref().map(MixFigures::json),
            "cpu_s": {"daemon": self.cpu.daemon, "mariadb": self.cpu.mariadb,
                      "http_server": self.cpu.server, "bench_tool": self.cpu.bench},
            "cpu_us_per_check": {"daemon": per_check_us(self.cpu.daemon, w.checks),
                                 "mariadb": self.cpu.mariadb.map(|c| per_check_us(c, w.checks)),
                                 "http_server": self.cpu.server.map(|c| per_check_us(c, w.checks))},
            "daemon_checks_per_cpu_s": self.checks_per_cpu_second(),
            "peak_rss_mib": self.peak_rss_mib,
            "startup_s": self.startup_s,
            "insert_targets_s": self.insert_s,
            "load_targets_ms": self.load_ms,
            "reload_scan_ms": {"after_bulk_insert": scan_json(&self.reload_scan.0),
                               "nothing_changed": scan_json(&self.reload_scan.1)},
            "rss_end_mib": self.rss_end_mib,
            "rss_first_check_mib": self.rss_first_check_mib,
            "verify": {"daemon_total": v.daemon_total, "db_total": v.db_total, "lost": v.lost(),
                       "per_target": {"min": v.per_target_min, "median": v.per_target_median,
                                      "max": v.per_target_max, "expected": v.per_target_expected},
                       "never_checked": v.never_checked, "targets_failed": v.targets_failed,
                       "exit_ok": v.exit_ok, "shutdown_s": v.shutdown_seconds,
                       "daemon_errors": v.daemon_errors, "worker_warnings": v.worker_warnings, "problems": self.problems()},
            "blackbox": self.blackbox.as_ref().map(|b| json!({
                "seconds": b.seconds, "probes_ok": b.probes_ok, "probes_failed": b.probes_failed,
                "exporter_cpu_s": b.exporter_cpu, "http_server_cpu_s": b.server_cpu,
                "probes_per_cpu_s": b.probes_per_cpu_second(),
                "target": b.target, "tls_phase_ms_mean": b.tls_phase_ms(),
                "rate_asked": b.rate_asked.is_finite().then_some(b.rate_asked),
                "probes_per_s": b.rate(),
                "skypunch_ratio": self.ratio(),
            })),
            "callgrind": self.callgrind.as_ref().map(|c| json!({
                "instructions_in_window": c.instructions,
                "instructions_per_check": self.instructions_per_check(),
                "profile": c.profile.display().to_string(),
            })),
        })
    }
}
