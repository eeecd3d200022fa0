//! The edges of a cluster of daemons found by reading the code (issue 25), each shown with
//! real daemons on the test MariaDB: a check that ends after its target was handed over, a
//! mail through a tarpit that outlasts the delivery's claim, a node whose clock is off, and a
//! lone node frozen while a second one joins.

mod servers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::nodes::{add_targets, check_lines, log_now, Node, Setup};
use crate::support::http::HttpServer;
use crate::support::notify::{add_notifier, plain, queue_alert};
use crate::support::{run, wait_for};
use servers::{SlowFirst, Tarpit};

/// The value of `key=` in the last stats line of `log`.
fn last_stat(log: &str, key: &str) -> Option<i64> {
    let line = log.lines().rev().find(|l| l.contains("stats: checks="))?;
    let value = line.split(&format!(" {key}=")).nth(1)?;
    value.split(' ').next()?.parse().ok()
}

#[test]
fn a_check_that_ends_after_its_target_was_handed_over_is_dropped_not_written() {
    let setup = Setup::with("StatsInterval: 1\nWorkers: 16");
    let db = &setup.db;
    // The first checks hang until node-a has handed its share over (at most 60 s): on a
    // busy machine the join can take longer than any fixed delay.
    let slow = SlowFirst::start(Duration::from_secs(60));
    let ids: Vec<u64> = (0..10)
        .map(|i| {
            let url = slow.url(&format!("/t{i}"));
            db.add_target(
                "name, url, frequency, timeout",
                &format!("'slow {i}', '{url}', 5, 90"),
            )
        })
        .collect();
    let mut a = Node::new(&setup, 0, "node-a", 3);
    a.start();
    wait_for(Duration::from_secs(20), "node-a's checks hang", || {
        (slow.hanging.load(Ordering::SeqCst) == 10).then_some(())
    });
    let mut b = Node::new(&setup, 1, "node-b", 3);
    b.start();
    wait_for(Duration::from_secs(60), "both nodes live", || {
        (a.sees("node-a, node-b").is_some() && b.sees("node-a, node-b").is_some()).then_some(())
    });
    // node-a logged its view with node-b: what it handed over is known to its writer.
    slow.release();
    wait_for(Duration::from_secs(30), "the hung checks answered", || {
        (slow.answered_late.load(Ordering::SeqCst) == 10).then_some(())
    });
    // A second for node-a's writer and its next stats line.
    std::thread::sleep(Duration::from_secs(3));

    let handed: BTreeSet<u64> = b
        .checked_after("")
        .intersection(&ids.iter().copied().collect())
        .copied()
        .collect();
    assert!(
        !handed.is_empty() && handed.len() < ids.len(),
        "node-b took a share: {handed:?}"
    );
    // node-b's checks of its share reach the rows (on a busy machine a write can lag).
    let written = format!(
        "SELECT COUNT(*) FROM targets WHERE pass_count > 0 AND id IN ({})",
        handed
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    wait_for(Duration::from_secs(30), "node-b's checks written", || {
        (db.one::<u64>(&written) == handed.len() as u64).then_some(())
    });
    let a_log = a.log();
    for id in &handed {
        let fails: u64 = db.one(&format!("SELECT fail_count FROM targets WHERE id = {id}"));
        assert_eq!(fails, 0, "target {id}: node-a's late FAIL was written");
        let alerts: u64 = db.one(&format!(
            "SELECT COUNT(*) FROM alerts WHERE target_id = {id}"
        ));
        assert_eq!(alerts, 0, "target {id}: alerted from node-a's late FAIL");
        assert!(
            a_log.contains(&format!("[{id}] check result dropped")),
            "target {id}: no drop line in node-a's log:\n{a_log}"
        );
    }
    let counted = last_stat(&a_log, "stale_results").unwrap_or(0);
    assert!(
        counted >= handed.len() as i64,
        "stale_results={counted}, {} handed over",
        handed.len()
    );
    run::figures(
        "cluster_late_result_after_handover",
        json!({"hung_checks": 10, "handed_over_while_hanging": handed.len(),
               "stale_results_counted": counted, "late_fails_written": 0,
               "alerts_from_late_results": 0}),
    );
}

#[test]
fn a_mail_through_a_tarpit_longer_than_the_claim_goes_out_once_with_two_nodes() {
    // SmtpTimeout 1 s: the claim holds 4 × 1 + 10 = 14 s; the conversation takes some 29 s
    // (48 replies, each 0.6 s after the step before), every step within the timeout.
    let setup = Setup::with(
        "StatsInterval: 0\n[notifications]\nSmtpTimeout: 1\nRetryInitial: 1\nGroupWait: 0",
    );
    let db = &setup.db;
    let tarpit = Tarpit::start(Duration::from_millis(600), 40);
    let notifier = add_notifier(
        db,
        "ops",
        "SMTP",
        "ops@example.com",
        &plain(tarpit.port),
        true,
    );
    let target = db.add_target("name, url, enabled", "'shop', 'http://127.0.0.1:9/', 0");
    queue_alert(db, target, "FAILURE", "GET http://127.0.0.1:9/ refused");
    let mut a = Node::new(&setup, 0, "node-a", 3);
    a.start();
    wait_for(
        Duration::from_secs(15),
        "node-a's notifier connects",
        || (tarpit.connections.load(Ordering::SeqCst) >= 1).then_some(()),
    );
    let sending = Instant::now();
    // Past the claim's 14 s: a second node whose notifier's first pass sees the delivery.
    std::thread::sleep(Duration::from_secs(16));
    let mut b = Node::new(&setup, 1, "node-b", 3);
    b.start();
    wait_for(Duration::from_secs(60), "the delivery SENT", || {
        (db.query::<String>("SELECT state FROM alert_deliveries") == ["SENT"]).then_some(())
    });
    let took = sending.elapsed();
    // node-b's notifier has made passes meanwhile; give it one more chance to send.
    std::thread::sleep(Duration::from_secs(5));
    assert!(took > Duration::from_secs(14), "the send took {took:?}");
    assert_eq!(
        tarpit.messages.load(Ordering::SeqCst),
        1,
        "messages received"
    );
    assert_eq!(
        tarpit.connections.load(Ordering::SeqCst),
        1,
        "connections: node-b tried to send it too"
    );
    let (sent, passes): (u64, u64) = db.one(&format!(
        "SELECT (SELECT COUNT(*) FROM alert_deliveries WHERE state = 'SENT'), pass_count \
         FROM notifiers WHERE id = {notifier}"
    ));
    assert_eq!((sent, passes), (1, 1));
    assert!(a.log().contains("sent alert"), "{}", a.log());
    assert!(!b.log().contains("sent alert"), "{}", b.log());
    run::figures(
        "cluster_tarpit_mail_once",
        json!({"smtp_timeout_s": 1, "claim_lease_s": 14, "send_s": took.as_secs_f64(),
               "smtp_replies": 48, "messages_received": 1, "connections": 1}),
    );
}

/// A node's clock shifted by the `clock-shift` fault (a test cannot set the system clock).
#[cfg(feature = "fault-injection")]
mod clock {
    use super::*;
    use crate::nodes::start_nodes;
    use crate::support::{skypunch_cmd, stdout};

    /// The node's `/metrics`, from the port its log says it listens on.
    fn metrics(node: &Node) -> String {
        let port = wait_for(Duration::from_secs(30), "the http listening line", || {
            node.log()
                .lines()
                .find_map(|l| l.split("http: listening on 127.0.0.1:").nth(1))
                .and_then(|p| p.trim().parse::<u16>().ok())
        });
        crate::http::get(port, "/metrics").body
    }

    /// The `nodes` row of `name`: state and clock offset.
    fn node_row(setup: &Setup, name: &str) -> (String, Option<i64>) {
        setup.db.one(&format!(
            "SELECT state, clock_offset_ms FROM nodes WHERE name = '{name}'"
        ))
    }

    #[test]
    fn a_node_whose_clock_is_off_warns_hands_its_targets_over_past_the_limit_and_comes_back() {
        let setup = Setup::with("StatsInterval: 1\n[http]\nListen: 127.0.0.1:0");
        let web = HttpServer::start(200);
        add_targets(&setup.db, &web, 20);
        let nodes = start_nodes(&setup, &["node-a", "node-b"], 3);
        let (a, b) = (&nodes[0], &nodes[1]);
        let shift = a.faults().join("clock-shift");
        let (state, offset) = node_row(&setup, "node-a");
        assert_eq!(state, "active");
        assert!(offset.is_some_and(|ms| ms.abs() < 1000), "{offset:?}");

        std::fs::write(&shift, "2500").unwrap();
        let warned = "cluster: this node's clock is 2.5 s ahead of the database's";
        wait_for(Duration::from_secs(30), "the WARN line", || a.when(warned));
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(a.log().matches(warned).count(), 1, "warned once");
        let (_, offset) = node_row(&setup, "node-a");
        assert!(
            offset.is_some_and(|ms| (2000..3000).contains(&ms)),
            "{offset:?}"
        );

        std::fs::write(&shift, "-7000").unwrap();
        let skewed = wait_for(Duration::from_secs(30), "the line that says why", || {
            a.when("7.0 s behind the database's, past [cluster] MaxClockSkew (5 s)")
        });
        wait_for(Duration::from_secs(30), "node-b alone checks", || {
            b.last_sees("node-b").filter(|t| *t >= skewed)
        });
        std::thread::sleep(Duration::from_secs(1));
        let since = log_now();
        std::thread::sleep(Duration::from_secs(3));
        assert!(a.checked_after(&since).is_empty(), "node-a still checks");
        assert_eq!(b.checked_after(&since).len(), 20, "node-b checks them all");
        let (state, offset) = node_row(&setup, "node-a");
        assert_eq!(state, "skewed");
        assert!(
            offset.is_some_and(|ms| (-7500..-6500).contains(&ms)),
            "{offset:?}"
        );
        // Read until a heartbeat of each is fresh: on a busy machine one can be late.
        let status = wait_for(
            Duration::from_secs(15),
            "status showing the skewed node",
            || {
                let status = stdout(&skypunch_cmd(&a.config, &["status"]).output().unwrap());
                (status.contains("skewed") && status.contains("-7.0 s")).then_some(status)
            },
        );
        assert!(status.contains("skewed"), "{status}");
        let stat = last_stat(&a.log(), "clock_offset_ms").unwrap_or(0);
        assert!((-7500..-6500).contains(&stat), "clock_offset_ms={stat}");
        let metrics = metrics(a);
        let metric = |name: &str| -> f64 {
            let line = metrics.lines().find(|l| l.starts_with(&format!("{name} ")));
            line.and_then(|l| l.split(' ').nth(1)?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
        };
        let seconds = metric("skypunch_clock_offset_seconds");
        assert!((-7.5..-6.5).contains(&seconds), "{seconds}");
        assert_eq!(metric("skypunch_node_skewed"), 1.0);

        std::fs::remove_file(&shift).unwrap();
        let back = wait_for(Duration::from_secs(30), "the node back", || {
            a.when("cluster: this node's clock is back within [cluster] MaxClockSkew")
        });
        wait_for(Duration::from_secs(30), "node-a checks again", || {
            let after = log_now();
            std::thread::sleep(Duration::from_millis(1500));
            (after > back && !a.checked_after(&after).is_empty()).then_some(())
        });
        assert_eq!(node_row(&setup, "node-a").0, "active");
        run::figures(
            "cluster_clock_skew",
            json!({"warn_at_ms": 2500, "skewed_at_ms": -7000, "max_clock_skew_s": 5,
               "checks_by_the_skewed_node": 0, "targets_taken_over": 20}),
        );
    }
}

/// How the test freezes the lone node.
#[derive(Clone, Copy, PartialEq)]
enum Freeze {
    /// SIGSTOP from outside, wherever it happens to be.
    Anywhere,
    /// The node stops itself in the middle of a heartbeat (fault injection), which it must
    /// not take on waking for a heartbeat that hangs on the database.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    InsideAHeartbeat,
}

#[test]
fn a_lone_node_frozen_while_a_second_joins_dispatches_no_backlog_on_waking() {
    lone_node_frozen_while_a_second_joins(Freeze::Anywhere);
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_lone_node_frozen_inside_a_heartbeat_dispatches_no_backlog_on_waking() {
    lone_node_frozen_while_a_second_joins(Freeze::InsideAHeartbeat);
}

fn lone_node_frozen_while_a_second_joins(freeze: Freeze) {
    let setup = Setup::with("StatsInterval: 1");
    let db = &setup.db;
    let web = HttpServer::start(200);
    add_targets(db, &web, 40);
    let down = HttpServer::start(503);
    let failing = db.add_watched("down", &down.url("/"));
    let mut a = Node::new(&setup, 0, "node-a", 3);
    a.start();
    wait_for(Duration::from_secs(15), "node-a's FAILURE alert", || {
        (db.one::<u64>("SELECT COUNT(*) FROM alerts") == 1).then_some(())
    });
    wait_for(Duration::from_secs(30), "node-a checks all 41", || {
        (a.checked_after("").len() == 41).then_some(())
    });

    if freeze == Freeze::Anywhere {
        a.signal(libc::SIGSTOP);
    } else {
        std::fs::write(a.faults().join("freeze-heartbeat"), "").unwrap();
        wait_for(Duration::from_secs(30), "node-a stops itself", || {
            a.is_stopped().then_some(())
        });
    }
    let mut b = Node::new(&setup, 1, "node-b", 3);
    b.start();
    wait_for(
        Duration::from_secs(15),
        "node-b declares node-a dead",
        || b.when("cluster: node node-a sent no heartbeat"),
    );
    // The backlog of a frozen lone node: 41 targets due every second for a few seconds more.
    std::thread::sleep(Duration::from_secs(4));
    let woke_at = log_now();
    a.signal(libc::SIGCONT);
    let dead_line = wait_for(
        Duration::from_secs(30),
        "node-a learns it was declared dead",
        || a.when("was declared dead by the others"),
    );
    // Between waking and its heartbeat, node-a started nothing: only checks its 8 workers had
    // in flight when it froze may end then.
    let burst: Vec<(String, u64)> = check_lines(&a.log())
        .into_iter()
        .filter(|(at, _)| at.as_str() > woke_at.as_str() && at.as_str() < dead_line.as_str())
        .collect();
    assert!(
        burst.len() <= 8,
        "{} checks on waking: {burst:?}",
        burst.len()
    );
    wait_for(
        Duration::from_secs(15),
        "node-a back in the cluster",
        || {
            b.last_sees("node-a, node-b")
                .filter(|t| t.as_str() > woke_at.as_str())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    let since = log_now();
    std::thread::sleep(Duration::from_secs(5));
    let until = log_now();

    // Each target once a second, by one node: never a second node in the same second.
    let mut per_second: HashMap<(u64, String), BTreeSet<String>> = HashMap::new();
    let mut per_target: BTreeMap<u64, u64> = BTreeMap::new();
    for node in [&a, &b] {
        for (at, id) in check_lines(&node.log()) {
            if at > since && at <= until {
                let second = at[..19].to_string();
                per_second
                    .entry((id, second))
                    .or_default()
                    .insert(node.name.clone());
                *per_target.entry(id).or_default() += 1;
            }
        }
    }
    let doubled = per_second.values().filter(|n| n.len() > 1).count();
    assert!(
        doubled <= 2,
        "{doubled} target-seconds checked by both nodes"
    );
    let over: Vec<_> = per_target.iter().filter(|(_, n)| **n > 5 + 1).collect();
    assert!(
        over.is_empty(),
        "targets checked more than once a second: {over:?}"
    );
    assert!(!a.checked_after(&since).is_empty(), "node-a checks again");
    let alerts: Vec<(u64, String)> = db.query("SELECT target_id, kind FROM alerts");
    assert_eq!(
        alerts,
        vec![(failing, "FAILURE".to_string())],
        "one FAILURE, no duplicate"
    );
    let name = match freeze {
        Freeze::Anywhere => "cluster_lone_node_frozen_while_a_second_joined",
        Freeze::InsideAHeartbeat => "cluster_lone_node_frozen_inside_a_heartbeat",
    };
    run::figures(
        name,
        json!({"targets": 41, "checks_between_waking_and_fence": burst.len(),
               "target_seconds_checked_by_both": doubled, "alerts": alerts.len()}),
    );
}
