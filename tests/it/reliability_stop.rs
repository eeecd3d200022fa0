//! Stopping the daemon under load: SIGKILL (a crash) and a restart must leave every row
//! consistent; SIGTERM must let the checks in flight finish within `StopGrace` and write
//! every result, and must not wait on targets that never answer: past the grace their checks
//! are abandoned, and the daemon is gone within `StopGrace` + 2 s with its last results, its
//! rollups and its hand-over done.

use crate::support::run;
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::daemon::node_config;
use crate::support::http::HttpServer;
use crate::support::servers::{serve, write_response};
use crate::support::{check_lines, wait_for, Daemon, TestDb};

/// Taken by the tests of this module that load the machine or count per second: a thousand
/// checks starting at once starve a daemon whose SIGKILL test counts what one second of
/// unwritten results loses, on the two cores tests run on.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

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
    let _alone = heavy();
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
    // Under load, once the results are being written: a loaded database can hold the first
    // write (which reads every target's state) for seconds, and that is start-up, not loss.
    wait_for(Duration::from_secs(20), "the first results written", || {
        let counted: i64 =
            db.one("SELECT CAST(SUM(pass_count + fail_count) AS SIGNED) FROM targets");
        (counted > 0).then_some(())
    });
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
    // Nominally one second's worth (a batch is written about once a second); three times
    // that on a machine loaded by other work.
    assert!(
        lost <= 3 * TARGETS as i64,
        "SIGKILL lost {lost} checks: more than three seconds' worth"
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
    // A grace as long as the checks' timeout: every check in flight may finish.
    db.write_config(&format!(
        "Workers: 64\nStatsInterval: 0\nStopGrace: {TIMEOUT_S}"
    ));
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

/// A server that accepts every connection and never answers, holding them all: each check of
/// a target pointing here hangs until its timeout.
struct Silent {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, h, s) = (accepted.clone(), held.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(conn) = conn {
                    h.lock().unwrap().push(conn);
                    a.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Silent {
            addr,
            accepted,
            held,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        self.held.lock().unwrap().clear();
    }
}

/// Raises this process's open-file limit (which the daemons it starts inherit) to `n`, as
/// far as the hard limit allows: a thousand hanging checks hold a thousand sockets in the
/// daemon and as many in the test's server.
fn allow_open_files(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid resource and a pointer to a local.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < n {
            limit.rlim_cur = n.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= n,
        "RLIMIT_NOFILE is {} (hard {}): {n} open files are needed",
        limit.rlim_cur,
        limit.rlim_max
    );
}

/// The value of `key=` in the daemon's `final=1` stats line.
fn final_stat(log: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .rfind(|l| l.contains(" stats: ") && l.contains("final=1"))
        .unwrap_or_else(|| panic!("no final stats line in the log:\n{log}"));
    let pair = line
        .split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the final stats line: {line}"));
    pair.parse().unwrap()
}

/// Checks counted in the hourly rollups of target `id`.
fn rolled_up_checks(db: &TestDb, id: u64) -> i64 {
    db.one::<Option<i64>>(&format!(
        "SELECT CAST(SUM(checks) AS SIGNED) FROM target_hours WHERE target_id = {id}"
    ))
    .unwrap_or(0)
}

fn add_hanging(db: &TestDb, silent: &Silent, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            db.add_target(
                "name, url, frequency, timeout",
                &format!("'hanging {i}', '{}', 1, 60", silent.url()),
            )
        })
        .collect()
}

/// `n` targets whose Keystone endpoint is `silent`: their checks hang in the token request.
/// With `shared`, all use one set of credentials, so one of them asks Keystone and the others
/// wait for its answer.
fn add_keystone_hanging(db: &TestDb, silent: &Silent, n: usize, shared: bool) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let tenant = if shared { 0 } else { i + 1 };
            db.add_target(
                "name, url, authn, authn_parms, frequency, timeout",
                &format!(
                    "'keystone hanging {i}', 'http://127.0.0.1:9/', 'OPENSTACK', \
                     'user=ops,password=pw,osauthendpoint={}v3,tenantid=t{tenant}', 1, 60",
                    silent.url()
                ),
            )
        })
        .collect()
}

#[test]
fn sigterm_with_1000_hanging_checks_abandons_them_after_the_grace_and_loses_nothing_else() {
    const HANGING: usize = 1000;
    const GRACE_S: u64 = 2;
    let _alone = heavy();
    allow_open_files(4 * HANGING as u64);
    let db = TestDb::new();
    // StopGrace is left at its default (2 s). The stats line is off but for the final one.
    db.write_config("Workers: 1100\nStatsInterval: 3600\n[cluster]\nNodeName: lone");
    let silent = Silent::start();
    let web = HttpServer::start(200);
    // 980 targets that never answer, 10 whose Keystone never answers, and 10 more waiting
    // for one Keystone request that never ends: 991 connections.
    let mut hanging = add_hanging(&db, &silent, HANGING - 20);
    hanging.extend(add_keystone_hanging(&db, &silent, 10, false));
    hanging.extend(add_keystone_hanging(&db, &silent, 10, true));
    let connections = HANGING - 9;
    let normal: Vec<u64> = (0..5)
        .map(|i| db.add_watched(&format!("normal {i}"), &web.url("/")))
        .collect();
    let daemon = Daemon::start(&db);
    wait_for(
        Duration::from_secs(60),
        "1000 checks hanging on the silent server",
        || (silent.accepted() >= connections).then_some(()),
    );
    wait_for(
        Duration::from_secs(20),
        "two checks of every normal target",
        || {
            let log = db.log();
            normal
                .iter()
                .all(|id| check_lines(&log, *id).len() >= 2)
                .then_some(())
        },
    );
    assert_eq!(db.one::<u64>("SELECT COUNT(*) FROM nodes"), 1);

    let bound = Duration::from_secs(3 * (GRACE_S + 2));
    let (code, took) = daemon.terminate(bound);
    println!(
        "SIGTERM with {HANGING} hanging checks: exited after {:.2} s (StopGrace {GRACE_S} s, \
         goal StopGrace + 2 s)",
        took.as_secs_f64()
    );
    assert_eq!(code, Some(0), "a stop that abandons checks is a clean stop");
    assert!(took <= bound, "the stop took {took:?}");

    let log = db.log();
    assert_eq!(
        final_stat(&log, "abandoned"),
        HANGING as u64,
        "the final line counts the hanging checks as abandoned"
    );
    assert!(
        log.contains(&format!(
            "stop: {HANGING} checks still in flight after StopGrace ({GRACE_S} s) abandoned"
        )),
        "{log}"
    );
    assert!(log.contains(&format!(
        "{HANGING} checks abandoned in flight at StopGrace"
    )));
    let mut normal_checks = 0;
    for id in &normal {
        let logged = run::logged_checks(&db, *id);
        assert_eq!(
            run::counted_checks(&db, *id),
            logged,
            "target {id}: every check logged is written, the last one included"
        );
        assert_eq!(
            rolled_up_checks(&db, *id),
            logged,
            "target {id}: the current minute's rollups are written at the stop"
        );
        let status: String = db.one(&format!("SELECT status FROM targets WHERE id = {id}"));
        assert_eq!(status, "PASS");
        normal_checks += logged;
    }
    let hanging_list = hanging
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let recorded: i64 = db.one(&format!(
        "SELECT CAST(COALESCE(SUM(pass_count + fail_count), 0) AS SIGNED) FROM targets \
         WHERE id IN ({hanging_list})"
    ));
    assert_eq!(recorded, 0, "an abandoned check records no result");
    let rolled: i64 = db.one(&format!(
        "SELECT COUNT(*) FROM target_hours WHERE target_id IN ({hanging_list})"
    ));
    assert_eq!(rolled, 0, "nor a rollup");
    assert!(
        hanging.iter().all(|id| check_lines(&log, *id).is_empty()),
        "nor a check line"
    );
    assert_eq!(
        db.one::<u64>("SELECT COUNT(*) FROM nodes"),
        0,
        "the node removed its row"
    );
    assert!(log.contains("cluster: node lone left"), "{log}");
    assert!(!db.pid_path().exists(), "the pid file is removed");
    run::assert_rows_consistent(&db);
    run::figures(
        "stop_with_1000_hanging_checks",
        json!({
            "fault": "SIGTERM with 1000 checks hanging on a server that accepts and never \
                      answers (timeout 60 s; 20 of them in a Keystone token request, 9 of \
                      those waiting for another's), and 5 targets answering at once",
            "stop_grace_s": GRACE_S,
            "seconds_to_exit": took.as_secs_f64(),
            "exit_code": 0,
            "checks_abandoned": HANGING,
            "normal_checks_logged_and_written": normal_checks,
            "nodes_rows_left": 0,
        }),
    );
}

/// The targets among `ids` with a check line in `log`.
fn checked(log: &str, ids: &[u64]) -> BTreeSet<u64> {
    ids.iter()
        .copied()
        .filter(|id| !check_lines(log, *id).is_empty())
        .collect()
}

#[test]
fn a_node_stopped_with_hanging_checks_hands_its_targets_over_at_once() {
    const DEAD_AFTER_S: u64 = 30;
    let _alone = heavy();
    allow_open_files(2000);
    let db = TestDb::new();
    db.write_config("Workers: 300\nStatsInterval: 3600\nStopGrace: 1");
    let silent = Silent::start();
    let web = HttpServer::start(200);
    add_hanging(&db, &silent, 200);
    let normal: Vec<u64> = (0..30)
        .map(|i| db.add_watched(&format!("normal {i}"), &web.url("/")))
        .collect();
    let dead_after = format!("DeadAfter: {DEAD_AFTER_S}");
    let (a_conf, a_log) = node_config(&db, "node-a", &[], "", &dead_after);
    let (b_conf, b_log) = node_config(&db, "node-b", &[], "", &dead_after);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let _a = Daemon::spawn_at(&a_conf, &a_log.with_extension("stderr"), &[], &[]);
    let b = Daemon::spawn_at(&b_conf, &b_log.with_extension("stderr"), &[], &[]);
    let both = "cluster: live nodes node-a, node-b;";
    wait_for(
        Duration::from_secs(60),
        "both nodes sharing the targets",
        || (read(&a_log).contains(both) && read(&b_log).contains(both)).then_some(()),
    );
    // node-b's share: the normal targets it checks once both nodes share the targets.
    let shared_at = read(&b_log).find(both).unwrap();
    let b_share = wait_for(Duration::from_secs(20), "node-b's checks", || {
        let log = read(&b_log);
        let share = checked(&log[shared_at..], &normal);
        (!share.is_empty()).then_some(share)
    });
    thread::sleep(Duration::from_secs(2));
    let b_share = b_share
        .union(&checked(&read(&b_log)[shared_at..], &normal))
        .copied()
        .collect::<BTreeSet<u64>>();

    let a_before = read(&a_log).len();
    let stopped = Instant::now();
    let bound = Duration::from_secs(3 * (1 + 2));
    let (code, took) = b.terminate(bound);
    println!(
        "node-b stopped with hanging checks in {:.2} s",
        took.as_secs_f64()
    );
    assert_eq!(code, Some(0));
    let b_final = read(&b_log);
    assert!(final_stat(&b_final, "abandoned") > 0, "{b_final}");
    assert!(b_final.contains("cluster: node node-b left"), "{b_final}");
    let names: Vec<String> = db.query("SELECT name FROM nodes");
    assert_eq!(names, vec!["node-a".to_string()], "node-b's row is gone");
    // The others take over at their next heartbeat (DeadAfter / 6 = 5 s), not after DeadAfter.
    let handed_over = wait_for(
        Duration::from_secs(DEAD_AFTER_S - 5),
        "node-a checking node-b's targets",
        || {
            let log = read(&a_log);
            b_share
                .is_subset(&checked(&log[a_before..], &normal))
                .then(|| stopped.elapsed())
        },
    );
    println!(
        "node-a checked all {} of node-b's targets {:.2} s after node-b's SIGTERM (DeadAfter \
         {DEAD_AFTER_S} s)",
        b_share.len(),
        handed_over.as_secs_f64()
    );
    assert!(
        handed_over <= Duration::from_secs(18),
        "hand-over took {handed_over:?}: 3 heartbeats and more"
    );
    run::figures(
        "stop_handover_with_hanging_checks",
        json!({
            "dead_after_s": DEAD_AFTER_S,
            "stop_grace_s": 1,
            "seconds_to_exit": took.as_secs_f64(),
            "handover_s": handed_over.as_secs_f64(),
        }),
    );
}
