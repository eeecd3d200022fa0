//! The one guard for a daemon a test starts. Whatever happens to the test, dropping it stops
//! the process: SIGTERM, at most [`GRACE`] to exit, then SIGKILL; so a failed assertion never
//! leaves a daemon running into the next test.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::lifecycle::alive;
use super::{skypunch_cmd, wait_for, TestDb};

/// How long a dropped daemon gets to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(10);

pub struct Daemon {
    process: Process,
}

enum Process {
    /// `start --foreground`: our child.
    Child(Child),
    /// `start` without `--foreground`: it detached; only its pid is known.
    Detached(i32),
}

impl Daemon {
    /// `skypunch -c <config> start --foreground [extra...]` with `env` added, stderr appended
    /// to `<dir>/stderr.log`; does not wait for anything.
    pub fn spawn(db: &TestDb, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_at(&db.config_path(), &stderr_path(db), extra, env)
    }

    /// [`Daemon::spawn`] with another configuration file (one of several daemons sharing a
    /// database) and stderr file.
    pub fn spawn_at(
        config: &std::path::Path,
        stderr: &std::path::Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let mut args = vec!["start", "--foreground"];
        args.extend_from_slice(extra);
        Daemon::spawn_command(skypunch_cmd(config, &args), stderr, env)
    }

    /// [`Daemon::spawn_at`] in network namespace `ns` (`ip netns exec`, which becomes the
    /// daemon: signals reach it).
    pub fn spawn_in(ns: &str, config: &std::path::Path, stderr: &std::path::Path) -> Daemon {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_skypunch"), "-c"])
            .arg(config)
            .args(["start", "--foreground"])
            .env_remove("SKYPUNCH_CONFIG");
        Daemon::spawn_command(cmd, stderr, &[])
    }

    fn spawn_command(
        mut cmd: std::process::Command,
        stderr: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Daemon {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr)
            .unwrap();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Daemon {
            process: Process::Child(child),
        }
    }

    /// Starts the daemon and waits for its `started` line (lines from an earlier run in the
    /// same log do not count).
    pub fn start(db: &TestDb) -> Daemon {
        Daemon::start_with(db, &[])
    }

    /// [`Daemon::start`] with `env` added.
    pub fn start_with(db: &TestDb, env: &[(&str, &str)]) -> Daemon {
        let before = started_lines(db);
        let daemon = Daemon::spawn(db, &[], env);
        wait_for(
            Duration::from_secs(20),
            "the daemon's `started` line",
            || (started_lines(db) > before).then_some(()),
        );
        daemon
    }

    /// A daemon that `skypunch start` detached, known by its pid.
    pub fn detached(pid: i32) -> Daemon {
        Daemon {
            process: Process::Detached(pid),
        }
    }

    pub fn pid(&self) -> i32 {
        match &self.process {
            Process::Child(c) => c.id() as i32,
            Process::Detached(pid) => *pid,
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill with the pid of a process we started and a valid signal number.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match &mut self.process {
            Process::Child(c) => matches!(c.try_wait(), Ok(None)),
            Process::Detached(pid) => alive(*pid),
        }
    }

    /// Waits for the process to exit by itself (after a signal, or a fault); its exit code
    /// (none for a detached daemon, or one killed by a signal) and how long it took.
    pub fn exit_within(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        let code = wait_for(limit, "the daemon to exit", || match &mut self.process {
            Process::Child(c) => c.try_wait().unwrap().map(|s| s.code()),
            Process::Detached(pid) => (!alive(*pid)).then_some(None),
        });
        (code, started.elapsed())
    }

    /// SIGTERM, then waits at most `limit`; the exit code and how long the exit took.
    pub fn terminate(mut self, limit: Duration) -> (Option<i32>, Duration) {
        self.signal(libc::SIGTERM);
        self.exit_within(limit)
    }

    /// SIGTERM, then waits for the exit (at most 30 s); the exit code.
    pub fn stop(self) -> Option<i32> {
        self.terminate(Duration::from_secs(30)).0
    }

    /// SIGKILL: no shutdown, no flush (a crash).
    pub fn kill(mut self) {
        self.signal(libc::SIGKILL);
        self.exit_within(Duration::from_secs(10));
    }

    /// The daemon's resident memory in KiB, from /proc/<pid>/status.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the daemon's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a VmRSS line")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.is_running() {
            return;
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline {
            if !self.is_running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal(libc::SIGKILL);
        if let Process::Child(c) = &mut self.process {
            let _ = c.wait();
        }
    }
}

pub fn stderr_path(db: &TestDb) -> PathBuf {
    db.dir.join("stderr.log")
}

/// Everything the daemon wrote to stderr.
pub fn stderr(db: &TestDb) -> String {
    std::fs::read_to_string(stderr_path(db)).unwrap_or_default()
}

fn started_lines(db: &TestDb) -> usize {
    db.log()
        .lines()
        .filter(|l| l.contains(" skypunch ") && l.contains(" started: "))
        .count()
}

/// The config file of one daemon of several on the test's database: its node name, log
/// file `NAME.log` and pid file in the test's folder, the `replace`d keys given new values,
/// `settings` lines in `[settings]` and `tail` lines after `[cluster] NodeName` (more
/// cluster keys, or sections of their own). The config's path and the log's.
pub fn node_config(
    db: &TestDb,
    name: &str,
    replace: &[(&str, String)],
    settings: &str,
    tail: &str,
) -> (PathBuf, PathBuf) {
    let base = std::fs::read_to_string(db.config_path()).unwrap();
    let log = db.dir.join(format!("{name}.log"));
    let pid = db.dir.join(format!("{name}.pid"));
    let text: Vec<String> = base
        .lines()
        .map(|l| {
            let key = l.split(':').next().unwrap_or("");
            if key == "LogFilePath" {
                format!("LogFilePath: {}\n{settings}", log.display())
            } else if key == "PidFile" {
                format!("PidFile: {}", pid.display())
            } else if let Some((_, value)) = replace.iter().find(|(k, _)| *k == key) {
                format!("{key}: {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    let config = db.dir.join(format!("{name}.conf"));
    std::fs::write(
        &config,
        format!("{}\n[cluster]\nNodeName: {name}\n{tail}\n", text.join("\n")),
    )
    .unwrap();
    (config, log)
}

/// One daemon of several on the test's database ([`node_config`]), with `env`.
pub fn node(db: &TestDb, name: &str, extra: &str, env: &[(&str, &str)]) -> Daemon {
    let (config, _) = node_config(db, name, &[], extra, "");
    let stderr = db.dir.join(format!("{name}.stderr"));
    Daemon::spawn_at(&config, &stderr, &[], env)
}
