//! Under systemd (a unit with `WatchdogSec=`): the daemon says READY=1 once it runs, pings
//! the watchdog while it is sound, falls silent while it is frozen (so systemd would restart
//! it), and says STOPPING=1 when told to stop. The test plays systemd's side of the
//! notification socket.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::http::HttpServer;
use crate::support::{Daemon, TestDb};

/// The notifications that arrive within `within`.
fn heard(socket: &UnixDatagram, within: Duration) -> Vec<String> {
    let end = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    while Instant::now() < end {
        if let Ok(n) = socket.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

/// Waits (at most `limit`) for `state`; what came before it.
fn wait_for_state(socket: &UnixDatagram, state: &str, limit: Duration) -> Vec<String> {
    let end = Instant::now() + limit;
    let mut seen = Vec::new();
    while Instant::now() < end {
        let batch = heard(socket, Duration::from_millis(100));
        let found = batch.iter().any(|s| s == state);
        seen.extend(batch);
        if found {
            return seen;
        }
    }
    panic!("no {state} within {limit:?}; heard {seen:?}");
}

#[test]
fn systemd_hears_ready_watchdog_pings_while_sound_and_stopping() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let web = HttpServer::start(200);
    db.add_watched("shop", &web.url("/"));
    let path = db.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let env = [
        ("NOTIFY_SOCKET", path.to_str().unwrap()),
        ("WATCHDOG_USEC", "1000000"),
    ];
    let daemon = Daemon::start_with(&db, &env);
    wait_for_state(&socket, "READY=1", Duration::from_secs(10));
    assert!(db
        .log()
        .contains("systemd: watchdog on, a ping every 500 ms"));

    // Sound: pings keep coming, one every half period.
    let pings = heard(&socket, Duration::from_secs(2));
    assert!(
        pings.iter().filter(|s| *s == "WATCHDOG=1").count() >= 2,
        "{pings:?}"
    );

    // Frozen: silence, however long; systemd would kill it after WatchdogSec. Awake: pings.
    daemon.signal(libc::SIGSTOP);
    heard(&socket, Duration::from_millis(300));
    let frozen = heard(&socket, Duration::from_millis(1500));
    assert!(frozen.is_empty(), "{frozen:?}");
    daemon.signal(libc::SIGCONT);
    wait_for_state(&socket, "WATCHDOG=1", Duration::from_secs(3));

    daemon.signal(libc::SIGTERM);
    wait_for_state(&socket, "STOPPING=1", Duration::from_secs(10));
    let mut daemon = daemon;
    assert_eq!(daemon.exit_within(Duration::from_secs(30)).0, Some(0));
}

#[test]
fn without_systemd_nothing_is_sent_and_no_watchdog_runs() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let daemon = Daemon::start_with(&db, &[("NOTIFY_SOCKET", ""), ("WATCHDOG_USEC", "1000000")]);
    assert!(!db.log().contains("watchdog on"), "{}", db.log());
    assert_eq!(daemon.stop(), Some(0));
}
