//! Several daemons ("nodes") on one database, as an operator runs them for no single point
//! of failure: they share the targets (each checked by one node), take over a dead node's
//! targets within `DeadAfter` plus a frequency, hand over at once at a clean stop, fence a
//! node that was frozen, and send each alert once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::daemon::node_config;
use crate::support::galera::{Galera, Permit as GaleraPermit};
use crate::support::http::HttpServer;
use crate::support::notify::{add_notifier, plain, SmtpOptions, SmtpServer};
use crate::support::{run, skypunch_cmd, stdout, wait_for, Daemon, TestDb};

/// Where the daemons' database lives: the test MariaDB, or a three-node Galera cluster with
/// each daemon on another node first (the others listed after it, for failover).
pub(crate) struct Setup {
    pub db: TestDb,
    galera: Option<Galera>,
    /// Held while a Galera cluster runs (dropped last).
    _permit: Option<GaleraPermit>,
}

impl Setup {
    fn plain() -> Setup {
        Setup::with("StatsInterval: 0\n[notifications]\nRetryInitial: 1")
    }

    /// On the test MariaDB, the daemons' config with `extra` (see `TestDb::write_config`).
    pub(crate) fn with(extra: &str) -> Setup {
        let db = TestDb::new();
        db.write_config(extra);
        Setup {
            db,
            galera: None,
            _permit: None,
        }
    }

    fn galera() -> Setup {
        let permit = GaleraPermit::take();
        let galera = Galera::start(3);
        let db = TestDb::new_on(galera.server(0));
        db.write_config("StatsInterval: 0\n[notifications]\nRetryInitial: 1");
        Setup {
            db,
            galera: Some(galera),
            _permit: Some(permit),
        }
    }

    /// `[database] Location` for the `i`th daemon.
    fn location(&self, i: usize) -> Option<String> {
        self.galera.as_ref().map(|g| g.location(i % 3))
    }
}

/// One daemon of the cluster: its own config (node name, log and pid file) on the shared
/// database.
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) config: PathBuf,
    log: PathBuf,
    pub(crate) daemon: Option<Daemon>,
}

impl Node {
    pub(crate) fn new(setup: &Setup, i: usize, name: &str, dead_after: u64) -> Node {
        let db = &setup.db;
        let replace: Vec<(&str, String)> = setup
            .location(i)
            .map(|l| ("Location", l))
            .into_iter()
            .collect();
        let dead_after = format!("DeadAfter: {dead_after}");
        let (config, log) = node_config(db, name, &replace, "", &dead_after);
        Node {
            name: name.into(),
            config,
            log,
            daemon: None,
        }
    }

    pub(crate) fn start(&mut self) {
        let stderr = self.log.with_extension("stderr");
        let faults = self.faults();
        std::fs::create_dir_all(&faults).unwrap();
        let env = [("SKYPUNCH_FAULT_DIR", faults.to_str().unwrap())];
        self.daemon = Some(Daemon::spawn_at(&self.config, &stderr, &[], &env));
        wait_for(Duration::from_secs(20), "the node's `started` line", || {
            self.log().contains(" started: ").then_some(())
        });
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The folder of this node's fault triggers (see src/fault.rs).
    pub(crate) fn faults(&self) -> PathBuf {
        self.log.with_extension("faults")
    }

    /// Whether the process is stopped (state T in /proc).
    pub(crate) fn is_stopped(&self) -> bool {
        let pid = self.daemon.as_ref().expect("started").pid();
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('T'))
            })
            .unwrap_or(false)
    }

    pub(crate) fn signal(&self, signal: i32) {
        self.daemon.as_ref().expect("started").signal(signal);
    }

    /// The targets this node checked after `since` (a log time stamp).
    pub(crate) fn checked_after(&self, since: &str) -> BTreeSet<u64> {
        check_lines(&self.log())
            .into_iter()
            .filter(|(at, _)| at.as_str() > since)
            .map(|(_, id)| id)
            .collect()
    }

    /// The time stamp of the first log line containing `text`, once there is one.
    pub(crate) fn when(&self, text: &str) -> Option<String> {
        self.log()
            .lines()
            .find(|l| l.contains(text))
            .map(|l| l[..23].to_string())
    }

    pub(crate) fn sees(&self, live: &str) -> Option<String> {
        self.when(&format!("cluster: live nodes {live};"))
    }

    /// The time stamp of the last "live nodes" line for `live`.
    pub(crate) fn last_sees(&self, live: &str) -> Option<String> {
        let text = format!("cluster: live nodes {live};");
        self.log()
            .lines()
            .rev()
            .find(|l| l.contains(&text))
            .map(|l| l[..23].to_string())
    }
}

/// Seconds the steady state is watched.
const WINDOW_S: u64 = 5;

/// `(time stamp, target id)` of every check line of a log.
pub(crate) fn check_lines(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter(|l| l.contains(" PASS (") || l.contains(" FAIL ("))
        // A check made to confirm another node's failure is that node's target, not this one's.
        .filter(|l| !l.contains(" confirm: for node "))
        .filter_map(|l| {
            let id = l.split('[').nth(1)?.split(']').next()?.parse().ok()?;
            Some((l.get(..23)?.to_string(), id))
        })
        .collect()
}

/// Now, as the log writes its time stamps.
pub(crate) fn log_now() -> String {
    chrono::Local::now()
        .format("%Y-%m-%d %H:%M:%S,%3f")
        .to_string()
}

pub(crate) fn add_targets(db: &TestDb, web: &HttpServer, n: usize) {
    let values: Vec<String> = (0..n)
        .map(|i| format!("('t{i}', '{}', 1, 2)", web.url("/")))
        .collect();
    db.exec(&format!(
        "INSERT INTO targets (name, url, frequency, timeout) VALUES {}",
        values.join(",")
    ));
}

pub(crate) fn start_nodes(setup: &Setup, names: &[&str], dead_after: u64) -> Vec<Node> {
    let mut nodes: Vec<Node> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Node::new(setup, i, n, dead_after))
        .collect();
    for node in &mut nodes {
        node.start();
    }
    let all = names.join(", ");
    wait_for(
        Duration::from_secs(20),
        "every node sees all of them",
        || nodes.iter().all(|n| n.sees(&all).is_some()).then_some(()),
    );
    nodes
}

/// The latest of the nodes' "live nodes" lines for `live`: from then on they agree.
fn settled(nodes: &[&Node], live: &str) -> String {
    nodes.iter().filter_map(|n| n.sees(live)).max().unwrap()
}

fn three_nodes_share_the_targets_each_checked_by_one_node(setup: &Setup) {
    let db = &setup.db;
    let web = HttpServer::start(200);
    add_targets(db, &web, 300);
    let nodes = start_nodes(setup, &["node-a", "node-b", "node-c"], 3);
    settled(&nodes.iter().collect::<Vec<_>>(), "node-a, node-b, node-c");
    // Checks that were in flight when the view changed end within a second.
    std::thread::sleep(Duration::from_secs(1));
    let since = log_now();
    std::thread::sleep(Duration::from_secs(WINDOW_S));
    let until = log_now();

    let mut by_target: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut per_target: BTreeMap<u64, u64> = BTreeMap::new();
    let mut shares = Vec::new();
    for node in &nodes {
        let mine = node.checked_after(&since);
        shares.push(mine.len());
        for id in mine {
            by_target.entry(id).or_default().insert(node.name.clone());
        }
        for (at, id) in check_lines(&node.log()) {
            if at > since && at <= until {
                *per_target.entry(id).or_default() += 1;
            }
        }
    }
    assert_eq!(by_target.len(), 300, "every target checked");
    // Every second, once: WINDOW_S checks each, one more at the window's edges. Never more
    // (a second node checking it too would double the count); fewer only when the machine is
    // so loaded that checks start late, which is bounded at three times the nominal spacing.
    let off: Vec<_> = per_target
        .iter()
        .filter(|(_, n)| **n > WINDOW_S + 1 || **n < WINDOW_S / 3)
        .collect();
    assert!(off.is_empty(), "targets not checked once a second: {off:?}");
    let doubled: Vec<_> = by_target.iter().filter(|(_, n)| n.len() > 1).collect();
    assert!(doubled.is_empty(), "checked by two nodes: {doubled:?}");
    for share in &shares {
        assert!((80..=120).contains(share), "uneven shares {shares:?}");
    }

    let status = skypunch_cmd(&nodes[0].config, &["status"])
        .output()
        .unwrap();
    let text = stdout(&status);
    assert!(
        text.contains("nodes: 3 live of 3 (DeadAfter 3 s)"),
        "{text}"
    );
    assert!(text.contains("node-a (this host)"), "{text}");
    let one = by_target.iter().next().unwrap();
    let shown = skypunch_cmd(&nodes[0].config, &["targets", &one.0.to_string()])
        .output()
        .unwrap();
    let owner = one.1.iter().next().unwrap();
    assert!(stdout(&shown).contains(&format!("{owner} (of 3 live nodes)")));
    let name = if setup.galera.is_some() {
        "galera_shares"
    } else {
        "cluster_shares"
    };
    run::figures(
        name,
        json!({"targets": 300, "window_s": WINDOW_S, "shares": shares}),
    );
}

fn a_killed_nodes_targets_are_taken_over_within_dead_after_and_a_frequency(setup: &Setup) {
    let db = &setup.db;
    let web = HttpServer::start(200);
    add_targets(db, &web, 60);
    let mut nodes = start_nodes(setup, &["node-a", "node-b", "node-c"], 3);
    let since = settled(&nodes.iter().collect::<Vec<_>>(), "node-a, node-b, node-c");
    std::thread::sleep(Duration::from_secs(2));
    let orphans = nodes[1].checked_after(&since);
    assert!(!orphans.is_empty());

    let killed_at = log_now();
    let killed = Instant::now();
    nodes[1].daemon.take().unwrap().kill();
    let (a, c) = (&nodes[0], &nodes[2]);
    let took = wait_for(
        Duration::from_secs(20),
        "every orphan checked again",
        || {
            let taken: BTreeSet<u64> = a
                .checked_after(&killed_at)
                .union(&c.checked_after(&killed_at))
                .copied()
                .collect();
            orphans.is_subset(&taken).then(|| killed.elapsed())
        },
    );
    assert!(
        a.log().contains("cluster: node node-b sent no heartbeat")
            || c.log().contains("cluster: node node-b sent no heartbeat")
    );
    // DeadAfter 3 s + frequency 1 s, plus a heartbeat and the scheduling slack of a busy
    // two-core test machine.
    assert!(
        took < Duration::from_secs(3 + 1 + 3),
        "takeover took {took:?}"
    );
    let name = if setup.galera.is_some() {
        "galera_takeover_after_sigkill"
    } else {
        "cluster_takeover_after_sigkill"
    };
    run::figures(
        name,
        json!({"dead_after_s": 3, "frequency_s": 1, "orphans": orphans.len(),
               "takeover_s": took.as_secs_f64()}),
    );
}

/// A Galera node dies under the daemon that uses it: the daemon moves to the next host of
/// its list and goes on; no check it logged is missing from the database.
fn a_killed_database_node_is_replaced_by_the_next_host(setup: &mut Setup) {
    let db = &setup.db;
    let web = HttpServer::start(200);
    add_targets(db, &web, 20);
    let before = written(db);
    // One daemon, on the second Galera node first.
    let mut node = Node::new(setup, 1, "node-z", 3);
    node.start();
    wait_for(Duration::from_secs(20), "checks written", || {
        (written(db) >= before + 40).then_some(())
    });
    let galera = setup.galera.as_mut().expect("a Galera setup");
    galera.kill(1);
    let killed_at = log_now();
    wait_for(
        Duration::from_secs(30),
        "the daemon on the next host",
        || node.when("now using 127.0.0.1:"),
    );
    wait_for(
        Duration::from_secs(20),
        "checks after the kill written",
        || (!node.checked_after(&killed_at).is_empty()).then_some(()),
    );
    let (code, _) = node
        .daemon
        .take()
        .unwrap()
        .terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", node.log());
    let logged = check_lines(&node.log()).len() as u64;
    let stored = written(&setup.db) - before;
    assert_eq!(
        stored, logged,
        "every logged check is in the database, once"
    );
    run::figures(
        "galera_node_killed_under_a_daemon",
        json!({"checks_logged": logged, "checks_in_database": stored}),
    );
}

fn written(db: &TestDb) -> u64 {
    db.one::<Option<u64>>("SELECT CAST(SUM(pass_count + fail_count) AS UNSIGNED) FROM targets")
        .unwrap_or(0)
}

fn a_cleanly_stopped_node_hands_its_targets_over_at_once(setup: &Setup) {
    let db = &setup.db;
    let web = HttpServer::start(200);
    add_targets(db, &web, 40);
    // A long DeadAfter: a hand-over that waited for it would take 20 s.
    let mut nodes = start_nodes(setup, &["node-a", "node-b"], 20);
    let since = settled(&nodes.iter().collect::<Vec<_>>(), "node-a, node-b");
    std::thread::sleep(Duration::from_secs(2));
    let orphans = nodes[1].checked_after(&since);
    assert!(!orphans.is_empty());

    let stopped_at = log_now();
    let stopped = Instant::now();
    let (code, _) = nodes[1]
        .daemon
        .take()
        .unwrap()
        .terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0));
    let took = wait_for(
        Duration::from_secs(15),
        "every orphan checked by node-a",
        || {
            orphans
                .is_subset(&nodes[0].checked_after(&stopped_at))
                .then(|| stopped.elapsed())
        },
    );
    assert!(took < Duration::from_secs(6), "hand-over took {took:?}");
    assert!(nodes[1].log().contains("cluster: node node-b left"));
    assert_eq!(db.one::<u64>("SELECT COUNT(*) FROM nodes"), 1);
    let name = if setup.galera.is_some() {
        "galera_handover_at_stop"
    } else {
        "cluster_handover_at_stop"
    };
    run::figures(
        name,
        json!({"dead_after_s": 20, "handover_s": took.as_secs_f64()}),
    );
}

/// How the test freezes node-b.
#[derive(Clone, Copy, PartialEq)]
enum Freeze {
    /// SIGSTOP from outside, wherever it happens to be.
    Anywhere,
    /// The node stops itself inside a result transaction, holding its row locks (the
    /// server rolls that transaction back after `idle_transaction_timeout`).
    InsideAWrite,
}

fn a_frozen_node_is_fenced_checks_and_writes_nothing_it_lost_and_rejoins(
    setup: &Setup,
    freeze: Freeze,
) {
    let db = &setup.db;
    let web = HttpServer::start(200);
    add_targets(db, &web, 30);
    let nodes = start_nodes(setup, &["node-a", "node-b"], 3);
    let since = settled(&nodes.iter().collect::<Vec<_>>(), "node-a, node-b");
    std::thread::sleep(Duration::from_secs(2));
    let b_targets = nodes[1].checked_after(&since);

    if freeze == Freeze::Anywhere {
        nodes[1].signal(libc::SIGSTOP);
    } else {
        std::fs::write(nodes[1].faults().join("freeze-result-transaction"), "").unwrap();
        wait_for(Duration::from_secs(10), "node-b stops itself", || {
            nodes[1].is_stopped().then_some(())
        });
    }
    wait_for(
        Duration::from_secs(15),
        "node-a declares node-b dead",
        || nodes[0].when("cluster: node node-b sent no heartbeat"),
    );
    let frozen_at = log_now();
    let list = b_targets
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let passes =
        format!("SELECT CAST(SUM(pass_count) AS UNSIGNED) FROM targets WHERE id IN ({list})");
    let passes_then = db.one::<u64>(&passes);
    wait_for(
        Duration::from_secs(10),
        "node-a checks node-b's targets and writes their rows",
        || {
            (b_targets.is_subset(&nodes[0].checked_after(&frozen_at))
                && db.one::<u64>(&passes) >= passes_then + b_targets.len() as u64)
                .then_some(())
        },
    );
    let woke_at = log_now();
    nodes[1].signal(libc::SIGCONT);
    let dead_line = wait_for(
        Duration::from_secs(10),
        "node-b learns it was declared dead",
        || nodes[1].when("was declared dead by the others"),
    );
    // Between waking and learning it, node-b started no check (its lease had run out, and
    // its workers drop what was still queued): only the checks its 8 workers had in flight
    // when it froze may end then.
    let log = nodes[1].log();
    let in_between: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" PASS (") || l.contains(" FAIL ("))
        .filter(|l| {
            l.get(..23)
                .is_some_and(|at| at > woke_at.as_str() && at < dead_line.as_str())
        })
        .collect();
    assert!(
        in_between.len() <= 8,
        "{} checks between waking ({woke_at}) and the fence ({dead_line}):\n{}",
        in_between.len(),
        in_between.join("\n")
    );
    wait_for(
        Duration::from_secs(15),
        "node-b back in the cluster",
        || {
            nodes[0]
                .last_sees("node-a, node-b")
                .filter(|t| t.as_str() > woke_at.as_str())
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    let back = log_now();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !nodes[1].checked_after(&back).is_empty(),
        "node-b checks again"
    );
    assert!(nodes[1].log().contains("joined again as node node-b"));
}

#[test]
fn two_live_nodes_cannot_share_a_name() {
    let setup = Setup::plain();
    let _first = start_nodes(&setup, &["node-a"], 6);
    let twin = Node::new(&setup, 1, "node-a", 6);
    // Another pid and log file, the same node name.
    let text = std::fs::read_to_string(&twin.config)
        .unwrap()
        .replace("node-a.pid", "twin.pid")
        .replace("node-a.log", "twin.log");
    std::fs::write(&twin.config, text).unwrap();
    let out = skypunch_cmd(&twin.config, &["start", "--foreground"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("node name node-a is in use by a live skypunch on"),
        "{err}"
    );
    assert!(err.contains("give this one another [cluster] NodeName"));
}

fn one_incident_through_a_killed_node_gives_one_failure_and_one_recovery_per_notifier(
    setup: &Setup,
) {
    let db = &setup.db;
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    for who in ["ops", "dev"] {
        let address = format!("{who}@example.com");
        add_notifier(db, who, "SMTP", &address, &plain(smtp.port), true);
    }
    let web = HttpServer::start(200);
    db.add_watched("shop", &web.url("/"));
    let mut nodes = start_nodes(setup, &["node-a", "node-b", "node-c"], 3);
    let owner = wait_for(Duration::from_secs(10), "the shop's node", || {
        nodes.iter().position(|n| !check_lines(&n.log()).is_empty())
    });

    web.set_status(503);
    smtp.wait_messages(2);
    nodes[owner].daemon.take().unwrap().kill();
    wait_for(
        Duration::from_secs(15),
        "another node checks the shop",
        || {
            let after = log_now();
            std::thread::sleep(Duration::from_millis(1500));
            nodes
                .iter()
                .enumerate()
                .any(|(i, n)| i != owner && !n.checked_after(&after).is_empty())
                .then_some(())
        },
    );
    web.set_status(200);
    let mails = smtp.wait_messages(4);
    std::thread::sleep(Duration::from_secs(3));
    let mails = if smtp.messages().len() > mails.len() {
        smtp.messages()
    } else {
        mails
    };
    let mut subjects: Vec<(String, String)> = mails
        .iter()
        .map(|m| {
            let to = m["rcpt_tos"][0].as_str().unwrap_or("").to_string();
            let subject = m["subject"].as_str().unwrap_or("").to_string();
            (to, subject)
        })
        .collect();
    subjects.sort();
    assert_eq!(subjects.len(), 4, "{subjects:?}");
    for who in ["dev@example.com", "ops@example.com"] {
        let mine: Vec<&String> = subjects
            .iter()
            .filter(|(t, _)| t == who)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(mine.len(), 2, "{who}: {mine:?}");
        assert!(mine.iter().any(|s| s.contains("FAILURE")), "{mine:?}");
        assert!(mine.iter().any(|s| s.contains("SUCCESS")), "{mine:?}");
    }
    assert_eq!(db.one::<u64>("SELECT COUNT(*) FROM alerts"), 2);
}

#[test]
fn a_row_written_by_another_writer_is_read_again_before_the_next_write() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let web = HttpServer::start(200);
    let id = db.add_watched("shop", &web.url("/"));
    let _daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(10), "a first write", || {
        (db.one::<u64>(&format!("SELECT state_seq FROM targets WHERE id = {id}")) > 0).then_some(())
    });
    // What another node's write of a FAIL with its alert looks like to this one.
    db.exec(&format!(
        "UPDATE targets SET state_seq = state_seq + 100, status = 'FAIL', alerted = 1, \
         repeated_fails = 3 WHERE id = {id}"
    ));
    wait_for(
        Duration::from_secs(10),
        "the recovery alert from the state read again",
        || (db.one::<u64>("SELECT COUNT(*) FROM alerts WHERE kind = 'SUCCESS'") == 1).then_some(()),
    );
    assert!(db
        .log()
        .contains("1 targets were written meanwhile by another writer"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(db.one::<u64>("SELECT COUNT(*) FROM alerts"), 1);
    assert_eq!(
        db.one::<(String, u64, bool)>(&format!(
            "SELECT status, repeated_fails, alerted FROM targets WHERE id = {id}"
        )),
        ("PASS".to_string(), 0, false)
    );
}

#[test]
fn three_nodes_share_the_targets() {
    three_nodes_share_the_targets_each_checked_by_one_node(&Setup::plain());
}

#[test]
fn a_killed_nodes_targets_are_taken_over() {
    a_killed_nodes_targets_are_taken_over_within_dead_after_and_a_frequency(&Setup::plain());
}

#[test]
fn a_clean_stop_hands_over_at_once() {
    a_cleanly_stopped_node_hands_its_targets_over_at_once(&Setup::plain());
}

#[test]
fn a_frozen_node_is_fenced() {
    a_frozen_node_is_fenced_checks_and_writes_nothing_it_lost_and_rejoins(
        &Setup::plain(),
        Freeze::Anywhere,
    );
}

#[test]
fn a_node_frozen_inside_a_write_does_not_stop_the_others() {
    a_frozen_node_is_fenced_checks_and_writes_nothing_it_lost_and_rejoins(
        &Setup::plain(),
        Freeze::InsideAWrite,
    );
}

#[test]
fn one_alert_per_change_and_notifier_through_a_killed_node() {
    one_incident_through_a_killed_node_gives_one_failure_and_one_recovery_per_notifier(
        &Setup::plain(),
    );
}

/// The same stories on a real three-node Galera cluster, each daemon on another node.
mod galera {
    use super::*;

    #[test]
    fn three_nodes_share_the_targets() {
        let setup = Setup::galera();
        three_nodes_share_the_targets_each_checked_by_one_node(&setup);
    }

    #[test]
    fn a_killed_daemon_then_a_killed_database_node() {
        let setup = Setup::galera();
        a_killed_nodes_targets_are_taken_over_within_dead_after_and_a_frequency(&setup);
        let mut setup = setup;
        a_killed_database_node_is_replaced_by_the_next_host(&mut setup);
    }

    #[test]
    fn a_frozen_daemon_is_fenced() {
        a_frozen_node_is_fenced_checks_and_writes_nothing_it_lost_and_rejoins(
            &Setup::galera(),
            Freeze::Anywhere,
        );
    }

    #[test]
    fn one_alert_per_change_and_notifier() {
        one_incident_through_a_killed_node_gives_one_failure_and_one_recovery_per_notifier(
            &Setup::galera(),
        );
    }

    #[test]
    fn a_clean_stop_hands_over_at_once() {
        a_cleanly_stopped_node_hands_its_targets_over_at_once(&Setup::galera());
    }
}
