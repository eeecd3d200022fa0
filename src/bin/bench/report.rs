//! The results of a run: a table on stdout and the same figures as JSON.

use serde_json::{json, Value};

use super::database::ScanCost;
use super::mix::MixFigures;
use super::statsline::{Spread, Window};
use super::{blackbox, callgrind};

/// The machine the run was made on.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    /// /proc/loadavg's 1-minute figure just before the run: other work on the box.
    pub load_before: f64,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        };
        let kib: f64 = field(&meminfo, "MemTotal")
            .trim_end_matches(" kB")
            .parse()
            .unwrap_or(0.0);
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: field(&cpuinfo, "model name"),
            memory_gib: kib / 1024.0 / 1024.0,
            load_before: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0),
        }
    }
}

/// CPU seconds spent in the measured window, per process.
#[derive(Debug, Clone, Default)]
pub struct Cpu {
    pub daemon: f64,
    pub mariadb: Option<f64>,
    pub server: Option<f64>,
    pub bench: f64,
}

/// The no-loss verification.
#[derive(Debug, Clone, Default)]
pub struct Verify {
    /// `total_checks` of the daemon's final stats line.
    pub daemon_total: Option<u64>,
    /// SUM(pass_count + fail_count) after the daemon exited.
    pub db_total: u64,
    pub per_target_min: u64,
    pub per_target_median: u64,
    pub per_target_max: u64,
    /// Seconds from the first check to SIGTERM, divided by the frequency.
    pub per_target_expected: f64,
    pub never_checked: u64,
    pub targets_failed: u64,
    pub failure_example: Option<String>,
    pub exit_ok: bool,
    pub exit_status: String,
    pub shutdown_seconds: f64,
    pub daemon_errors: Vec<String>,
    /// The daemon's "checks wait for a free worker" warnings and all-clear lines.
    pub worker_warnings: Vec<String>,
}

impl Verify {
    /// Checks the daemon made whose result is not in the database (negative: more recorded
    /// than made). None when the daemon logged no final line.
    pub fn lost(&self) -> Option<i64> {
        self.daemon_total.map(|t| t as i64 - self.db_total as i64)
    }

    /// Why the run does not verify, if it does not.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        match self.lost() {
            None => p.push("the daemon logged no final stats line (total_checks unknown)".into()),
            Some(0) => {}
            Some(n) => p.push(format!(
                "{n} checks lost: the daemon made {} but the database recorded {}",
                self.daemon_total.unwrap_or(0),
                self.db_total
            )),
        }
        if !self.exit_ok {
            p.push(format!("the daemon exited with {}", self.exit_status));
        }
        // Within the first period a target may legitimately not be due yet.
        if self.never_checked > 0 && self.per_target_expected >= 1.5 {
            p.push(format!("{} targets were never checked", self.never_checked));
        }
        p
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    pub date: String,
    pub command: String,
    pub machine: Machine,
    pub targets: u64,
    pub frequency: u32,
    pub workers: usize,
    pub warmup_s: f64,
    pub server: String,
    pub insert_s: f64,
    pub startup_s: f64,
    pub load_ms: Option<f64>,
    pub window: Window,
    pub db_checks_in_window: u64,
    pub cpu: Cpu,
    pub peak_rss_mib: f64,
    /// After the bulk insert, and once nothing changed for longer than the loader's slack.
    pub reload_scan: (ScanCost, ScanCost),
    /// VmRSS at the end of the window (the peak is often the initial load).
    pub rss_end_mib: f64,
    /// VmRSS when the first check line was seen (targets loaded, or being loaded).
    pub rss_first_check_mib: f64,
    pub verify: Verify,
    pub blackbox: Option<blackbox::Outcome>,
    /// `--tls`: the key type and the daemon's handshake times.
    pub tls: Option<TlsFigures>,
    pub mix: Option<MixFigures>,
    /// `--callgrind`: the daemon's instructions in the window.
    pub callgrind: Option<callgrind::Counted>,
}

/// The daemon's TLS handshakes, from the traces of the targets' last checks.
#[derive(Debug, Clone, Default)]
pub struct TlsFigures {
    pub key: String,
    /// Sorted, ms.
    pub handshake_ms: Vec<f64>,
}

impl TlsFigures {
    fn quantile(&self, q: f64) -> Option<f64> {
        let v = &self.handshake_ms;
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1)) - 1;
        v.get(i).copied()
    }

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

fn scan_json(c: &ScanCost) -> Value {
    json!({"median": c.total_median, "max": c.total_max, "changed_since_median": c.changed_since_median,
           "fingerprint_median": c.fingerprint_median, "rows": c.rows})
}

fn per_check_us(cpu_s: f64, checks: u64) -> f64 {
    cpu_s * 1e6 / checks.max(1) as f64
}

impl Results {
    /// Why the run does not verify: the common checks, and those of its mode (every HTTPS
    /// target passes; in a mix no target is overdue and never checked).
    pub fn problems(&self) -> Vec<String> {
        let mut p = self.verify.problems();
        if self.tls.is_some() && self.verify.targets_failed > 0 {
            p.push(format!(
                "{} HTTPS targets failed, e.g. {}",
                self.verify.targets_failed,
                self.verify.failure_example.as_deref().unwrap_or("?")
            ));
        }
        if let Some(m) = &self.mix {
            // Generous: a schedule that slips by seconds is stalled, not noisy.
            if self.window.lag_p99.max > 5000.0 {
                p.push(format!(
                    "dispatch lag p99 reached {:.0} ms in a second of the window",
                    self.window.lag_p99.max
                ));
            }
            if m.overdue_never_checked > 0 {
                p.push(format!(
                    "{} targets were due well before the stop and never checked (a stalled \
                     schedule)",
                    m.overdue_never_checked
                ));
            }
        }
        p
    }

    pub fn rate(&self) -> f64 {
        self.window.checks as f64 / self.window.seconds.max(1e-9)
    }

    pub fn checks_per_cpu_second(&self) -> f64 {
        self.window.checks as f64 / self.cpu.daemon.max(1e-9)
    }

    pub fn instructions_per_check(&self) -> Option<f64> {
        let c = self.callgrind.as_ref()?;
        Some(c.instructions as f64 / self.window.checks.max(1) as f64)
    }

    /// The daemon's checks per CPU-second over blackbox_exporter's probes per CPU-second.
    pub fn ratio(&self) -> Option<f64> {
        let b = self.blackbox.as_ref()?;
        Some(self.checks_per_cpu_second() / b.probes_per_cpu_second())
    }

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

/// An asked rate of probes in words.
fn asked(rate: f64) -> String {
    if rate.is_finite() {
        format!("{rate:.0}/s")
    } else {
        "as many as it answers".into()
    }
}

/// Several rounds of the same run, each a daemon run then a blackbox_exporter run.
pub struct Rounds<'a>(pub &'a [Results]);

/// Median, lowest and highest of some figures.
fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    Some((median, v[0], v[n - 1]))
}

impl Rounds<'_> {
    fn ratios(&self) -> Vec<f64> {
        self.0.iter().filter_map(Results::ratio).collect()
    }

    /// One line per round and the median ratio with its spread.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "\n| round | checks/s | daemon CPU µs/check | blackbox probes/s (asked) | \
             blackbox CPU µs/probe | ratio |\n|---|---|---|---|---|---|\n",
        );
        for (i, r) in self.0.iter().enumerate() {
            let Some(b) = &r.blackbox else { continue };
            out.push_str(&format!(
                "| {} | {:.0} | {:.1} | {:.0} ({}) | {:.1} | {:.2}x |\n",
                i + 1,
                r.rate(),
                per_check_us(r.cpu.daemon, r.window.checks),
                b.rate(),
                asked(b.rate_asked),
                per_check_us(b.exporter_cpu, b.probes_ok),
                r.ratio().unwrap_or(0.0)
            ));
        }
        if let Some((median, low, high)) = spread(self.ratios()) {
            out.push_str(&format!(
                "skypunch / blackbox_exporter per CPU-second at equal rates: median {median:.2}x \
                 over {} rounds (spread {low:.2}-{high:.2}x)\n",
                self.0.len()
            ));
        }
        out
    }

    /// The figures of the rounds together; every round's own JSON is kept beside them.
    pub fn comparison_json(&self) -> Value {
        let ratios = self.ratios();
        let s = spread(ratios.clone());
        let us = |r: &Results| per_check_us(r.cpu.daemon, r.window.checks);
        json!({
            "rounds": self.0.len(),
            "ratios": ratios,
            "ratio_median": s.map(|s| s.0),
            "ratio_min": s.map(|s| s.1),
            "ratio_max": s.map(|s| s.2),
            "daemon_cpu_us_per_check": self.0.iter().map(us).collect::<Vec<_>>(),
            "daemon_cpu_us_per_check_median": spread(self.0.iter().map(us).collect()).map(|s| s.0),
            "blackbox_probes_per_cpu_s": self.0.iter()
                .filter_map(|r| r.blackbox.as_ref().map(blackbox::Outcome::probes_per_cpu_second))
                .collect::<Vec<_>>(),
        })
    }

    pub fn json(&self) -> Value {
        match self.0 {
            [one] => {
                let mut v = one.json();
                if one.blackbox.is_some() {
                    v["comparison"] = self.comparison_json();
                }
                v
            }
            all => json!({
                "command": all.first().map(|r| r.command.clone()),
                "date": all.first().map(|r| r.date.clone()),
                "comparison": self.comparison_json(),
                "runs": all.iter().map(Results::json).collect::<Vec<_>>(),
            }),
        }
    }

    /// Why the rounds do not verify, each problem with its round.
    pub fn problems(&self) -> Vec<String> {
        let many = self.0.len() > 1;
        self.0
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.problems().into_iter().map(move |p| match many {
                    true => format!("round {}: {p}", i + 1),
                    false => p,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_and_spread_of_rounds() {
        assert_eq!(spread(vec![3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(spread(vec![4.0, 1.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(spread(Vec::new()), None);
    }
}
