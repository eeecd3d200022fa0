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

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::args::Settings;
use super::crowd::{self, Crowd};
use super::daemon::{self, Daemon};
use super::database::{self, BenchDb};
use super::statsline::StatsLine;
use super::target::{free_port, Server};
use super::walks::{self, Walks};
use super::{procfs, Error};

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

/// One timed request.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub seconds: f64,
    pub bytes: usize,
    pub status: u16,
}

/// What the hostile window did to the others.
#[derive(Debug, Clone, Default)]
pub struct Hostile {
    pub healthz_ok: u64,
    pub healthz_busy: u64,
    pub healthz_failed: u64,
    pub healthz_p99_ms: f64,
    pub connections_opened: u64,
}

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

/// `f`'s result, and the daemon's largest RSS seen every 10 ms while it ran.
pub fn sampled<T>(pid: u32, f: impl FnOnce() -> T) -> (T, f64) {
    let done = Arc::new(AtomicBool::new(false));
    let max = Arc::new(Mutex::new(0.0f64));
    let sampler = {
        let (done, max) = (done.clone(), max.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let (Some(rss), Ok(mut m)) = (procfs::rss_mib(pid), max.lock()) {
                    *m = m.max(rss);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let out = f();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let peak = max.lock().map(|m| *m).unwrap_or(0.0);
    (out, peak)
}

/// `runs` GETs of `path`, one after the other.
fn timed(port: u16, path: &str, runs: usize) -> Vec<Fetch> {
    (0..runs).map(|_| get(port, path)).collect()
}

pub fn get(port: u16, path: &str) -> Fetch {
    get_as(port, path, false)
}

/// A timed GET, asking for gzip or not.
fn get_as(port: u16, path: &str, gzip: bool) -> Fetch {
    let started = Instant::now();
    let (status, body) = request_as(port, path, gzip).unwrap_or((0, Vec::new()));
    Fetch {
        seconds: started.elapsed().as_secs_f64(),
        bytes: body.len(),
        status,
    }
}

/// One GET: the status and the body.
pub fn request(port: u16, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    request_as(port, path, false)
}

fn request_as(port: u16, path: &str, gzip: bool) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let accept = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{accept}\r\n").as_bytes())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(all.len());
    let head = String::from_utf8_lossy(&all[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, all[(split + 4).min(all.len())..].to_vec()))
}

/// Samples (lines not starting with `#`) in one scrape.
fn series_in(port: u16) -> Result<usize, Error> {
    let (status, body) = request(port, "/metrics").map_err(|e| format!("scraping: {e}"))?;
    if status != 200 {
        return Err(format!("/metrics answered {status}"));
    }
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count())
}

/// Stats lines of a `window` under hostile clients, and how `/healthz` fared meanwhile.
fn under_attack(
    d: &mut Daemon,
    port: u16,
    window: Duration,
) -> Result<(Vec<StatsLine>, Hostile), Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    for _ in 0..3 {
        let (slow, big) = (stop.clone(), stop.clone());
        attackers.push(std::thread::spawn(move || slow_client(port, &slow)));
        attackers.push(std::thread::spawn(move || big_requests(port, &big)));
    }
    let opened = {
        let stop = stop.clone();
        std::thread::spawn(move || crowds(port, &stop))
    };
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || probe(port, &stop))
    };
    let lines = stats_over(d, window);
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.join();
    }
    let mut hostile = prober.join().map_err(|_| "the /healthz prober panicked")?;
    hostile.connections_opened = opened.join().unwrap_or(0);
    Ok((lines?, hostile))
}

/// Runs the calling thread at nice 19: real attackers are on other hosts, so their own CPU
/// must not be what delays the checks on this one (the kernel's work for their connections
/// still falls on the daemon's side).
fn lower_priority() {
    // SAFETY: setpriority with who = 0 changes only the calling thread on Linux.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// Sends a request a byte a second, over and over (the server cuts it off after 5 s).
fn slow_client(port: u16, stop: &AtomicBool) {
    lower_priority();
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        for b in b"GET /metrics HTTP/1.1\r\nX-Slow: ".iter().cycle() {
            if stop.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// 10 MB request heads, ten a second.
fn big_requests(port: u16, stop: &AtomicBool) {
    lower_priority();
    let chunk = vec![b'a'; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET / HTTP/1.1\r\nX-Big: ");
        for _ in 0..160 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// 500 connections at once, each asking `/healthz`, every 2 s; how many were opened.
fn crowds(port: u16, stop: &AtomicBool) -> u64 {
    lower_priority();
    let mut opened = 0;
    while !stop.load(Ordering::Relaxed) {
        let crowd: Vec<_> = (0..500)
            .map(|_| {
                std::thread::spawn(move || {
                    lower_priority();
                    request(port, "/healthz").is_ok()
                })
            })
            .collect();
        opened += crowd
            .into_iter()
            .filter_map(|h| h.join().ok())
            .filter(|ok| *ok)
            .count() as u64;
        std::thread::sleep(Duration::from_secs(2));
    }
    opened
}

/// `/healthz` every 100 ms: answers by kind, and the 99th percentile of their times.
fn probe(port: u16, stop: &AtomicBool) -> Hostile {
    let mut h = Hostile::default();
    let mut times = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let f = get(port, "/healthz");
        match f.status {
            200 => h.healthz_ok += 1,
            503 => h.healthz_busy += 1,
            _ => h.healthz_failed += 1,
        }
        times.push(f.seconds * 1000.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    times.sort_by(f64::total_cmp);
    h.healthz_p99_ms = times
        .get((times.len() * 99 / 100).min(times.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    h
}

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
