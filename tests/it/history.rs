//! History as an operator reads it: a failure is one incident with its start, end, reason and
//! count, whatever happens to the daemon meanwhile; the rollups add up to the counters; the
//! report's uptime is exact for windows that cut through an incident and counts only from the
//! target's creation; response times are estimates, never a bucket's bound; retention prunes
//! only what is older; a timeout longer than the frequency is said, with the interval checks
//! really get.

use std::time::Duration;

use chrono::{Local, NaiveDateTime, TimeZone};
use serde_json::Value;

use crate::support::http::HttpServer;
use crate::support::{check_lines, stderr, stdout, wait_for, Daemon, TestDb};

const LIMIT: Duration = Duration::from_secs(20);

type IncidentRow = (i64, Option<i64>, String, String, u64, bool, Option<i32>);

fn incidents(db: &TestDb, id: u64) -> Vec<IncidentRow> {
    db.query(&format!(
        "SELECT CAST(UNIX_TIMESTAMP(started) * 1000 AS SIGNED), \
         CAST(UNIX_TIMESTAMP(ended) * 1000 AS SIGNED), first_reason, last_reason, \
         failed_checks, alerted, http_status FROM incidents WHERE target_id = {id} ORDER BY id"
    ))
}

/// When a log line was written, in ms since the epoch (the log is in local time).
fn logged_at(line: &str) -> i64 {
    let stamp = &line[..23];
    let naive = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S,%3f").unwrap();
    Local
        .from_local_datetime(&naive)
        .earliest()
        .unwrap()
        .timestamp_millis()
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.one::<Option<i64>>(sql).unwrap_or(0)
}

#[test]
fn a_failure_is_one_incident_with_its_start_end_reason_and_count() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let web = HttpServer::start(200);
    let id = db.add_watched("shop", &web.url("/"));
    let daemon = Daemon::start(&db);
    let lines = |db: &TestDb| check_lines(&db.log(), id);
    wait_for(LIMIT, "two passes", || {
        (lines(&db).len() >= 2).then_some(())
    });
    web.set_status(503);
    wait_for(LIMIT, "three failures", || {
        (lines(&db).iter().filter(|l| l.contains(" FAIL (")).count() >= 3).then_some(())
    });
    web.set_status(200);
    wait_for(LIMIT, "a pass after the failures", || {
        lines(&db)
            .last()
            .filter(|l| l.contains(" PASS ("))
            .map(|_| ())
    });
    assert_eq!(daemon.stop(), Some(0));

    let log = lines(&db);
    let first_fail = log.iter().position(|l| l.contains(" FAIL (")).unwrap();
    let recovered = first_fail
        + log[first_fail..]
            .iter()
            .position(|l| l.contains(" PASS ("))
            .unwrap();
    let rows = incidents(&db, id);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (started, ended, first, last, failed, alerted, status) = rows[0].clone();
    assert_eq!(
        failed as usize,
        recovered - first_fail,
        "one count per failed check"
    );
    assert_eq!(first, "target status:503 != 200");
    assert_eq!(last, first);
    assert!(alerted, "fail_threshold 1: it alerted");
    assert_eq!(status, Some(503));
    // The incident's times are its checks' end times; the log line is written just before.
    let ended = ended.expect("closed by the pass");
    assert!(
        (started - logged_at(&log[first_fail])).abs() < 1000,
        "{started}"
    );
    assert!((ended - logged_at(&log[recovered])).abs() < 1000, "{ended}");

    // The rollups, written at stop, add up to the counters.
    let (checks, fails): (i64, i64) = db.one(&format!(
        "SELECT pass_count + fail_count, fail_count FROM targets WHERE id = {id}"
    ));
    for table in ["target_hours", "target_days"] {
        let sql = format!("SELECT CAST(SUM(checks) AS SIGNED) FROM {table} WHERE target_id = {id}");
        assert_eq!(count(&db, &sql), checks, "{table}");
        let sql =
            format!("SELECT CAST(SUM(failures) AS SIGNED) FROM {table} WHERE target_id = {id}");
        assert_eq!(count(&db, &sql), fails, "{table}");
    }
    let fail_seconds: f64 = db.one(&format!(
        "SELECT SUM(fail_seconds) FROM target_hours WHERE target_id = {id}"
    ));
    let incident_seconds = (ended - started) as f64 / 1000.0;
    assert!(
        (fail_seconds - incident_seconds).abs() < 0.01,
        "seconds in FAIL {fail_seconds} = the incident's {incident_seconds}"
    );
}

#[test]
fn a_sigkill_and_restarts_in_the_middle_keep_it_one_incident() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let web = HttpServer::start(503);
    let id = db.add_watched("flaky", &web.url("/"));
    let failed_written = |db: &TestDb| -> i64 {
        count(
            db,
            &format!("SELECT fail_count FROM targets WHERE id = {id}"),
        )
    };
    let daemon = Daemon::start(&db);
    wait_for(LIMIT, "failures written", || {
        (failed_written(&db) >= 2).then_some(())
    });
    daemon.kill();
    let daemon = Daemon::start(&db);
    let before = failed_written(&db);
    wait_for(LIMIT, "more failures after the restart", || {
        (failed_written(&db) >= before + 2).then_some(())
    });
    assert_eq!(daemon.stop(), Some(0));
    let daemon = Daemon::start(&db);
    web.set_status(200);
    wait_for(LIMIT, "the recovery written", || {
        let (status,): (String,) = db.one(&format!("SELECT status FROM targets WHERE id = {id}"));
        (status == "PASS").then_some(())
    });
    assert_eq!(daemon.stop(), Some(0));
    let rows = incidents(&db, id);
    assert_eq!(
        rows.len(),
        1,
        "one incident across a SIGKILL and two restarts: {rows:?}"
    );
    assert_eq!(
        rows[0].4 as i64,
        failed_written(&db),
        "every failure written is in it"
    );
    assert!(rows[0].1.is_some(), "closed by the recovery");
}

/// Inserts an incident with UTC times `YYYY-MM-DD HH:MM:SS`.
fn incident(db: &TestDb, id: u64, started: &str, ended: Option<&str>, reason: &str) {
    let ended = ended.map_or("NULL".into(), |e| format!("'{e}'"));
    db.exec(&format!(
        "INSERT INTO incidents (target_id, started, ended, first_reason, last_reason, \
         failed_checks, alerted) VALUES ({id}, '{started}', {ended}, '{reason}', '{reason}', 3, 1)"
    ));
}

#[test]
fn the_report_gives_exact_uptime_for_windows_that_cut_through_incidents() {
    let db = TestDb::new();
    db.write_config("");
    let a = db.add_target("name, url", "'api', 'http://127.0.0.1:9/'");
    let b = db.add_target("name, url", "'web, \"front\"', 'http://127.0.0.1:9/'");
    // Both existed before the window: uptime counts from their creation.
    db.exec("UPDATE targets SET created_at = '2026-02-01 00:00:00'");
    // a: down 10:30-10:45 and from 11:50 on past the window; b: disabled 10:00-10:20, down
    // 10:10-10:30 (half of it while disabled).
    incident(
        &db,
        a,
        "2026-03-02 10:30:00",
        Some("2026-03-02 10:45:00"),
        "refused",
    );
    incident(
        &db,
        a,
        "2026-03-02 11:50:00",
        Some("2026-03-02 12:30:00"),
        "timed out",
    );
    incident(
        &db,
        b,
        "2026-03-02 10:10:00",
        Some("2026-03-02 10:30:00"),
        "503",
    );
    db.exec(&format!(
        "INSERT INTO target_pauses (target_id, started, ended) \
         VALUES ({b}, '2026-03-02 09:00:00', '2026-03-02 10:20:00')"
    ));
    db.exec(&format!(
        "INSERT INTO target_hours (target_id, hour, checks, failures, response_ms_max, \
         b10, b100, b1000) VALUES ({a}, '2026-03-02 10:00:00', 3600, 900, 900, 3000, 400, 200)"
    ));
    let report = |format: &str| {
        let out = db.cli(&[
            "--from",
            "2026-03-02 10:00Z",
            "--to",
            "2026-03-02 12:00Z",
            "--format",
            format,
            "report",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };

    let json: Value = serde_json::from_str(&report("json")).unwrap();
    let ta = &json["targets"][0];
    // a: 15 min + 10 min down of 120 min.
    assert_eq!(ta["uptime_percent"].as_f64().unwrap(), 100.0 * 95.0 / 120.0);
    assert_eq!(ta["downtime_s"], 1500.0);
    assert_eq!(ta["incidents"], 2);
    assert_eq!(ta["longest_s"], 900.0);
    assert_eq!(
        ta["mttr_s"], 900.0,
        "only the incident that ended in the window"
    );
    // Percentiles are interpolated within their bucket: the 1800th of 3000 checks of 0-10 ms
    // is at 6 ms; the 3420th is the 20th of 200 in 500-1000 ms, whose slowest took 900 ms.
    assert_eq!(
        (ta["checks"].as_u64(), ta["p50_ms"].as_f64()),
        (Some(3600), Some(6.0))
    );
    assert_eq!(ta["p95_ms"], 540.0);
    assert_eq!(ta["monitored_s"], 7200.0);
    let tb = &json["targets"][1];
    // b: monitored 100 min (20 disabled), down 10 of them.
    assert_eq!(tb["uptime_percent"].as_f64().unwrap(), 90.0);
    assert_eq!(
        (tb["disabled_s"].as_f64(), tb["downtime_s"].as_f64()),
        (Some(1200.0), Some(600.0))
    );
    let total = &json["total"];
    assert_eq!(
        total["uptime_percent"].as_f64().unwrap(),
        100.0 * (95.0 + 90.0) / 220.0
    );
    assert_eq!(total["incidents"], 3);

    let csv = report("csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "id,name,uptime_percent,downtime_s,disabled_s,incidents,longest_s,mttr_s,p50_ms,p95_ms,checks");
    assert_eq!(
        rows[1],
        format!("{a},api,79.166667,1500.000,0.000,2,900.000,900.000,6.0,540.0,3600")
    );
    assert_eq!(
        rows[2],
        format!("{b},\"web, \"\"front\"\"\",90.000000,600.000,1200.000,1,1200.000,1200.000,,,0")
    );
    assert!(
        rows[3].starts_with(",all,84.090909,2100.000,1200.000,3,"),
        "{}",
        rows[3]
    );

    let table = report("table");
    assert!(table.contains("| 79.167   "), "{table}");
    assert!(table.contains("| 25m00s   "), "{table}");
    assert!(table.lines().any(|l| l.contains("| all ")), "{table}");

    let history = db.cli(&[
        "--from",
        "2026-03-01Z",
        "--to",
        "2026-03-04Z",
        "targets",
        &a.to_string(),
        "history",
    ]);
    let text = stdout(&history);
    assert_eq!(history.status.code(), Some(0), "{}", stderr(&history));
    assert!(
        text.contains("refused") && text.contains("timed out"),
        "{text}"
    );
    assert!(text.contains("Uptime by day"), "{text}");
    let strip = text
        .lines()
        .skip_while(|l| !l.starts_with("Uptime by day"))
        .nth(1)
        .unwrap();
    assert_eq!(strip.trim().chars().count(), 3, "one block per day: {text}");
    assert_eq!(
        strip.trim(),
        "█▄█",
        "two whole days up, one at 96 %: {text}"
    );
}

#[test]
fn the_targets_list_shows_uptime_over_30_days() {
    let db = TestDb::new();
    db.write_config("");
    let id = db.add_target("name, url", "'api', 'http://127.0.0.1:9/'");
    db.add_target("name, url", "'calm', 'http://127.0.0.1:9/'");
    db.exec("UPDATE targets SET created_at = NOW(3) - INTERVAL 31 DAY");
    // Down 3 hours of the last 30 days.
    db.exec(&format!(
        "INSERT INTO incidents (target_id, started, ended, first_reason, last_reason) VALUES \
         ({id}, UTC_TIMESTAMP() - INTERVAL 5 HOUR, UTC_TIMESTAMP() - INTERVAL 2 HOUR, 'x', 'x')"
    ));
    let out = db.cli(&["targets"]);
    let text = stdout(&out);
    assert!(text.contains("Uptime 30d"), "{text}");
    assert!(text.contains("99.583 %"), "3 h of 720 h: {text}");
    assert!(text.contains("100.000 %"), "{text}");
}

#[test]
fn retention_prunes_only_what_is_older() {
    let db = TestDb::new();
    db.write_config(
        "StatsInterval: 0\n[history]\nHourlyDays: 35\nDailyDays: 800\nIncidentDays: 90",
    );
    let id = db.add_target("name, url, enabled", "'old', 'http://127.0.0.1:9/', 0");
    for (table, column, days) in [("target_hours", "hour", 35), ("target_days", "day", 800)] {
        for age in [days + 1, days - 1] {
            db.exec(&format!(
                "INSERT INTO {table} (target_id, {column}, checks) \
                 VALUES ({id}, UTC_TIMESTAMP() - INTERVAL {age} DAY, {age})"
            ));
        }
    }
    for age in [91, 89] {
        db.exec(&format!(
            "INSERT INTO incidents (target_id, started, ended, first_reason, last_reason) VALUES \
             ({id}, UTC_TIMESTAMP() - INTERVAL {age} DAY - INTERVAL 1 HOUR, \
             UTC_TIMESTAMP() - INTERVAL {age} DAY, '{age}', '{age}')"
        ));
    }
    let daemon = Daemon::start(&db);
    let line = wait_for(LIMIT, "the prune line", || {
        db.log()
            .lines()
            .find(|l| l.contains("history: pruned"))
            .map(String::from)
    });
    assert!(
        line.contains("pruned 1 hourly and 1 daily rollup rows and 1 incidents"),
        "{line}"
    );
    assert_eq!(daemon.stop(), Some(0));
    let left = |sql: &str| -> Vec<i64> { db.query(sql) };
    assert_eq!(left("SELECT checks FROM target_hours"), [34]);
    assert_eq!(left("SELECT checks FROM target_days"), [799]);
    assert_eq!(
        left("SELECT CAST(first_reason AS SIGNED) FROM incidents"),
        [89]
    );
}

#[test]
fn disabling_a_target_is_recorded_and_left_out_of_its_uptime() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let web = HttpServer::start(200);
    let id = db.add_watched("paused", &web.url("/"));
    let daemon = Daemon::start(&db);
    let pauses = |db: &TestDb| -> Vec<(i64, Option<i64>)> {
        db.query(&format!(
            "SELECT CAST(UNIX_TIMESTAMP(started) * 1000 AS SIGNED), \
             CAST(UNIX_TIMESTAMP(ended) * 1000 AS SIGNED) FROM target_pauses WHERE target_id = {id}"
        ))
    };
    assert!(db
        .cli(&["targets", &id.to_string(), "disable"])
        .status
        .success());
    wait_for(LIMIT, "the pause to open", || {
        (pauses(&db).len() == 1).then_some(())
    });
    assert!(db
        .cli(&["targets", &id.to_string(), "enable"])
        .status
        .success());
    wait_for(LIMIT, "the pause to close", || pauses(&db)[0].1.map(|_| ()));
    assert_eq!(daemon.stop(), Some(0));
    let out = db.cli(&[
        "--since",
        "1h",
        "--format",
        "json",
        "report",
        &id.to_string(),
    ]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (started, ended) = pauses(&db)[0];
    let disabled = json["targets"][0]["disabled_s"].as_f64().unwrap();
    assert!(
        (disabled - (ended.unwrap() - started) as f64 / 1000.0).abs() < 0.001,
        "{json}"
    );
    assert_eq!(json["targets"][0]["uptime_percent"], 100.0);
}

#[test]
fn a_target_created_a_minute_ago_that_never_passed_is_down_not_up() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let web = HttpServer::start(503);
    let id = db.add_watched("brand new", &web.url("/"));
    let daemon = Daemon::start(&db);
    wait_for(LIMIT, "three failures", || {
        (check_lines(&db.log(), id).len() >= 3).then_some(())
    });
    assert_eq!(daemon.stop(), Some(0));

    let out = db.cli(&["--format", "json", "report", &id.to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let line = &json["targets"][0];
    let to = chrono::DateTime::parse_from_rfc3339(json["to"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let created: i64 = db.one(&format!(
        "SELECT CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED) FROM targets WHERE id = {id}"
    ));
    let started = incidents(&db, id)[0].0;
    // 30 days asked, a few seconds monitored: those since it was created, down from the
    // first check on.
    let monitored = line["monitored_s"].as_f64().unwrap();
    assert!(
        (monitored - (to - created) as f64 / 1000.0).abs() < 0.01,
        "{json}"
    );
    assert!(
        (line["downtime_s"].as_f64().unwrap() - (to - started) as f64 / 1000.0).abs() < 0.01,
        "{json}"
    );
    let uptime = line["uptime_percent"].as_f64().unwrap();
    assert!(
        (uptime - 100.0 * (started - created) as f64 / (to - created) as f64).abs() < 0.1,
        "{json}"
    );
    assert!(uptime < 50.0, "up only before its first check: {uptime} %");

    // Its checks of a server on this host took a few ms: the estimate is within what was
    // measured, never the 10 ms bound of the first bucket.
    let slowest: i64 = db.one(&format!(
        "SELECT MAX(response_ms_max) FROM target_hours WHERE target_id = {id}"
    ));
    let p50 = line["p50_ms"].as_f64().expect("checks were rolled up");
    assert!(p50 <= slowest as f64, "p50 {p50} ms, slowest {slowest} ms");

    // The list shows the same figure; the history's days before it existed are blank.
    let list = stdout(&db.cli(&["targets"]));
    let row = list
        .lines()
        .find(|l| l.contains("brand new"))
        .unwrap_or_else(|| panic!("{list}"));
    // Read a moment later, while the incident goes on: a little lower, far from 99.99 %.
    let listed: f64 = row
        .split('|')
        .rev()
        .find_map(|cell| cell.trim().strip_suffix(" %"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{row}"));
    assert!(listed <= uptime && listed < 50.0, "{row}\n{json}");
    let history = stdout(&db.cli(&["targets", &id.to_string(), "history"]));
    let strip = history
        .lines()
        .skip_while(|l| !l.starts_with("Uptime by day"))
        .nth(1)
        .unwrap_or_else(|| panic!("{history}"));
    assert!(strip.chars().count() >= 8, "a week of days: {history}");
    // Only the days since it was created: today, or yesterday too when the test crossed
    // midnight; the last of them below 50 %.
    let days = strip.trim().chars().count();
    assert!(
        (1..=2).contains(&days) && strip.trim().ends_with('▁'),
        "only today, below 50 %: {history}"
    );
}

#[test]
fn a_timeout_longer_than_the_frequency_is_said_with_the_interval_checks_really_get() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let server = crate::support::lifecycle::slow_http_server(Duration::from_secs(2));
    let id = db.add_target(
        "name, url, frequency, timeout",
        &format!("'slowpoke', 'http://{server}/', 1, 3"),
    );
    let warnings = |db: &TestDb| -> Vec<String> {
        db.log()
            .lines()
            .filter(|l| l.contains(&format!("[{id}] target slowpoke scheduled every 1s to 3s")))
            .map(String::from)
            .collect()
    };
    let daemon = Daemon::start(&db);
    wait_for(LIMIT, "four checks", || {
        (check_lines(&db.log(), id).len() >= 4).then_some(())
    });
    let warned = warnings(&db);
    assert_eq!(warned.len(), 1, "once per load of the row: {warned:?}");
    assert!(warned[0].contains(" WARN "), "{}", warned[0]);
    assert!(
        warned[0].contains(
            "every 1s to 3s, not every 1s: its timeout 3s is longer than its frequency 1s"
        ),
        "{}",
        warned[0]
    );
    assert!(
        warned[0].ends_with("(never two at once; every 3s while checks time out)"),
        "{}",
        warned[0]
    );
    // What it says is what happens: a check every ~2 s (each takes 2 s), never two at once.
    let lines = check_lines(&db.log(), id);
    for pair in lines.windows(2) {
        let gap = logged_at(&pair[1]) - logged_at(&pair[0]);
        assert!(gap >= 1900, "checks {gap} ms apart:\n{}", lines.join("\n"));
    }
    assert!(lines.iter().all(|l| l.contains(" PASS (OK) ")), "{lines:?}");

    // The row keeps the check's result; `targets ID` shows the warning and what it means now.
    let (status, description): (String, String) = db.one(&format!(
        "SELECT status, status_description FROM targets WHERE id = {id}"
    ));
    assert_eq!((status.as_str(), description.as_str()), ("PASS", "OK"));
    let shown = stdout(&db.cli(&["targets", &id.to_string()]));
    let schedule = shown
        .lines()
        .find(|l| l.contains("| Schedule "))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        schedule.contains("WARNING: every 1s to 3s, not every 1s")
            && schedule.contains("the last check took 2."),
        "{shown}"
    );

    // An edit loads the row again: said again, once.
    db.exec(&format!(
        "UPDATE targets SET realert_minutes = 5 WHERE id = {id}"
    ));
    wait_for(LIMIT, "the warning at the reload", || {
        (warnings(&db).len() == 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(warnings(&db).len(), 2, "{:?}", warnings(&db));
    assert_eq!(daemon.stop(), Some(0));
}
