//! `--storm`: an alert storm, measured from outside. N targets on one HTTP server pass; the
//! server is killed (SIGKILL: every target fails at its next check, within one frequency),
//! and brought back `--duration` seconds later. Three notifiers (an SMTP server, a webhook
//! and a Slack-style receiver, threads of this tool on 127.0.0.1, see `sinks`) must each hear
//! of every failure and every recovery. Reports, per phase: the messages per notifier, the
//! time from the kill (or the revival) to the first and the last delivery; every incident
//! recorded and every delivery SENT (a run that misses one fails); the database's CPU per
//! alert, as measured (mariadbd's CPU from /proc over the storm, divided by the alerts) and
//! above its steady state (the same less what it spent per second on the checks alone,
//! measured just before the kill).

use std::path::Path;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use serde_json::json;

use super::args::Settings;
use super::daemon::{self, Daemon};
use super::database::{BenchDb, Server as DbServer};
use super::sinks::{Heard, HttpSink, SmtpSink};
use super::target::Server;
use super::{procfs, Error};

/// The steady window measured before the kill.
const STEADY: Duration = Duration::from_secs(10);
const WEBHOOK: &str = "/hook";
const SLACK: &str = "/services/T0/B0/bench";

/// What one notifier heard in one phase.
#[derive(Debug, Default, Clone)]
pub struct Phase {
    pub messages: usize,
    /// Alerts the messages say they carry.
    pub alerts: usize,
    pub first_s: Option<f64>,
    pub last_s: Option<f64>,
    pub bytes: usize,
    /// The webhook only: distinct targets listed.
    pub targets: usize,
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct Figures {
    pub targets: u64,
    pub frequency: u32,
    pub down_s: u64,
    pub group_wait_s: u64,
    pub group_interval_s: u64,
    pub workers: usize,
    pub server: String,
    /// /proc/loadavg when the run began, and the processors.
    pub load: String,
    pub cpus: usize,
    /// Per notifier (mail, webhook, slack): the failure, then the recovery.
    pub failure: [Phase; 3],
    pub recovery: [Phase; 3],
    pub incidents: u64,
    pub incidents_open: u64,
    pub deliveries: u64,
    pub sent: u64,
    /// Seconds from the kill to the last recovery's delivery (the storm window).
    pub window_s: f64,
    pub mariadb_cpu_s: Option<f64>,
    /// mariadbd's CPU seconds per second in the steady window before the kill.
    pub mariadb_steady: Option<f64>,
    pub daemon_cpu_s: f64,
    pub daemon_exit: Option<i32>,
}

const NAMES: [&str; 3] = ["SMTP", "webhook", "Slack"];

impl Figures {
    fn alerts(&self) -> u64 {
        2 * self.targets
    }

    /// mariadbd's CPU per alert in ms: as measured, and above its steady state.
    fn db_per_alert_ms(&self) -> Option<(f64, f64)> {
        let cpu = self.mariadb_cpu_s?;
        let steady = self.mariadb_steady? * self.window_s;
        let n = self.alerts().max(1) as f64;
        Some((cpu / n * 1000.0, (cpu - steady).max(0.0) / n * 1000.0))
    }

    pub fn table(&self) -> String {
        let mut t = format!(
            "storm                 {} targets every {} s on {}, killed, back {} s later\n\
             grouping              GroupWait {} s, GroupInterval {} s; {} workers\n\
             machine               {} processors, load average {} at the start\n",
            self.targets,
            self.frequency,
            self.server,
            self.down_s,
            self.group_wait_s,
            self.group_interval_s,
            self.workers,
            self.cpus,
            self.load
        );
        for (what, phases) in [("failure", &self.failure), ("recovery", &self.recovery)] {
            for (name, p) in NAMES.iter().zip(phases.iter()) {
                t += &format!(
                    "{what:<9} {name:<8}    {} messages, {} alerts, first after {}, last after {}, {} KiB\n",
                    p.messages,
                    p.alerts,
                    secs(p.first_s),
                    secs(p.last_s),
                    p.bytes / 1024
                );
            }
        }
        t += &format!(
            "incidents             {} recorded, {} still open\n\
             deliveries            {} SENT of {} ({} alerts x 3 notifiers)\n\
             storm window          {:.1} s (kill to the last recovery delivered)\n\
             daemon CPU            {:.2} s over the window\n",
            self.incidents,
            self.incidents_open,
            self.sent,
            self.deliveries,
            self.alerts(),
            self.window_s,
            self.daemon_cpu_s
        );
        match (self.mariadb_cpu_s, self.mariadb_steady, self.db_per_alert_ms()) {
            (Some(cpu), Some(steady), Some((raw, above))) => {
                t += &format!(
                    "mariadbd CPU          {cpu:.2} s over the window ({steady:.3} s/s in the \
                     steady state before)\n\
                     database CPU / alert  {raw:.3} ms as measured, {above:.3} ms above the steady state\n"
                )
            }
            _ => t += "mariadbd CPU          not measured (the database is not local)\n",
        }
        t
    }

    pub fn json(&self, command: &str) -> serde_json::Value {
        let phase = |p: &Phase| {
            json!({
                "messages": p.messages, "alerts": p.alerts, "first_delivery_s": p.first_s,
                "last_delivery_s": p.last_s, "bytes": p.bytes, "targets_listed": p.targets,
            })
        };
        let phases = |ps: &[Phase; 3]| json!({ "smtp": phase(&ps[0]), "webhook": phase(&ps[1]), "slack": phase(&ps[2]) });
        let per_alert = self.db_per_alert_ms();
        json!({
            "command": command,
            "date": chrono::Local::now().format("%Y-%m-%d %H:%M:%S %z").to_string(),
            "targets": self.targets,
            "frequency_s": self.frequency,
            "down_s": self.down_s,
            "group_wait_s": self.group_wait_s,
            "group_interval_s": self.group_interval_s,
            "workers": self.workers,
            "server": self.server,
            "machine": { "processors": self.cpus, "loadavg_at_start": self.load },
            "failure": phases(&self.failure),
            "recovery": phases(&self.recovery),
            "incidents": self.incidents,
            "incidents_open": self.incidents_open,
            "deliveries": self.deliveries,
            "deliveries_sent": self.sent,
            "window_s": self.window_s,
            "daemon_cpu_s": self.daemon_cpu_s,
            "mariadb_cpu_s": self.mariadb_cpu_s,
            "mariadb_steady_cpu_s_per_s": self.mariadb_steady,
            "db_cpu_ms_per_alert": per_alert.map(|p| p.0),
            "db_cpu_ms_per_alert_above_steady": per_alert.map(|p| p.1),
            "daemon_exit": self.daemon_exit,
        })
    }

    /// What makes the run a failure: an alert not delivered, an incident not recorded.
    pub fn problems(&self) -> Vec<String> {
        let n = self.targets as usize;
        let mut p = Vec::new();
        for (what, phases) in [("failures", &self.failure), ("recoveries", &self.recovery)] {
            for (name, ph) in NAMES.iter().zip(phases.iter()) {
                if ph.alerts != n {
                    p.push(format!("{name} heard of {} {what} of {n}", ph.alerts));
                }
            }
            if phases[1].targets != n {
                p.push(format!(
                    "the webhook listed {} distinct targets' {what} of {n}",
                    phases[1].targets
                ));
            }
        }
        if self.incidents != self.targets || self.incidents_open != 0 {
            p.push(format!(
                "{} incidents recorded ({} open) for {n} targets",
                self.incidents, self.incidents_open
            ));
        }
        if self.sent != self.deliveries || self.deliveries != 3 * self.alerts() {
            p.push(format!(
                "{} deliveries SENT of {} ({} expected)",
                self.sent,
                self.deliveries,
                3 * self.alerts()
            ));
        }
        if self.daemon_exit != Some(0) {
            p.push(format!("the daemon exited with {:?}", self.daemon_exit));
        }
        p
    }
}

fn secs(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{s:.1} s"))
}

/// The run.
pub fn run(s: &Settings, dir: &Path) -> Result<Figures, Error> {
    let mut f = Figures {
        targets: s.targets,
        frequency: s.frequency,
        down_s: s.duration.as_secs(),
        group_wait_s: s.group_wait,
        group_interval_s: s.group_interval,
        workers: s.workers,
        load: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..Figures::default()
    };
    let smtp = SmtpSink::start()?;
    let http = HttpSink::start()?;
    let mut db = BenchDb::create(DbServer::parse(&s.db_url)?)?;
    let result = storm(s, dir, &mut db, (&smtp, &http), &mut f);
    if !s.keep {
        db.drop_db()?;
    }
    result.map(|()| f)
}

fn storm(
    s: &Settings,
    dir: &Path,
    db: &mut BenchDb,
    (smtp, http): (&SmtpSink, &HttpSink),
    f: &mut Figures,
) -> Result<(), Error> {
    let server = match s.server {
        super::args::ServerKind::Nginx => Server::nginx(dir, None)?,
        super::args::ServerKind::Builtin => Server::builtin(None)?,
    };
    f.server = server.describe();
    db.insert_rows(s.targets, |_| super::database::Row {
        url: format!("http://127.0.0.1:{}/", server.port()),
        frequency: s.frequency,
        timeout: 2,
        ca_file: None,
    })?;
    db.exec(&format!(
        "INSERT INTO notifiers (name, type, address, params) VALUES \
         ('mail', 'SMTP', 'ops@example.com', 'server=127.0.0.1,port={},tls=none'), \
         ('hook', 'WEBHOOK', '{}', ''), ('chat', 'SLACK', '{}', '')",
        smtp.port,
        http.url(WEBHOOK),
        http.url(SLACK)
    ))?;
    let config = daemon::write_config(dir, &db.db_config(), s.workers)?;
    let mut text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    text += &format!(
        "\n[notifications]\nGroupWait: {}\nGroupInterval: {}\n",
        s.group_wait, s.group_interval
    );
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let mut daemon = Daemon::start(&s.skypunch, &s.wrap, &config, dir)?;
    let n = s.targets;
    let all_pass = Duration::from_secs(60 + n / 500);
    wait_db(
        &mut daemon,
        db,
        all_pass,
        "every target to pass once",
        |db| Ok(count(db, "SELECT COUNT(*) FROM targets WHERE status = 'PASS'")? == n),
    )?;

    let mariadb = procfs::pid_of(&["mariadbd", "mysqld"]).filter(|_| db.server.is_local());
    let maria = || mariadb.and_then(procfs::cpu_seconds);
    let steady0 = (maria(), Instant::now());
    std::thread::sleep(STEADY);
    let steady1 = maria();
    f.mariadb_steady = steady0
        .0
        .zip(steady1)
        .map(|(a, b)| (b - a) / steady0.1.elapsed().as_secs_f64());

    // The storm: the server dies.
    let daemon_cpu0 = procfs::cpu_seconds(daemon.pid()).unwrap_or(0.0);
    let port = server.kill()?;
    let killed = Instant::now();
    let maria0 = maria();
    let down = killed + s.duration;
    let _ = wait_db(
        &mut daemon,
        db,
        s.duration,
        "every failure delivered",
        |db| Ok(sent(db, "FAILURE")? == 3 * n),
    );
    let wait = down.saturating_duration_since(Instant::now());
    std::thread::sleep(wait);

    // It comes back.
    let server = Server::revive(s.server, dir, port)?;
    let revived = Instant::now();
    let limit = Duration::from_secs(300 + n / 100);
    let delivered = wait_db(&mut daemon, db, limit, "every recovery delivered", |db| {
        Ok(sent(db, "SUCCESS")? == 3 * n && sent(db, "FAILURE")? == 3 * n)
    });
    let last = last_delivery(smtp, http).max(revived);
    f.window_s = (last - killed).as_secs_f64();
    f.mariadb_cpu_s = maria0.zip(maria()).map(|(a, b)| b - a);
    f.daemon_cpu_s = procfs::cpu_seconds(daemon.pid()).unwrap_or(0.0) - daemon_cpu0;
    // A failure delivered after the revival (grouping off, a slow receiver) still counts as
    // the failure's: the headline tells them apart.
    f.failure = phases(smtp, http, "FAILED", killed);
    f.recovery = phases(smtp, http, "recovered", revived);
    f.incidents = count(db, "SELECT COUNT(*) FROM incidents")?;
    f.incidents_open = count(db, "SELECT COUNT(*) FROM incidents WHERE ended IS NULL")?;
    f.deliveries = count(db, "SELECT COUNT(*) FROM alert_deliveries")?;
    f.sent = count(
        db,
        "SELECT COUNT(*) FROM alert_deliveries WHERE state = 'SENT'",
    )?;
    let (status, _) = daemon.stop(Duration::from_secs(60))?;
    f.daemon_exit = status.code();
    server.stop();
    delivered.map_err(|e| format!("{e}\n{}", f.table()))
}

fn count(db: &mut BenchDb, sql: &str) -> Result<u64, Error> {
    db.query_one(sql)
}

/// Deliveries of `kind` alerts marked SENT.
fn sent(db: &mut BenchDb, kind: &str) -> Result<u64, Error> {
    let n: Option<u64> = db
        .conn()
        .exec_first(
            "SELECT COUNT(*) FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id \
             WHERE d.state = 'SENT' AND a.kind = ?",
            (kind,),
        )
        .map_err(|e| format!("counting sent deliveries: {e}"))?;
    Ok(n.unwrap_or(0))
}

/// Polls the database every 500 ms (and the daemon's log, to fail fast if it exits) until
/// `done`, at most `limit`.
fn wait_db(
    daemon: &mut Daemon,
    db: &mut BenchDb,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&mut BenchDb) -> Result<bool, Error>,
) -> Result<(), Error> {
    let start = Instant::now();
    loop {
        daemon.poll()?;
        if done(db)? {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The last message any sink received.
fn last_delivery(smtp: &SmtpSink, http: &HttpSink) -> Instant {
    let mail = smtp.log.lock().unwrap().iter().map(|h| h.at).max();
    let hooks = http.log.lock().unwrap().iter().map(|(_, h)| h.at).max();
    mail.into_iter()
        .chain(hooks)
        .max()
        .unwrap_or_else(Instant::now)
}

/// Each notifier's messages saying `word`, timed from `from`.
fn phases(smtp: &SmtpSink, http: &HttpSink, word: &str, from: Instant) -> [Phase; 3] {
    let mail = smtp.log.lock().unwrap().clone();
    [mail, http.at(WEBHOOK), http.at(SLACK)].map(|heard| phase(&heard, word, from))
}

/// How many alerts a headline says `word` of: `3 FAILED, 2 recovered` has 3 FAILED.
fn count_in(headline: &str, word: &str) -> usize {
    headline
        .split(", ")
        .find(|part| part.contains(word))
        .and_then(|part| part.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn phase(heard: &[Heard], word: &str, from: Instant) -> Phase {
    let mine: Vec<&Heard> = heard
        .iter()
        .filter(|h| h.headline.contains(word) && h.at >= from)
        .collect();
    let since = |h: &&Heard| (h.at - from).as_secs_f64();
    let mut targets: Vec<u64> = mine
        .iter()
        .flat_map(|h| h.targets.iter().copied())
        .collect();
    targets.sort_unstable();
    targets.dedup();
    Phase {
        messages: mine.len(),
        alerts: mine.iter().map(|h| count_in(&h.headline, word)).sum(),
        first_s: mine.iter().map(since).reduce(f64::min),
        last_s: mine.iter().map(since).reduce(f64::max),
        bytes: mine.iter().map(|h| h.bytes).sum(),
        targets: targets.len(),
    }
}
