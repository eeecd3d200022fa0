//! `--http`'s hostile window: slow clients, 10 MB request heads and crowds of 500 connections
//! (each on a thread of its own at nice 19) against the daemon's HTTP server, while a prober
//! asks `/healthz` every 100 ms and the stats lines of the window are kept.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::client::{get, request};
use super::stats_over;
use crate::bench::daemon::Daemon;
use crate::bench::statsline::StatsLine;
use crate::bench::Error;

/// What the hostile window did to the others.
#[derive(Debug, Clone, Default)]
pub struct Hostile {
    pub healthz_ok: u64,
    pub healthz_busy: u64,
    pub healthz_failed: u64,
    pub healthz_p99_ms: f64,
    pub connections_opened: u64,
}

/// Stats lines of a `window` under hostile clients, and how `/healthz` fared meanwhile.
pub fn under_attack(
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
