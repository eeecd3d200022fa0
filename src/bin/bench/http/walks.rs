//! `--http`'s page walks: clients that each walk every page of `/api/v1/targets` at the same
//! time, as inventory scripts and dashboards do, while the daemon's VmRSS is sampled every
//! 10 ms. The figure is what the walks add to the daemon's memory.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client;
use crate::bench::procfs;

/// What one set of concurrent walks measured.
#[derive(Debug, Clone)]
pub struct Walks {
    pub walkers: usize,
    pub limit: u32,
    /// Pages and rows each walker read (the same for all when every walk ended well).
    pub pages: usize,
    pub rows: usize,
    pub seconds: Vec<f64>,
    pub failures: Vec<String>,
    pub rss_before_mib: f64,
    pub rss_max_mib: f64,
    /// A second after the walks.
    pub rss_after_mib: f64,
}

/// `walkers` clients walk all pages of `limit` targets at once.
pub fn run(port: u16, pid: u32, walkers: usize, limit: u32) -> Walks {
    let rss_before_mib = procfs::rss_mib(pid).unwrap_or(0.0);
    let (ends, rss_max_mib) = client::sampled(pid, || {
        let threads: Vec<_> = (0..walkers)
            .map(|_| std::thread::spawn(move || walk(port, limit)))
            .collect();
        threads
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the walker panicked".into()))
            })
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_secs(1));
    let mut w = Walks {
        walkers,
        limit,
        pages: 0,
        rows: 0,
        seconds: Vec::new(),
        failures: Vec::new(),
        rss_before_mib,
        rss_max_mib,
        rss_after_mib: procfs::rss_mib(pid).unwrap_or(0.0),
    };
    for end in ends {
        match end {
            Ok((pages, rows, seconds)) => {
                (w.pages, w.rows) = (pages, rows);
                w.seconds.push(seconds);
            }
            Err(e) => w.failures.push(e),
        }
    }
    w
}

/// Follows `next` from the first page to the last: pages, rows, seconds.
fn walk(port: u16, limit: u32) -> Result<(usize, usize, f64), String> {
    let started = Instant::now();
    let (mut pages, mut rows) = (0, 0);
    let mut next = format!("?limit={limit}");
    loop {
        let path = format!("/api/v1/targets{next}");
        let (status, body) = client::request(port, &path).map_err(|e| format!("{path}: {e}"))?;
        if status != 200 {
            return Err(format!("{path} answered {status}"));
        }
        let page: Value =
            serde_json::from_slice(&body).map_err(|e| format!("{path}: not JSON: {e}"))?;
        pages += 1;
        rows += page["targets"].as_array().map_or(0, Vec::len);
        match page["next"].as_str() {
            Some(n) => next = n.to_string(),
            None => return Ok((pages, rows, started.elapsed().as_secs_f64())),
        }
    }
}

impl Walks {
    /// What the walks added to the daemon's memory at most.
    pub fn extra_mib(&self) -> f64 {
        (self.rss_max_mib - self.rss_before_mib).max(0.0)
    }

    pub fn row(&self) -> String {
        let secs: Vec<String> = self.seconds.iter().map(|s| format!("{s:.2}")).collect();
        format!(
            "| {} concurrent walks of /api/v1/targets?limit={} ({} pages, {} rows each): s; \
             RSS before / largest above it / after, MiB | {}; {:.1} / {:.1} / {:.1} |\n",
            self.walkers,
            self.limit,
            self.pages,
            self.rows,
            secs.join(" / "),
            self.rss_before_mib,
            self.extra_mib(),
            self.rss_after_mib,
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "walkers": self.walkers,
            "limit": self.limit,
            "pages_each": self.pages,
            "rows_each": self.rows,
            "seconds": self.seconds,
            "failures": self.failures,
            "rss_before_mib": self.rss_before_mib,
            "rss_extra_max_mib": self.extra_mib(),
            "rss_after_mib": self.rss_after_mib,
        })
    }
}
