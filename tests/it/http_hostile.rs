//! The HTTP server against clients that never finish, as an operator's load balancer meets
//! it: `/healthz` keeps answering beside a thousand idle and trickling connections while the
//! checks keep their schedule; past `[http] MaxConnections` a newcomer is refused or takes an
//! idle connection's place; at the stop line the server stops accepting. And the API's lists
//! walked page by page to their end.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::{get, start};
use crate::support::http::HttpServer;
use crate::support::lifecycle::slow_http_server;
use crate::support::{wait_for, TestDb};

/// Raises this test process's open file limit to its hard limit: a thousand sockets.
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit on a local rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(limit.rlim_cur >= 2048, "open file limit {}", limit.rlim_cur);
}

/// One hostile connection: it sends nothing, or a request head a byte a second.
struct Hostile {
    stream: TcpStream,
    trickles: bool,
    sent: usize,
}

const TRICKLE: &[u8] = b"GET /metrics HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

impl Hostile {
    fn open(port: u16, trickles: bool) -> Option<Hostile> {
        let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_nonblocking(true).ok()?;
        Some(Hostile {
            stream,
            trickles,
            sent: 0,
        })
    }

    /// One second's turn: a byte if it trickles; false once the server has closed it.
    fn tick(&mut self, answers_408: &AtomicU64) -> bool {
        if self.trickles {
            let byte = [TRICKLE[self.sent % TRICKLE.len()]];
            if self.stream.write(&byte).is_err() {
                return false;
            }
            self.sent += 1;
        }
        let mut buf = [0u8; 512];
        match self.stream.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => true,
            Ok(n) if n > 0 => {
                if buf.starts_with(b"HTTP/1.1 408") {
                    answers_408.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
            _ => false,
        }
    }
}

/// `n` hostile connections kept open by 4 threads until `stop`, each opened again when the
/// server closes it (at its head deadline); how many times they were opened, and how many
/// 408 answers they read.
fn crowd(port: u16, n: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let answers_408 = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (stop, answers_408) = (stop.clone(), answers_408.clone());
                std::thread::spawn(move || {
                    let mut opened = 0u64;
                    let mut mine: Vec<Option<Hostile>> = (0..n / 4).map(|_| None).collect();
                    while !stop.load(Ordering::Relaxed) {
                        let turn = Instant::now();
                        for (i, slot) in mine.iter_mut().enumerate() {
                            let alive = slot.as_mut().is_some_and(|h| h.tick(&answers_408));
                            if !alive {
                                *slot = Hostile::open(port, (i + t).is_multiple_of(2));
                                opened += 1;
                            }
                        }
                        let rest = Duration::from_secs(1).saturating_sub(turn.elapsed());
                        std::thread::sleep(rest);
                    }
                    opened
                })
            })
            .collect();
        let opened = threads.into_iter().map(|h| h.join().unwrap()).sum();
        (opened, answers_408.load(Ordering::Relaxed))
    })
}

/// Open file descriptors of a process.
fn open_files(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_thousand_idle_and_trickling_connections_leave_healthz_and_the_checks_alone() {
    raise_open_files();
    let db = TestDb::new();
    let up = HttpServer::start(200);
    let watched = db.add_watched("Watched", &up.url("/"));
    let (daemon, port) = start(&db, "MaxConnections: 1500\n");
    let passes = || -> u64 {
        db.one(&format!(
            "SELECT pass_count FROM targets WHERE id = {watched}"
        ))
    };
    wait_for(Duration::from_secs(10), "a first check", || {
        (passes() > 0).then_some(())
    });

    let stop = Arc::new(AtomicBool::new(false));
    let hostile = crowd(port, 1000, stop.clone());
    // The crowd is in once the daemon holds a thousand sockets.
    wait_for(Duration::from_secs(30), "1,000 connections held", || {
        (open_files(daemon.pid()) >= 1000).then_some(())
    });
    let before = passes();
    let started = Instant::now();
    let mut times = Vec::new();
    let mut most_files = 0;
    while started.elapsed() < Duration::from_secs(20) {
        let asked = Instant::now();
        let r = get(port, "/healthz");
        let took = asked.elapsed();
        assert_eq!(r.status, 200, "after {took:?}: {}", r.body);
        times.push(took);
        most_files = most_files.max(open_files(daemon.pid()));
        std::thread::sleep(Duration::from_millis(100).saturating_sub(took));
    }
    let checks = passes() - before;
    stop.store(true, Ordering::Relaxed);
    let (opened, answers_408) = hostile.join().unwrap();

    times.sort();
    let max = *times.last().unwrap();
    let p99 = times[times.len() * 99 / 100];
    println!(
        "/healthz under 1,000 hostile connections: {} answers, all 200, p99 {p99:?}, max \
         {max:?}; daemon fds up to {most_files}; {opened} hostile connections opened, \
         {answers_408} answered 408; {checks} checks of the watched target in 20 s",
        times.len()
    );
    assert!(max < Duration::from_secs(3), "slowest /healthz: {max:?}");
    assert!(
        most_files >= 1000,
        "the daemon held {most_files} fds at most"
    );
    assert!(answers_408 > 500, "head deadlines answered: {answers_408}");
    // Every second nominally (20); a loaded machine may stretch it, not stop it.
    assert!(checks >= 10, "{checks} checks in 20 s");
}

#[test]
fn past_max_connections_a_newcomer_is_refused_or_takes_an_idle_ones_place() {
    let db = TestDb::new();
    let (_daemon, port) = start(&db, "MaxConnections: 8\n");
    let first = Instant::now();
    let mut silent: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    // All 8 are younger than a second: the newcomer is refused.
    let refused = get(port, "/healthz");
    if first.elapsed() < Duration::from_secs(1) {
        assert_eq!(refused.status, 503, "{}", refused.body);
        assert!(
            refused.headers.contains("retry-after: 1"),
            "{}",
            refused.headers
        );
        assert!(
            refused.body.contains("too many connections"),
            "{}",
            refused.body
        );
    } else {
        println!("the machine took over a second to connect 9 clients: 503 not checked");
    }

    // A second later the oldest silent one gives its place to the next newcomer.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(port, "/healthz").status, 200);
    let mut closed = String::new();
    silent[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = silent[0].read_to_string(&mut closed);
    assert!(
        closed.starts_with("HTTP/1.1 503") && closed.contains("closed to make room"),
        "{closed:?}"
    );
    // The others stay until their head deadline (5 s from their connection): 408.
    let mut late = String::new();
    silent[7]
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let _ = silent[7].read_to_string(&mut late);
    assert!(late.starts_with("HTTP/1.1 408"), "{late:?}");
    assert!(
        first.elapsed() >= Duration::from_secs(5),
        "cut before its deadline"
    );
    wait_for(Duration::from_secs(5), "the line about the cap", || {
        db.log()
            .contains("at [http] MaxConnections (8;")
            .then_some(())
    });
    silent.clear();
}

#[test]
fn at_the_stop_line_the_server_stops_accepting_and_answers_no_one_waiting() {
    let db = TestDb::new();
    // A check that hangs keeps the daemon stopping for a while after the stop line.
    let hanging = slow_http_server(Duration::from_secs(60));
    db.add_target(
        "name, url, frequency, timeout",
        &format!("'Hanging', 'http://{hanging}/', 1, 20"),
    );
    let (mut daemon, port) = start(&db, "");
    std::thread::sleep(Duration::from_millis(1500));
    let mut waiting = TcpStream::connect(("127.0.0.1", port)).unwrap();
    waiting.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));

    daemon.signal(libc::SIGTERM);
    wait_for(Duration::from_secs(5), "the stop line", || {
        db.log()
            .contains("SIGTERM received; stopping")
            .then_some(())
    });
    let stop_line = Instant::now();
    wait_for(Duration::from_secs(1), "connections refused", || {
        TcpStream::connect(("127.0.0.1", port))
            .is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused)
            .then_some(())
    });
    println!(
        "connections refused {:?} after the stop line was read",
        stop_line.elapsed()
    );
    // The client that was still sending its head gets no answer, even once it is complete.
    let _ = waiting.write_all(b"\r\n");
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = waiting.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "answered after the stop: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        daemon.is_running(),
        "the daemon had already exited: nothing was shown"
    );
    assert!(db.log().contains("http: stopped accepting connections"));
}

#[test]
fn a_daemon_serving_http_stops_at_once_every_time() {
    // The poller is woken at the stop; a wake-up lost once held the stop for StopTimeout.
    let db = TestDb::new();
    for _ in 0..3 {
        let _ = std::fs::remove_file(db.log_path());
        let (mut daemon, port) = start(&db, "");
        assert_eq!(get(port, "/healthz").status, 200);
        daemon.signal(libc::SIGTERM);
        let (code, took) = daemon.exit_within(Duration::from_secs(40));
        assert_eq!(code, Some(0), "{}", db.log());
        assert!(took < Duration::from_secs(5), "the stop took {took:?}");
        assert!(db.log().contains("http: stopped accepting connections"));
    }
}

/// A GET with headers of our own: status, lowercase head, raw body.
fn fetch(port: u16, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").unwrap();
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&bytes[..split]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, bytes[split + 4..].to_vec())
}

/// Follows `next` from `first` to the end: every page's ids, and the `next` links seen.
fn walk(port: u16, list: &str, first: &str, gzip: bool) -> (Vec<Vec<i64>>, Vec<String>) {
    let (mut pages, mut links) = (Vec::new(), Vec::new());
    let mut next = first.to_string();
    loop {
        let extra = if gzip {
            "Accept-Encoding: gzip\r\n"
        } else {
            ""
        };
        let (status, head, mut body) = fetch(port, &format!("/api/v1/{list}{next}"), extra);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        if gzip {
            assert!(head.contains("content-encoding: gzip"), "{head}");
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .unwrap();
            body = plain;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        pages.push(
            v[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_i64().unwrap())
                .collect(),
        );
        let Some(n) = v["next"].as_str() else {
            assert!(v["next"].is_null() && !head.contains("\r\nlink:"), "{head}");
            return (pages, links);
        };
        let link = format!("link: <{}>; rel=\"next\"", n.to_ascii_lowercase());
        assert!(head.contains(&link), "{head} has no {link}");
        links.push(n.to_string());
        next = n.to_string();
    }
}

#[test]
fn the_api_lists_come_in_pages_each_item_once_with_next_links() {
    let db = TestDb::new();
    db.exec(
        "INSERT INTO targets (name, url, enabled) \
         SELECT CONCAT('t', seq), 'http://127.0.0.1:9/', 0 FROM seq_1_to_1200",
    );
    let all: Vec<i64> = db.query("SELECT id FROM targets ORDER BY id");
    let first = all[0];
    db.exec(&format!(
        "INSERT INTO incidents (target_id, started, ended, first_reason, last_reason, \
         failed_checks, alerted, http_status) \
         SELECT {first}, UTC_TIMESTAMP() - INTERVAL seq HOUR, \
         UTC_TIMESTAMP() - INTERVAL seq HOUR + INTERVAL 5 MINUTE, 'down', 'down', 3, 1, 503 \
         FROM seq_1_to_30"
    ));
    let incidents: Vec<i64> = db.query("SELECT id FROM incidents ORDER BY id DESC");
    let (_daemon, port) = start(&db, "");

    let (pages, links) = walk(port, "targets", "?limit=250", false);
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [250, 250, 250, 250, 200]);
    assert_eq!(pages.concat(), all, "every target once, by id");
    assert_eq!(links[0], format!("?limit=250&after={}", all[249]));

    let (pages, _) = walk(port, "targets", "", true);
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [500, 500, 200], "500 a page by default");
    assert_eq!(pages.concat(), all);
    let (pages, _) = walk(port, "targets", "?limit=5000", false);
    assert_eq!(pages.len(), 1);

    let (pages, _) = walk(port, "incidents", "?limit=7", false);
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [7, 7, 7, 7, 2]);
    assert_eq!(
        pages.concat(),
        incidents,
        "every incident once, newest first"
    );
    let unique: BTreeSet<i64> = pages.concat().into_iter().collect();
    assert_eq!(unique.len(), 30);

    for (query, expected) in [
        (
            "?limit=0",
            "limit: `0` is not a whole number from 1 to 5000",
        ),
        (
            "?limit=5001",
            "limit: `5001` is not a whole number from 1 to 5000",
        ),
        ("?limit=ten", "limit: `ten` is not"),
        ("?after=x", "after: `x` is not an id"),
        ("?limt=5", "unknown parameter `limt`"),
    ] {
        for list in ["targets", "incidents"] {
            let r = get(port, &format!("/api/v1/{list}{query}"));
            assert_eq!(r.status, 400, "{list}{query}");
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            let error = v["error"].as_str().unwrap();
            assert!(error.starts_with(expected), "{list}{query}: {error}");
        }
    }
}
