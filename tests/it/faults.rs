//! Issue 11, trustworthy under faults: a stop that always ends (a frozen database), panics in
//! each pipeline thread, lock waits and deadlocks, the edit race, and time zones. Each test
//! runs the real daemon against a real MariaDB (a private server where the test freezes it
//! or changes its time zone) and writes what it measured to `target/reliability/`.

use crate::support::{self as common, notify as notify_support, run};
use std::time::{Duration, Instant};

use crate::support::http::HttpServer;
use crate::support::mariadb::MariaDb;
use crate::support::{check_lines, skypunch_cmd, wait_for, Daemon, TestDb};
use mysql::prelude::Queryable;
use serde_json::json;

/// Starts the daemon with extra environment and waits for its first load of the targets (a
/// target added after it is checked at once).
fn spawn_with_env(db: &TestDb, env: &[(&str, &str)]) -> Daemon {
    let loads = || db.log().matches(" enabled targets (").count();
    let runs = loads();
    let daemon = Daemon::spawn(db, &[], env);
    wait_for(
        Duration::from_secs(15),
        "the daemon's first load of targets",
        || (loads() > runs).then_some(()),
    );
    daemon
}

/// Every check line in the log, for all targets.
fn all_check_lines(db: &TestDb) -> usize {
    db.log()
        .lines()
        .filter(|l| l.contains(" PASS (") || l.contains(" FAIL ("))
        .count()
}

/// `U` of the daemon's last line, `... U checks not written to the database ...`.
fn unwritten_in_account(db: &TestDb) -> u64 {
    let line = run::lines_with(db, "skypunch stopped after ")
        .pop()
        .unwrap_or_else(|| panic!("no account line in the log:\n{}", db.log()));
    let before = line.split(" checks not written").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

fn written_checks(db: &TestDb) -> u64 {
    db.one::<Option<u64>>("SELECT CAST(SUM(pass_count + fail_count) AS UNSIGNED) FROM targets")
        .unwrap_or(0)
}

fn add_targets(db: &TestDb, web: &HttpServer, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| db.add_watched(&format!("t{i}"), &web.url("/")))
        .collect()
}

#[test]
fn a_stop_with_a_frozen_database_ends_within_the_bound_and_counts_what_it_left() {
    let mut server = MariaDb::start();
    let db = TestDb::new_on(server.server());
    db.write_config(
        "StatsInterval: 0\nStopTimeout: 5\n[database]\nConnectTimeout: 1\nReadTimeout: 2\n\
         WriteTimeout: 2",
    );
    let web = HttpServer::start(200);
    add_targets(&db, &web, 20);
    let mut daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(20), "checks written", || {
        (written_checks(&db) >= 40).then_some(())
    });

    server.freeze();
    let frozen_at = all_check_lines(&db);
    wait_for(Duration::from_secs(10), "checks made while frozen", || {
        (all_check_lines(&db) >= frozen_at + 40).then_some(())
    });
    daemon.signal(libc::SIGTERM);
    let (code, took) = daemon.exit_within(Duration::from_secs(5 + 5));
    assert_eq!(code, Some(1), "work was left unwritten:\n{}", db.log());

    let log = db.log();
    let stop_line = log
        .lines()
        .position(|l| l.contains("stopping: no new checks"))
        .expect("a stopping line");
    let after_stop = log
        .lines()
        .skip(stop_line)
        .filter(|l| l.contains(" PASS (") || l.contains(" FAIL ("))
        .count();
    assert!(
        after_stop <= 8,
        "{after_stop} checks ran after the stop (8 workers could have had one each)"
    );

    // A crash of the frozen server rolls back whatever it had not committed.
    server.kill();
    server.restart();
    let logged = all_check_lines(&db) as u64;
    let in_db = written_checks(&db);
    let unwritten = unwritten_in_account(&db);
    // Every check logged but not in the database is in the account. The account can name
    // more: a commit the server made just as it froze, whose reply never came, counts as not
    // written (the daemon cannot know), and survives the crash.
    assert!(
        unwritten >= logged - in_db,
        "the account ({unwritten}) misses checks logged but not in the database ({})",
        logged - in_db
    );
    assert!(unwritten > 0);
    run::figures(
        "stop_with_a_frozen_database",
        json!({
            "stop_timeout_s": 5,
            "exit_after_sigterm_s": took.as_secs_f64(),
            "exit_code": code,
            "checks_logged": logged,
            "checks_in_database": in_db,
            "unwritten_in_account": unwritten,
            "logged_not_in_database": logged - in_db,
            "checks_after_stop_line": after_stop,
        }),
    );
}

#[test]
fn a_second_sigterm_exits_at_once_after_the_account() {
    let server = MariaDb::start();
    let db = TestDb::new_on(server.server());
    db.write_config("StatsInterval: 0\nStopTimeout: 60\n[database]\nConnectTimeout: 1");
    let web = HttpServer::start(200);
    add_targets(&db, &web, 5);
    let mut daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(20), "checks written", || {
        (written_checks(&db) >= 5).then_some(())
    });
    server.freeze();
    std::thread::sleep(Duration::from_millis(1500));
    daemon.signal(libc::SIGTERM);
    wait_for(Duration::from_secs(5), "the stopping line", || {
        db.log().contains("stopping: no new checks").then_some(())
    });
    daemon.signal(libc::SIGTERM);
    let (code, took) = daemon.exit_within(Duration::from_secs(5));
    assert_eq!(code, Some(1));
    assert!(db.log().contains("SIGTERM received again: exiting now"));
    assert!(unwritten_in_account(&db) > 0);
    server.thaw();
    run::figures(
        "second_sigterm",
        json!({"exit_after_second_sigterm_s": took.as_secs_f64()}),
    );
}

/// Starts a daemon whose `role` thread panics once the test drops a trigger file, after
/// results were written; checks the exit status, the log and that nothing written is lost.
#[cfg(feature = "fault-injection")]
fn a_panic_in(role: &str, thread: &str) {
    let db = TestDb::new();
    db.write_config("StatsInterval: 1\nStopTimeout: 10");
    let web = HttpServer::start(200);
    add_targets(&db, &web, 4);
    let faults = db.dir.join("faults");
    std::fs::create_dir_all(&faults).unwrap();
    let mut daemon = spawn_with_env(&db, &[("SKYPUNCH_FAULT_DIR", faults.to_str().unwrap())]);
    wait_for(Duration::from_secs(20), "checks written", || {
        (written_checks(&db) >= 8).then_some(())
    });
    let before = written_checks(&db);
    std::fs::write(faults.join(format!("panic-{role}")), "").unwrap();
    if role == "notifier" {
        // The notifier wakes for an alert: make one.
        let params = notify_support::plain(9);
        notify_support::add_notifier(&db, "ops", "SMTP", "ops@example.com", &params, true);
        db.add_target("name, url, frequency", "'down', 'http://127.0.0.1:9/', 1");
    }
    let panicked_at = Instant::now();
    let (code, _) = daemon.exit_within(Duration::from_secs(30));
    let took = panicked_at.elapsed();
    let log = db.log();
    assert_eq!(code, Some(70), "{log}");
    assert!(
        log.contains(&format!("thread {thread}")) && log.contains("panicked at src/"),
        "the panic hook names the thread and place:\n{log}"
    );
    assert!(
        log.contains(&format!("thread {thread}")) && log.contains("ended unexpectedly"),
        "{log}"
    );
    let written = written_checks(&db);
    assert!(written >= before, "nothing written is lost");
    let logged = all_check_lines(&db) as u64;
    let in_account = Some(unwritten_in_account(&db));
    if let Some(unwritten) = in_account {
        assert_eq!(unwritten, logged - written);
    }
    run::figures(
        &format!("panic_in_{role}"),
        json!({
            "exit_code": code,
            "exit_after_trigger_s": took.as_secs_f64(),
            "checks_written_before_panic": before,
            "checks_written_at_exit": written,
            "checks_logged": logged,
            "unwritten_in_account": in_account,
        }),
    );
}

#[cfg(feature = "fault-injection")]
mod panics {
    #[test]
    fn in_the_loader() {
        super::a_panic_in("loader", "skypunch-loader");
    }
    #[test]
    fn in_the_wheel() {
        super::a_panic_in("wheel", "skypunch-wheel");
    }
    #[test]
    fn in_a_worker() {
        super::a_panic_in("worker", "skypunch-worker-");
    }
    #[test]
    fn in_the_writer() {
        super::a_panic_in("writer", "skypunch-writer");
    }
    #[test]
    fn in_the_store_thread() {
        super::a_panic_in("store", "skypunch-store");
    }
    #[test]
    fn in_the_notifier() {
        super::a_panic_in("notifier", "skypunch-notifier");
    }
    #[test]
    fn in_the_stats_thread() {
        super::a_panic_in("stats", "skypunch-stats");
    }
    #[test]
    fn in_the_cluster_thread() {
        super::a_panic_in("cluster", "skypunch-cluster");
    }
}

/// A start that fails once threads run (the stats thread cannot be started, as at the
/// system's limit on threads): the operator reads why on the terminal and in the log, and the
/// threads already running stop in order, as on SIGTERM: the cluster thread removes the
/// node's row instead of leaving it for the others to clear after `DeadAfter`.
#[cfg(feature = "fault-injection")]
#[test]
fn a_thread_that_cannot_start_fails_the_start_and_the_others_stop_in_order() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 1");
    let faults = db.dir.join("faults");
    std::fs::create_dir_all(&faults).unwrap();
    std::fs::write(faults.join("nospawn-skypunch-stats"), "").unwrap();
    let env = [("SKYPUNCH_FAULT_DIR", faults.to_str().unwrap())];
    let mut daemon = Daemon::spawn(&db, &[], &env);
    let (code, took) = daemon.exit_within(Duration::from_secs(60));
    let log = db.log();
    let reason = "cannot start thread skypunch-stats: Resource temporarily unavailable";
    assert_eq!(code, Some(1), "{log}");
    let stderr = std::fs::read_to_string(db.dir.join("stderr.log")).unwrap_or_default();
    assert!(stderr.contains(reason), "{stderr}");
    assert!(
        !log.contains(" workers, database "),
        "no started line:\n{log}"
    );
    let failed = log
        .find(&format!("not started: {reason}"))
        .unwrap_or_else(|| panic!("no start failure in the log:\n{log}"));
    let left = log
        .lines()
        .position(|l| l.contains("cluster: node ") && l.ends_with(" left"))
        .unwrap_or_else(|| panic!("the node did not leave:\n{log}"));
    let failed_line = log[..failed].lines().count();
    assert!(left >= failed_line, "the stop follows the failure:\n{log}");
    assert_eq!(db.one::<u64>("SELECT COUNT(*) FROM nodes"), 0);
    assert!(!db.pid_path().exists());
    // StopTimeout (30 s by default) bounds the stop; it has nothing to wait for here.
    assert!(took < Duration::from_secs(30), "{took:?}");
    run::figures(
        "start_failed_after_threads_ran",
        json!({ "exit_code": code, "exit_after_s": took.as_secs_f64() }),
    );
}

#[cfg(not(feature = "fault-injection"))]
#[test]
fn panics_in_pipeline_threads_need_the_fault_injection_feature() {
    panic!("run the tests with `--features fault-injection` (scripts/test does)");
}

/// True when a transaction waits for a lock on this database's `targets` while already
/// holding a target row there (the daemon's batch, holding the first row). Read from `SHOW
/// ENGINE INNODB STATUS`: `information_schema.INNODB_TRX` was seen not to list it. Only the
/// live transactions count, not the server's last deadlock (an earlier test's); and the
/// daemon's transaction holds its `node_fences` row and counts the lock it waits for, so
/// holding a target row makes three.
fn daemon_waits_holding_a_row(db: &TestDb, watcher: &mut mysql::Conn) -> bool {
    let status: Option<(String, String, String)> =
        watcher.query_first("SHOW ENGINE INNODB STATUS").unwrap();
    let text = status.map(|s| s.2).unwrap_or_default();
    let live = text
        .split("LIST OF TRANSACTIONS FOR EACH SESSION")
        .nth(1)
        .unwrap_or("");
    let waits_here = live.contains(&format!("`{}`.`targets` trx id", db.name));
    let holding = live.lines().any(|l| {
        l.starts_with("LOCK WAIT")
            && l.split(", ")
                .find_map(|part| part.strip_suffix(" row lock(s)"))
                .and_then(|n| n.trim().parse::<u32>().ok())
                .is_some_and(|n| n >= 3)
    });
    waits_here && holding
}

#[test]
fn a_lock_wait_timeout_and_a_deadlock_lose_nothing() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0\n[database]\nLockWaitTimeout: 1");
    let web = HttpServer::start(200);
    let ids = add_targets(&db, &web, 10);
    db.exec("CREATE TABLE ballast (id INT PRIMARY KEY, v INT)");
    db.exec("INSERT INTO ballast SELECT seq, 0 FROM seq_1_to_2000");
    let daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(20), "checks written", || {
        (written_checks(&db) >= 10).then_some(())
    });

    // Every row locked for longer than the daemon's lock wait timeout.
    let mut holder = db.conn();
    holder.query_drop("BEGIN").unwrap();
    holder
        .query_drop("SELECT id FROM targets FOR UPDATE")
        .unwrap();
    wait_for(Duration::from_secs(15), "a lock wait timeout", || {
        db.log().contains("(error 1205)").then_some(())
    });
    holder.query_drop("COMMIT").unwrap();

    // A deadlock whose victim is the daemon: hold every row but the first, let the daemon's
    // retried batch lock the first and wait for the next, then ask for the first. Our
    // transaction changed 2000 rows, so InnoDB rolls back the daemon's.
    let first = ids[0];
    let mut watcher = db.conn();
    let mut tries = 0;
    while !db.log().contains("(error 1213)") {
        tries += 1;
        assert!(tries <= 10, "no deadlock after 10 tries:\n{}", db.log());
        let mut tx = db.conn();
        tx.query_drop("BEGIN").unwrap();
        tx.query_drop("UPDATE ballast SET v = v + 1").unwrap();
        // A range read of the key: a table scan (the optimizer's choice for 9 rows of 10
        // once the row grew) would lock the first row as well.
        tx.query_drop(format!(
            "SELECT id FROM targets FORCE INDEX (PRIMARY) WHERE id > {first} FOR UPDATE"
        ))
        .unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        let mut holding = false;
        while !holding && Instant::now() < until {
            holding = daemon_waits_holding_a_row(&db, &mut watcher);
            std::thread::sleep(Duration::from_millis(20));
        }
        if holding {
            // Our request closes the cycle; InnoDB rolls back the lighter transaction.
            let _ = tx.query_drop(format!(
                "SELECT id FROM targets WHERE id = {first} FOR UPDATE"
            ));
            wait_for(Duration::from_secs(5), "the deadlock to be logged", || {
                db.log().contains("(error 1213)").then_some(())
            });
        }
        tx.query_drop("COMMIT").unwrap();
    }

    let (code, _) = daemon.terminate(Duration::from_secs(40));
    assert_eq!(code, Some(0), "{}", db.log());
    for id in &ids {
        assert_eq!(
            run::counted_checks(&db, *id),
            run::logged_checks(&db, *id),
            "target {id}: every logged check is written"
        );
    }
    run::assert_rows_consistent(&db);
    run::figures(
        "lock_wait_and_deadlock",
        json!({
            "lock_wait_retries_logged": run::lines_with(&db, "(error 1205)").len(),
            "deadlock_retries_logged": run::lines_with(&db, "(error 1213)").len(),
            "deadlock_tries": tries,
            "checks_logged": all_check_lines(&db),
            "checks_written": written_checks(&db),
        }),
    );
}

#[test]
fn editing_a_failing_target_in_a_loop_gives_one_failure_and_one_success_mail() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0\n[notifications]\nRetryInitial: 1");
    let smtp = notify_support::SmtpServer::start(
        &db.dir.join("mail"),
        &notify_support::SmtpOptions::default(),
    );
    notify_support::mail_notifier(&db, "ops", smtp.port);
    let web = HttpServer::start(200);
    let id = db.add_watched("Edited", &web.url("/"));
    let daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(20), "a pass", || {
        (run::counted_checks(&db, id) >= 1).then_some(())
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let editor = {
        let (stop, conn_db) = (stop.clone(), db.conn());
        let url = web.url("/");
        std::thread::spawn(move || {
            let mut conn = conn_db;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                conn.exec_drop(
                    "UPDATE targets SET url = ? WHERE id = ?",
                    (format!("{url}?edit={n}"), id),
                )
                .unwrap();
                std::thread::sleep(Duration::from_millis(150));
            }
            n
        })
    };
    web.set_status(500);
    smtp.wait_messages(1);
    let fails_at = run::counted_checks(&db, id);
    wait_for(
        Duration::from_secs(20),
        "more failures while edited",
        || (run::counted_checks(&db, id) >= fails_at + 3).then_some(()),
    );
    web.set_status(200);
    smtp.wait_messages(2);
    let passes_at = run::counted_checks(&db, id);
    wait_for(Duration::from_secs(20), "more passes while edited", || {
        (run::counted_checks(&db, id) >= passes_at + 3).then_some(())
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let edits = editor.join().unwrap();
    let (code, _) = daemon.terminate(Duration::from_secs(40));
    assert_eq!(code, Some(0));
    let subjects: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        subjects,
        vec![
            "Skypunch FAILURE detected for Edited",
            "Skypunch SUCCESS detected for Edited"
        ],
        "after {edits} edits"
    );
    let alerts: i64 = db.one(&format!(
        "SELECT COUNT(*) FROM alerts WHERE target_id = {id}"
    ));
    assert_eq!(alerts, 2);
    run::figures(
        "edit_race",
        json!({"edits": edits, "checks": run::counted_checks(&db, id), "mails": subjects.len()}),
    );
}

#[test]
fn last_updated_is_the_same_instant_whatever_the_time_zones() {
    let server = MariaDb::start_with(&["--default-time-zone=+05:00"]);
    let db = TestDb::new_on(server.server());
    db.write_config("StatsInterval: 0");
    let web = HttpServer::start(200);
    let mut offsets = Vec::new();
    for zone in ["America/Los_Angeles", "Asia/Kolkata"] {
        let daemon = spawn_with_env(&db, &[("TZ", zone)]);
        // Added while the daemon runs, so it is checked at once.
        let id = db.add_target(
            "name, url, frequency",
            &format!("'{zone}', '{}', 3600", web.url("/")),
        );
        wait_for(Duration::from_secs(20), "one check written", || {
            (run::counted_checks(&db, id) >= 1).then_some(())
        });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let stored: i64 = db.one(&format!(
            "SELECT UNIX_TIMESTAMP(last_updated) FROM targets WHERE id = {id}"
        ));
        let (code, _) = daemon.terminate(Duration::from_secs(20));
        assert_eq!(code, Some(0));
        assert!(
            (now - stored).abs() <= 5,
            "daemon in {zone}, server in +05:00: last_updated is {}s off",
            now - stored
        );
        offsets.push(now - stored);

        // The CLI shows it in its own zone, with the offset.
        let shown = common::stdout(
            &skypunch_cmd(&db.config_path(), &["targets", &id.to_string()])
                .env("TZ", "Asia/Tokyo")
                .output()
                .unwrap(),
        );
        let expected = chrono::DateTime::from_timestamp(stored, 0)
            .unwrap()
            .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
            .format("%Y-%m-%d %H:%M:%S +09:00")
            .to_string();
        assert!(shown.contains(&expected), "{expected} in:\n{shown}");
        assert!(check_lines(&db.log(), id).len() == 1);
    }
    run::figures(
        "time_zones",
        json!({"seconds_off_per_daemon_zone": offsets}),
    );
}
