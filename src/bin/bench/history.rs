//! `skypunch-bench --history --targets N`: what history costs to read and to keep. Fills a
//! fresh database with 30 days of daily rollups and three incidents per target, times
//! `skypunch report --since 30d` over all of them (the real binary, three runs), then fills a
//! second database with a year of history for 100 targets at the default retention (35 days
//! of hourly rows, 365 daily rows, 52 incidents) and reads the tables' size from
//! information_schema.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};

use super::args::Settings;
use super::database::{self, BenchDb};
use super::Error;

/// Targets whose year of history is measured for the size per target.
const SIZE_TARGETS: u64 = 100;

/// The measured figures.
pub struct Figures {
    pub targets: u64,
    pub report_seconds: Vec<f64>,
    pub report_rows: usize,
    pub sizes: Vec<(String, u64, u64)>,
}

pub fn run(s: &Settings, dir: &Path) -> Result<Figures, Error> {
    let server = database::Server::parse(&s.db_url)?;
    let mut db = BenchDb::create(server.clone())?;
    let result = report_timing(s, &mut db, dir);
    let dropped = db.drop_db();
    let (report_seconds, report_rows) = result?;
    dropped?;
    let sizes = sizes(server)?;
    Ok(Figures {
        targets: s.targets,
        report_seconds,
        report_rows,
        sizes,
    })
}

fn report_timing(s: &Settings, db: &mut BenchDb, dir: &Path) -> Result<(Vec<f64>, usize), Error> {
    db.insert_targets(s.targets, 60, "http://127.0.0.1:9/")?;
    db.fill_history(30, 0, 3)?;
    let config = super::daemon::write_config(dir, &db.db_config(), 8)?;
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..3 {
        let started = Instant::now();
        let out = Command::new(&s.skypunch)
            .arg("-c")
            .arg(&config)
            .args(["--since", "30d", "--format", "csv", "report"])
            .output()
            .map_err(|e| format!("running {}: {e}", s.skypunch.display()))?;
        times.push(started.elapsed().as_secs_f64());
        if !out.status.success() {
            return Err(format!(
                "skypunch report failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        rows = String::from_utf8_lossy(&out.stdout).lines().count();
    }
    Ok((times, rows))
}

/// A year of history for [`SIZE_TARGETS`] targets at the default retention; each history
/// table's (rows, bytes of data and indexes).
fn sizes(server: database::Server) -> Result<Vec<(String, u64, u64)>, Error> {
    let mut db = BenchDb::create(server)?;
    let measured = (|| {
        db.insert_targets(SIZE_TARGETS, 60, "http://127.0.0.1:9/")?;
        db.fill_history(365, 35, 52)?;
        db.table_sizes(&["incidents", "target_hours", "target_days"])
    })();
    db.drop_db()?;
    measured
}

impl Figures {
    pub fn table(&self) -> String {
        let mut out = format!(
            "| targets with 30 days of history | {} |\n| skypunch report --since 30d (csv), s | {} |\n| report lines | {} |\n",
            self.targets,
            self.report_seconds
                .iter()
                .map(|t| format!("{t:.2}"))
                .collect::<Vec<_>>()
                .join(" / "),
            self.report_rows
        );
        let mut total = 0;
        for (table, rows, bytes) in &self.sizes {
            total += bytes;
            out.push_str(&format!(
                "| {table}: rows / bytes per target-year ({SIZE_TARGETS} targets) | {} / {} |\n",
                rows / SIZE_TARGETS,
                bytes / SIZE_TARGETS
            ));
        }
        out.push_str(&format!(
            "| history per target per year, default retention | {:.1} KiB |\n",
            total as f64 / SIZE_TARGETS as f64 / 1024.0
        ));
        out
    }

    pub fn json(&self) -> Value {
        json!({
            "targets": self.targets,
            "report_seconds": self.report_seconds,
            "report_lines": self.report_rows,
            "size_targets": SIZE_TARGETS,
            "tables": self.sizes.iter().map(|(t, r, b)| json!({"table": t, "rows": r, "bytes": b})).collect::<Vec<_>>(),
            "bytes_per_target_year": self.sizes.iter().map(|s| s.2).sum::<u64>() / SIZE_TARGETS,
        })
    }
}

impl BenchDb {
    /// For every target: `days` daily rollups, `hours` days of hourly ones, and `incidents`
    /// ten-minute incidents spread evenly over the `days`.
    pub fn fill_history(&mut self, days: u32, hours: u32, incidents: u32) -> Result<(), Error> {
        let buckets = "b10, b25, b50, b100, b250, b500, b1000, b2500, b5000, b10000, b_over";
        let values = "1400, 20, 10, 5, 2, 1, 1, 1, 0, 0, 0";
        self.exec(&format!(
            "INSERT INTO target_days (target_id, day, checks, failures, fail_seconds, \
             response_ms_sum, response_ms_max, {buckets}) \
             SELECT t.id, UTC_DATE() - INTERVAL s.seq DAY, 1440, 3, 600, 20000, 900, {values} \
             FROM targets t JOIN seq_0_to_{} s",
            days - 1
        ))?;
        if hours > 0 {
            self.exec(&format!(
                "INSERT INTO target_hours (target_id, hour, checks, failures, fail_seconds, \
                 response_ms_sum, response_ms_max, {buckets}) \
                 SELECT t.id, DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL s.seq HOUR, '%Y-%m-%d %H:00:00'), \
                 60, 0, 0, 900, 40, 58, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0 \
                 FROM targets t JOIN seq_0_to_{} s",
                hours * 24 - 1
            ))?;
        }
        let every = (days * 86400 / incidents.max(1)).max(1);
        self.exec(&format!(
            "INSERT INTO incidents (target_id, started, ended, first_reason, last_reason, \
             failed_checks, alerted, http_status) \
             SELECT t.id, UTC_TIMESTAMP() - INTERVAL (s.seq * {every} + 900) SECOND, \
             UTC_TIMESTAMP() - INTERVAL (s.seq * {every} + 300) SECOND, \
             'target status:503 != 200', 'connection refused (10.0.0.1:443)', \
             10, 1, 503 FROM targets t JOIN seq_1_to_{incidents} s"
        ))
    }

    /// `(table, rows, data and index bytes)` after ANALYZE, as information_schema has them.
    pub fn table_sizes(&mut self, tables: &[&str]) -> Result<Vec<(String, u64, u64)>, Error> {
        let mut out = Vec::new();
        for table in tables {
            self.exec(&format!("ANALYZE TABLE {table}"))?;
            let rows: u64 = self.query_one(&format!("SELECT COUNT(*) FROM {table}"))?;
            let bytes: u64 = self.query_one(&format!(
                "SELECT data_length + index_length FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = '{table}'"
            ))?;
            out.push((table.to_string(), rows, bytes));
        }
        Ok(out)
    }
}
