//! What `--http` reports: its table on stdout, its JSON, and the problems that fail the run.

use serde_json::{json, Value};

use super::client::Fetch;
use super::walks::Walks;
use super::{Figures, PAGE_TARGETS};
use crate::bench::statsline::StatsLine;

fn seconds(f: &[Fetch]) -> Vec<f64> {
    f.iter().map(|x| x.seconds).collect()
}

/// The largest per-line p99 lag, and the mean of them, over a window's lines.
fn lag(lines: &[StatsLine]) -> (f64, f64) {
    let p99: Vec<f64> = lines
        .iter()
        .filter(|l| l.checks > 0)
        .map(|l| l.lag_p99_ms)
        .collect();
    let max = p99.iter().copied().fold(0.0, f64::max);
    let mean = p99.iter().sum::<f64>() / p99.len().max(1) as f64;
    (max, mean)
}

impl Figures {
    pub fn table(&self) -> String {
        let fmt = |f: &[Fetch]| {
            seconds(f)
                .iter()
                .map(|s| format!("{s:.3}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let (quiet_max, quiet_mean) = lag(&self.lag_quiet);
        let (hostile_max, hostile_mean) = lag(&self.lag_hostile);
        let h = &self.hostile;
        format!(
            "| targets (every {} s) | {} |\n\
             | /metrics scrape, s | {} |\n\
             | /metrics size, bytes / samples | {} / {} |\n\
             | daemon RSS before scraping, MiB | {:.1} |\n\
             | largest RSS above that while scraping, MiB | {:.1} |\n\
             | peak RSS (VmHWM) before / after scraping, MiB | {:.1} / {:.1} |\n\
             | / (status page, {} targets listed), s | {} ({} bytes) |\n\
             | / gzipped, s | {} ({} bytes) |\n\
             | /target/1, s | {} ({} bytes) |\n\
             | dispatch lag p99 per stats line, quiet: mean / max, ms | {quiet_mean:.1} / {quiet_max:.1} |\n\
             | the same under hostile clients, ms | {hostile_mean:.1} / {hostile_max:.1} |\n\
             | /healthz under hostile clients: 200 / 503 busy / failed, p99 ms | {} / {} / {}, {:.1} |\n\
             | hostile connections answered | {} |\n\
             {}{}\
             | daemon exit | {} |\n",
            self.frequency,
            self.targets,
            fmt(&self.scrapes),
            self.scrapes.last().map_or(0, |f| f.bytes),
            self.series,
            self.rss_before_mib,
            (self.rss_during_max_mib - self.rss_before_mib).max(0.0),
            self.peak_before_mib,
            self.peak_after_mib,
            PAGE_TARGETS.min(self.targets),
            fmt(&self.front),
            self.front.last().map_or(0, |f| f.bytes),
            fmt(&self.front_gzip),
            self.front_gzip.last().map_or(0, |f| f.bytes),
            fmt(&self.target_page),
            self.target_page.last().map_or(0, |f| f.bytes),
            h.healthz_ok,
            h.healthz_busy,
            h.healthz_failed,
            h.healthz_p99_ms,
            h.connections_opened,
            self.walks.iter().map(Walks::row).collect::<String>(),
            self.crowd.row(),
            self.exit,
        )
    }

    pub fn json(&self, command: &str) -> Value {
        let (quiet_max, quiet_mean) = lag(&self.lag_quiet);
        let (hostile_max, hostile_mean) = lag(&self.lag_hostile);
        let h = &self.hostile;
        json!({
            "command": command,
            "date": chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z").to_string(),
            "targets": self.targets,
            "frequency_s": self.frequency,
            "scrape_seconds": seconds(&self.scrapes),
            "scrape_bytes": self.scrapes.last().map_or(0, |f| f.bytes),
            "scrape_statuses": self.scrapes.iter().map(|f| f.status).collect::<Vec<_>>(),
            "samples": self.series,
            "rss_before_mib": self.rss_before_mib,
            "rss_extra_while_scraping_mib": (self.rss_during_max_mib - self.rss_before_mib).max(0.0),
            "peak_rss_before_mib": self.peak_before_mib,
            "peak_rss_after_mib": self.peak_after_mib,
            "front_page_seconds": seconds(&self.front),
            "front_page_bytes": self.front.last().map_or(0, |f| f.bytes),
            "front_page_targets": PAGE_TARGETS.min(self.targets),
            "front_page_gzip_seconds": seconds(&self.front_gzip),
            "front_page_gzip_bytes": self.front_gzip.last().map_or(0, |f| f.bytes),
            "target_page_seconds": seconds(&self.target_page),
            "lag_p99_ms_quiet": { "mean": quiet_mean, "max": quiet_max },
            "lag_p99_ms_hostile": { "mean": hostile_mean, "max": hostile_max },
            "healthz_under_hostile": {
                "ok": h.healthz_ok, "busy_503": h.healthz_busy, "failed": h.healthz_failed,
                "p99_ms": h.healthz_p99_ms,
            },
            "hostile_connections_answered": h.connections_opened,
            "api_walks": self.walks.iter().map(Walks::json).collect::<Vec<_>>(),
            "healthz_beside_crowd": self.crowd.json(),
            "daemon_exit": self.exit,
        })
    }

    /// What makes the run a failure: a scrape, page or walk that did not answer 200, a
    /// `/healthz` beside the crowd that did not, or a daemon that did not exit cleanly.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, list) in [
            ("/metrics", &self.scrapes),
            ("/", &self.front),
            ("/ (gzip)", &self.front_gzip),
            ("/target/1", &self.target_page),
        ] {
            if let Some(f) = list.iter().find(|f| f.status != 200) {
                out.push(format!("{what} answered {}", f.status));
            }
        }
        for w in &self.walks {
            out.extend(
                w.failures
                    .iter()
                    .map(|f| format!("a walk of limit {}: {f}", w.limit)),
            );
        }
        if self.crowd.not_200 > 0 {
            out.push(format!(
                "/healthz beside the crowd: {} answers not 200",
                self.crowd.not_200
            ));
        }
        if self.exit != "exit status: 0" {
            out.push(format!("the daemon ended with {}", self.exit));
        }
        out
    }
}
