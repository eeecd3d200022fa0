//! `--http`'s crowd: a thousand connections that never finish their request head (half send
//! nothing, half a byte a second; each opened again once the server closes it at its head
//! deadline), while a prober asks `/healthz` every 100 ms and times every answer.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client;

/// What the prober saw.
#[derive(Debug, Clone, Default)]
pub struct Crowd {
    pub connections: usize,
    pub seconds: f64,
    pub answers: usize,
    pub not_200: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Hostile connections opened in all (a thousand, then again after each deadline).
    pub opened: u64,
    /// The daemon's open file descriptors, the most seen.
    pub daemon_fds_max: usize,
}

const TRICKLE: &[u8] = b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Keeps `n` hostile connections open for `window` while probing `/healthz`.
pub fn run(port: u16, pid: u32, n: usize, window: Duration) -> Crowd {
    raise_open_files();
    let stop = Arc::new(AtomicBool::new(false));
    let keepers: Vec<_> = (0..4)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || keep(port, n / 4, t, &stop))
        })
        .collect();
    // Let the crowd come in before probing.
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    let mut c = Crowd {
        connections: n,
        ..Crowd::default()
    };
    let mut times = Vec::new();
    while started.elapsed() < window {
        let f = client::get(port, "/healthz");
        if f.status != 200 {
            c.not_200 += 1;
        }
        times.push(f.seconds * 1000.0);
        c.daemon_fds_max = c.daemon_fds_max.max(open_files(pid));
        let rest = Duration::from_millis(100).saturating_sub(Duration::from_secs_f64(f.seconds));
        std::thread::sleep(rest);
    }
    c.seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    c.opened = keepers.into_iter().filter_map(|h| h.join().ok()).sum();
    times.sort_by(f64::total_cmp);
    let at = |q: usize| times[(times.len() * q / 100).min(times.len() - 1)];
    c.answers = times.len();
    (c.p50_ms, c.p99_ms, c.max_ms) = (at(50), at(99), at(100));
    c
}

/// One keeper thread's share of the crowd: a turn a second over its connections.
fn keep(port: u16, n: usize, t: usize, stop: &AtomicBool) -> u64 {
    let mut opened = 0;
    let mut mine: Vec<Option<(TcpStream, usize)>> = (0..n).map(|_| None).collect();
    while !stop.load(Ordering::Relaxed) {
        let turn = Instant::now();
        for (i, slot) in mine.iter_mut().enumerate() {
            let trickles = (i + t).is_multiple_of(2);
            let alive = slot
                .as_mut()
                .is_some_and(|(s, sent)| tick(s, sent, trickles));
            if !alive {
                *slot = TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .filter(|s| s.set_nonblocking(true).is_ok())
                    .map(|s| (s, 0));
                opened += 1;
            }
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(turn.elapsed()));
    }
    opened
}

/// A byte if the connection trickles; false once the server has answered or closed it.
fn tick(s: &mut TcpStream, sent: &mut usize, trickles: bool) -> bool {
    if trickles {
        if s.write(&[TRICKLE[*sent % TRICKLE.len()]]).is_err() {
            return false;
        }
        *sent += 1;
    }
    let mut buf = [0u8; 256];
    matches!(s.read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The tool's own soft open file limit up to its hard one: a thousand sockets.
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

impl Crowd {
    pub fn row(&self) -> String {
        format!(
            "| /healthz every 100 ms beside {} idle and trickling connections ({:.0} s): \
             answers, not 200, p50 / p99 / max ms | {}, {}, {:.1} / {:.1} / {:.1} |\n\
             | hostile connections opened; daemon fds at most | {}; {} |\n",
            self.connections,
            self.seconds,
            self.answers,
            self.not_200,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.opened,
            self.daemon_fds_max,
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "connections": self.connections,
            "seconds": self.seconds,
            "healthz_answers": self.answers,
            "healthz_not_200": self.not_200,
            "healthz_ms": { "p50": self.p50_ms, "p99": self.p99_ms, "max": self.max_ms },
            "hostile_opened": self.opened,
            "daemon_fds_max": self.daemon_fds_max,
        })
    }
}
