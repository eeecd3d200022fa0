//! Issue 5, notifications: the daemon's notifier and `notifiers ID test` against real SMTP
//! servers on 127.0.0.1 (aiosmtpd, and fake peers that misbehave), each test with a fresh
//! database. Most tests queue alerts with plain SQL, as any node's writer does, for a daemon
//! whose targets are disabled: it delivers them and raises none of its own.

use crate::support as common;
use std::time::Duration;

use crate::support::notify::*;
use crate::support::{stderr, stdout, wait_for, Daemon, TestDb};

const WAIT: Duration = Duration::from_secs(60);

fn count(db: &TestDb, sql: &str) -> i64 {
    db.one::<i64>(sql)
}

/// A target `name` the daemon does not check (disabled), for the alerts a test queues.
fn unchecked(db: &TestDb, name: &str) -> u64 {
    db.add_target(
        "name, url, enabled",
        &format!("'{name}', 'http://127.0.0.1:9/', 0"),
    )
}

fn notifier_counts(db: &TestDb, id: u64) -> (i64, i64) {
    db.one(&format!(
        "SELECT pass_count, fail_count FROM notifiers WHERE id = {id}"
    ))
}

/// A target whose name needs escaping and whose URL and authn_parms hold passwords
/// (disabled: the test's alerts are about it, the daemon does not check it).
fn add_risky_target(db: &TestDb) -> u64 {
    db.add_target(
        "name, url, authn, authn_parms, status, previous_status, status_description, fail_count, count500, repeated_fails, enabled",
        "'<b>Shop & \"Co\"</b>', 'https://ops:UrlSecret9@shop.example/health', 'BASIC', \
         'user=ops,password=AuthnSecret9', 'FAIL', 'PASS', 'target status:500 != 200', 3, 3, 3, 0",
    )
}

#[test]
fn alerts_reach_every_enabled_notifier_once_and_never_a_disabled_one() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    let a = mail_notifier(&db, "ops", smtp.port);
    let b = add_notifier(
        &db,
        "off",
        "SMTP",
        "off@example.com",
        &plain(smtp.port),
        false,
    );
    let c = mail_notifier(&db, "dev", smtp.port);
    let target = add_risky_target(&db);
    queue_alert(
        &db,
        target,
        "FAILURE",
        "12:00:00 connecting\n12:00:01 [Fail] reason: <500>",
    );
    queue_alert(&db, target, "SUCCESS", "12:01:00 response OK");

    let daemon = notifying_daemon(&db);
    let got = smtp.wait_messages(4);
    wait_for(WAIT, "every delivery recorded as sent", || {
        (count(
            &db,
            "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'SENT'",
        ) == 4)
            .then_some(())
    });
    daemon.stop();

    let mut to = recipients(&got);
    to.sort();
    assert_eq!(
        to,
        [
            "dev@example.com",
            "dev@example.com",
            "ops@example.com",
            "ops@example.com"
        ]
    );
    let name = "<b>Shop & \"Co\"</b>";
    let subjects: Vec<&str> = got.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(
        subjects
            .iter()
            .filter(|s| **s == format!("Skypunch FAILURE detected for {name}"))
            .count(),
        2
    );
    assert_eq!(
        subjects
            .iter()
            .filter(|s| **s == format!("Skypunch SUCCESS detected for {name}"))
            .count(),
        2
    );
    for m in &got {
        assert_eq!(m["content_type"], "multipart/alternative");
        assert!(m["headers"]["From"]
            .as_str()
            .unwrap()
            .contains("skypunch@localhost"));
        assert!(m["headers"].get("Date").is_some() && m["headers"].get("Message-ID").is_some());
        let html = m["html"].as_str().unwrap();
        let text = m["text"].as_str().unwrap();
        assert!(
            html.contains("&lt;b&gt;Shop &amp; &quot;Co&quot;&lt;/b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>Shop"), "unescaped name in {html}");
        assert!(html.contains("target status:500 != 200"));
        assert!(html.contains("<th align=\"left\">Repeated Fails</th><td>3</td>"));
        assert!(html.contains("https://***@shop.example/health"));
        assert!(text.contains(name));
        let raw = m["raw"].as_str().unwrap();
        for secret in ["UrlSecret9", "AuthnSecret9"] {
            assert!(!raw.contains(secret) && !html.contains(secret) && !text.contains(secret));
        }
    }
    let failure = got
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("FAILURE"))
        .unwrap();
    assert!(failure["html"]
        .as_str()
        .unwrap()
        .contains("<pre>12:00:00 connecting\n12:00:01 [Fail] reason: &lt;500&gt;</pre>"));
    assert_eq!(notifier_counts(&db, a), (2, 0));
    assert_eq!(notifier_counts(&db, b), (0, 0));
    assert_eq!(notifier_counts(&db, c), (2, 0));
    assert_eq!(
        count(
            &db,
            &format!("SELECT COUNT(*) FROM alert_deliveries WHERE notifier_id = {b}")
        ),
        0
    );

    // A restart sends nothing again, nor does the last pass of its stop.
    Daemon::start(&db).stop();
    assert_eq!(smtp.messages().len(), 4);
}

#[test]
fn an_smtp_outage_loses_nothing_and_sends_nothing_twice() {
    let db = TestDb::new();
    let mail = db.dir.join("mail");
    let port = SmtpServer::start(&mail, &SmtpOptions::default()).port; // then down
    let n = mail_notifier(&db, "ops", port);
    let target = unchecked(&db, "api");
    for kind in ["FAILURE", "SUCCESS", "FAILURE"] {
        queue_alert(&db, target, kind, "trace");
    }
    let daemon = notifying_daemon(&db);
    wait_for(WAIT, "failed attempts while the server is down", || {
        (notifier_counts(&db, n).1 >= 2).then_some(())
    });
    let (pending, failing, last_error) = wait_for(WAIT, "all three alerts owed", || {
        let owed = owed_to(&db, n);
        (owed.0 == 3).then_some(owed)
    });
    assert!(failing >= 1);
    assert!(
        last_error.to_lowercase().contains("connection"),
        "a refused connection: {last_error}"
    );
    assert_eq!(pending, 3);
    assert!(messages_in(&mail).is_empty());

    let smtp = SmtpServer::start(
        &mail,
        &SmtpOptions {
            port,
            ..SmtpOptions::default()
        },
    );
    smtp.wait_messages(3);
    wait_for(WAIT, "every delivery recorded as sent", || {
        (count(
            &db,
            "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'SENT'",
        ) == 3)
            .then_some(())
    });
    daemon.stop();
    let got = smtp.messages();
    assert_eq!(got.len(), 3, "each owed alert exactly once");
    let subjects: Vec<&str> = got.iter().map(|m| m["subject"].as_str().unwrap()).collect();
    assert_eq!(
        subjects,
        [
            "Skypunch FAILURE detected for api",
            "Skypunch SUCCESS detected for api",
            "Skypunch FAILURE detected for api"
        ],
        "oldest alert first"
    );
    assert_eq!(notifier_counts(&db, n).0, 3);
}

#[test]
fn bad_credentials_unknown_types_and_bad_params_fail_without_blocking_others() {
    let db = TestDb::new();
    let login = ("ops".to_string(), "Right-Pa55".to_string());
    let opts = SmtpOptions {
        starttls: true,
        login: Some(login),
        ..SmtpOptions::default()
    };
    let smtp = SmtpServer::start(&db.dir.join("mail"), &opts);
    let p = smtp.port;
    let wrong = add_notifier(
        &db,
        "wrong",
        "SMTP",
        "wrong@example.com",
        &format!("user=ops,password=Wr0ng-Pa55,server=127.0.0.1,port={p},tlsverify=no"),
        true,
    );
    let pigeon = add_notifier(&db, "pigeon", "PIGEON", "coo@example.com", &plain(p), true);
    let noserver = add_notifier(
        &db,
        "noserver",
        "SMTP",
        "ns@example.com",
        "user=ops,password=Right-Pa55",
        true,
    );
    let verify = add_notifier(
        &db,
        "verify",
        "SMTP",
        "verify@example.com",
        &format!("user=ops,password=Right-Pa55,server=127.0.0.1,port={p}"),
        true,
    );
    let good = add_notifier(
        &db,
        "good",
        "SMTP",
        "good@example.com",
        &format!("user=ops,password=Right-Pa55,server=127.0.0.1,port={p},tlsverify=no"),
        true,
    );
    let target = unchecked(&db, "api");
    queue_alert(&db, target, "FAILURE", "trace");
    let daemon = notifying_daemon(&db);
    let got = smtp.wait_messages(1);
    for id in [wrong, pigeon, noserver, verify] {
        wait_for(WAIT, "a counted failure", || {
            (notifier_counts(&db, id).1 >= 1).then_some(())
        });
    }
    daemon.stop();
    assert_eq!(recipients(&got), ["good@example.com"]);
    assert_eq!(got[0]["tls"], true);
    assert_eq!(got[0]["authenticated"], true);
    assert_eq!(notifier_counts(&db, good), (1, 0));
    let error = |id: u64| -> String {
        db.one(&format!(
            "SELECT last_error FROM alert_deliveries WHERE notifier_id = {id}"
        ))
    };
    let e = error(wrong);
    assert!(e.contains("535") && !e.contains("Wr0ng-Pa55"), "{e}");
    assert_eq!(
        error(pigeon),
        format!("notifier {pigeon}: unknown type `PIGEON` (SMTP, WEBHOOK, SLACK or PAGERDUTY)")
    );
    assert_eq!(
        error(noserver),
        format!("notifier {noserver}: params need server=HOST")
    );
    assert!(
        error(verify).to_lowercase().contains("certificate"),
        "{}",
        error(verify)
    );
    for m in smtp.messages() {
        let raw = m["raw"].as_str().unwrap();
        assert!(!raw.contains("Pa55"));
    }
}

#[test]
fn a_hanging_or_closing_server_does_not_hold_up_the_others() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    let hang = mail_notifier(&db, "hang", fake_peer(Misbehaviour::Hang));
    let close = mail_notifier(&db, "close", fake_peer(Misbehaviour::Close));
    let half = mail_notifier(&db, "half", fake_peer(Misbehaviour::CloseAfterGreeting));
    let good = mail_notifier(&db, "good", smtp.port);
    let target = unchecked(&db, "api");
    for kind in ["FAILURE", "SUCCESS"] {
        queue_alert(&db, target, kind, "trace");
    }
    let daemon = notifying_daemon(&db);
    smtp.wait_messages(2);
    for id in [hang, close, half] {
        wait_for(WAIT, "a counted failure", || {
            (notifier_counts(&db, id).1 >= 1).then_some(())
        });
    }
    daemon.stop();
    assert_eq!(
        recipients(&smtp.messages()),
        ["good@example.com", "good@example.com"]
    );
    assert_eq!(notifier_counts(&db, good), (2, 0));
    let e: String = db.one(&format!("SELECT last_error FROM alert_deliveries WHERE notifier_id = {hang} AND last_error IS NOT NULL LIMIT 1"));
    assert!(e.contains("timed out"), "{e}");
    assert_eq!(
        count(&db, &format!("SELECT COUNT(*) FROM alert_deliveries WHERE state = 'PENDING' AND notifier_id IN ({hang},{close},{half})")),
        6,
        "still owed"
    );
}

#[test]
fn deleted_notifiers_are_dropped_and_disabled_ones_wait() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    let gone = mail_notifier(&db, "gone", smtp.port);
    let later = mail_notifier(&db, "later", smtp.port);
    let target = unchecked(&db, "api");
    queue_alert(&db, target, "FAILURE", "trace");
    // Expanded while both were enabled, then one deleted and one disabled.
    db.exec("INSERT INTO alert_deliveries (alert_id, notifier_id) SELECT a.id, n.id FROM alerts a, notifiers n");
    db.exec("UPDATE alerts SET expanded = 1");
    db.exec(&format!("DELETE FROM notifiers WHERE id = {gone}"));
    db.exec(&format!(
        "UPDATE notifiers SET enabled = 0 WHERE id = {later}"
    ));
    let daemon = notifying_daemon(&db);
    wait_for(WAIT, "the deleted notifier's delivery dropped", || {
        let s: String = db.one(&format!(
            "SELECT state FROM alert_deliveries WHERE notifier_id = {gone}"
        ));
        (s == "DROPPED").then_some(())
    });
    let (state, attempts): (String, i64) = db.one(&format!(
        "SELECT state, attempts FROM alert_deliveries WHERE notifier_id = {later}"
    ));
    assert_eq!((state.as_str(), attempts), ("PENDING", 0));
    assert!(smtp.messages().is_empty());
    let enabled = db.cli(&["notifiers", &later.to_string(), "enable"]);
    assert!(enabled.status.success(), "{}", stderr(&enabled));
    // The running notifier would see it within 30 s, its longest sleep; the last pass of a
    // stop tries everything owed at once, so the stop shows the delivery went out.
    daemon.stop();
    let got = smtp.wait_messages(1);
    assert_eq!(recipients(&got), ["later@example.com"]);
}

#[test]
fn old_rows_are_pruned_and_owed_ones_kept() {
    let db = TestDb::new();
    let n = add_notifier(
        &db,
        "ops",
        "SMTP",
        "ops@example.com",
        "server=127.0.0.1,port=9,tls=none",
        false,
    );
    let target = unchecked(&db, "api");
    for _ in 0..4 {
        queue_alert(&db, target, "FAILURE", "trace");
    }
    let ids: Vec<u64> = db.query("SELECT id FROM alerts ORDER BY id");
    db.exec("UPDATE alerts SET expanded = 1");
    let old = "NOW(3) - INTERVAL 40 DAY";
    // 1: old and sent → pruned. 2: old, owed to an enabled notifier → kept.
    // 3: recent and sent → kept. 4: old, owed only to a notifier disabled that long → dropped,
    // so it owes nothing any more and is pruned too.
    db.exec(&format!(
        "UPDATE alerts SET created_at = {old} WHERE id IN ({}, {}, {})",
        ids[0], ids[1], ids[3]
    ));
    db.exec(&format!(
        "INSERT INTO alert_deliveries (alert_id, notifier_id, state, sent_at) VALUES ({}, {n}, 'SENT', {old}), ({}, {n}, 'SENT', NOW(3))",
        ids[0], ids[2]
    ));
    let m = add_notifier(
        &db,
        "down",
        "SMTP",
        "down@example.com",
        "server=127.0.0.1,port=9,tls=none",
        true,
    );
    db.exec(&format!("INSERT INTO alert_deliveries (alert_id, notifier_id, next_attempt) VALUES ({}, {m}, NOW(3) + INTERVAL 1 DAY)", ids[1]));
    db.exec(&format!(
        "INSERT INTO alert_deliveries (alert_id, notifier_id) VALUES ({}, {n})",
        ids[3]
    ));

    let daemon = notifying_daemon(&db);
    wait_for(WAIT, "the old sent alert pruned", || {
        (count(
            &db,
            &format!("SELECT COUNT(*) FROM alerts WHERE id = {}", ids[0]),
        ) == 0)
            .then_some(())
    });
    daemon.stop();
    let left: Vec<u64> = db.query("SELECT id FROM alerts ORDER BY id");
    assert_eq!(left, [ids[1], ids[2]]);
    let deliveries: Vec<(u64, u64, String)> =
        db.query("SELECT alert_id, notifier_id, state FROM alert_deliveries ORDER BY alert_id");
    assert_eq!(
        deliveries,
        [
            (ids[1], m, "PENDING".to_string()),
            (ids[2], n, "SENT".to_string())
        ]
    );
}

#[test]
fn notifiers_id_test_sends_a_message_through_the_binary() {
    let db = TestDb::new();
    db.write_config("\n[notifications]\nFrom: Ops Robot <robot@example.com>\nSmtpTimeout: 2\n");
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    let id = add_notifier(
        &db,
        "ops",
        "SMTP",
        "ops@example.com",
        &plain(smtp.port),
        false,
    );
    let out = db.cli(&["notifiers", &id.to_string(), "test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "Notifier: ops test message sent to ops@example.com via 127.0.0.1:{}\n",
            smtp.port
        )
    );
    let got = smtp.wait_messages(1);
    assert_eq!(got[0]["subject"], "Skypunch test message for notifier ops");
    assert!(got[0]["headers"]["From"]
        .as_str()
        .unwrap()
        .contains("robot@example.com"));
    assert_eq!(recipients(&got), ["ops@example.com"]);

    let dead = add_notifier(
        &db,
        "dead",
        "SMTP",
        "dead@example.com",
        "user=u,password=Zq9-secret,server=127.0.0.1,port=9,tls=none",
        true,
    );
    let out = db.cli(&["notifiers", &dead.to_string(), "test"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "notifier {dead}: sending to dead@example.com via 127.0.0.1:9 failed"
        )),
        "{err}"
    );
    assert!(!err.contains("Zq9-secret"));

    let out = db.cli(&["notifiers", &dead.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Pending Alerts"));
    assert!(!stdout(&out).contains("Zq9-secret"));
}

#[test]
fn the_daemon_mails_a_failing_target_through_writer_and_notifier() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    mail_notifier(&db, "down", 9);
    db.write_config("\n[notifications]\nSmtpTimeout: 2\nRetryInitial: 1\n");
    db.add_target(
        "name, url, frequency, timeout",
        "'refused', 'http://127.0.0.1:9/', 1, 2",
    );
    let daemon = Daemon::spawn(&db, &[], &[]);
    let got = smtp.wait_messages(1);
    let warn = wait_for(WAIT, "a WARN line for the notifier that is down", || {
        let log = db.log();
        log.lines()
            .find(|l| l.contains("WARN") && l.contains("notifier 2 (down) <down@example.com>"))
            .map(String::from)
    });
    assert!(
        warn.contains("alert 1 for target 1 not sent (attempt 1)"),
        "{warn}"
    );
    // SIGTERM: the daemon stops its stages in order, the notifier last.
    let (code, _) = daemon.terminate(WAIT);
    assert_eq!(code, Some(0));
    assert_eq!(got[0]["subject"], "Skypunch FAILURE detected for refused");
    assert_eq!(recipients(&got), ["ops@example.com"]);
    assert_eq!(smtp.messages().len(), 1, "one alert for one state change");
    let counts: Vec<(i64, i64)> =
        db.query("SELECT pass_count, fail_count FROM notifiers ORDER BY id");
    assert_eq!(counts[0], (1, 0));
    assert!(counts[1].0 == 0 && counts[1].1 >= 1, "{counts:?}");
    assert!(db
        .log()
        .contains("notifier 1 (ops) <ops@example.com>: sent alert 1"));
}

/// A prune of millions of rows, which the test holds for as long as it likes (the fault
/// file `hold-prune`), runs on the prune thread: an alert raised meanwhile goes out at once, a
/// SIGTERM stops the daemon at once, and the next start prunes what was left.
#[cfg(feature = "fault-injection")]
#[test]
fn a_long_prune_holds_up_neither_alerts_nor_the_stop() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    db.write_config(
        "LogLevel: debug\nStatsInterval: 0\n[notifications]\nSmtpTimeout: 2\nRetryInitial: 1\n\
         [history]\nHourlyDays: 35",
    );
    let id = db.add_target(
        "name, url, frequency, timeout",
        "'refused', 'http://127.0.0.1:9/', 1, 2",
    );
    db.exec(&format!(
        "INSERT INTO target_hours (target_id, hour, checks) \
         VALUES ({id}, UTC_TIMESTAMP() - INTERVAL 40 DAY, 1)"
    ));
    let old_hours =
        "SELECT COUNT(*) FROM target_hours WHERE hour < UTC_TIMESTAMP() - INTERVAL 35 DAY";
    let faults = db.dir.join("faults");
    std::fs::create_dir_all(&faults).unwrap();
    std::fs::write(faults.join("hold-prune"), "").unwrap();
    let env = [("SKYPUNCH_FAULT_DIR", faults.to_str().unwrap())];
    let daemon = Daemon::spawn(&db, &[], &env);

    let got = smtp.wait_messages(1);
    assert_eq!(got[0]["subject"], "Skypunch FAILURE detected for refused");
    let log = db.log();
    assert!(
        log.contains("prune: pruning on thread skypunch-prune"),
        "the prune runs on its own thread:\n{log}"
    );
    assert!(!log.contains("history: pruned"), "{log}");
    assert_eq!(count(&db, old_hours), 1, "the prune is still held");

    let (code, took) = daemon.terminate(WAIT);
    assert_eq!(code, Some(0), "{}", db.log());
    assert!(
        took < Duration::from_secs(10),
        "a held prune held the stop: {took:?}"
    );
    assert!(!db.log().contains("stop deadline passed"), "{}", db.log());
    assert_eq!(count(&db, old_hours), 1);

    std::fs::remove_file(faults.join("hold-prune")).unwrap();
    let daemon = Daemon::spawn(&db, &[], &env);
    wait_for(WAIT, "the prune line", || {
        db.log()
            .lines()
            .find(|l| l.contains("history: pruned 1 hourly and 0 daily rollup rows"))
            .map(drop)
    });
    assert_eq!(daemon.stop(), Some(0));
    assert_eq!(count(&db, old_hours), 0);
}

/// A free port on 127.0.0.1 with nothing listening on it (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_alert_owed_when_the_daemon_is_killed_is_delivered_after_restart() {
    let db = TestDb::new();
    let port = free_port();
    mail_notifier(&db, "ops", port);
    db.write_config("\n[notifications]\nSmtpTimeout: 2\nRetryInitial: 1\n");
    let id = db.add_target(
        "name, url, frequency, timeout",
        "'gone', 'http://127.0.0.1:9/', 1, 2",
    );
    let daemon = Daemon::spawn(&db, &[], &[]);
    // The state change is recorded with its alert, but the SMTP server is not there yet.
    wait_for(WAIT, "a failed delivery try", || {
        (count(
            &db,
            "SELECT COUNT(*) FROM alert_deliveries WHERE attempts > 0",
        ) > 0)
            .then_some(())
    });
    daemon.kill();
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'PENDING'"
        ),
        1
    );

    let smtp = SmtpServer::start(
        &db.dir.join("mail"),
        &SmtpOptions {
            port,
            ..SmtpOptions::default()
        },
    );
    let daemon = Daemon::spawn(&db, &[], &[]);
    let got = smtp.wait_messages(1);
    wait_for(WAIT, "the delivery to be marked sent", || {
        (count(
            &db,
            "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'SENT'",
        ) == 1)
            .then_some(())
    });
    // The target keeps failing after the restart: a later failure must not alert again.
    wait_for(WAIT, "failures written after the restart", || {
        let fails: i64 = db.one(&format!(
            "SELECT repeated_fails FROM targets WHERE id = {id}"
        ));
        (fails >= 2).then_some(())
    });
    daemon.terminate(WAIT);
    assert_eq!(got[0]["subject"], "Skypunch FAILURE detected for gone");
    assert_eq!(
        smtp.messages().len(),
        1,
        "sent once, not again for the repeated failures"
    );
}

#[test]
fn a_threshold_of_three_alerts_on_the_third_failure_and_recovery_alerts_once() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    mail_notifier(&db, "ops", smtp.port);
    let web = common::http::HttpServer::start(503);
    let id = db.add_target(
        "name, url, frequency, timeout, fail_threshold",
        &format!("'Shaky', '{}', 1, 2, 3", web.url("/")),
    );
    let daemon = Daemon::spawn(&db, &[], &[]);
    let got = smtp.wait_messages(1);
    assert_eq!(got[0]["subject"], "Skypunch FAILURE detected for Shaky");
    let snapshot: String = db.one(&format!(
        "SELECT snapshot FROM alerts WHERE target_id = {id}"
    ));
    let snapshot: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(
        snapshot["repeated_fails"], 3,
        "alerted on the third failure: {snapshot}"
    );

    web.set_status(200);
    let got = smtp.wait_messages(2);
    assert_eq!(got[1]["subject"], "Skypunch SUCCESS detected for Shaky");
    daemon.terminate(WAIT);
    assert_eq!(smtp.messages().len(), 2);
}

#[test]
fn a_target_routed_to_some_notifiers_alerts_only_them_and_the_others_alert_everybody() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    let ops = mail_notifier(&db, "ops", smtp.port);
    mail_notifier(&db, "dev", smtp.port);
    let payments = unchecked(&db, "payments");
    let blog = unchecked(&db, "blog");
    // Plain SQL: payments pages ops only; the blog, with no row, alerts everybody.
    db.exec(&format!(
        "INSERT INTO target_notifiers (target_id, notifier_id) VALUES ({payments}, {ops})"
    ));
    queue_alert(&db, payments, "FAILURE", "down");
    queue_alert(&db, blog, "FAILURE", "down");

    let daemon = notifying_daemon(&db);
    let got = smtp.wait_messages(3);
    wait_for(WAIT, "every delivery sent", || {
        (count(
            &db,
            "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'SENT'",
        ) == 3)
            .then_some(())
    });
    daemon.stop();
    let mut sent: Vec<(String, String)> = got
        .iter()
        .map(|m| {
            let to = m["rcpt_tos"][0].as_str().unwrap().to_string();
            (to, m["subject"].as_str().unwrap().to_string())
        })
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            (
                "dev@example.com".into(),
                "Skypunch FAILURE detected for blog".into()
            ),
            (
                "ops@example.com".into(),
                "Skypunch FAILURE detected for blog".into()
            ),
            (
                "ops@example.com".into(),
                "Skypunch FAILURE detected for payments".into()
            ),
        ]
    );
    let shown = stdout(&db.cli(&["targets", &payments.to_string()]));
    assert!(shown.contains(&format!("ops ({ops})")), "{shown}");
    let shown = stdout(&db.cli(&["targets", &blog.to_string()]));
    assert!(shown.contains("every enabled notifier"), "{shown}");
}

#[test]
fn a_success_threshold_holds_the_recovery_alert_for_that_many_passes() {
    let down = FailingTarget::start("success_threshold", 3);
    let (db, id) = (&down.db, down.id);
    down.web.set_status(200);
    let snap = down.snapshot("SUCCESS");
    assert_eq!(snap["repeated_passes"], 3, "{snap}");
    assert_eq!(snap["status"], "PASS");
    // The status was PASS, and the incident over, from the first pass; only the alert waited.
    let (ended, alerted_at): (String, String) = db.one(&format!(
        "SELECT CAST(i.ended AS CHAR), CAST(a.created_at AS CHAR) FROM incidents i, alerts a \
         WHERE i.target_id = {id} AND a.kind = 'SUCCESS'"
    ));
    assert!(ended < alerted_at, "{ended} / {alerted_at}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(db, "SELECT COUNT(*) FROM alerts"), 2);
}

#[test]
fn a_target_still_failed_realert_minutes_after_its_alert_gets_one_reminder() {
    let down = FailingTarget::start("realert_minutes", 1);
    let (db, id) = (&down.db, down.id);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM alerts"),
        1,
        "no reminder within the minute"
    );
    // Two minutes later, as far as the row says: what the daemon reads when another writer
    // has moved the row on (state_seq).
    db.exec(&format!(
        "UPDATE targets SET last_alerted = last_alerted - INTERVAL 2 MINUTE, \
         state_seq = state_seq + 1 WHERE id = {id}"
    ));
    let snap = down.snapshot("REMINDER");
    assert_eq!(snap["status"], "FAIL");
    assert!(snap["incident_started"].is_string(), "{snap}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM alerts WHERE kind = 'REMINDER'"),
        1,
        "the next reminder is a minute away"
    );
}

/// A target checked every second against a server answering 503, with one more column set,
/// under a running daemon, once its FAILURE alert is written.
struct FailingTarget {
    db: TestDb,
    web: crate::support::http::HttpServer,
    id: u64,
    _daemon: Daemon,
}

impl FailingTarget {
    fn start(column: &str, value: u64) -> FailingTarget {
        let db = TestDb::new();
        db.write_config("StatsInterval: 0");
        let web = crate::support::http::HttpServer::start(503);
        let id = db.add_target(
            &format!("name, url, frequency, timeout, {column}"),
            &format!("'down', '{}', 1, 2, {value}", web.url("/")),
        );
        let daemon = Daemon::start(&db);
        wait_for(WAIT, "the FAILURE alert", || {
            (count(&db, "SELECT COUNT(*) FROM alerts WHERE kind = 'FAILURE'") == 1).then_some(())
        });
        FailingTarget {
            db,
            web,
            id,
            _daemon: daemon,
        }
    }

    /// The snapshot of the first alert of `kind`, once there is one.
    fn snapshot(&self, kind: &str) -> serde_json::Value {
        let sql = format!("SELECT snapshot FROM alerts WHERE kind = '{kind}'");
        let text: String = wait_for(WAIT, &format!("the {kind} alert"), || {
            self.db.query::<String>(&sql).into_iter().next()
        });
        serde_json::from_str(&text).unwrap()
    }
}
