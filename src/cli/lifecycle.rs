//! The daemon's lifecycle words `start | stop | status | reload`, on the main thread.
//!
//! Exit codes of the lifecycle words follow the LSB init script conventions, so that the init
//! script can pass them on: `status` exits 0 when running, 1 when the daemon is dead but its
//! pid file remains, 3 when not running, 4 when the state cannot be known; `stop` exits 0 when
//! the daemon has stopped or was not running, 1 when it did not exit in time, 4 when it may not
//! be signalled.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::out::line;
use super::table::Table;
use super::{load_config, Error, Invocation};
use crate::config::Config;
use crate::daemon::{self, Options, StartError, Startup};
use crate::db;
use crate::lifecycle::daemonize::{self, Forked, StartReport};
use crate::lifecycle::pidfile::AcquireError;
use crate::lifecycle::{self, pidfile, Probe, StopError, Stopped};

/// `start`, `stop`, `status`, `reload`.
pub fn run(inv: &Invocation, word: &str) -> Result<(), Error> {
    let (config, here) = absolute_paths(load_config(inv)?)?;
    match word {
        "start" => start(inv, config, &here),
        "stop" => {
            let limit = inv
                .stop_timeout
                .unwrap_or(config.stop_timeout + super::STOP_GRACE);
            stop(&config, limit)
        }
        "status" => status(&config),
        _ => reload(&config),
    }
}

/// A daemon that ran and stopped: its exit status says how (the log says why).
fn exited(ended: daemon::Exit) -> Result<(), Error> {
    match ended.code() {
        0 => Ok(()),
        code => Err(exit(code)),
    }
}

/// An error already printed in full on stderr, leaving only its exit code.
fn exit(code: u8) -> Error {
    Error {
        message: String::new(),
        code,
    }
}

/// The daemon works in `/`, so every path it uses is made absolute first, relative to the
/// folder `start` was run in.
fn absolute_paths(mut config: Config) -> Result<(Config, PathBuf), Error> {
    let here = std::env::current_dir()
        .map_err(|e| Error::failed(format!("cannot tell the current directory: {e}")))?;
    config.resolve_paths(&here);
    Ok((config, here))
}

fn already_running(pid: i32) -> Error {
    eprintln!("{}", AcquireError::Running(pid));
    exit(1)
}

/// A foreground daemon that did not start: the message on stderr, exit status 1.
fn not_started(e: StartError) -> Error {
    match e.already_running() {
        Some(pid) => already_running(pid),
        None => Error::failed(e.to_string()),
    }
}

fn start(inv: &Invocation, config: Config, here: &Path) -> Result<(), Error> {
    // LSB 6, "not configured": the unit does not restart it (RestartPreventExitStatus=6).
    if let Some(what_to_do) = config.db.placeholder_error() {
        return Err(Error {
            message: what_to_do,
            code: 6,
        });
    }
    if !inv.foreground && config.log_file.as_os_str() == crate::logging::STDERR {
        return Err(Error::failed(
            "LogFilePath `-` sends the log to stderr, which a detached daemon does not have: \
             start it with --foreground (as the systemd unit does) or give LogFilePath a file",
        ));
    }
    let source = config.source.clone();
    let opts = Options {
        config_path: source.as_deref(),
        start_dir: here,
        wait_for_db: inv.wait_for_db,
        echo: false,
    };
    if inv.foreground {
        return match daemon::run_foreground(config, &opts) {
            Ok(ended) => exited(ended),
            Err(e) => Err(not_started(e)),
        };
    }
    // Answer a second `start` at once; the daemon checks again under the lock.
    if let Probe::Running { pid, .. } = pidfile::probe(&config.pid_file) {
        return Err(already_running(pid));
    }
    match daemonize::daemonize().map_err(Error::failed)? {
        Forked::Parent(StartReport::Started { pid, note: None }) => {
            line(format_args!("skypunch started (pid {pid})"))?;
            Ok(())
        }
        Forked::Parent(StartReport::Started {
            pid,
            note: Some(note),
        }) => {
            line(format_args!("skypunch started (pid {pid}), {note}"))?;
            Ok(())
        }
        Forked::Parent(StartReport::AlreadyRunning(pid)) => Err(already_running(pid)),
        Forked::Parent(StartReport::Failed(reason)) => Err(Error::failed(reason)),
        Forked::Daemon(mut reporter) => {
            let pid = std::process::id() as i32;
            let outcome = daemon::serve(config, &opts, &mut |startup| {
                let note = match startup {
                    Startup::Ready => None,
                    Startup::WaitingForDatabase(why) => {
                        Some(format!("waiting for the database: {why}"))
                    }
                };
                reporter.report(&StartReport::Started { pid, note });
            });
            // A failure before start-up was reported goes to the terminal that waits for it;
            // one after goes nowhere but the log, where `serve` has written it.
            match outcome {
                Ok(ended) => exited(ended),
                Err(e) => {
                    reporter.report(&match e.already_running() {
                        Some(pid) => StartReport::AlreadyRunning(pid),
                        None => StartReport::Failed(e.to_string()),
                    });
                    Err(exit(1))
                }
            }
        }
    }
}

fn stop(config: &Config, limit: Duration) -> Result<(), Error> {
    match lifecycle::stop(&config.pid_file, limit) {
        Ok(Stopped::Exited { pid }) => line(format_args!("skypunch stopped (pid {pid})"))?,
        Ok(Stopped::NotRunning) => line(format_args!("skypunch is not running"))?,
        Ok(Stopped::Stale { pid }) => line(format_args!(
            "skypunch is not running; removed the stale pid file {}{}",
            config.pid_file.display(),
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        ))?,
        Err(StopError::Timeout { pid, waited }) => {
            eprintln!(
                "skypunch (pid {pid}) has not exited after {} s; it may still be finishing \
                 checks or writing results: see {}",
                waited.as_secs(),
                config.log_file.display()
            );
            return Err(exit(1));
        }
        Err(StopError::Denied(reason)) => {
            eprintln!("skypunch: {reason}");
            return Err(exit(4));
        }
    }
    Ok(())
}

fn status(config: &Config) -> Result<(), Error> {
    let nodes = db::connect(&config.db)
        .and_then(|pool| db::nodes::all(&mut db::checkout(&pool)?))
        .ok();
    let code = match pidfile::probe(&config.pid_file) {
        Probe::Running { pid, since } => {
            let up = lifecycle::format_uptime(since, SystemTime::now());
            line(format_args!("skypunch is running (pid {pid}, up {up})"))?;
            0
        }
        Probe::Absent => {
            line(not_running(
                config,
                nodes.as_deref(),
                "skypunch is not running",
            ))?;
            3
        }
        Probe::Stale { pid } => {
            line(not_running(
                config,
                nodes.as_deref(),
                &format!(
                    "skypunch is not running, but its pid file {} remains{} (it did not stop cleanly)",
                    config.pid_file.display(),
                    pid.map(|p| format!(" with pid {p}")).unwrap_or_default()
                ),
            ))?;
            1
        }
        Probe::Unknown { reason } => {
            line(format_args!("skypunch status unknown: {reason}"))?;
            4
        }
    };
    line(targets_line(config))?;
    if let Some(rows) = &nodes {
        super::out::print(nodes_table(config, rows))?;
    }
    if code == 0 {
        Ok(())
    } else {
        Err(exit(code))
    }
}

/// `said`, unless this host's node is alive in `nodes` all the same (a daemon of this host
/// with another pid file): then both facts, so that the line and the table agree.
fn not_running(config: &Config, nodes: Option<&[db::nodes::NodeRow]>, said: &str) -> String {
    let me = config.cluster.node_name();
    let dead_after = config.cluster.dead_after.as_millis() as i64;
    let alive = nodes
        .unwrap_or_default()
        .iter()
        .any(|r| r.name == me && r.state != "stopping" && r.heartbeat_age_ms <= dead_after);
    if !alive {
        return said.to_string();
    }
    format!(
        "skypunch is not running here (pid file {}); this host's node {me} is active in the \
         cluster (a daemon with another PidFile?)",
        config.pid_file.display()
    )
}

/// `targets: 12 total, 9 PASS, 2 FAIL, 1 NEW, 3 disabled`, or why the database cannot say.
fn targets_line(config: &Config) -> String {
    let summary = db::connect(&config.db).and_then(|pool| {
        let mut conn = db::checkout(&pool)?;
        db::targets::summary(&mut conn)
    });
    match summary {
        Ok(s) => format!(
            "targets: {} total, {} PASS, {} FAIL, {} NEW, {} disabled",
            s.total, s.pass, s.fail, s.new, s.disabled
        ),
        Err(e) => format!("targets: unknown ({e})"),
    }
}

/// The daemons sharing the database, this host's marked.
fn nodes_table(config: &Config, rows: &[db::nodes::NodeRow]) -> String {
    let dead_after = config.cluster.dead_after;
    if rows.is_empty() {
        return "nodes: none running against this database\n".into();
    }
    let me = config.cluster.node_name();
    let live = rows
        .iter()
        // A blind node (it cannot reach its network) is alive, its targets handed over.
        .filter(|r| r.state != "stopping" && r.heartbeat_age_ms <= dead_after.as_millis() as i64)
        .count();
    let mut t = Table::new(&[
        "Node",
        "Host",
        "Heartbeat",
        "State",
        "Targets",
        "Checks/s",
        "Clock",
    ]);
    for r in rows {
        let state = if r.heartbeat_age_ms > dead_after.as_millis() as i64 {
            "dead (no heartbeat)".to_string()
        } else {
            r.state.clone()
        };
        let name = if r.name == me {
            format!("{} (this host)", r.name)
        } else {
            r.name.clone()
        };
        t.row(vec![
            name,
            r.host.clone(),
            format!("{:.1} s ago", r.heartbeat_age_ms.max(0) as f64 / 1000.0),
            state,
            r.targets_owned.to_string(),
            format!("{:.1}", r.checks_per_s),
            // Its clock against the database's, as its last heartbeat measured it.
            r.clock_offset_ms
                .map_or("-".into(), |ms| format!("{:+.1} s", ms as f64 / 1000.0)),
        ]);
    }
    format!(
        "nodes: {live} live of {} (DeadAfter {} s)\n{t}",
        rows.len(),
        dead_after.as_secs()
    )
}

fn reload(config: &Config) -> Result<(), Error> {
    match lifecycle::reload(&config.pid_file) {
        Ok(Some(pid)) => {
            line(format_args!(
                "skypunch (pid {pid}) asked to reopen its log file and re-read its configuration"
            ))?;
            Ok(())
        }
        Ok(None) => {
            eprintln!("skypunch is not running");
            Err(exit(7))
        }
        Err(reason) => {
            eprintln!("skypunch: {reason}");
            Err(exit(4))
        }
    }
}
