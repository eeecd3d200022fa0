//! The figures of one throughput run (the machine, the window, CPU, memory, the no-loss
//! verification, TLS, the mix, callgrind, blackbox_exporter) and what they add up to; printed
//! as a table by [`table`], as JSON by [`json`], and per round by [`rounds`].

mod json;
mod rounds;
mod table;

pub use rounds::Rounds;

use super::database::ScanCost;
use super::mix::MixFigures;
use super::statsline::Window;
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
    /// Seconds from the first check to SIGTERM.
    pub ran_s: f64,
    /// `ran_s` divided by the frequency.
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
}

/// An asked rate of probes in words.
fn asked(rate: f64) -> String {
    if rate.is_finite() {
        format!("{rate:.0}/s")
    } else {
        "as many as it answers".into()
    }
}
