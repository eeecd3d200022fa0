//! The monitoring engine as an operator sees it: targets managed with SQL while the daemon
//! runs, rows updated by the original's rules, one log line per check.

use std::time::Duration;

use crate::support::http::HttpServer;
use crate::support::{check_lines, stderr, stdout, wait_for, Daemon, TestDb};

type Counters = (String, String, i64, i64, i64, i64, i64, i64, i64);

const COUNTERS: &str =
    "SELECT status, previous_status, pass_count, fail_count, count200, count500, \
    network_fails, repeated_fails, count300 + count400 FROM targets WHERE id = ";

fn counters(db: &TestDb, id: u64) -> Counters {
    db.one(&format!("{COUNTERS}{id}"))
}

fn checks(db: &TestDb, id: u64) -> i64 {
    db.one(&format!(
        "SELECT pass_count + fail_count FROM targets WHERE id = {id}"
    ))
}

fn wait_checks(db: &TestDb, id: u64, at_least: i64, what: &str) {
    wait_for(Duration::from_secs(20), what, || {
        (checks(db, id) >= at_least).then_some(())
    });
}

#[test]
fn counters_follow_the_original_rules_through_pass_and_fail() {
    let db = TestDb::new();
    let server = HttpServer::start(200);
    let id = db.add_watched("API", &server.url("/health"));
    let daemon = Daemon::start(&db);
    wait_checks(&db, id, 2, "two passing checks");
    server.set_status(503);
    wait_for(Duration::from_secs(20), "two failing checks", || {
        (counters(&db, id).7 >= 2).then_some(())
    });
    server.set_status(200);
    wait_for(Duration::from_secs(20), "a pass after the failures", || {
        let c = counters(&db, id);
        (c.0 == "PASS" && c.5 >= 2).then_some(())
    });
    assert_eq!(daemon.stop(), Some(0));

    let (status, previous, pass, fail, c200, c500, network, repeated, other) = counters(&db, id);
    assert_eq!(status, "PASS");
    assert_eq!(repeated, 0, "a pass resets repeated_fails");
    assert_eq!((pass, fail), (c200, c500), "2xx answers passed, 5xx failed");
    assert_eq!((network, other), (0, 0));
    assert!(previous == "PASS" || previous == "FAIL");
    let lines = check_lines(&db.log(), id);
    assert_eq!(
        lines.len() as i64,
        pass + fail,
        "one log line per check, every check written"
    );
    let description: String = db.one(&format!(
        "SELECT status_description FROM targets WHERE id = {id}"
    ));
    assert_eq!(description, "OK");
}

#[test]
fn the_log_line_keeps_the_original_format_with_the_response_time() {
    let db = TestDb::new();
    let server = HttpServer::start(503);
    let id = db.add_target(
        "name, url, frequency",
        &format!("'Billing', '{}', 1", server.url("/")),
    );
    let daemon = Daemon::start(&db);
    wait_checks(&db, id, 1, "a check");
    daemon.stop();
    let line = check_lines(&db.log(), id).remove(0);
    // 2013-07-11 06:10:57,053 ERROR [1] Billing                        GET http://... FAIL (...) 3ms
    let (stamp, rest) = line.split_at(23);
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S,%3f").is_ok(),
        "{line}"
    );
    let expected = format!(
        " ERROR [{id}] {:<30} GET {} FAIL (",
        "Billing",
        server.url("/")
    );
    assert!(rest.starts_with(&expected), "{line}");
    // The original's words, where scripts read them.
    assert!(line.contains(" FAIL (target status:503 != 200) "), "{line}");
    assert!(line.ends_with("ms"), "{line}");
}

#[test]
fn targets_added_edited_disabled_and_deleted_with_sql_are_picked_up() {
    let db = TestDb::new();
    let good = HttpServer::start(200);
    let daemon = Daemon::start(&db);

    let id = db.add_target(
        "name, url, frequency",
        &format!("'Later', '{}', 1", good.url("/")),
    );
    wait_checks(&db, id, 1, "the inserted target to be checked");
    assert_eq!(counters(&db, id).0, "PASS");

    db.exec(&format!(
        "UPDATE targets SET url = 'http://127.0.0.1:1/' WHERE id = {id}"
    ));
    wait_for(Duration::from_secs(20), "the edited URL to fail", || {
        (counters(&db, id).0 == "FAIL").then_some(())
    });

    db.exec(&format!("UPDATE targets SET enabled = 0 WHERE id = {id}"));
    wait_for(Duration::from_secs(10), "the disable to be noticed", || {
        db.log()
            .contains(&format!("[{id}] target disabled"))
            .then_some(())
    });
    let frozen = checks(&db, id);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        checks(&db, id) <= frozen + 1,
        "a disabled target is no longer checked"
    );

    db.exec(&format!(
        "UPDATE targets SET enabled = 1, url = '{}' WHERE id = {id}",
        good.url("/")
    ));
    wait_for(
        Duration::from_secs(20),
        "the re-enabled target to pass",
        || (counters(&db, id).0 == "PASS").then_some(()),
    );

    db.exec(&format!("DELETE FROM targets WHERE id = {id}"));
    wait_for(Duration::from_secs(10), "the delete to be noticed", || {
        db.log()
            .contains(&format!("[{id}] target deleted"))
            .then_some(())
    });
    let lines = check_lines(&db.log(), id).len();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        check_lines(&db.log(), id).len() <= lines + 1,
        "a deleted target is no longer checked"
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn bad_rows_get_their_config_error_once_and_good_rows_keep_being_checked() {
    let db = TestDb::new();
    let server = HttpServer::start(200);
    let good = db.add_target(
        "name, url, frequency",
        &format!("'Good', '{}', 1", server.url("/")),
    );
    let bad = [
        ("method", "'FETCH'", "config error: unknown method `FETCH`"),
        (
            "frequency",
            "0",
            "config error: frequency 0 is less than 1 second",
        ),
        (
            "timeout",
            "-3",
            "config error: timeout -3 is less than 1 second",
        ),
        (
            "url",
            "'not a url'",
            "config error: url `not a url` contains white space",
        ),
        (
            "authn",
            "'KERBEROS'",
            "config error: unknown authn `KERBEROS`",
        ),
        (
            "authn",
            "'BASIC'",
            "config error: BASIC needs user and password",
        ),
    ];
    let mut ids = Vec::new();
    for (column, value, _) in &bad {
        let url = if *column == "url" {
            String::new()
        } else {
            format!(", '{}'", server.url("/"))
        };
        let (cols, vals) = if *column == "url" {
            (
                format!("name, {column}"),
                format!("'Bad {column}', {value}"),
            )
        } else {
            (
                format!("name, {column}, url"),
                format!("'Bad {column}', {value}{url}"),
            )
        };
        ids.push(db.add_target(&cols, &vals));
    }
    let daemon = Daemon::start(&db);
    wait_checks(&db, good, 3, "the good target to keep being checked");
    for (id, (_, _, expected)) in ids.iter().zip(&bad) {
        let (status, description): (String, String) = db.one(&format!(
            "SELECT status, status_description FROM targets WHERE id = {id}"
        ));
        assert_eq!(status, "FAIL");
        assert!(
            description.starts_with(expected),
            "{description} should start with {expected}"
        );
        assert_eq!(checks(&db, *id), 0, "a bad row is not checked");
        let logged = db
            .log()
            .lines()
            .filter(|l| l.contains(&format!("[{id}] ")) && l.contains("config error"))
            .count();
        assert_eq!(logged, 1, "logged once");
    }
    let alerts: i64 = db.one("SELECT COUNT(*) FROM alerts");
    assert_eq!(alerts, 0, "config errors are not alerted");

    // Fixing the row schedules it.
    db.exec(&format!(
        "UPDATE targets SET frequency = 1 WHERE id = {}",
        ids[1]
    ));
    wait_checks(&db, ids[1], 1, "the fixed row to be checked");
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn a_target_checked_every_second_is_checked_about_once_a_second() {
    let db = TestDb::new();
    let server = HttpServer::start(200);
    let id = db.add_target(
        "name, url, frequency",
        &format!("'Fast', '{}', 1", server.url("/")),
    );
    let daemon = Daemon::start(&db);
    wait_checks(&db, id, 1, "the first check");
    let first = checks(&db, id);
    std::thread::sleep(Duration::from_secs(5));
    let made = checks(&db, id) - first;
    daemon.stop();
    assert!(
        (3..=7).contains(&made),
        "{made} checks in 5 s at a 1 s frequency"
    );
}

#[test]
fn targets_id_test_checks_now_prints_the_trace_and_counts_the_check_leaving_the_status() {
    let db = TestDb::new();
    let server = HttpServer::start(503);
    let id = db.add_target("name, url", &format!("'Manual', '{}'", server.url("/x")));
    let out = db.cli(&["targets", &id.to_string(), "test"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed check exits 1: {}",
        stderr(&out)
    );
    let text = stdout(&out);
    let first = text.lines().next().unwrap();
    assert!(
        first.contains(&format!("[{id}] Manual")) && first.contains(" FAIL ("),
        "{text}"
    );
    assert!(text.contains("[Fail] reason:"), "the trace follows: {text}");
    assert!(
        !text.contains(TEST_MARK),
        "the mark is for the stored trace: {text}"
    );
    assert_eq!(server.requests(), 1);
    let c = counters(&db, id);
    assert_eq!(
        (c.0.as_str(), c.3, c.5, c.7),
        ("NEW", 1, 1, 0),
        "counted, but the status and repeated_fails are the daemon's"
    );
    let (http_status, trace): (Option<i64>, String) = db.one(&format!(
        "SELECT last_http_status, last_trace FROM targets WHERE id = {id}"
    ));
    assert_eq!(http_status, Some(503));
    assert!(trace.contains("[Fail] reason:"), "{trace}");
    assert!(
        trace.trim_end().ends_with(TEST_MARK),
        "the stored trace says who made it: {trace}"
    );
    let alerts: i64 = db.one("SELECT COUNT(*) FROM alerts");
    assert_eq!(alerts, 0, "a test sends no notification");
    let incidents: i64 = db.one("SELECT COUNT(*) FROM incidents");
    assert_eq!(incidents, 0, "nor opens an incident: that is the daemon's");
    server.set_status(200);
    let out = db.cli(&["targets", &id.to_string(), "test"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a passing check exits 0: {}",
        stdout(&out)
    );
}

/// The last line of a trace `targets ID test` stored.
const TEST_MARK: &str =
    "made by `skypunch targets ID test`: counted, but the status and alerts are the daemon's";

#[test]
fn targets_id_test_beside_a_running_daemon_drops_none_of_its_checks() {
    let db = TestDb::new();
    let server = HttpServer::start(200);
    let id = db.add_watched("Shop", &server.url("/"));
    let daemon = Daemon::start(&db);
    wait_checks(&db, id, 2, "the daemon's first two checks");
    for round in 1..=2 {
        let out = db.cli(&["targets", &id.to_string(), "test"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        // The daemon checks every second: it writes the row after each test.
        let after = checks(&db, id) + 2;
        wait_checks(
            &db,
            id,
            after,
            &format!("two daemon checks after test {round}"),
        );
    }
    assert_eq!(daemon.stop(), Some(0));
    let log = db.log();
    let by_daemon = check_lines(&log, id).len() as i64;
    assert_eq!(
        checks(&db, id),
        by_daemon + 2,
        "every check the daemon logged is recorded, and the two tests"
    );
    assert!(
        !log.contains("written meanwhile by another writer"),
        "no write of the daemon was stale: {log}"
    );
    let status: String = db.one(&format!("SELECT status FROM targets WHERE id = {id}"));
    assert_eq!(status, "PASS");
}

#[test]
fn a_failing_first_check_queues_one_failure_alert_and_recovery_queues_one_success() {
    let db = TestDb::new();
    let server = HttpServer::start(500);
    let id = db.add_target(
        "name, url, frequency",
        &format!("'Flappy', '{}', 1", server.url("/")),
    );
    let daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(20), "three failures", || {
        (counters(&db, id).7 >= 3).then_some(())
    });
    server.set_status(200);
    wait_for(Duration::from_secs(20), "recovery", || {
        (counters(&db, id).0 == "PASS").then_some(())
    });
    daemon.stop();
    let kinds: Vec<String> = db.query(&format!(
        "SELECT kind FROM alerts WHERE target_id = {id} ORDER BY id"
    ));
    assert_eq!(kinds, vec!["FAILURE", "SUCCESS"]);
}

#[test]
fn a_stalled_database_write_does_not_hold_up_the_checks() {
    use mysql::prelude::Queryable;
    let db = TestDb::new();
    let server = HttpServer::start(200);
    let id = db.add_target(
        "name, url, frequency",
        &format!("'Steady', '{}', 1", server.url("/")),
    );
    let daemon = Daemon::start(&db);
    wait_checks(&db, id, 1, "the first check");

    // Another session holds the table: every write of the daemon waits on the lock.
    let mut locker = db.conn();
    locker.query_drop("LOCK TABLES targets WRITE").unwrap();
    let logged = check_lines(&db.log(), id).len();
    std::thread::sleep(Duration::from_secs(4));
    let during = check_lines(&db.log(), id).len() - logged;
    locker.query_drop("UNLOCK TABLES").unwrap();
    drop(locker);
    assert!(
        during >= 3,
        "checks went on while writes waited: {during} in 4 s"
    );

    wait_for(
        Duration::from_secs(20),
        "the held results to be written",
        || (checks(&db, id) as usize >= logged + during).then_some(()),
    );
    assert_eq!(daemon.stop(), Some(0));
    assert_eq!(
        checks(&db, id) as usize,
        check_lines(&db.log(), id).len(),
        "nothing lost"
    );
}

#[test]
fn a_config_error_overwritten_without_an_edit_is_marked_again() {
    let db = TestDb::new();
    let id = db.add_target(
        "name, url, method",
        "'Broken', 'http://127.0.0.1:1/', 'FETCH'",
    );
    let daemon = Daemon::start(&db);
    let status = |db: &TestDb| -> (String, String) {
        db.one(&format!(
            "SELECT status, COALESCE(status_description, '') FROM targets WHERE id = {id}"
        ))
    };
    wait_for(Duration::from_secs(10), "the config error", || {
        status(&db).1.starts_with("config error:").then_some(())
    });
    // What a check still in flight when the row went bad would do: write a result over the
    // error without changing the row's revision.
    db.exec(&format!(
        "UPDATE targets SET status = 'PASS', status_description = 'OK', \
         config_changed = config_changed WHERE id = {id}"
    ));
    wait_for(
        Duration::from_secs(10),
        "the config error to be marked again",
        || {
            (status(&db) == ("FAIL".into(), "config error: unknown method `FETCH`: use GET, POST, PUT, DELETE, HEAD, PATCH, OPTIONS or PUSH".into())).then_some(())
        },
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[test]
fn the_stats_line_counts_failures_by_kind() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 1");
    let down = crate::support::servers::ClosedPort::new();
    let sick = HttpServer::start(503);
    db.add_watched("refused", &format!("http://127.0.0.1:{}/", down.port));
    db.add_watched("sick", &sick.url("/"));
    let daemon = Daemon::start(&db);
    let line = wait_for(
        Duration::from_secs(20),
        "a stats line with both kinds",
        || {
            db.log()
                .lines()
                .filter(|l| l.contains(" stats: "))
                .find(|l| l.contains("no_response:") && l.contains("status:"))
                .map(String::from)
        },
    );
    assert!(line.contains(" fails="), "{line}");
    assert_eq!(daemon.stop(), Some(0));
    let last = db
        .log()
        .lines()
        .rfind(|l| l.contains(" stats: ") && l.contains("final=1"))
        .map(String::from)
        .expect("a final stats line");
    let kinds = last.split("fails_by_kind=").nth(1).unwrap();
    let kinds = kinds.split(' ').next().unwrap();
    let total: u64 = kinds
        .split(',')
        .map(|kv| kv.split(':').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    let fail_lines = db.log().lines().filter(|l| l.contains(" FAIL (")).count() as u64;
    assert_eq!(total, fail_lines, "every failed check counted once: {last}");
}
