//! Too few workers: an operator who runs 2 workers against services that accept a connection
//! and never answer sees every worker held until the checks' timeout, and the other checks
//! waiting. The log says so once, with the figures and the setting to raise, instead of the
//! schedule slipping in silence; it does not repeat the warning every tick.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::http::HttpServer;
use crate::support::{check_lines, wait_for, Daemon, TestDb};

const WARNING: &str = "checks wait for a free worker";

/// A service that accepts connections on 127.0.0.1 and never answers; it holds at most a
/// few hundred of them and lets them all go when dropped.
struct Hanging {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Hanging {
    fn start() -> Hanging {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let s = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let mut held = held.lock().unwrap();
                if let (Ok(c), true) = (conn, held.len() < 500) {
                    held.push(c);
                }
            }
        });
        Hanging { port, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn warnings(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(WARNING))
        .map(String::from)
        .collect()
}

#[test]
fn two_workers_held_by_hanging_services_warn_once_with_the_figures_and_the_setting() {
    let hanging = Hanging::start();
    let healthy = HttpServer::start(200);
    let db = TestDb::new();
    db.write_config("Workers: 2\nStatsInterval: 1");
    for n in 1..=3 {
        db.add_target(
            "name, url, frequency, timeout",
            &format!("'hangs-{n}', '{}', 1, 3", hanging.url()),
        );
    }
    let ok = db.add_watched("healthy", &healthy.url("/"));
    let daemon = Daemon::start(&db);

    let first = wait_for(
        Duration::from_secs(20),
        "the waiting-checks warning",
        || warnings(&db.log()).into_iter().next(),
    );
    assert!(first.contains(" WARN "), "{first}");
    assert!(first.contains("of 2 workers busy"), "{first}");
    assert!(first.contains("checks waiting, the oldest for"), "{first}");
    assert!(
        first.contains("raise [settings] Workers (now 2)"),
        "{first}"
    );

    // The workers stay held for 8 s more (each hanging check lasts its 3 s timeout and is due
    // again at once): the schedule keeps slipping, the warning is not repeated.
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = db.log();
    assert_eq!(warnings(&log).len(), 1, "repeated:\n{log}");
    let late: u64 = log
        .lines()
        .filter(|l| l.contains(" stats: "))
        .filter_map(|l| {
            l.split("late_starts=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert!(
        late > 0,
        "the stats line counts checks started late:\n{log}"
    );
    assert!(
        !check_lines(&log, ok).is_empty(),
        "the healthy target still gets its turn:\n{log}"
    );
    assert_eq!(daemon.stop(), Some(0));
}
