//! A cluster in network namespaces for the partition tests (tests/it/partitions.rs): three
//! Galera nodes, each with its daemon in a namespace of its own ([`super::netns`]), one
//! database on them; the daemons' logs read for what they checked, when, and their final
//! account. Dropped in order: daemons, database, cluster, namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use super::galera::{Galera, Permit};
use super::http::HttpServer;
use super::netns::Net;
use super::{wait_for, Daemon, TestDb};

/// `[cluster] DeadAfter` of the daemons: 12 s, above the 6 s or so a Galera cluster with its
/// default `evs.suspect_timeout` holds every commit when a node stops answering (see
/// skypunch(8), CLUSTER); `SKYPUNCH_TEST_DEAD_AFTER` sets another, to measure it.
pub fn dead_after() -> u64 {
    std::env::var("SKYPUNCH_TEST_DEAD_AFTER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// Every target's timeout: a check of a server the firewall hides ends then.
pub const TIMEOUT: u64 = 1;
/// The node the firewall cuts off (not node 0, where the test's own session goes).
pub const CUT: usize = 2;

/// The namespaces, the cluster on them and the database; fields in drop order (the
/// database before its cluster, the cluster before its network).
pub struct Bench {
    pub db: TestDb,
    pub galera: Galera,
    _permit: Permit,
    pub net: Net,
}

impl Bench {
    /// `None` only where network namespaces cannot be made (not root): the test says so
    /// and passes.
    pub fn start() -> Option<Bench> {
        let net = match Net::create(3) {
            Ok(net) => net,
            Err(why) => {
                eprintln!("skipping the partition test: network namespaces unavailable: {why}");
                return None;
            }
        };
        let nft = std::process::Command::new("nft").arg("--version").output();
        assert!(
            nft.is_ok_and(|o| o.status.success()),
            "nft (nftables) is missing: run the tests with scripts/test, which installs it"
        );
        let permit = Permit::take();
        let galera = Galera::start_in(&net, 3);
        let db = TestDb::new_on(galera.server(0));
        db.write_config("StatsInterval: 0\n[notifications]\nRetryInitial: 1\nSmtpTimeout: 2");
        Some(Bench {
            db,
            galera,
            _permit: permit,
            net,
        })
    }

    pub fn add_targets(&self, web: &HttpServer, n: usize) {
        let values: Vec<String> = (0..n)
            .map(|i| format!("('t{i}', '{}', 1, {TIMEOUT})", web.url("/")))
            .collect();
        self.db.exec(&format!(
            "INSERT INTO targets (name, url, frequency, timeout) VALUES {}",
            values.join(",")
        ));
    }

    /// `pass_count + fail_count` of every target, by id.
    pub fn counters(&self) -> BTreeMap<u64, u64> {
        self.db
            .query::<(u64, u64)>(
                "SELECT id, CAST(pass_count + fail_count AS UNSIGNED) FROM targets",
            )
            .into_iter()
            .collect()
    }
}

/// One daemon, in namespace `i`, on database node `i` first.
pub struct Node {
    pub name: String,
    pub config: PathBuf,
    log: PathBuf,
    daemon: Option<Daemon>,
}

impl Node {
    /// With `listen`, its HTTP server listens there (inside its namespace).
    pub fn start(bench: &Bench, i: usize, listen: Option<&str>) -> Node {
        let db = &bench.db;
        let name = format!("node-{i}");
        let log = db.dir.join(format!("{name}.log"));
        let base = std::fs::read_to_string(db.config_path()).unwrap();
        let lines: Vec<String> = base
            .lines()
            .map(|l| match l.split(':').next().unwrap_or("") {
                "LogFilePath" => format!("LogFilePath: {}", log.display()),
                "PidFile" => format!("PidFile: {}", db.dir.join(format!("{name}.pid")).display()),
                "Location" => format!("Location: {}", bench.galera.location(i)),
                "Listen" => format!("Listen: {}", listen.unwrap_or("")),
                _ => l.to_string(),
            })
            .collect();
        let config = db.dir.join(format!("{name}.conf"));
        let text = format!(
            "{}\n[cluster]\nNodeName: {name}\nDeadAfter: {}\n",
            lines.join("\n"),
            dead_after()
        );
        std::fs::write(&config, text).unwrap();
        let stderr = log.with_extension("stderr");
        let daemon = Daemon::spawn_in(bench.net.ns(i), &config, &stderr);
        let node = Node {
            name,
            config,
            log,
            daemon: Some(daemon),
        };
        wait_for(Duration::from_secs(30), "the node's `started` line", || {
            node.log().contains(" started: ").then_some(())
        });
        node
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The time stamp of the first line after `since` containing `text`.
    pub fn when_after(&self, since: &str, text: &str) -> Option<String> {
        self.log()
            .lines()
            .filter(|l| l.get(..23).is_some_and(|at| at > since))
            .find(|l| l.contains(text))
            .map(|l| l[..23].to_string())
    }

    /// The targets this node logged a check of after `since`.
    pub fn checked_after(&self, since: &str) -> BTreeSet<u64> {
        check_lines(&self.log())
            .into_iter()
            .filter(|(at, _)| at.as_str() > since)
            .map(|(_, id)| id)
            .collect()
    }

    /// SIGTERM; the exit code must be 0. What its last line says it wrote.
    pub fn stop(&mut self) -> Account {
        let (code, _) = self
            .daemon
            .take()
            .expect("running")
            .terminate(Duration::from_secs(30));
        assert_eq!(
            code,
            Some(0),
            "{} did not stop cleanly:\n{}",
            self.name,
            self.log()
        );
        Account::of(&self.log())
    }
}

/// A node's final account: its `skypunch stopped after N checks: U checks not written ...
/// D checks dropped earlier ...` line.
#[derive(Debug)]
pub struct Account {
    pub checks: u64,
    pub unwritten: u64,
    pub dropped: u64,
}

impl Account {
    pub fn of(log: &str) -> Account {
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("skypunch stopped after "))
            .expect("a final account");
        let number_before = |text: &str| -> u64 {
            let head = &line[..line
                .find(text)
                .unwrap_or_else(|| panic!("{text} in {line}"))];
            head.rsplit(' ').next().unwrap().parse().unwrap()
        };
        let after = line.split("stopped after ").nth(1).unwrap();
        Account {
            checks: after.split(' ').next().unwrap().parse().unwrap(),
            unwritten: number_before(" checks not written"),
            dropped: number_before(" checks dropped earlier"),
        }
    }

    pub fn written(&self) -> u64 {
        self.checks - self.unwritten - self.dropped
    }
}

/// `(time stamp, target id)` of every check line of a log.
pub fn check_lines(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter(|l| l.contains(" PASS (") || l.contains(" FAIL ("))
        .filter_map(|l| {
            let id = l.split('[').nth(1)?.split(']').next()?.parse().ok()?;
            Some((l.get(..23)?.to_string(), id))
        })
        .collect()
}

/// Now, as the log writes its time stamps.
pub fn log_now() -> String {
    chrono::Local::now()
        .format("%Y-%m-%d %H:%M:%S,%3f")
        .to_string()
}

/// Seconds from log time stamp `a` to `b`.
pub fn secs(a: &str, b: &str) -> f64 {
    let parse = |s: &str| {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S,%3f")
            .unwrap_or_else(|e| panic!("{s}: {e}"))
    };
    (parse(b) - parse(a)).num_milliseconds() as f64 / 1000.0
}

/// The holds of the database the nodes but `except` logged after `since`, in seconds.
pub fn holds(nodes: &[Node], except: usize, since: &str) -> Vec<f64> {
    let text = "cluster: no heartbeat of this node got through for ";
    nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != except)
        .flat_map(|(_, n)| {
            n.log()
                .lines()
                .filter(|l| l.get(..23).is_some_and(|at| at > since))
                .filter_map(|l| l.split(text).nth(1)?.split(' ').next()?.parse().ok())
                .collect::<Vec<f64>>()
        })
        .collect()
}

/// Asserts that no node but `except` paused its checks or was declared dead after `since`.
pub fn nobody_else_paused_or_died(nodes: &[Node], except: usize, since: &str) {
    for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != except) {
        assert!(
            node.when_after(since, "this node starts no checks")
                .is_none(),
            "{} paused:\n{}",
            node.name,
            node.log()
        );
        let dead = format!("node {} sent no heartbeat", node.name);
        for other in nodes {
            assert!(other.when_after(since, &dead).is_none(), "{}", other.log());
        }
        assert!(node.when_after(since, "was declared dead").is_none(), "{i}");
    }
}

/// The targets each node checks once they all see each other: the cut node's and the
/// others'.
pub fn shares(nodes: &[Node]) -> (BTreeSet<u64>, BTreeSet<u64>) {
    let all = "cluster: live nodes node-0, node-1, node-2;";
    wait_for(Duration::from_secs(30), "every node sees all three", || {
        nodes
            .iter()
            .all(|n| n.when_after("", all).is_some())
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let since = log_now();
    std::thread::sleep(Duration::from_secs(2));
    let others = nodes[0]
        .checked_after(&since)
        .union(&nodes[1].checked_after(&since))
        .copied()
        .collect();
    (nodes[CUT].checked_after(&since), others)
}
