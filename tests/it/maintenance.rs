//! Maintenance windows: `skypunch maintenance add all --for 1h` holds every alert while checks
//! go on; when the window is ended, the target still down alerts then and the one that
//! recovered inside it alerts nobody; reports leave the window out of uptime.

use std::time::Duration;

use crate::support::http::HttpServer;
use crate::support::notify::add_notifier;
use crate::support::receiver::Receiver;
use crate::support::{stdout, wait_for, Daemon, TestDb};

const WAIT: Duration = Duration::from_secs(30);

/// `(target id, kind)` of every webhook delivery the receiver got.
fn webhooks(receiver: &Receiver) -> Vec<(u64, String)> {
    let pair = |b: serde_json::Value| {
        let id = b["target"]["id"].as_u64().unwrap();
        (id, b["kind"].as_str().unwrap().to_string())
    };
    receiver
        .to("/hook")
        .iter()
        .map(|r| pair(r.json()))
        .collect()
}

fn alerts(db: &TestDb, target: u64, kind: &str) -> u64 {
    db.one(&format!(
        "SELECT COUNT(*) FROM alerts WHERE target_id = {target} AND kind = '{kind}'"
    ))
}

#[test]
fn a_window_holds_alerts_then_releases_only_the_target_still_down() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let receiver = Receiver::start(200);
    add_notifier(&db, "hook", "WEBHOOK", &receiver.url("/hook"), "", true);
    let (down, flap) = (HttpServer::start(503), HttpServer::start(503));
    let stays_down = db.add_watched("stays-down", &down.url("/"));
    let recovers = db.add_watched("recovers", &flap.url("/"));

    let added = db.cli(&[
        "maintenance",
        "add",
        "all",
        "--for",
        "1h",
        "--reason",
        "db upgrade",
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(stdout(&added).contains("Maintenance window 1: every target for 1h"));
    let listed = stdout(&db.cli(&["maintenance", "list"]));
    assert!(
        listed.contains("active") && listed.contains("db upgrade"),
        "{listed}"
    );

    let _daemon = Daemon::start(&db);
    wait_for(WAIT, "both FAILURE alerts", || {
        (alerts(&db, stays_down, "FAILURE") + alerts(&db, recovers, "FAILURE") == 2).then_some(())
    });
    flap.set_status(200);
    wait_for(WAIT, "the recovery inside the window", || {
        (alerts(&db, recovers, "SUCCESS") == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        receiver.requests().is_empty(),
        "an alert went out during the window"
    );

    let ended = db.cli(&["maintenance", "end", "1"]);
    assert!(stdout(&ended).contains("Maintenance window 1 ended"));
    wait_for(WAIT, "the held FAILURE of the target still down", || {
        (!receiver.to("/hook").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    let sent: Vec<(u64, String)> = webhooks(&receiver);
    assert_eq!(sent, [(stays_down, "FAILURE".to_string())]);
    let again = db.cli(&["maintenance", "end", "1"]);
    assert_eq!(again.status.code(), Some(1), "a window ends once");

    // The recovered target's incident lay inside the window: no downtime in the report.
    let report = stdout(&db.cli(&[
        "--since",
        "1d",
        "--format",
        "json",
        "report",
        &recovers.to_string(),
    ]));
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    let row = &json["targets"][0];
    assert_eq!(row["downtime_s"].as_f64(), Some(0.0), "{report}");
    // Its history marks the incident as one of a maintenance window.
    let history = stdout(&db.cli(&["targets", &recovers.to_string(), "history"]));
    let header = history.lines().find(|l| l.contains("Started")).unwrap();
    let column = header.find("Maintenance").expect("a Maintenance column");
    let incident = history
        .lines()
        .find(|l| l.contains("503"))
        .unwrap_or_else(|| panic!("no incident row:\n{history}"));
    assert_eq!(incident.get(column..column + 3), Some("Yes"), "{history}");
}

#[test]
fn a_recovery_after_a_window_is_sent_only_if_its_failure_was() {
    use crate::support::notify::{notifying_daemon, queue_alert};
    let db = TestDb::new();
    let receiver = Receiver::start(200);
    add_notifier(&db, "hook", "WEBHOOK", &receiver.url("/hook"), "", true);
    // Disabled: the daemon only delivers the alerts queued below.
    let target = |name: &str| {
        db.add_target(
            "name, url, enabled",
            &format!("'{name}', 'http://127.0.0.1:9/', 0"),
        )
    };
    let quiet = target("failed-in-window");
    let told = target("failed-before");
    // A window from 3 h to 1 h ago; `quiet` failed inside it, `told` before it; both
    // recovered after it, before the notifier looked.
    db.exec(
        "INSERT INTO maintenance (target_id, starts, ends) VALUES \
             (NULL, NOW(3) - INTERVAL 3 HOUR, NOW(3) - INTERVAL 1 HOUR)",
    );
    for (target, failed_at) in [(quiet, "2 HOUR"), (told, "4 HOUR")] {
        queue_alert(&db, target, "FAILURE", "down");
        db.exec(&format!(
            "UPDATE alerts SET created_at = NOW(3) - INTERVAL {failed_at} \
             WHERE target_id = {target} AND kind = 'FAILURE'"
        ));
        queue_alert(&db, target, "SUCCESS", "up");
    }
    let daemon = notifying_daemon(&db);
    wait_for(WAIT, "every alert handled", || {
        (db.one::<u64>("SELECT COUNT(*) FROM alerts WHERE expanded = 0") == 0).then_some(())
    });
    wait_for(WAIT, "the deliveries sent", || {
        (receiver.to("/hook").len() == 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    daemon.stop();
    let mut sent: Vec<(u64, String)> = webhooks(&receiver);
    sent.sort();
    assert_eq!(
        sent,
        [(told, "FAILURE".to_string()), (told, "SUCCESS".to_string())],
        "the target that failed inside the window tells nobody of its recovery"
    );
}
