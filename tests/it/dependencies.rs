//! Dependencies, as the on-call person meets them: a switch (`depends_on`'s parent) goes down
//! and takes an application behind it down too. One page says the switch is down; the
//! application's failure is recorded, held behind it (its incident names the switch's), and
//! shown as held on its page, in the API and by `targets ID`. If the application still fails
//! once the switch is back, its page goes out then; if it came back with the switch, nobody
//! hears of it. A dependency that cannot stand (a missing parent, a cycle) is a config error
//! of its rows. Real SMTP (aiosmtpd) and real HTTP servers on 127.0.0.1.

use std::time::Duration;

use crate::http::{get, start};
use crate::support::http::HttpServer;
use crate::support::notify::{mail_notifier, SmtpOptions, SmtpServer};
use crate::support::{stdout, wait_for, TestDb};

const WAIT: Duration = Duration::from_secs(30);
const NOTIFY: &str = "\n[notifications]\nSmtpTimeout: 2\nRetryInitial: 1\nRetryMax: 1\n";

fn subjects(smtp: &SmtpServer) -> Vec<String> {
    let mut s: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or("").to_string())
        .collect();
    s.sort();
    s
}

/// A switch, and an app behind it (`depends_on` the switch), both up and checked every
/// second; their servers and ids.
struct Pair {
    switch: HttpServer,
    app: HttpServer,
    parent: u64,
    child: u64,
}

fn pair(db: &TestDb) -> Pair {
    let switch = HttpServer::start(200);
    let app = HttpServer::start(200);
    let parent = db.add_watched("switch", &switch.url("/"));
    let child = db.add_target(
        "name, url, frequency, timeout, depends_on",
        &format!("'app', '{}', 1, 2, {parent}", app.url("/")),
    );
    Pair {
        switch,
        app,
        parent,
        child,
    }
}

fn status(db: &TestDb, id: u64) -> String {
    db.one(&format!("SELECT status FROM targets WHERE id = {id}"))
}

fn wait_status(db: &TestDb, id: u64, want: &str) {
    wait_for(WAIT, &format!("target {id} {want}"), || {
        (status(db, id) == want).then_some(())
    });
}

/// The switch goes down (its page goes out), then the app: waits until the app has failed
/// three checks, held. Returns the switch's incident.
fn switch_then_app_down(db: &TestDb, p: &Pair, smtp: &SmtpServer) -> u64 {
    wait_status(db, p.parent, "PASS");
    wait_status(db, p.child, "PASS");
    p.switch.set_status(503);
    smtp.wait_messages(1);
    p.app.set_status(503);
    wait_for(WAIT, "three held failures of the app", || {
        let fails: i64 = db.one(&format!(
            "SELECT COALESCE(MAX(failed_checks), 0) FROM incidents \
             WHERE target_id = {} AND ended IS NULL",
            p.child
        ));
        (fails >= 3).then_some(())
    });
    db.one(&format!(
        "SELECT id FROM incidents WHERE target_id = {} AND ended IS NULL",
        p.parent
    ))
}

#[test]
fn a_child_of_a_failing_parent_pages_nobody_then_alerts_once_the_parent_is_back() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    let p = pair(&db);
    let (daemon, port) = start(&db, NOTIFY);
    let switch_incident = switch_then_app_down(&db, &p, &smtp);

    assert_eq!(
        subjects(&smtp),
        ["Skypunch FAILURE detected for switch"],
        "the app's failure is held behind its switch"
    );
    let (suppressed_by, alerted): (Option<u64>, bool) = db.one(&format!(
        "SELECT suppressed_by, alerted FROM incidents WHERE target_id = {} AND ended IS NULL",
        p.child
    ));
    assert_eq!(suppressed_by, Some(switch_incident));
    assert!(!alerted);
    let alerted: bool = db.one(&format!(
        "SELECT alerted FROM targets WHERE id = {}",
        p.child
    ));
    assert!(!alerted, "the row says nobody was told");

    let shown = stdout(&db.cli(&["targets", &p.child.to_string()]));
    assert!(shown.contains("held: parent switch is down"), "{shown}");
    assert!(shown.contains("Depends On"), "{shown}");
    let api = get(port, &format!("/api/v1/targets/{}", p.child));
    let json: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(json["held"], "parent switch is down", "{}", api.body);
    assert_eq!(json["depends_on"], p.parent);
    let incident = &json["incidents"][0];
    assert_eq!(incident["suppressed_by"], switch_incident, "{}", api.body);
    assert_eq!(incident["monitor_blind"], false, "{}", api.body);
    let page = get(port, &format!("/target/{}", p.child)).body;
    assert!(page.contains("held: parent switch is down"), "{page}");
    let front = get(port, "/").body;
    assert!(front.contains("held: parent switch is down"), "{front}");
    let parent_json: serde_json::Value =
        serde_json::from_str(&get(port, &format!("/api/v1/targets/{}", p.parent)).body).unwrap();
    assert_eq!(parent_json["held"], serde_json::Value::Null);
    let parent_incident = &parent_json["incidents"][0];
    assert_eq!(parent_incident["id"], switch_incident, "{parent_json}");
    assert_eq!(parent_incident["suppressed_by"], serde_json::Value::Null);

    // The switch is back, the app is not: its FAILURE goes out at its next check.
    p.switch.set_status(200);
    smtp.wait_messages(3);
    assert_eq!(
        subjects(&smtp),
        [
            "Skypunch FAILURE detected for app",
            "Skypunch FAILURE detected for switch",
            "Skypunch SUCCESS detected for switch",
        ]
    );
    let (suppressed_by, alerted): (Option<u64>, bool) = db.one(&format!(
        "SELECT suppressed_by, alerted FROM incidents WHERE target_id = {} AND ended IS NULL",
        p.child
    ));
    assert_eq!(
        (suppressed_by, alerted),
        (Some(switch_incident), true),
        "the incident keeps the switch's that held it, and says its page went out"
    );
    let api = get(port, &format!("/api/v1/targets/{}", p.child));
    let json: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(json["held"], serde_json::Value::Null, "no longer held");

    // Told it failed, the on-call person is told it recovered.
    p.app.set_status(200);
    smtp.wait_messages(4);
    daemon.terminate(WAIT);
    assert_eq!(smtp.messages().len(), 4, "{:?}", subjects(&smtp));
    assert!(subjects(&smtp).contains(&"Skypunch SUCCESS detected for app".to_string()));
}

#[test]
fn a_child_that_recovers_with_its_parent_sends_nothing_at_all() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    let p = pair(&db);
    let (daemon, _port) = start(&db, NOTIFY);
    let switch_incident = switch_then_app_down(&db, &p, &smtp);

    p.app.set_status(200);
    p.switch.set_status(200);
    smtp.wait_messages(2);
    wait_for(WAIT, "the app's incident closed", || {
        let open: i64 = db.one(&format!(
            "SELECT COUNT(*) FROM incidents WHERE target_id = {} AND ended IS NULL",
            p.child
        ));
        (open == 0).then_some(())
    });
    // A few more checks of both: nothing more is owed to anybody.
    std::thread::sleep(Duration::from_secs(3));
    daemon.terminate(WAIT);
    assert_eq!(
        subjects(&smtp),
        [
            "Skypunch FAILURE detected for switch",
            "Skypunch SUCCESS detected for switch",
        ],
        "nobody was told the app failed, so nobody is told it recovered"
    );
    let (suppressed_by, alerted): (Option<u64>, bool) = db.one(&format!(
        "SELECT suppressed_by, alerted FROM incidents WHERE target_id = {}",
        p.child
    ));
    assert_eq!((suppressed_by, alerted), (Some(switch_incident), false));
    let queued: i64 = db.one(&format!(
        "SELECT COUNT(*) FROM alerts WHERE target_id = {}",
        p.child
    ));
    assert_eq!(queued, 0, "nothing of the app was queued");
}

fn description(db: &TestDb, id: u64) -> String {
    db.one(&format!(
        "SELECT COALESCE(status_description, '') FROM targets WHERE id = {id}"
    ))
}

#[test]
fn a_cycle_is_a_config_error_on_every_row_in_it_and_so_is_a_missing_parent() {
    let db = TestDb::new();
    let up = HttpServer::start(200);
    let a = db.add_watched("a", &up.url("/a"));
    let b = db.add_target(
        "name, url, frequency, timeout, depends_on",
        &format!("'b', '{}', 1, 2, {a}", up.url("/b")),
    );
    db.exec(&format!(
        "UPDATE targets SET depends_on = {b} WHERE id = {a}"
    ));
    let orphan = db.add_target(
        "name, url, frequency, timeout, depends_on",
        &format!("'orphan', '{}', 1, 2, 999999", up.url("/c")),
    );
    let (daemon, _port) = start(&db, "");
    let cycle = format!(
        "config error: depends_on makes a cycle ({} -> {} -> {}): set one of them to NULL",
        a.min(b),
        a.max(b),
        a.min(b)
    );
    for id in [a, b] {
        wait_for(WAIT, "the cycle's config error", || {
            (description(&db, id) == cycle).then_some(())
        });
        assert_eq!(status(&db, id), "FAIL");
    }
    wait_for(WAIT, "the missing parent's config error", || {
        (description(&db, orphan) == "config error: depends_on 999999 names no target")
            .then_some(())
    });
    assert!(
        db.log()
            .contains(&format!("[{a}] a config error: depends_on makes a cycle")),
        "{}",
        db.log()
    );

    // Broken by hand: both are checked; made again: both are errors again.
    db.exec(&format!(
        "UPDATE targets SET depends_on = NULL WHERE id = {a}"
    ));
    wait_status(&db, a, "PASS");
    wait_status(&db, b, "PASS");
    db.exec(&format!(
        "UPDATE targets SET depends_on = {b} WHERE id = {a}"
    ));
    for id in [a, b] {
        wait_for(WAIT, "the cycle's config error again", || {
            (description(&db, id) == cycle).then_some(())
        });
    }
    daemon.terminate(WAIT);
    let checks_of_a: i64 = db.one(&format!("SELECT pass_count FROM targets WHERE id = {a}"));
    assert!(checks_of_a >= 1);
}
