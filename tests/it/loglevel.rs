//! `LogLevel` changed by SIGHUP: an operator chasing a problem raises the level to `debug`
//! without a restart, sees what the daemon does (connections, scans, batches), and lowers it
//! again.

use std::time::Duration;

use crate::support::{wait_for, Daemon, TestDb};

const LIMIT: Duration = Duration::from_secs(20);
const SCAN_LINE: &str = "loader: scan found";

fn hup(daemon: &Daemon) {
    daemon.signal(libc::SIGHUP);
}

#[test]
fn sighup_raises_log_level_to_debug_and_lowers_it_again() {
    let db = TestDb::new();
    db.write_config("LogLevel: info");
    let daemon = Daemon::start(&db);
    assert!(!db.log().contains(SCAN_LINE), "info shows no debug lines");

    db.write_config("LogLevel: debug");
    hup(&daemon);
    wait_for(
        LIMIT,
        "the loader's debug line after raising LogLevel",
        || db.log().contains(SCAN_LINE).then_some(()),
    );
    assert!(db.log().contains("SIGHUP: LogLevel is now debug"));

    db.write_config("LogLevel: info");
    hup(&daemon);
    wait_for(LIMIT, "LogLevel back to info", || {
        db.log()
            .contains("SIGHUP: LogLevel is now info")
            .then_some(())
    });
    let lowered_at = db.log().len();
    // A scan that finds a new row logs it at info; at debug it would say "scan found" first.
    let id = db.add_target("name, url", "'after', 'http://127.0.0.1:9/'");
    wait_for(LIMIT, "the new target's line from a later scan", || {
        db.log()[lowered_at..]
            .contains(&format!("[{id}] target after scheduled"))
            .then_some(())
    });
    let log = db.log();
    assert!(
        !log[lowered_at..].contains(SCAN_LINE),
        "no debug lines once lowered:\n{}",
        &log[lowered_at..]
    );
    assert_eq!(daemon.stop(), Some(0));
}
