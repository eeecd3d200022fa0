//! `skypunch-bench --http --targets N`: what the daemon's HTTP server costs with N targets.
//! The daemon checks N targets (every `--frequency` s, against the tool's built-in server)
//! with `[http] Listen` on a free loopback port; the first [`PAGE_TARGETS`] have 90 days of
//! daily rollups, a day of hourly ones and a few incidents, so the status page has its full
//! content. Measured: each `/metrics` scrape's time, size and series, and the daemon's memory
//! above what it held before (sampled every 10 ms during the scrapes, and its peak); the time
//! of `/` and `/target/ID`; and the checks' dispatch lag (from the stats lines) in a window
//! with no HTTP client against one under hostile clients (500 connections at once, slow
//! clients sending a byte a second, 10 MB requests ten times a second each; the attackers run
//! at nice 19, as their CPU would be another host's), while a client asks `/healthz` every
//! 100 ms and counts its answers. Also, before the scrapes: four concurrent walks of every
//! page of `/api/v1/targets` ([`walks`], at the largest page and the default one) with the
//! daemon's memory sampled; and before the hostile window, `/healthz` timed beside a
//! thousand idle and trickling connections ([`crowd`]; `[http] MaxConnections` is 1,500).
//! This file runs the scenario in order, on the main thread; the timed requests are in
//! [`client`], the hostile clients in [`hostile`], the table and JSON in [`report`].

pub mod client;
pub mod crowd;
pub mod hostile;
mod report;
pub mod walks;

use std::path::Path;
use std::time::{Duration, Instant};

use super::args::Settings;
use super::daemon::{self, Daemon};
use super::database::{self, BenchDb};
use super::statsline::StatsLine;
use super::target::{free_port, Server};
use super::{procfs, Error};
use client::{get_as, sampled, series_in, timed, Fetch};
use crowd::Crowd;
use hostile::{under_attack, Hostile};
use walks::Walks;

/// Targets given a status page's history (the page lists at most 500).
const PAGE_TARGETS: u64 = 500;
/// Scrapes and page loads measured.
const RUNS: usize = 5;
/// Clients walking the API's pages at once, and the page sizes they ask for (the largest
/// allowed, and the default).
const WALKERS: usize = 4;
const WALK_LIMITS: [u32; 4] = [5_000, 5_000, 500, 500];
/// Connections in the crowd that never finish a request.
const CROWD: usize = 1_000;

pub struct Figures {
    pub targets: u64,
    pub frequency: u32,
    pub scrapes: Vec<Fetch>,
    pub series: usize,
    pub rss_before_mib: f64,
    pub rss_during_max_mib: f64,
    pub peak_before_mib: f64,
    pub peak_after_mib: f64,
    pub front: Vec<Fetch>,
    /// `/` asked with `Accept-Encoding: gzip`.
    pub front_gzip: Vec<Fetch>,
    pub target_page: Vec<Fetch>,
    pub lag_quiet: Vec<StatsLine>,
    pub lag_hostile: Vec<StatsLine>,
    pub hostile: Hostile,
    pub walks: Vec<Walks>,
    pub crowd: Crowd,
    pub exit: String,
}

pub fn run(s: &Settings, dir: &Path) -> Result<Figures, Error> {
    let server = Server::builtin(None)?;
    let mut db = database::Server::parse(&s.db_url).and_then(BenchDb::create)?;
    let measured = measure(s, &mut db, &server, dir);
    if !s.keep {
        let _ = db.drop_db();
    }
    server.stop();
    measured
}

fn measure(s: &Settings, db: &mut BenchDb, server: &Server, dir: &Path) -> Result<Figures, Error> {
    let url = format!("http://127.0.0.1:{}/", server.port());
    db.insert_targets(s.targets, s.frequency, &url)?;
    fill_page_history(db)?;
    let port = free_port()?;
    let config = daemon::write_config(dir, &db.db_config(), s.workers)?;
    let text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    let text = text.replace(
        "[http]\nListen:\n",
        &format!("[http]\nListen: 127.0.0.1:{port}\nMaxConnections: 1500\n"),
    );
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let mut d = Daemon::start(&s.skypunch, &[], &config, dir)?;
    let pid = d.pid();
    let warm = s.warmup.max(Duration::from_secs(5));
    d.wait_until(warm + Duration::from_secs(60), "the warm-up", |d| {
        d.stats.iter().filter(|l| l.checks > 0).count() as f64 >= warm.as_secs_f64()
    })?;
    let lag_quiet = stats_over(&mut d, s.duration)?;
    // The walks first, so that what they add is measured from the daemon's own level, not
    // from arenas the scrapes and pages have grown already.
    let walks = WALK_LIMITS
        .iter()
        .map(|limit| walks::run(port, pid, WALKERS, *limit))
        .collect();
    let rss_before_mib = procfs::rss_mib(pid).unwrap_or(0.0);
    let peak_before_mib = procfs::peak_rss_mib(pid).unwrap_or(0.0);
    let (scrapes, rss_during_max_mib) = sampled(pid, || timed(port, "/metrics", RUNS));
    let series = series_in(port)?;
    let peak_after_mib = procfs::peak_rss_mib(pid).unwrap_or(0.0);
    let front = timed(port, "/", RUNS);
    let front_gzip = (0..RUNS).map(|_| get_as(port, "/", true)).collect();
    let target_page = timed(port, "/target/1", RUNS);
    let crowd = crowd::run(port, pid, CROWD, s.duration);
    let (lag_hostile, hostile) = under_attack(&mut d, port, s.duration)?;
    let (status, _) = d.stop(Duration::from_secs(60))?;
    Ok(Figures {
        targets: s.targets,
        frequency: s.frequency,
        scrapes,
        series,
        rss_before_mib,
        rss_during_max_mib,
        peak_before_mib,
        peak_after_mib,
        front,
        front_gzip,
        target_page,
        lag_quiet,
        lag_hostile,
        hostile,
        walks,
        crowd,
        exit: status.to_string(),
    })
}

/// 90 days of daily rollups, 24 hours of hourly ones and three incidents for the targets the
/// status page lists.
fn fill_page_history(db: &mut BenchDb) -> Result<(), Error> {
    let buckets = "b10, b25, b50, b100, b250, b500, b1000, b2500, b5000, b10000, b_over";
    db.exec(&format!(
        "INSERT INTO target_days (target_id, day, checks, failures, fail_seconds, \
         response_ms_sum, response_ms_max, {buckets}) \
         SELECT t.id, UTC_DATE() - INTERVAL s.seq DAY, 1440, 3, 600, 20000, 900, \
         1400, 20, 10, 5, 2, 1, 1, 1, 0, 0, 0 \
         FROM targets t JOIN seq_1_to_89 s WHERE t.id <= {PAGE_TARGETS}"
    ))?;
    db.exec(&format!(
        "INSERT INTO target_hours (target_id, hour, checks, failures, fail_seconds, \
         response_ms_sum, response_ms_max, {buckets}) \
         SELECT t.id, DATE_FORMAT(UTC_TIMESTAMP() - INTERVAL s.seq HOUR, '%Y-%m-%d %H:00:00'), \
         60, 0, 0, 900, 40, 58, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0 \
         FROM targets t JOIN seq_1_to_23 s WHERE t.id <= {PAGE_TARGETS}"
    ))?;
    db.exec(&format!(
        "INSERT INTO incidents (target_id, started, ended, first_reason, last_reason, \
         failed_checks, alerted, http_status) \
         SELECT t.id, UTC_TIMESTAMP() - INTERVAL (s.seq * 20 + 1) DAY, \
         UTC_TIMESTAMP() - INTERVAL (s.seq * 20 + 1) DAY + INTERVAL 10 MINUTE, \
         'target status:503 != 200', 'connection refused', 10, 1, 503 \
         FROM targets t JOIN seq_1_to_3 s WHERE t.id <= {PAGE_TARGETS}"
    ))
}

/// The stats lines of the next `window`.
fn stats_over(d: &mut Daemon, window: Duration) -> Result<Vec<StatsLine>, Error> {
    let first = d.stats.len();
    let end = Instant::now() + window;
    d.wait_until(
        window + Duration::from_secs(10),
        "the measured window",
        |_| Instant::now() >= end,
    )?;
    Ok(d.stats[first..].to_vec())
}
