//! Database outages for real: each test runs its own MariaDB server, kills it with SIGKILL
//! under a running daemon and starts it again on the same port and data.

use crate::support::{self as common, run, Daemon};
use std::time::{Duration, Instant};

use crate::support::http::HttpServer;
use crate::support::mariadb::MariaDb;
use crate::support::{wait_for, TestDb};
use serde_json::json;

/// A second's connect timeout, so that a try against a dead server fails fast.
const CONFIG: &str = "StatsInterval: 0\n[database]\nConnectTimeout: 1";

/// Targets checked every second besides the two watched ones.
const LOAD: usize = 100;

const OUTAGE: Duration = Duration::from_secs(12);

/// Parses the writer's recovery line:
/// `database writes work again after 12.3s: wrote the 40 checks of 2 targets and 1 alerts ...`
fn recovery_figures(line: &str) -> (f64, u64, u64, u64) {
    let after = line.split("after ").nth(1).unwrap();
    let seconds: f64 = after.split('s').next().unwrap().parse().unwrap();
    let words: Vec<&str> = after.split_whitespace().collect();
    let number_before = |word: &str| -> u64 {
        let at = words.iter().position(|w| *w == word).unwrap();
        words[at - 1].parse().unwrap()
    };
    (
        seconds,
        number_before("checks"),
        number_before("targets"),
        number_before("alerts"),
    )
}

#[test]
fn a_database_outage_holds_results_and_alerts_and_writes_them_when_it_returns() {
    let mut mdb = MariaDb::start();
    let db = TestDb::new_on(mdb.server());
    // The default ConnectTimeout (5 s): what an operator runs with.
    db.write_config("StatsInterval: 0");
    let steady = HttpServer::start(200);
    let flaky = HttpServer::start(200);
    let a = db.add_watched("steady", &steady.url("/"));
    let b = db.add_watched("fails during the outage", &flaky.url("/"));
    // A crowd of 1 s targets, so that results pile up faster than a writer blocked on the
    // dead database could hold them in its channel.
    let crowd: Vec<u64> = (0..LOAD)
        .map(|n| db.add_watched(&format!("crowd {n}"), &steady.url("/crowd")))
        .collect();
    let crowd_logged = || -> i64 {
        let log = db.log();
        crowd
            .iter()
            .map(|id| common::check_lines(&log, *id).len() as i64)
            .sum()
    };
    let mut daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(20), "two checks of each", || {
        (run::counted_checks(&db, a) >= 2 && run::counted_checks(&db, b) >= 2).then_some(())
    });

    mdb.kill();
    let down = Instant::now();
    let logged_at_kill = run::logged_checks(&db, a);
    let crowd_at_kill = crowd_logged();
    std::thread::sleep(Duration::from_secs(2));
    flaky.set_status(503);
    std::thread::sleep(OUTAGE.saturating_sub(down.elapsed()));
    let logged_during = run::logged_checks(&db, a) - logged_at_kill;
    let crowd_during = crowd_logged() - crowd_at_kill;
    assert!(daemon.is_running(), "the daemon survived the outage");
    // One check a second on schedule, with slack for the first and last second.
    let expected = OUTAGE.as_secs() as i64;
    assert!(
        logged_during >= expected - 2 && logged_during <= expected + 2,
        "{logged_during} checks of the 1 s target logged during a {expected} s outage"
    );
    let crowd_expected = LOAD as i64 * (expected - 2);
    assert!(
        crowd_during >= crowd_expected,
        "{crowd_during} checks of {LOAD} 1 s targets logged during a {expected} s outage, \
         expected at least {crowd_expected}: checks were held up by the outage"
    );
    let outage_lines = run::lines_with(&db, "cannot write check results");
    assert_eq!(outage_lines.len(), 1, "the outage is logged once");
    assert!(
        outage_lines[0].contains("holding them in memory and retrying"),
        "{}",
        outage_lines[0]
    );
    assert!(
        run::lines_with(&db, "loader: cannot read targets").len() <= 1,
        "the loader logs the outage at most once"
    );

    mdb.restart();
    let back = Instant::now();
    let recovered = wait_for(Duration::from_secs(20), "the recovery line", || {
        run::lines_with(&db, "database writes work again after").pop()
    });
    let caught_up = back.elapsed();
    let (seconds, held_checks, held_rows, held_alerts) = recovery_figures(&recovered);
    assert!(
        seconds >= OUTAGE.as_secs_f64() - 1.0,
        "the outage lasted {seconds}s: {recovered}"
    );
    assert_eq!(
        held_rows,
        2 + LOAD as u64,
        "every target had results held: {recovered}"
    );
    // How many depends on how fast the checks ran meanwhile; that none was lost is checked
    // below, target by target, against the log.
    assert!(held_checks >= held_rows, "{recovered}");
    assert_eq!(
        held_alerts, 1,
        "the failure raised during the outage: {recovered}"
    );
    assert_eq!(
        run::lines_with(&db, "database writes work again").len(),
        1,
        "the recovery is logged once"
    );
    wait_for(
        Duration::from_secs(10),
        "checks written after the outage",
        || (run::counted_checks(&db, a) > logged_at_kill + expected).then_some(()),
    );
    let (code, _) = daemon.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0));

    for id in crowd.iter().copied().chain([a, b]) {
        assert_eq!(
            run::counted_checks(&db, id),
            run::logged_checks(&db, id),
            "target {id}: every check in the log is counted, none twice"
        );
    }
    run::assert_rows_consistent(&db);
    let (status, repeated): (String, i64) = db.one(&format!(
        "SELECT status, repeated_fails FROM targets WHERE id = {b}"
    ));
    assert_eq!(status, "FAIL");
    let fail_lines = common::check_lines(&db.log(), b)
        .iter()
        .rev()
        .take_while(|l| l.contains(" FAIL ("))
        .count() as i64;
    assert_eq!(repeated, fail_lines, "repeated_fails follows the log");
    let alerts: Vec<(u64, String)> = db.query("SELECT target_id, kind FROM alerts ORDER BY id");
    assert_eq!(alerts, vec![(b, "FAILURE".to_string())]);
    let snapshot: String = db.one("SELECT snapshot FROM alerts");
    let snapshot: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(snapshot["status"], "FAIL");
    assert!(
        run::stderr(&db).is_empty(),
        "nothing on stderr: {}",
        run::stderr(&db)
    );

    run::figures(
        "db_outage",
        json!({
            "fault": "MariaDB killed with SIGKILL under a running daemon, restarted on the same port and data",
            "outage_seconds": seconds,
            "targets": 2 + LOAD,
            "checks_logged_during_outage_by_the_1s_target": logged_during,
            "checks_logged_during_outage_by_all_targets": crowd_during + logged_during,
            "checks_held": held_checks,
            "rows_held": held_rows,
            "alerts_held": held_alerts,
            "alerts_in_table_after": alerts.len(),
            "seconds_from_restart_to_written": caught_up.as_secs_f64(),
            "outage_log_lines": 1,
            "recovery_log_lines": 1,
            "counters_equal_log_lines": true,
        }),
    );
}

#[test]
fn the_daemon_waits_for_a_database_that_is_not_up_yet() {
    let mut mdb = MariaDb::start();
    let db = TestDb::new_on(mdb.server());
    db.write_config(CONFIG);
    let server = HttpServer::start(200);
    let id = db.add_watched("early", &server.url("/"));
    mdb.kill();

    // Without --wait, start fails at once and says why.
    let refused = db.cli(&["start", "--foreground"]);
    assert_eq!(refused.status.code(), Some(1));
    let message = common::stderr(&refused);
    assert!(
        message.contains(&format!(
            "cannot connect to database root@127.0.0.1:{}/{}",
            mdb.port, db.name
        )),
        "{message}"
    );

    let mut daemon = Daemon::spawn(&db, &["--wait"], &[]);
    let waiting = wait_for(Duration::from_secs(10), "the waiting line", || {
        run::lines_with(&db, "waiting for it").pop()
    });
    assert!(
        waiting.contains("cannot connect to database") && waiting.contains("retrying every"),
        "{waiting}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(daemon.is_running(), "the daemon keeps waiting");
    assert_eq!(run::lines_with(&db, "waiting for it").len(), 1, "said once");
    assert_eq!(server.requests(), 0, "no checks before the database is up");

    mdb.restart();
    let up = Instant::now();
    wait_for(
        Duration::from_secs(20),
        "two checks after the database came up",
        || (run::counted_checks(&db, id) >= 2).then_some(()),
    );
    let to_checks = up.elapsed();
    let (code, _) = daemon.terminate(Duration::from_secs(20));
    assert_eq!(code, Some(0));
    assert_eq!(run::counted_checks(&db, id), run::logged_checks(&db, id));
    run::figures(
        "db_not_up_at_start",
        json!({
            "fault": "daemon started with --wait while MariaDB is down",
            "waiting_log_lines": 1,
            "seconds_from_database_up_to_two_checks_written": to_checks.as_secs_f64(),
            "start_without_wait_exit_code": 1,
        }),
    );
}
