//! The monitor's own blindness, as the on-call person meets it: the node's uplink dies (the
//! test suite's fault hook `blind`: every connection the node makes is refused, its checks'
//! and its probes' alike). Instead of a page per target, one message says `skypunch on NODE
//! cannot reach its network`; the failures are recorded, marked `monitor_blind`, and held.
//! When it sees again, the targets that are fine close unsent and those still failing page
//! then. With a `[settings] Connectivity` list the node knows at once; without, it suspects
//! itself when most of its targets fail with network errors, and withdraws the pages of that
//! minute nobody has been sent yet. In a cluster, a blind node hands its targets to a node
//! that sees. Real SMTP (aiosmtpd) and HTTP servers on 127.0.0.1.

#![cfg(feature = "fault-injection")]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::daemon::node;
use crate::support::http::HttpServer;
use crate::support::notify::{mail_notifier, SmtpOptions, SmtpServer};
use crate::support::{wait_for, Daemon, TestDb};

const WAIT: Duration = Duration::from_secs(30);
const NOTIFY: &str = "[notifications]\nSmtpTimeout: 2\nRetryInitial: 1\nRetryMax: 1\n";
const BLIND: &str = "skypunch on mon-1 cannot reach its network";
const SEES: &str = "skypunch on mon-1 sees its network again";

fn subjects(smtp: &SmtpServer) -> Vec<String> {
    let mut s: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or("").to_string())
        .collect();
    s.sort();
    s
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.one(sql)
}

fn wait_count(db: &TestDb, what: &str, sql: &str, want: impl Fn(i64) -> bool) {
    wait_for(WAIT, what, || want(count(db, sql)).then_some(()));
}

/// A folder for the fault hook's files, and the daemon's environment naming it.
fn faults(db: &TestDb) -> PathBuf {
    let dir = db.dir.join("faults");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn go_blind(dir: &Path) {
    std::fs::write(dir.join("blind"), "").unwrap();
}

fn see_again(dir: &Path) {
    std::fs::remove_file(dir.join("blind")).unwrap();
}

/// Lines of the log that say the node went blind.
fn blind_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("sight: this node (mon-1) cannot reach its network"))
        .count()
}

#[test]
fn a_node_whose_connectivity_list_fails_holds_its_alerts_and_says_so_once() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
    let web = HttpServer::start(200);
    let store_server = HttpServer::start(200);
    db.add_watched("api", &web.url("/api"));
    db.add_watched("shop", &web.url("/shop"));
    let store = db.add_watched("store", &store_server.url("/"));
    let dir = faults(&db);
    db.write_config(&format!(
        "StatsInterval: 0\nConnectivity: 127.0.0.1:{}\n{NOTIFY}[cluster]\nNodeName: mon-1\n\
         [http]\nListen: 127.0.0.1:0",
        gateway.local_addr().unwrap().port()
    ));
    let env = [("SKYPUNCH_FAULT_DIR", dir.to_str().unwrap())];
    let daemon = Daemon::start_with(&db, &env);
    let port = wait_for(WAIT, "the http listening line", || {
        db.log()
            .lines()
            .find_map(|l| l.split("http: listening on 127.0.0.1:").nth(1))
            .and_then(|p| p.trim().parse::<u16>().ok())
    });
    let blind_metric = || {
        crate::http::get(port, "/metrics")
            .body
            .lines()
            .find(|l| l.starts_with("skypunch_node_blind "))
            .map(str::to_string)
    };
    assert_eq!(blind_metric().as_deref(), Some("skypunch_node_blind 0.0"));
    let passing = "SELECT COUNT(*) FROM targets WHERE status = 'PASS'";
    wait_count(&db, "three targets up", passing, |n| n == 3);

    go_blind(&dir);
    let got = smtp.wait_messages(1);
    assert_eq!(got[0]["subject"], BLIND);
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap()
            .contains("none of its Connectivity addresses answered (127.0.0.1:"),
        "{}",
        got[0]["text"]
    );
    wait_count(
        &db,
        "three failed checks of every target, held",
        "SELECT COUNT(*) FROM incidents WHERE ended IS NULL AND failed_checks >= 3",
        |n| n == 3,
    );
    // Meanwhile the store's server really fails: an answer, which no blindness explains.
    store_server.set_status(503);
    assert_eq!(subjects(&smtp), [BLIND], "no page while blind");
    let held = "SELECT COUNT(*) FROM incidents WHERE ended IS NULL AND monitor_blind = 1 \
                AND alerted = 0";
    assert_eq!(
        count(&db, held),
        3,
        "recorded, marked monitor_blind, not alerted"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM alerts"), 0);
    let state: String = db.one("SELECT state FROM nodes WHERE name = 'mon-1'");
    assert_eq!(
        state, "blind",
        "alone, it beats as blind and keeps its targets"
    );
    assert_eq!(blind_metric().as_deref(), Some("skypunch_node_blind 1.0"));
    let shown = crate::support::stdout(&db.cli(&["targets", &store.to_string()]));
    assert!(
        shown.contains("held: the node checking it could not reach its network"),
        "{shown}"
    );
    let api = crate::http::get(port, &format!("/api/v1/targets/{store}")).body;
    let json: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(json["incidents"][0]["monitor_blind"], true, "{api}");
    assert_eq!(
        json["incidents"][0]["suppressed_by"],
        serde_json::Value::Null,
        "{api}"
    );

    see_again(&dir);
    smtp.wait_messages(3);
    wait_count(&db, "api and shop up again", passing, |n| n == 2);
    std::thread::sleep(Duration::from_secs(2));
    daemon.terminate(WAIT);
    assert_eq!(
        subjects(&smtp),
        ["Skypunch FAILURE detected for store", BLIND, SEES],
        "the targets fine now close unsent; the one still failing pages"
    );
    assert_eq!(blind_lines(&db.log()), 1, "{}", db.log());
    let closed_unsent = "SELECT COUNT(*) FROM incidents WHERE ended IS NOT NULL \
                         AND monitor_blind = 1 AND alerted = 0";
    assert_eq!(count(&db, closed_unsent), 2);
    let paged: i64 = db.one(&format!(
        "SELECT alerted FROM incidents WHERE target_id = {store} AND ended IS NULL"
    ));
    assert_eq!(paged, 1);
}

#[test]
fn most_targets_failing_with_network_errors_make_the_node_suspect_itself() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    let web = HttpServer::start(200);
    db.exec(&format!(
        "INSERT INTO targets (name, url, frequency, timeout) \
         SELECT CONCAT('api-', seq), '{}', 1, 2 FROM seq_1_to_24",
        web.url("/")
    ));
    let dir = faults(&db);
    // Pages wait 5 s for others to group with: time for the node to find out and withdraw
    // the first ones, raised before most targets had failed.
    db.write_config(&format!(
        "StatsInterval: 0\n{NOTIFY}GroupWait: 5\n[cluster]\nNodeName: mon-1"
    ));
    let env = [("SKYPUNCH_FAULT_DIR", dir.to_str().unwrap())];
    let daemon = Daemon::start_with(&db, &env);
    let passing = "SELECT COUNT(*) FROM targets WHERE status = 'PASS'";
    wait_count(&db, "24 targets up", passing, |n| n == 24);

    go_blind(&dir);
    let got = smtp.wait_messages(1);
    assert_eq!(got[0]["subject"], BLIND);
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap()
            .contains("more than 50% of the targets it checked in the last minute"),
        "{}",
        got[0]["text"]
    );
    wait_count(
        &db,
        "every target failed twice",
        "SELECT COUNT(*) FROM incidents WHERE ended IS NULL AND failed_checks >= 2",
        |n| n == 24,
    );
    // Past GroupWait: a page that was not withdrawn would be out by now.
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(subjects(&smtp), [BLIND]);
    let owed = "SELECT COUNT(*) FROM alert_deliveries WHERE state <> 'DROPPED'";
    assert_eq!(count(&db, owed), 0, "nothing owed, nothing sent");
    let withdrawn = "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'DROPPED' \
                     AND last_error LIKE 'withdrawn: %'";
    // The pages raised before most targets had failed (a dozen, at a check a second) were
    // withdrawn unsent.
    let raised = count(&db, "SELECT COUNT(*) FROM alerts");
    assert_eq!(count(&db, withdrawn), raised);
    let never_expanded = "SELECT COUNT(*) FROM alerts WHERE expanded = 0";
    assert_eq!(count(&db, never_expanded), 0);
    let held = "SELECT COUNT(*) FROM incidents WHERE ended IS NULL AND monitor_blind = 1 \
                AND alerted = 0";
    assert_eq!(count(&db, held), 24);

    see_again(&dir);
    smtp.wait_messages(2);
    wait_count(&db, "24 targets up again", passing, |n| n == 24);
    std::thread::sleep(Duration::from_secs(2));
    daemon.terminate(WAIT);
    assert_eq!(
        subjects(&smtp),
        [BLIND, SEES],
        "nobody was told of them, so no recovery"
    );
    assert_eq!(blind_lines(&db.log()), 1, "{}", db.log());
}

fn owned(db: &TestDb, name: &str) -> i64 {
    db.query::<i64>(&format!(
        "SELECT targets_owned FROM nodes WHERE name = '{name}' AND state = 'active'"
    ))
    .first()
    .copied()
    .unwrap_or(-1)
}

#[test]
fn a_blind_node_hands_its_targets_to_a_node_that_sees_until_it_sees_again() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    let gateway = TcpListener::bind("127.0.0.1:0").unwrap();
    let web = HttpServer::start(200);
    db.exec(&format!(
        "INSERT INTO targets (name, url, frequency, timeout) \
         SELECT CONCAT('api-', seq), '{}', 1, 2 FROM seq_1_to_8",
        web.url("/")
    ));
    db.write_config(&format!("StatsInterval: 0\n{NOTIFY}"));
    let dir = faults(&db);
    let connectivity = format!(
        "Connectivity: 127.0.0.1:{}",
        gateway.local_addr().unwrap().port()
    );
    let env = [("SKYPUNCH_FAULT_DIR", dir.to_str().unwrap())];
    let one = node(&db, "mon-1", &connectivity, &env);
    let two = node(&db, "mon-2", &connectivity, &[]);
    wait_for(WAIT, "both nodes sharing the targets", || {
        let (a, b) = (owned(&db, "mon-1"), owned(&db, "mon-2"));
        (a > 0 && b > 0 && a + b == 8).then_some(())
    });
    let passing = "SELECT COUNT(*) FROM targets WHERE status = 'PASS'";
    wait_count(&db, "8 targets up", passing, |n| n == 8);

    go_blind(&dir);
    smtp.wait_messages(1);
    wait_for(WAIT, "mon-2 checking every target", || {
        let state: String = db.one("SELECT state FROM nodes WHERE name = 'mon-1'");
        (state == "blind" && owned(&db, "mon-2") == 8).then_some(())
    });
    let log_two = std::fs::read_to_string(db.dir.join("mon-2.log")).unwrap();
    assert!(
        log_two.contains("live nodes mon-2; this node checks 8 of 8 targets"),
        "{log_two}"
    );
    // mon-2 sees the targets up: whatever mon-1 held closes with nobody paged.
    let before: i64 = count(&db, "SELECT CAST(SUM(pass_count) AS SIGNED) FROM targets");
    wait_count(
        &db,
        "mon-2's checks",
        "SELECT CAST(SUM(pass_count) AS SIGNED) FROM targets",
        |n| n >= before + 16,
    );
    wait_count(&db, "8 targets up", passing, |n| n == 8);
    assert_eq!(subjects(&smtp), [BLIND]);

    see_again(&dir);
    smtp.wait_messages(2);
    wait_for(WAIT, "mon-1 sharing the targets again", || {
        (owned(&db, "mon-1") > 0).then_some(())
    });
    one.terminate(WAIT);
    two.terminate(WAIT);
    assert_eq!(subjects(&smtp), [BLIND, SEES]);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM alerts"), 0);
}

#[test]
fn a_node_that_suspects_itself_hands_its_targets_over_and_takes_them_back_when_it_sees() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    let web = HttpServer::start(200);
    // Enough that each node checks at least 20: the suspicion needs that many.
    db.exec(&format!(
        "INSERT INTO targets (name, url, frequency, timeout) \
         SELECT CONCAT('api-', seq), '{}', 1, 2 FROM seq_1_to_60",
        web.url("/")
    ));
    db.write_config(&format!("StatsInterval: 0\n{NOTIFY}GroupWait: 5\n"));
    let dir = faults(&db);
    let env = [("SKYPUNCH_FAULT_DIR", dir.to_str().unwrap())];
    // mon-1 checks all 60 alone first: what it checked before mon-2 took its share must
    // not dilute its own failures later (it did: 26 of 60 failing is not most).
    let one = node(&db, "mon-1", "", &env);
    let passing = "SELECT COUNT(*) FROM targets WHERE status = 'PASS'";
    wait_count(&db, "60 targets up", passing, |n| n == 60);
    let two = node(&db, "mon-2", "", &[]);
    wait_for(WAIT, "both nodes sharing the targets", || {
        let (a, b) = (owned(&db, "mon-1"), owned(&db, "mon-2"));
        (a >= 20 && b > 0 && a + b == 60).then_some(())
    });
    wait_count(&db, "60 targets up", passing, |n| n == 60);

    go_blind(&dir);
    smtp.wait_messages(1);
    // What the nodes said of their sight and shares, should this not come to pass.
    let story = || {
        let lines = |n: &str| -> Vec<String> {
            std::fs::read_to_string(db.dir.join(format!("{n}.log")))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("sight:") || l.contains("cluster:"))
                .map(|l| format!("{n}: {l}"))
                .collect()
        };
        let nodes: Vec<(String, String, i64)> =
            db.query("SELECT name, state, targets_owned FROM nodes ORDER BY name");
        let all = std::fs::read_to_string(db.dir.join("mon-1.log")).unwrap_or_default();
        let tail: Vec<&str> = all.lines().rev().take(40).collect();
        format!(
            "{nodes:?}\nmail: {:?}\n{}\n{}\nmon-1's last lines:\n{}",
            subjects(&smtp),
            lines("mon-1").join("\n"),
            lines("mon-2").join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    };
    let handed_over = (0..300).any(|_| {
        let state: String = db.one("SELECT state FROM nodes WHERE name = 'mon-1'");
        let done = state == "blind" && owned(&db, "mon-2") == 60;
        if !done {
            std::thread::sleep(Duration::from_millis(100));
        }
        done
    });
    assert!(
        handed_over,
        "mon-2 does not check every target:\n{}",
        story()
    );
    wait_count(&db, "60 targets up, checked by mon-2", passing, |n| n == 60);
    // Handed over, mon-1 checks nothing: it stays blind until its sample answers.
    std::thread::sleep(Duration::from_secs(3));
    let state: String = db.one("SELECT state FROM nodes WHERE name = 'mon-1'");
    assert_eq!(state, "blind");

    see_again(&dir);
    smtp.wait_messages(2);
    wait_for(WAIT, "mon-1 sharing the targets again", || {
        (owned(&db, "mon-1") > 0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(6));
    one.terminate(WAIT);
    two.terminate(WAIT);
    assert_eq!(subjects(&smtp), [BLIND, SEES], "no target paged");
    let log = std::fs::read_to_string(db.dir.join("mon-1.log")).unwrap();
    assert_eq!(blind_lines(&log), 1, "{log}");
    assert!(
        log.contains("sees its network again") && log.contains("targets it could not reach"),
        "{log}"
    );
}
