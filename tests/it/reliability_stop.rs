//! Stopping the daemon under load: SIGKILL (a crash) and a restart must leave every row
//! consistent; SIGTERM must let the checks in flight finish and write every result.

use crate::support::run;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::http::HttpServer;
use crate::support::servers::{serve, write_response};
use crate::support::{check_lines, wait_for, Daemon, TestDb};

/// Status of the last check line in the log for target `id`.
fn last_logged_status(log: &str, id: u64) -> Option<&'static str> {
    let lines = check_lines(log, id);
    let last = lines.last()?;
    Some(if last.contains(" PASS (") {
        "PASS"
    } else {
        "FAIL"
    })
}

#[test]
fn sigkill_under_load_then_restart_leaves_every_row_consistent() {
    const TARGETS: usize = 200;
    let db = TestDb::new();
    db.write_config("Workers: 32\nStatsInterval: 0");
    let up = HttpServer::start(200);
    let down = HttpServer::start(503);
    let ids: Vec<(u64, bool)> = (0..TARGETS)
        .map(|n| {
            let passes = n % 2 == 0;
            let url = if passes { up.url("/") } else { down.url("/") };
            let id = db.add_target(
                "name, url, frequency, timeout",
                &format!("'load {n}', '{url}', 1, 2"),
            );
            (id, passes)
        })
        .collect();

    let daemon = Daemon::start(&db);
    thread::sleep(Duration::from_secs(5));
    daemon.kill();
    let log = db.log();
    let logged_before: i64 = ids
        .iter()
        .map(|(id, _)| check_lines(&log, *id).len() as i64)
        .sum();
    let counted_before: i64 =
        db.one("SELECT CAST(SUM(pass_count + fail_count) AS SIGNED) FROM targets");
    run::assert_rows_consistent(&db);
    assert!(counted_before <= logged_before);

    let daemon = Daemon::start(&db);
    let again = Instant::now();
    wait_for(
        Duration::from_secs(20),
        "every target checked after the restart",
        || {
            let log = db.log();
            let restart_at = log.rfind(" started: ").unwrap();
            ids.iter()
                .all(|(id, _)| log[restart_at..].contains(&format!(" [{id}] load ")))
                .then_some(())
        },
    );
    thread::sleep(Duration::from_secs(2).saturating_sub(again.elapsed()));
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));

    run::assert_rows_consistent(&db);
    let log = db.log();
    let mut logged_total = 0;
    let mut counted_total = 0;
    for (id, passes) in &ids {
        let (status, alerted): (String, bool) = db.one(&format!(
            "SELECT status, alerted FROM targets WHERE id = {id}"
        ));
        let expected = if *passes { "PASS" } else { "FAIL" };
        assert_eq!(status, expected, "target {id}");
        assert_eq!(
            Some(status.as_str()),
            last_logged_status(&log, *id),
            "target {id}"
        );
        assert_eq!(alerted, !passes, "target {id}");
        let alerts: Vec<String> = db.query(&format!(
            "SELECT kind FROM alerts WHERE target_id = {id} ORDER BY id"
        ));
        let want: Vec<String> = if *passes {
            vec![]
        } else {
            vec!["FAILURE".into()]
        };
        assert_eq!(
            alerts, want,
            "target {id}: one alert per state change, none twice"
        );
        logged_total += check_lines(&log, *id).len() as i64;
        counted_total += run::counted_checks(&db, *id);
    }
    // What SIGKILL took: checks logged but not yet written (at most the last batch and the
    // checks in flight). Everything after the restart is written.
    let lost = logged_total - counted_total;
    assert_eq!(
        lost,
        logged_before - counted_before,
        "the restart lost nothing more"
    );
    assert!(
        lost <= TARGETS as i64,
        "SIGKILL lost {lost} checks: more than one second's worth"
    );
    let orphans: i64 = db.one(
        "SELECT COUNT(*) FROM alerts a LEFT JOIN targets t ON t.id = a.target_id WHERE t.id IS NULL",
    );
    assert_eq!(orphans, 0);
    run::figures(
        "sigkill_restart",
        json!({
            "fault": "SIGKILL after 5 s with 200 targets checked every second, then a restart",
            "checks_logged_before_kill": logged_before,
            "checks_written_before_kill": counted_before,
            "checks_lost_to_sigkill": lost,
            "rows_inconsistent": 0,
            "duplicate_alerts": 0,
            "targets_in_wrong_state": 0,
        }),
    );
}

#[test]
fn sigterm_with_checks_in_flight_waits_for_them_and_writes_every_result() {
    const TARGETS: usize = 50;
    const TIMEOUT_S: u64 = 5;
    let db = TestDb::new();
    db.write_config("Workers: 64\nStatsInterval: 0");
    let slow = serve(|_, w| {
        thread::sleep(Duration::from_secs(2));
        write_response(w, "200 OK", &[], b"slow")
    });
    let ids: Vec<u64> = (0..TARGETS)
        .map(|n| {
            db.add_target(
                "name, url, frequency, timeout",
                &format!("'slow {n}', '{}', 1, {TIMEOUT_S}", slow.url("/")),
            )
        })
        .collect();
    let daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(20), "every target checked once", || {
        let log = db.log();
        ids.iter()
            .all(|id| !check_lines(&log, *id).is_empty())
            .then_some(())
    });
    // Every target's next check is in flight a second after its last one finished.
    thread::sleep(Duration::from_millis(1500));
    let requests_before = slow.hits();
    let (code, took) = daemon.terminate(Duration::from_secs(TIMEOUT_S + 15));
    assert_eq!(code, Some(0), "SIGTERM exits 0");
    assert!(
        took <= Duration::from_secs(TIMEOUT_S + 3),
        "SIGTERM took {took:?} with a {TIMEOUT_S} s timeout"
    );
    let log = db.log();
    let stop_at = log.find("SIGTERM received").unwrap();
    let finished_after_stop = log[stop_at..]
        .lines()
        .filter(|l| l.contains(" PASS (") || l.contains(" FAIL ("))
        .count();
    assert!(finished_after_stop > 0, "checks were in flight at SIGTERM");
    let mut logged = 0;
    for id in &ids {
        let n = run::logged_checks(&db, *id);
        assert_eq!(
            run::counted_checks(&db, *id),
            n,
            "target {id}: every logged check written"
        );
        logged += n;
    }
    assert_eq!(
        logged as usize,
        slow.hits(),
        "every request the server answered is a check in the log"
    );
    run::assert_rows_consistent(&db);
    run::figures(
        "sigterm_under_load",
        json!({
            "fault": "SIGTERM with 50 targets whose server takes 2 s to answer (timeout 5 s)",
            "requests_before_sigterm": requests_before,
            "checks_finished_after_sigterm": finished_after_stop,
            "seconds_to_exit": took.as_secs_f64(),
            "exit_code": 0,
            "checks_logged": logged,
            "checks_written": logged,
        }),
    );
}
