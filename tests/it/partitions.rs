//! Partitions, tested as partitions (issue 25): a three-node Galera cluster whose every
//! database node runs with its daemon in a network namespace of its own, on a bridge where
//! the targets' web server and the SMTP server listen. A firewall rule cuts one namespace off
//! and is removed again; and a Galera certification conflict is forced on rows a daemon
//! writes. The figures go to `target/reliability/partition_*.json` for RELIABILITY.md.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::http::HttpServer;
use crate::support::netcluster::{
    check_lines, dead_after, holds, log_now, nobody_else_paused_or_died, secs, shares, Account,
    Bench, Node, CUT, TIMEOUT,
};
use crate::support::notify::{add_notifier, SmtpOptions, SmtpServer};
use crate::support::{run, skypunch_cmd, stdout, wait_for};

/// Every message's subject, sorted.
fn subjects(smtp: &SmtpServer) -> Vec<String> {
    let mut all: Vec<String> = smtp
        .messages()
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or("").to_string())
        .collect();
    all.sort();
    all
}

/// Whether the daemons' `DeadAfter` outlasts Galera's hold of every commit when a node
/// stops answering: then the surviving nodes never pause and nobody healthy is declared dead.
fn outlasts_the_hold() -> bool {
    dead_after() >= 10
}

/// Sets the URL of targets `ids`.
fn point(bench: &Bench, ids: &[u64], url: &str) {
    for id in ids {
        bench
            .db
            .exec(&format!("UPDATE targets SET url = '{url}' WHERE id = {id}"));
    }
}

#[test]
fn a_node_cut_off_stops_the_others_take_over_and_it_rejoins_without_a_duplicate_alert() {
    let Some(bench) = Bench::start() else {
        return;
    };
    let gateway = bench.net.gateway();
    let web = HttpServer::start_on(&gateway, 200);
    let broken = HttpServer::start_on(&gateway, 503);
    let smtp_opts = SmtpOptions {
        host: Some(gateway.clone()),
        ..SmtpOptions::default()
    };
    let smtp = SmtpServer::start(&bench.db.dir.join("mail"), &smtp_opts);
    let params = format!("server={gateway},port={},tls=none", smtp.port);
    add_notifier(&bench.db, "ops", "SMTP", "ops@example.com", &params, true);
    bench.add_targets(&web, 30);
    let mut nodes: Vec<Node> = (0..3).map(|i| Node::start(&bench, i, None)).collect();
    let (share, others) = shares(&nodes);
    assert!(
        share.len() >= 2 && others.len() >= 2,
        "{share:?} {others:?}"
    );

    // Two targets of the node to be cut off and two of the others fail: one FAILURE each.
    let failing: Vec<u64> = share
        .iter()
        .take(2)
        .chain(others.iter().take(2))
        .copied()
        .collect();
    point(&bench, &failing, &broken.url("/"));
    smtp.wait_messages(failing.len());

    let before_cut = bench.counters();
    let (cut_figures, cut_at) = cut_off(&bench, &nodes, &share);
    let during = bench.counters();
    let idle: Vec<&u64> = during
        .iter()
        .filter(|(id, n)| **n <= before_cut[*id])
        .map(|(id, _)| id)
        .collect();
    assert!(idle.is_empty(), "targets not checked while cut: {idle:?}");

    // The failing targets recover while the node is cut off: one SUCCESS each, from the
    // others.
    point(&bench, &failing, &web.url("/"));
    smtp.wait_messages(2 * failing.len());

    let heal_figures = heal(&bench, &nodes);
    let db_only = cut_the_database_only(&bench, &nodes);
    if std::env::var("SKYPUNCH_TEST_SHOW_LOGS").is_ok() {
        for n in &nodes {
            let log = n.log();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(" cluster: ")).collect();
            eprintln!("==== {} (cut at {cut_at})\n{}", n.name, lines.join("\n"));
        }
    }

    let after_heal = bench.counters();
    let accounts: Vec<Account> = nodes.iter_mut().map(Node::stop).collect();
    let stored: u64 = bench.counters().values().sum();
    let written: u64 = accounts.iter().map(Account::written).sum();
    // No lost result: the rows count at least what the nodes say they wrote. A node cut off
    // in the middle of a commit may never hear that Galera took it: it counts those checks
    // as dropped (its retry finds the row moved on), yet they are stored, once. So the rows
    // count no more than what was written plus what was reported dropped.
    let dropped: u64 = accounts.iter().map(|a| a.dropped).sum();
    assert!(
        stored >= written && stored <= written + dropped,
        "rows count {stored}, the nodes wrote {written} and dropped {dropped}: {accounts:?}"
    );
    let idle: Vec<&u64> = after_heal
        .iter()
        .filter(|(id, n)| **n <= during[*id])
        .map(|(id, _)| id)
        .collect();
    assert!(
        idle.is_empty(),
        "targets not checked after the heal: {idle:?}"
    );

    // No duplicate alert: one FAILURE and one SUCCESS per failing target, nothing else,
    // though the cut node saw every target fail while it could still check.
    std::thread::sleep(Duration::from_secs(2));
    let mails = subjects(&smtp);
    assert_eq!(mails.len(), 2 * failing.len(), "{mails:?}");
    for kind in ["FAILURE", "SUCCESS"] {
        let n = mails.iter().filter(|s| s.contains(kind)).count();
        assert_eq!(n, failing.len(), "{mails:?}");
    }
    assert_eq!(
        bench.db.one::<u64>("SELECT COUNT(*) FROM alerts"),
        2 * failing.len() as u64
    );
    run::figures(
        "partition_cut_and_heal",
        json!({
            "dead_after_s": dead_after(),
            "targets": 30,
            "cut_node_share": share.len(),
            "cut": cut_figures,
            "heal": heal_figures,
            "database_only_cut": db_only,
            "checks_written": written,
            "checks_in_rows": stored,
            "checks_of_the_cut_node_not_recorded": accounts[CUT].dropped,
            "mails": mails.len(),
        }),
    );
}

/// Cuts node 2 off: its database drops to non-primary, its daemon stops checking within
/// DeadAfter, the others take its targets (`share`) over. Its figures, and when.
fn cut_off(bench: &Bench, nodes: &[Node], share: &BTreeSet<u64>) -> (serde_json::Value, String) {
    let cut_at = log_now();
    let cut = Instant::now();
    bench.net.cut(CUT);
    let non_primary = wait_for(
        Duration::from_secs(60),
        "the cut node's non-primary",
        || {
            let status = bench.galera.variable(CUT, "wsrep_cluster_status")?;
            (status != "Primary").then(|| cut.elapsed())
        },
    );
    let taken_over = wait_for(
        Duration::from_secs(60),
        "the others check every target of the cut node",
        || {
            let taken: BTreeSet<u64> = nodes[0]
                .checked_after(&cut_at)
                .union(&nodes[1].checked_after(&cut_at))
                .copied()
                .collect();
            share.is_subset(&taken).then(|| cut.elapsed())
        },
    );
    // The cut node's checks end within DeadAfter: its lease, which only heartbeats that
    // get through renew, runs out; a check started just before may take its timeout.
    let stopped_line = wait_for(
        Duration::from_secs(30),
        "the cut node says it stopped checking",
        || nodes[CUT].when_after(&cut_at, "this node starts no checks"),
    );
    let stopped = secs(&cut_at, &stopped_line);
    let last_check = check_lines(&nodes[CUT].log())
        .last()
        .map(|(at, _)| at.clone())
        .unwrap_or_else(|| cut_at.clone());
    let last_check_s = secs(&cut_at, &last_check).max(0.0);
    let dead_after = dead_after() as f64;
    assert!(
        stopped <= dead_after,
        "the cut node stopped {stopped} s after the cut"
    );
    assert!(
        last_check_s <= dead_after + TIMEOUT as f64 + 1.0,
        "the cut node's last check ended {last_check_s} s after the cut"
    );
    // Every target goes on being checked, the cut node's by the others.
    std::thread::sleep(Duration::from_secs(3));
    if outlasts_the_hold() {
        nobody_else_paused_or_died(nodes, CUT, &cut_at);
    }
    let figures = json!({
        "cut_to_non_primary_s": non_primary.as_secs_f64(),
        "cut_to_stop_line_s": stopped,
        "cut_to_last_check_s": last_check_s,
        "cut_to_takeover_s": taken_over.as_secs_f64(),
        "database_holds_seen_by_the_others_s": holds(nodes, CUT, &cut_at),
    });
    (figures, cut_at)
}

/// Removes the cut: the database node syncs again, the daemon joins again and checks a
/// share. Its figures.
fn heal(bench: &Bench, nodes: &[Node]) -> serde_json::Value {
    let healed_at = log_now();
    let healed = Instant::now();
    bench.net.heal(CUT);
    let synced = wait_for(
        Duration::from_secs(90),
        "the cut node's database synced",
        || {
            (bench
                .galera
                .variable(CUT, "wsrep_local_state_comment")
                .as_deref()
                == Some("Synced")
                && bench.galera.variable(CUT, "wsrep_cluster_size").as_deref() == Some("3"))
            .then(|| healed.elapsed())
        },
    );
    let all = "cluster: live nodes node-0, node-1, node-2;";
    let rejoined = wait_for(
        Duration::from_secs(90),
        "every node sees all three again",
        || {
            nodes
                .iter()
                .all(|n| n.when_after(&healed_at, all).is_some())
                .then(|| healed.elapsed())
        },
    );
    assert!(
        nodes[CUT]
            .when_after(&healed_at, "joined again as node node-2")
            .is_some(),
        "{}",
        nodes[CUT].log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let back_at = log_now();
    std::thread::sleep(Duration::from_secs(3));
    let share_again = nodes[CUT].checked_after(&back_at);
    assert!(!share_again.is_empty(), "the node checks a share again");
    assert_eq!(bench.db.one::<u64>("SELECT COUNT(*) FROM nodes"), 3);
    let status = stdout(
        &skypunch_cmd(&nodes[0].config, &["status"])
            .output()
            .unwrap(),
    );
    assert!(status.contains("nodes: 3 live of 3"), "{status}");
    json!({
        "heal_to_database_synced_s": synced.as_secs_f64(),
        "heal_to_rejoined_s": rejoined.as_secs_f64(),
        "share_after_rejoin": share_again.len(),
    })
}

/// Node 1's database cut from its peers (their group communication port), not from its
/// daemon: the node drops to non-primary, and the daemon moves to the next host of its
/// `Location`, where it goes on. Healed before returning. Its figures.
fn cut_the_database_only(bench: &Bench, nodes: &[Node]) -> serde_json::Value {
    let cut_at = log_now();
    let cut = Instant::now();
    bench.net.cut_port(1, 4567);
    let non_primary = wait_for(Duration::from_secs(60), "node 1's non-primary", || {
        let status = bench.galera.variable(1, "wsrep_cluster_status")?;
        (status != "Primary").then(|| cut.elapsed())
    });
    let moved_line = wait_for(
        Duration::from_secs(60),
        "node-1 on another database host",
        || nodes[1].when_after(&cut_at, "; now using "),
    );
    let moved = secs(&cut_at, &moved_line);
    std::thread::sleep(Duration::from_secs(2));
    let later = log_now();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !nodes[1].checked_after(&later).is_empty(),
        "node-1 checks on:\n{}",
        nodes[1].log()
    );
    let declared_dead = nodes[1]
        .when_after(&cut_at, "was declared dead by the others")
        .is_some();
    // Its own heartbeats were held up with the database, then failed until it moved: it
    // may pause its checks for a moment, and is never declared dead; nobody else pauses.
    let paused = nodes[1]
        .when_after(&cut_at, "this node starts no checks")
        .map(|from| {
            let to = nodes[1]
                .when_after(&from, "this node checks its targets again")
                .expect("node-1 checks again");
            secs(&from, &to)
        });
    if outlasts_the_hold() {
        assert!(!declared_dead, "{}", nodes[1].log());
        nobody_else_paused_or_died(nodes, 1, &cut_at);
    }
    let healed = Instant::now();
    bench.net.heal(1);
    let synced = wait_for(Duration::from_secs(90), "node 1 synced again", || {
        (bench
            .galera
            .variable(1, "wsrep_local_state_comment")
            .as_deref()
            == Some("Synced")
            && bench.galera.variable(1, "wsrep_cluster_size").as_deref() == Some("3"))
        .then(|| healed.elapsed())
    });
    json!({
        "cut_to_non_primary_s": non_primary.as_secs_f64(),
        "cut_to_daemon_on_another_host_s": moved,
        "daemon_declared_dead": declared_dead,
        "daemon_paused_s": paused,
        "database_holds_seen_by_the_nodes_s": holds(nodes, usize::MAX, &cut_at),
        "heal_to_synced_s": synced.as_secs_f64(),
    })
}

/// Updates the `count300` of `ids` in turn, as fast as node 1 of the cluster takes them,
/// until `stop`: writes that certify against the daemon's on node 0. Its successful updates
/// per target.
fn hammer(
    server: crate::support::Server,
    db: String,
    ids: Vec<u64>,
    stop: Arc<AtomicBool>,
) -> BTreeMap<u64, u64> {
    use mysql::prelude::Queryable;
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(server.host))
        .tcp_port(server.port)
        .user(Some(server.user))
        .db_name(Some(db))
        .prefer_socket(false);
    let mut conn = mysql::Conn::new(opts).expect("node 1 answers");
    let mut done: BTreeMap<u64, u64> = ids.iter().map(|id| (*id, 0)).collect();
    for id in ids.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // `config_changed` kept: the loader does not take this for an edit.
        let update = conn.exec_drop(
            "UPDATE targets SET count300 = count300 + 1, config_changed = config_changed \
             WHERE id = ?",
            (id,),
        );
        match update {
            Ok(()) => *done.get_mut(id).unwrap() += 1,
            // The daemon's write won the certification: this one did not happen.
            Err(mysql::Error::MySqlError(e)) if e.code == 1213 => {}
            Err(e) => panic!("the concurrent client: {e}"),
        }
    }
    done
}

/// The value of counter `name` on the daemon's `/metrics` at `addr`.
fn metric(addr: &str, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("the daemon's HTTP server");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[test]
fn a_galera_certification_conflict_on_a_written_row_is_retried_not_lost() {
    let Some(bench) = Bench::start() else {
        return;
    };
    let web = HttpServer::start_on(&bench.net.gateway(), 200);
    bench.add_targets(&web, 3);
    let ids: Vec<u64> = bench.db.query("SELECT id FROM targets ORDER BY id");
    let mut node = Node::start(&bench, 0, Some("0.0.0.0:9470"));
    wait_for(Duration::from_secs(20), "every target written", || {
        bench.counters().values().all(|n| *n > 0).then_some(())
    });

    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (server, db) = (bench.galera.server(1), bench.db.name.clone());
        let (ids, stop) = (ids.clone(), stop.clone());
        std::thread::spawn(move || hammer(server, db, ids, stop))
    };
    let conflict = "writing check results met a passing conflict, retrying";
    let started = Instant::now();
    // At least 5 s of it, and until three of the daemon's writes were caught.
    let waited = wait_for(Duration::from_secs(60), "three conflicts retried", || {
        let n = node.log().matches(conflict).count();
        let done = n >= 3 && started.elapsed() >= Duration::from_secs(5);
        (done || client.is_finished()).then(|| started.elapsed())
    });
    stop.store(true, Ordering::Relaxed);
    let bumps = client.join().expect("the client ran");
    // The writes held by the last conflict go through at the retry.
    std::thread::sleep(Duration::from_secs(2));
    let counted = metric(
        &format!("{}:9470", bench.net.addr(0)),
        "skypunch_write_conflicts_total",
    );
    let account = node.stop();

    let log = node.log();
    let retried: Vec<&str> = log.lines().filter(|l| l.contains(conflict)).collect();
    assert!(retried.len() >= 3, "{log}");
    for line in &retried {
        assert!(line.contains("(error 1213)"), "{line}");
    }
    assert_eq!(
        counted,
        retried.len() as u64,
        "the counter counts each retry"
    );
    // Nothing lost: every check the daemon logged is in its row, once, and every update of
    // the other client too.
    assert_eq!((account.unwritten, account.dropped), (0, 0), "{account:?}");
    for id in &ids {
        let (passes, c300): (u64, u64) = bench.db.one(&format!(
            "SELECT pass_count, count300 FROM targets WHERE id = {id}"
        ));
        let logged = crate::support::check_lines(&log, *id).len() as u64;
        assert_eq!(passes, logged, "target {id}");
        assert_eq!(c300, bumps[id], "target {id}");
    }
    run::figures(
        "partition_certification_conflicts",
        json!({
            "conflicts_retried": retried.len(),
            "seconds_of_concurrent_writes": waited.as_secs_f64(),
            "client_updates": bumps.values().sum::<u64>(),
            "checks_written": account.written(),
        }),
    );
}
