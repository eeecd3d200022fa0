//! `--mix`: a fleet as it is, not one URL N times. Each target gets a kind and a frequency
//! from a hash of its id (so a run is repeatable): 10 % HTTPS, 2 % answering after a delay,
//! 1 % accepting and never answering (held until their timeout), 0.5 % answering 500, the
//! rest plain 200; frequencies spread evenly over a range (10–300 s; 1–4 s in the smoke).
//! The slow and hanging services are threads of this tool on 127.0.0.1, bounded in the
//! connections they hold; the others are the HTTP(S) server of the run.

use std::collections::{BTreeMap, VecDeque};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::target::answer;
use super::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Plain,
    Https,
    Slow,
    Hanging,
    Failing,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain 200",
            Kind::Https => "HTTPS 200",
            Kind::Slow => "slow 200",
            Kind::Hanging => "hanging",
            Kind::Failing => "500",
        }
    }

    /// Whether its checks end before their timeout.
    pub fn in_time(self) -> bool {
        self != Kind::Hanging
    }
}

/// The shape of one mix run.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub min_frequency: u32,
    pub max_frequency: u32,
    /// Every target's timeout (the hanging ones use all of it).
    pub timeout: u32,
    /// How long the slow service takes to answer.
    pub slow_after: Duration,
}

impl Shape {
    pub const FULL: Shape = Shape {
        min_frequency: 10,
        max_frequency: 300,
        timeout: 10,
        slow_after: Duration::from_secs(2),
    };
    /// Generous timeouts: CI runs it beside the rest of the suite on two cores, where a
    /// handshake with the built-in server can take a second or more.
    pub const SMOKE: Shape = Shape {
        min_frequency: 1,
        max_frequency: 4,
        timeout: 4,
        slow_after: Duration::from_millis(500),
    };
}

fn mixed(id: u64, salt: u64) -> u64 {
    // splitmix64: consecutive ids land far apart.
    let mut z = id.wrapping_add(salt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn kind_of(id: u64) -> Kind {
    match mixed(id, 1) % 1000 {
        0..=99 => Kind::Https,
        100..=119 => Kind::Slow,
        120..=129 => Kind::Hanging,
        130..=134 => Kind::Failing,
        _ => Kind::Plain,
    }
}

pub fn frequency_of(id: u64, shape: &Shape) -> u32 {
    let span = u64::from(shape.max_frequency - shape.min_frequency) + 1;
    shape.min_frequency + (mixed(id, 2) % span) as u32
}

/// The local services a mix run's targets point at.
pub struct Urls {
    pub plain: String,
    pub failing: String,
    pub https: String,
    pub slow: String,
    pub hanging: String,
}

impl Urls {
    pub fn of(&self, kind: Kind) -> &str {
        match kind {
            Kind::Plain => &self.plain,
            Kind::Https => &self.https,
            Kind::Slow => &self.slow,
            Kind::Hanging => &self.hanging,
            Kind::Failing => &self.failing,
        }
    }
}

/// A service thread pair: an acceptor and, for the slow one, a responder.
pub struct Service {
    pub port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// At most this many connections are held by either service; beyond it they are closed.
const HELD: usize = 20_000;
/// A hanging connection is let go after this long (targets time out well before).
const HOLD: Duration = Duration::from_secs(60);
/// Threads answering the slow service's connections once due. One was not enough on a loaded
/// machine: a client that sent its request late held the only responder for its read timeout
/// while the connections behind it passed their targets' timeouts.
const SLOW_RESPONDERS: usize = 4;
/// How long a responder waits for a request that is due; past it the connection is closed
/// unanswered, which its check reports.
const SLOW_READ: Duration = Duration::from_secs(1);

/// A slow service's responder: answers each connection at its due time, in arrival order.
fn respond_when_due(stop: &AtomicBool, rx: &crossbeam_channel::Receiver<(Instant, TcpStream)>) {
    while !stop.load(Ordering::SeqCst) {
        let Ok((at, mut conn)) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let _ = conn.set_read_timeout(Some(SLOW_READ));
        answer(&mut conn);
        let _ = conn.shutdown(std::net::Shutdown::Write);
    }
}

impl Service {
    /// Accepts and answers 200 `after` the connection came in, in arrival order.
    pub fn slow(after: Duration) -> Result<Service, Error> {
        let (listener, port) = listen()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = crossbeam_channel::bounded::<(Instant, TcpStream)>(HELD);
        let s = stop.clone();
        let acceptor = std::thread::Builder::new()
            .name("bench-slow-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(c) = conn {
                        let _ = tx.try_send((Instant::now() + after, c));
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let mut threads = vec![acceptor];
        for n in 0..SLOW_RESPONDERS {
            let (s, rx) = (stop.clone(), rx.clone());
            let responder = std::thread::Builder::new()
                .name(format!("bench-slow-answer-{n}"))
                .spawn(move || respond_when_due(&s, &rx))
                .map_err(|e| e.to_string())?;
            threads.push(responder);
        }
        Ok(Service {
            port,
            stop,
            threads,
        })
    }

    /// Accepts and never answers; holds each connection for at most [`HOLD`].
    pub fn hanging() -> Result<Service, Error> {
        let (listener, port) = listen()?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let acceptor = std::thread::Builder::new()
            .name("bench-hang".into())
            .spawn(move || {
                let mut held: VecDeque<(Instant, TcpStream)> = VecDeque::new();
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        return;
                    }
                    let now = Instant::now();
                    while held
                        .front()
                        .is_some_and(|(at, _)| now.duration_since(*at) > HOLD)
                        || held.len() >= HELD
                    {
                        held.pop_front();
                    }
                    if let Ok(c) = conn {
                        held.push_back((now, c));
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Service {
            port,
            stop,
            threads: vec![acceptor],
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn listen() -> Result<(TcpListener, u16), Error> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("mix service: {e}"))?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    Ok((l, port))
}

/// One check line of the daemon's log.
#[derive(Debug, Clone, Copy)]
pub struct CheckLine {
    pub at: f64,
    pub id: u64,
    pub pass: bool,
    pub ms: u64,
}

/// Reads `<stamp> INFO [id] name GET url PASS (OK) 3ms`.
pub fn parse_check(line: &str, at: f64) -> Option<CheckLine> {
    let rest = &line[line.find(" [")? + 2..];
    let id = rest[..rest.find(']')?].parse().ok()?;
    let pass = if line.contains(" PASS (") {
        true
    } else if line.contains(" FAIL (") {
        false
    } else {
        return None;
    };
    let ms = line.rsplit(' ').next()?.strip_suffix("ms")?.parse().ok()?;
    Some(CheckLine { at, id, pass, ms })
}

/// One kind's checks in the window.
#[derive(Debug, Clone, Default)]
pub struct KindFigures {
    pub targets: u64,
    pub checks: u64,
    pub passed: u64,
    pub mean_ms: f64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// What a mix run adds to the common figures.
#[derive(Debug, Clone, Default)]
pub struct MixFigures {
    pub shape: String,
    pub kinds: BTreeMap<Kind, KindFigures>,
    /// Targets due long enough before the stop (frequency + timeout + 3 s) never checked.
    pub overdue_never_checked: u64,
}

/// Summarizes the check lines logged within `[from, to]` by kind.
pub fn by_kind(
    lines: &[CheckLine],
    from: f64,
    to: f64,
    targets: u64,
) -> BTreeMap<Kind, KindFigures> {
    let mut durations: BTreeMap<Kind, Vec<u64>> = BTreeMap::new();
    let mut out: BTreeMap<Kind, KindFigures> = BTreeMap::new();
    for id in 1..=targets {
        out.entry(kind_of(id)).or_default().targets += 1;
    }
    for l in lines.iter().filter(|l| l.at > from && l.at <= to) {
        let kind = kind_of(l.id);
        let f = out.entry(kind).or_default();
        f.checks += 1;
        f.passed += u64::from(l.pass);
        durations.entry(kind).or_default().push(l.ms);
    }
    for (kind, mut d) in durations {
        d.sort_unstable();
        let f = out.entry(kind).or_default();
        f.mean_ms = d.iter().sum::<u64>() as f64 / d.len().max(1) as f64;
        f.p99_ms = d[((d.len() as f64 * 0.99).ceil() as usize).clamp(1, d.len()) - 1];
        f.max_ms = d[d.len() - 1];
    }
    out
}

impl MixFigures {
    pub fn rows(&self, window_s: f64) -> Vec<(String, String)> {
        let mut rows = vec![("mix".to_string(), self.shape.clone())];
        for (kind, f) in &self.kinds {
            rows.push((
                format!("  {} targets / checks/s / passed", kind.name()),
                format!(
                    "{} / {:.1} / {} of {}; check ms mean {:.1}, p99 {}, max {}",
                    f.targets,
                    f.checks as f64 / window_s.max(1e-9),
                    f.passed,
                    f.checks,
                    f.mean_ms,
                    f.p99_ms,
                    f.max_ms
                ),
            ));
        }
        rows.push((
            "targets overdue and never checked".into(),
            self.overdue_never_checked.to_string(),
        ));
        rows
    }

    pub fn json(&self) -> Value {
        let kinds: serde_json::Map<String, Value> = self
            .kinds
            .iter()
            .map(|(k, f)| {
                (
                    k.name().to_string(),
                    json!({"targets": f.targets, "checks": f.checks, "passed": f.passed,
                           "mean_ms": f.mean_ms, "p99_ms": f.p99_ms, "max_ms": f.max_ms,
                           "in_time": k.in_time()}),
                )
            })
            .collect();
        json!({"shape": self.shape, "kinds": kinds,
               "overdue_never_checked": self.overdue_never_checked})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_the_shares_it_claims() {
        let mut n: BTreeMap<Kind, u64> = BTreeMap::new();
        for id in 1..=100_000 {
            *n.entry(kind_of(id)).or_default() += 1;
            let f = frequency_of(id, &Shape::FULL);
            assert!((10..=300).contains(&f));
        }
        let share = |k| n[&k] as f64 / 1000.0;
        assert!((share(Kind::Https) - 10.0).abs() < 0.5, "{n:?}");
        assert!((share(Kind::Slow) - 2.0).abs() < 0.2, "{n:?}");
        assert!((share(Kind::Hanging) - 1.0).abs() < 0.15, "{n:?}");
        assert!((share(Kind::Failing) - 0.5).abs() < 0.1, "{n:?}");
    }

    #[test]
    fn check_lines_are_read() {
        let l =
            "2026-11-30 06:00:00,001 INFO [42] bench-42    GET http://127.0.0.1:1/ PASS (OK) 3ms";
        let c = parse_check(l, 1.0).unwrap();
        assert_eq!((c.id, c.pass, c.ms), (42, true, 3));
        let f = "2026-11-30 06:00:00,001 ERROR [7] x GET http://127.0.0.1:1/ FAIL (no response) 10001ms";
        assert_eq!(parse_check(f, 1.0).unwrap().ms, 10001);
        assert!(parse_check("2026-11-30 06:00:00,001 INFO stats: checks=1", 1.0).is_none());
    }
}
