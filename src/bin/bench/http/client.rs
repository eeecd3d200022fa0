//! `--http`'s client, on the calling thread: timed GETs of the daemon's pages and the
//! daemon's RSS sampled every 10 ms on a thread of its own while they run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bench::{procfs, Error};

/// One timed request.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub seconds: f64,
    pub bytes: usize,
    pub status: u16,
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
pub fn timed(port: u16, path: &str, runs: usize) -> Vec<Fetch> {
    (0..runs).map(|_| get(port, path)).collect()
}

pub fn get(port: u16, path: &str) -> Fetch {
    get_as(port, path, false)
}

/// A timed GET, asking for gzip or not.
pub fn get_as(port: u16, path: &str, gzip: bool) -> Fetch {
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
pub fn series_in(port: u16) -> Result<usize, Error> {
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
