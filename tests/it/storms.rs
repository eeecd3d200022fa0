//! Alert storms, as an operator meets them: the server behind 2,000 targets dies, and each
//! notifier (an SMTP server, a webhook, a Slack-style and a PagerDuty-style receiver, all on
//! 127.0.0.1) hears of it in a few messages listing every target, not in 2,000; then of the
//! recovery the same way. A daemon killed or stopped while a group waits loses no alert and
//! sends none twice.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::notify::{add_notifier, mail_notifier, SmtpOptions, SmtpServer};
use crate::support::receiver::Receiver;
use crate::support::storm::{self, Heard, Upstream};
use crate::support::{wait_for, Daemon, TestDb};

const TARGETS: usize = 2000;
/// `[notifications] GroupWait` in the first test.
const GROUP_WAIT: Duration = Duration::from_secs(2);
/// The bound: every notifier has heard of every target this long after the server
/// died (or came back).
const WITHIN: Duration = GROUP_WAIT.saturating_add(Duration::from_secs(10));
/// The wait's bound: three times the nominal GroupWait + 10 s, as every bound in the
/// suite, which must pass beside two CPU hogs; how long it took is BENCHMARKS.md's to
/// measure (10.4 s at 2,000 targets), the count of messages is this test's to check.
const BOUND: Duration = Duration::from_secs(3 * WITHIN.as_secs());

/// The receivers of one storm.
struct Ears {
    smtp: SmtpServer,
    http: Receiver,
}

impl Ears {
    fn start(db: &TestDb) -> Ears {
        let ears = Ears {
            smtp: SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default()),
            http: Receiver::start(200),
        };
        mail_notifier(db, "ops", ears.smtp.port);
        add_notifier(db, "hook", "WEBHOOK", &ears.http.url("/hook"), "", true);
        let slack = ears.http.url("/services/T0/B0/slack-token");
        add_notifier(db, "chat", "SLACK", &slack, "", true);
        let pd = format!("routing_key=rk,endpoint={}", ears.http.url("/pd"));
        add_notifier(db, "pager", "PAGERDUTY", "", &pd, true);
        ears
    }

    fn bodies(&self, path: &str) -> Vec<serde_json::Value> {
        self.http.to(path).iter().map(|r| r.json()).collect()
    }

    /// What the mail, webhook and Slack notifiers heard, in that order.
    fn heard(&self) -> [Heard; 3] {
        [
            storm::heard_by_mail(&self.smtp.messages()),
            storm::heard_by_webhook(&self.bodies("/hook")),
            storm::heard_by_slack(&self.bodies("/services/T0/B0/slack-token")),
        ]
    }

    /// PagerDuty's events: (action, dedup key).
    fn pages(&self) -> Vec<(String, String)> {
        self.bodies("/pd")
            .iter()
            .map(|e| {
                (
                    e["event_action"].as_str().unwrap().to_string(),
                    e["dedup_key"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// Waits until each of the mail, webhook and Slack notifiers heard of `n` alerts whose
/// headline says `word`, at most `limit`; how long that took, and what they heard.
fn until_heard(ears: &Ears, word: &str, n: usize, limit: Duration) -> (Duration, [Heard; 3]) {
    let start = Instant::now();
    loop {
        let heard = ears.heard();
        if heard.iter().all(|h| h.saying(word).total() >= n) {
            return (start.elapsed(), heard);
        }
        assert!(
            start.elapsed() <= limit,
            "after {limit:?} the notifiers heard of only {:?} `{word}` alerts of {n}",
            heard
                .iter()
                .map(|h| h.saying(word).total())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count(db: &TestDb, sql: &str) -> usize {
    db.one::<u64>(sql) as usize
}

#[test]
fn two_thousand_targets_whose_server_dies_reach_each_notifier_in_a_few_messages() {
    let db = TestDb::new();
    db.write_config(
        "StatsInterval: 0\n[notifications]\nGroupWait: 2\nGroupInterval: 3\nSmtpTimeout: 10",
    );
    let ears = Ears::start(&db);
    let mut upstream = Upstream::start();
    storm::add_targets(&db, TARGETS as u32, &upstream.url(), 2);
    let _daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(30), "every target to pass", || {
        (count(&db, "SELECT COUNT(*) FROM targets WHERE status = 'PASS'") == TARGETS).then_some(())
    });

    // The server dies: every check from now on is refused.
    upstream.kill();
    let (took, heard) = until_heard(&ears, "FAILED", TARGETS, BOUND);
    for (kind, h) in ["mail", "webhook", "slack"].iter().zip(&heard) {
        let failed = h.saying("FAILED");
        assert!(
            (1..=3).contains(&failed.messages.len()),
            "{kind}: {} messages {:?}",
            failed.messages.len(),
            failed.messages
        );
        assert_eq!(failed.total(), TARGETS, "{kind}: {:?}", failed.messages);
    }
    // The webhook lists every target exactly once; the mail names its first 100 once each.
    let webhook = &heard[1];
    assert_eq!(webhook.listed.len(), TARGETS);
    assert!(webhook.listed.values().all(|&n| n == 1));
    assert!(heard[0].listed.values().all(|&n| n == 1));
    let mail = ears.smtp.messages();
    assert!(
        mail[0]["subject"]
            .as_str()
            .unwrap()
            .ends_with(" targets FAILED"),
        "{}",
        mail[0]["subject"]
    );
    println!(
        "the failure of {TARGETS} targets reached every notifier in {took:?}: {:?}",
        heard.iter().map(|h| &h.messages).collect::<Vec<_>>()
    );

    // PagerDuty: one page per grouped message.
    let triggers: Vec<String> = wait_for(Duration::from_secs(5), "PagerDuty's pages", || {
        let pages = ears.pages();
        let triggers: Vec<String> = pages
            .iter()
            .filter(|(action, _)| action == "trigger")
            .map(|(_, key)| key.clone())
            .collect();
        (!triggers.is_empty() && count_sent(&db, "FAILURE") == 4 * TARGETS).then_some(triggers)
    });
    assert!(triggers.len() <= 3, "{triggers:?}");
    assert!(triggers.iter().all(|k| k.starts_with("skypunch-group-")));
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM incidents WHERE ended IS NULL"),
        TARGETS,
        "every incident recorded"
    );

    // It comes back: each notifier hears of every recovery the same way.
    upstream.revive();
    let (took, heard) = until_heard(&ears, "recovered", TARGETS, BOUND);
    for (kind, h) in ["mail", "webhook", "slack"].iter().zip(&heard) {
        let recovered = h.saying("recovered");
        assert!(
            (1..=3).contains(&recovered.messages.len()),
            "{kind}: {:?}",
            recovered.messages
        );
        assert_eq!(recovered.total(), TARGETS, "{kind}");
    }
    assert!(
        heard[1].listed.values().all(|&n| n == 2),
        "each target twice: down, up"
    );
    println!(
        "the recovery of {TARGETS} targets reached every notifier in {took:?}: {:?}",
        heard
            .iter()
            .map(|h| h.saying("recovered").messages)
            .collect::<Vec<_>>()
    );

    // Every page PagerDuty got is resolved, and nothing else happened to it.
    wait_for(Duration::from_secs(30), "every delivery SENT", || {
        (count_sent(&db, "SUCCESS") == 4 * TARGETS).then_some(())
    });
    let pages = ears.pages();
    let resolved: BTreeSet<&str> = pages
        .iter()
        .filter(|(action, _)| action == "resolve")
        .map(|(_, key)| key.as_str())
        .collect();
    let triggered: BTreeSet<&str> = triggers.iter().map(String::as_str).collect();
    assert_eq!(resolved, triggered, "{pages:?}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM alert_deliveries WHERE state <> 'SENT'"
        ),
        0
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM incidents WHERE ended IS NULL"),
        0
    );
}

/// Deliveries of alerts of `kind` marked SENT.
fn count_sent(db: &TestDb, kind: &str) -> usize {
    count(
        db,
        &format!(
            "SELECT COUNT(*) FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id \
             WHERE d.state = 'SENT' AND a.kind = '{kind}'"
        ),
    )
}

#[test]
fn a_daemon_killed_or_stopped_while_a_group_waits_loses_nothing_and_sends_nothing_twice() {
    const N: usize = 300;
    let db = TestDb::new();
    // A long GroupWait: the daemon is killed, then stopped, while the group waits.
    db.write_config("StatsInterval: 0\n[notifications]\nGroupWait: 8\nGroupInterval: 3");
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    let hooks = Receiver::start(200);
    mail_notifier(&db, "ops", smtp.port);
    add_notifier(&db, "hook", "WEBHOOK", &hooks.url("/hook"), "", true);
    let mut upstream = Upstream::start();
    storm::add_targets(&db, N as u32, &upstream.url(), 1);
    let daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(30), "every target to pass", || {
        (count(&db, "SELECT COUNT(*) FROM targets WHERE status = 'PASS'") == N).then_some(())
    });
    let pending = "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'PENDING'";
    let sent = "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'SENT'";

    // Every failure is owed to both notifiers, and the group waits: a crash now.
    upstream.kill();
    wait_for(Duration::from_secs(30), "every failure owed", || {
        (count(&db, pending) == 2 * N).then_some(())
    });
    assert!(hooks.requests().is_empty() && smtp.messages().is_empty());
    daemon.kill();
    let daemon = Daemon::start(&db);
    wait_for(
        Duration::from_secs(30),
        "the failures delivered after the restart",
        || (count(&db, sent) == 2 * N).then_some(()),
    );
    let webhook = storm::heard_by_webhook(&bodies(&hooks));
    assert_eq!(webhook.listed.len(), N);
    assert!(webhook.listed.values().all(|&n| n == 1), "nothing twice");
    let mail = storm::heard_by_mail(&smtp.messages());
    assert_eq!(mail.total(), N, "{:?}", mail.messages);
    assert!(mail.messages.len() <= 2, "{:?}", mail.messages);

    // The recoveries are owed and wait: a stop now sends them at once, grouped.
    upstream.revive();
    wait_for(Duration::from_secs(10), "every recovery owed", || {
        (count(&db, pending) == 2 * N).then_some(())
    });
    assert_eq!(daemon.stop(), Some(0));
    assert_eq!(
        count(&db, sent),
        4 * N,
        "all sent before the exit, without waiting"
    );
    let before = (hooks.requests().len(), smtp.messages().len());
    // Started again: nothing is owed, nothing goes out again.
    let _daemon = Daemon::start(&db);
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!((hooks.requests().len(), smtp.messages().len()), before);
    let webhook = storm::heard_by_webhook(&bodies(&hooks));
    assert!(
        webhook.listed.values().all(|&n| n == 2),
        "down once, up once"
    );
    assert_eq!(
        storm::heard_by_mail(&smtp.messages())
            .saying("recovered")
            .total(),
        N
    );
}

fn bodies(r: &Receiver) -> Vec<serde_json::Value> {
    r.to("/hook").iter().map(|r| r.json()).collect()
}

#[test]
fn a_lone_failure_with_grouping_on_is_the_message_it_always_was_after_group_wait() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0\n[notifications]\nGroupWait: 2");
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    let hooks = Receiver::start(200);
    mail_notifier(&db, "ops", smtp.port);
    add_notifier(&db, "hook", "WEBHOOK", &hooks.url("/hook"), "", true);
    let mut upstream = Upstream::start();
    storm::add_targets(&db, 1, &upstream.url(), 1);
    let _daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(30), "the target to pass", || {
        (count(&db, "SELECT COUNT(*) FROM targets WHERE status = 'PASS'") == 1).then_some(())
    });
    upstream.kill();
    let mail = smtp.wait_messages(1);
    assert_eq!(mail[0]["subject"], "Skypunch FAILURE detected for api-1");
    assert!(mail[0]["text"]
        .as_str()
        .unwrap()
        .contains("\nTarget\n  Name             api-1\n"));
    let body = wait_for(Duration::from_secs(10), "the webhook", || {
        hooks.to("/hook").first().map(|r| r.json())
    });
    assert_eq!(body["kind"], "FAILURE", "a single alert's own body: {body}");
    assert_eq!(body["target"]["name"], "api-1");
    // It waited GroupWait from when it was raised, no more than the test's bound.
    let waited: f64 = db.one(
        "SELECT TIMESTAMPDIFF(MICROSECOND, a.created_at, d.sent_at) / 1e6 FROM alerts a \
         JOIN alert_deliveries d ON d.alert_id = a.id WHERE d.sent_at IS NOT NULL \
         ORDER BY d.sent_at LIMIT 1",
    );
    // At least GroupWait; the upper bound is generous for a busy machine (17.9 s was seen
    // beside two CPU hogs): how soon it goes is measured in BENCHMARKS.md, not here.
    assert!((1.9..30.0).contains(&waited), "waited {waited} s");
    assert_eq!(
        count(&db, "SELECT COUNT(group_id) FROM alert_deliveries"),
        0,
        "in no group"
    );
}
