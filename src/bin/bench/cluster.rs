//! `--nodes N`: N daemons on one database, measured from outside: aggregate checks/s (from
//! the database's counters), each node's share, targets checked by two nodes in the steady
//! window (must be 0), the database statements per check and per node, and the takeover
//! time after a SIGKILL of one node (from the kill to the last orphaned target's next check).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use serde_json::json;

use super::args::Settings;
use super::daemon::{self, Daemon};
use super::database::BenchDb;
use super::{procfs, statsline, Error};

/// `[cluster] DeadAfter` written into every node's configuration (the daemon's default).
const DEAD_AFTER_S: u64 = 6;

/// What one run measured.
#[derive(Debug, Default)]
pub struct Figures {
    pub nodes: usize,
    pub targets: u64,
    pub frequency: u32,
    pub window_s: f64,
    pub checks_per_s: f64,
    pub node_checks: Vec<u64>,
    pub duplicate_targets: usize,
    pub unchecked_in_window: usize,
    pub node_cpu_s: Vec<f64>,
    pub mariadb_cpu_s: Option<f64>,
    /// Server statement counters over the window: select, update, insert, delete.
    pub statements: [u64; 4],
    pub orphans: usize,
    pub takeover_s: Option<f64>,
    pub never_checked: u64,
    /// Each surviving node's "checks not written to the database" at its stop.
    pub unwritten_at_stop: Vec<u64>,
}

impl Figures {
    pub fn table(&self) -> String {
        let checks: u64 = self.node_checks.iter().sum();
        let per_check = |n: u64| n as f64 / checks.max(1) as f64;
        let mut t = format!(
            "nodes                 {}\ntargets               {} every {} s\nwindow                {:.1} s\n\
             checks/s (database)   {:.0}\nchecks per node       {:?}\nspread                {:.1} %\n\
             targets checked by two nodes in the window  {}\ntargets not checked in the window  {}\n\
             daemon CPU s per node {:?}\n",
            self.nodes,
            self.targets,
            self.frequency,
            self.window_s,
            self.checks_per_s,
            self.node_checks,
            self.spread_pct(),
            self.duplicate_targets,
            self.unchecked_in_window,
            self.node_cpu_s
                .iter()
                .map(|c| (c * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
        );
        let [sel, upd, ins, del] = self.statements;
        t += &format!(
            "statements per check  select {:.3}, update {:.3}, insert {:.3}, delete {:.3}\n",
            per_check(sel),
            per_check(upd),
            per_check(ins),
            per_check(del)
        );
        t += &format!(
            "statements per node/s select {:.1}, update {:.1}, insert {:.1}, delete {:.1}\n",
            self.per_node_s(sel),
            self.per_node_s(upd),
            self.per_node_s(ins),
            self.per_node_s(del)
        );
        t += &format!(
            "unwritten at stop (surviving nodes) {:?}\n",
            self.unwritten_at_stop
        );
        if let Some(took) = self.takeover_s {
            t += &format!(
                "takeover after SIGKILL {took:.2} s ({} orphaned targets, DeadAfter {DEAD_AFTER_S} s)\n",
                self.orphans
            );
        }
        t
    }

    fn per_node_s(&self, n: u64) -> f64 {
        n as f64 / self.window_s.max(0.001) / self.nodes.max(1) as f64
    }

    /// The largest node's share over the smallest's, less one, in percent.
    fn spread_pct(&self) -> f64 {
        let max = self.node_checks.iter().copied().max().unwrap_or(0) as f64;
        let min = self.node_checks.iter().copied().min().unwrap_or(0) as f64;
        if min == 0.0 {
            return 100.0;
        }
        (max / min - 1.0) * 100.0
    }

    pub fn json(&self, command: &str) -> serde_json::Value {
        let checks: u64 = self.node_checks.iter().sum();
        let [sel, upd, ins, del] = self.statements;
        json!({
            "command": command,
            "date": chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z").to_string(),
            "nodes": self.nodes,
            "targets": self.targets,
            "frequency_s": self.frequency,
            "window_s": self.window_s,
            "checks_per_s_database": self.checks_per_s,
            "checks_per_node": self.node_checks,
            "spread_pct": self.spread_pct(),
            "duplicate_targets_in_window": self.duplicate_targets,
            "targets_not_checked_in_window": self.unchecked_in_window,
            "daemon_cpu_s_per_node": self.node_cpu_s,
            "mariadb_cpu_s": self.mariadb_cpu_s,
            "daemon_cpu_us_per_check": self.node_cpu_s.iter().sum::<f64>() * 1e6 / checks.max(1) as f64,
            "statements": {"select": sel, "update": upd, "insert": ins, "delete": del},
            "statements_per_check": (sel + upd + ins + del) as f64 / checks.max(1) as f64,
            "statements_per_node_per_s": self.per_node_s(sel + upd + ins + del),
            "dead_after_s": DEAD_AFTER_S,
            "orphans": self.orphans,
            "takeover_s": self.takeover_s,
            "never_checked": self.never_checked,
            "unwritten_at_stop_per_surviving_node": self.unwritten_at_stop,
        })
    }

    /// What makes the run a failure.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.duplicate_targets > 0 {
            p.push(format!(
                "{} targets checked by two nodes in the steady window",
                self.duplicate_targets
            ));
        }
        if self.unchecked_in_window > 0 {
            p.push(format!(
                "{} targets not checked in the window",
                self.unchecked_in_window
            ));
        }
        if self.nodes > 1 && self.takeover_s.is_none() {
            p.push("the killed node's targets were not all taken over".into());
        }
        if self.never_checked > 0 {
            p.push(format!("{} targets never checked", self.never_checked));
        }
        if self.unwritten_at_stop.iter().any(|n| *n > 0) {
            p.push(format!(
                "surviving nodes left checks unwritten at their stop: {:?}",
                self.unwritten_at_stop
            ));
        }
        p
    }
}

/// A node of the run: its daemon and folder.
struct Node {
    daemon: Daemon,
    dir: PathBuf,
}

/// Starts the nodes, measures the steady window, kills one and times the takeover.
pub fn run(s: &Settings, db: &mut BenchDb, url: &str, dir: &Path) -> Result<Figures, Error> {
    db.insert_targets(s.targets, s.frequency, url)?;
    let mut nodes = start(s, db, dir)?;
    let names: Vec<String> = (0..s.nodes).map(|i| format!("node-{i}")).collect();
    let view = format!("cluster: live nodes {};", names.join(", "));
    for node in &mut nodes {
        node.daemon
            .wait_until(Duration::from_secs(60), "the full view", |d| {
                d.views.iter().any(|v| v.contains(&view))
            })?;
    }
    std::thread::sleep(s.warmup);
    let mut f = window(s, db, &mut nodes)?;
    if s.nodes > 1 {
        takeover(s, &mut nodes, &mut f)?;
    }
    for node in &mut nodes[..] {
        if node.daemon.is_running() {
            node.daemon.stop(Duration::from_secs(60))?;
            f.unwritten_at_stop.push(unwritten_at_stop(&node.dir));
        }
    }
    f.never_checked = db.per_target_counts()?.iter().filter(|c| **c == 0).count() as u64;
    Ok(f)
}

fn start(s: &Settings, db: &BenchDb, dir: &Path) -> Result<Vec<Node>, Error> {
    (0..s.nodes)
        .map(|i| {
            let node_dir = dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&node_dir).map_err(|e| e.to_string())?;
            let config = daemon::write_config(&node_dir, &db.db_config(), s.workers)?;
            let mut text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
            text += &format!("\n[cluster]\nNodeName: node-{i}\nDeadAfter: {DEAD_AFTER_S}\n");
            std::fs::write(&config, text).map_err(|e| e.to_string())?;
            let daemon = Daemon::start(&s.skypunch, &s.wrap, &config, &node_dir)?;
            Ok(Node {
                daemon,
                dir: node_dir,
            })
        })
        .collect()
}

/// The steady window: database counters, CPU and each node's checks over `duration`.
fn window(s: &Settings, db: &mut BenchDb, nodes: &mut [Node]) -> Result<Figures, Error> {
    let mariadb = procfs::pid_of(&["mariadbd", "mysqld"]).filter(|_| db.server.is_local());
    let cpu = |nodes: &[Node]| -> Vec<f64> {
        nodes
            .iter()
            .map(|n| procfs::cpu_seconds(n.daemon.pid()).unwrap_or(0.0))
            .collect()
    };
    let t0 = daemon::now_epoch();
    let started = Instant::now();
    let (cpu0, db0, st0) = (cpu(nodes), db.recorded_checks()?, statements(db)?);
    let maria0 = mariadb.and_then(procfs::cpu_seconds);
    std::thread::sleep(s.duration);
    let (cpu1, db1, st1) = (cpu(nodes), db.recorded_checks()?, statements(db)?);
    let maria1 = mariadb.and_then(procfs::cpu_seconds);
    let window_s = started.elapsed().as_secs_f64();
    let t1 = daemon::now_epoch();
    let checks: Vec<BTreeMap<u64, u64>> = nodes
        .iter()
        .map(|n| checks_between(&n.dir, t0, t1))
        .collect();
    let mut owners: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    for (i, c) in checks.iter().enumerate() {
        for id in c.keys() {
            owners.entry(*id).or_default().insert(i);
        }
    }
    Ok(Figures {
        nodes: s.nodes,
        targets: s.targets,
        frequency: s.frequency,
        window_s,
        checks_per_s: db1.saturating_sub(db0) as f64 / window_s,
        node_checks: checks.iter().map(|c| c.values().sum()).collect(),
        duplicate_targets: owners.values().filter(|o| o.len() > 1).count(),
        unchecked_in_window: (s.targets as usize).saturating_sub(owners.len()),
        node_cpu_s: cpu1.iter().zip(&cpu0).map(|(b, a)| b - a).collect(),
        mariadb_cpu_s: maria0.zip(maria1).map(|(a, b)| b - a),
        statements: std::array::from_fn(|k| st1[k].saturating_sub(st0[k])),
        ..Figures::default()
    })
}

/// SIGKILL of node 1; the time until every target it checked is checked by another node.
fn takeover(s: &Settings, nodes: &mut [Node], f: &mut Figures) -> Result<(), Error> {
    let now = daemon::now_epoch();
    let orphans: BTreeSet<u64> =
        checks_between(&nodes[1].dir, now - f64::from(s.frequency) - 2.0, now)
            .into_keys()
            .collect();
    f.orphans = orphans.len();
    let killed_at = daemon::now_epoch();
    nodes[1].daemon.kill();
    let limit = Duration::from_secs(DEAD_AFTER_S + u64::from(s.frequency) + 60);
    let started = Instant::now();
    while started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(500));
        let mut first: BTreeMap<u64, f64> = BTreeMap::new();
        for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != 1) {
            let _ = i;
            for (id, at) in first_checks_after(&node.dir, killed_at) {
                let e = first.entry(id).or_insert(at);
                *e = e.min(at);
            }
        }
        if orphans.iter().all(|id| first.contains_key(id)) {
            let last = orphans.iter().map(|id| first[id]).fold(killed_at, f64::max);
            f.takeover_s = Some(last - killed_at);
            return Ok(());
        }
    }
    Ok(())
}

/// The "N checks not written to the database" of a node's last line; `u64::MAX` when the
/// line is missing.
fn unwritten_at_stop(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("skypunch.log")).unwrap_or_default();
    text.lines()
        .rev()
        .find_map(|l| {
            let rest = l.split(" checks: ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .unwrap_or(u64::MAX)
}

/// Checks per target in a node's log between two times (seconds since the epoch).
fn checks_between(dir: &Path, from: f64, to: f64) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    for (at, id) in check_lines(dir) {
        if at > from && at <= to {
            *out.entry(id).or_default() += 1;
        }
    }
    out
}

/// Each target's first check in a node's log after `after`.
fn first_checks_after(dir: &Path, after: f64) -> BTreeMap<u64, f64> {
    let mut out = BTreeMap::new();
    for (at, id) in check_lines(dir) {
        if at > after {
            out.entry(id).or_insert(at);
        }
    }
    out
}

fn check_lines(dir: &Path) -> Vec<(f64, u64)> {
    let text = std::fs::read_to_string(dir.join("skypunch.log")).unwrap_or_default();
    text.lines()
        .filter(|l| statsline::is_check_line(l))
        .filter_map(|l| {
            let id = l.split('[').nth(1)?.split(']').next()?.parse().ok()?;
            Some((statsline::timestamp(l)?, id))
        })
        .collect()
}

/// The server's statement counters: select, update, insert, delete.
fn statements(db: &mut BenchDb) -> Result<[u64; 4], Error> {
    let rows: Vec<(String, String)> = db
        .conn()
        .query(
            "SHOW GLOBAL STATUS WHERE Variable_name IN \
             ('Com_select', 'Com_update', 'Com_insert', 'Com_delete')",
        )
        .map_err(|e| format!("reading the server's statement counters: {e}"))?;
    let get = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    Ok([
        get("Com_select"),
        get("Com_update"),
        get("Com_insert"),
        get("Com_delete"),
    ])
}
