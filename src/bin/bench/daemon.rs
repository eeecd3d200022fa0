//! The daemon under test: the real `skypunch` binary started in the foreground with a config
//! of its own, its log followed as it grows, and SIGTERM at the end.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::mix::{self, CheckLine};
use super::statsline::{self, StatsLine};
use super::Error;
use skypunch::DbConfig;

/// A running daemon and what its log said so far.
pub struct Daemon {
    child: Child,
    /// When it was spawned, seconds since the epoch (to compare with log time stamps).
    pub spawned_at: f64,
    log: LogTail,
    /// Every stats line read so far, in order.
    pub stats: Vec<StatsLine>,
    /// Time stamp of the first check line, seconds since the epoch.
    pub first_check_at: Option<f64>,
    /// The loader's "loaded N enabled targets ... in X ms" figure.
    pub load_ms: Option<f64>,
    /// Lines logged at ERROR that are not check lines (the run is suspect if there are any).
    pub errors: Vec<String>,
    /// The cluster's "live nodes" lines, in order.
    pub views: Vec<String>,
    /// Every check line, when asked for (`--mix`); None otherwise, to keep memory flat.
    pub checks: Option<Vec<CheckLine>>,
    /// The daemon's warnings that checks wait for a free worker, and its all-clear lines.
    pub worker_warnings: Vec<String>,
}

pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Writes the daemon's config: the bench database, logs and pid file in `dir`, a stats line
/// every second.
pub fn write_config(dir: &Path, db: &DbConfig, workers: usize) -> Result<PathBuf, Error> {
    let path = dir.join("skypunch.conf");
    let text = format!(
        "[settings]\nLogFilePath: {}\nPidFile: {}\nWorkers: {workers}\nStatsInterval: 1\n\
         ReloadInterval: 5\nLogLevel: info\n\n[database]\nLocation: {}\nport: {}\nUser: {}\n\
         Password: {}\nDBName: {}\nPoolSize: 4\n\n[http]\nListen:\n",
        dir.join("skypunch.log").display(),
        dir.join("skypunch.pid").display(),
        db.host,
        db.port,
        db.user,
        db.password,
        db.name
    );
    std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

impl Daemon {
    /// Starts `binary` (under `wrap`, a profiler, when given: it must run the program in its
    /// own process, as valgrind and `perf record` do, so that signals and /proc figures reach it).
    pub fn start(
        binary: &Path,
        wrap: &[String],
        config: &Path,
        dir: &Path,
    ) -> Result<Daemon, Error> {
        let stderr = File::create(dir.join("skypunch.stderr")).map_err(|e| e.to_string())?;
        let spawned_at = now_epoch();
        let mut cmd = match wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = cmd
            .arg("-c")
            .arg(config)
            .arg("--foreground")
            .arg("start")
            .env_remove("SKYPUNCH_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        Ok(Daemon {
            child,
            spawned_at,
            log: LogTail::new(dir.join("skypunch.log")),
            stats: Vec::new(),
            first_check_at: None,
            load_ms: None,
            errors: Vec::new(),
            views: Vec::new(),
            checks: None,
            worker_warnings: Vec::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads what the log gained since the last call.
    pub fn poll(&mut self) -> Result<(), Error> {
        if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
            self.read_log();
            return Err(format!(
                "the daemon exited early ({status}); see {}",
                self.log.path.display()
            ));
        }
        self.read_log();
        Ok(())
    }

    fn read_log(&mut self) {
        for line in self.log.new_lines() {
            if let Some(s) = statsline::parse(&line) {
                self.stats.push(s);
            } else if line.contains(" cluster: live nodes ") {
                self.views.push(line);
            } else if statsline::is_check_line(&line) {
                if self.first_check_at.is_none() {
                    self.first_check_at = statsline::timestamp(&line);
                }
                if let Some(checks) = self.checks.as_mut() {
                    let at = statsline::timestamp(&line).unwrap_or(0.0);
                    checks.extend(mix::parse_check(&line, at));
                }
            } else if line.contains("wait for a free worker") {
                self.worker_warnings.push(line);
            } else if line.contains(" INFO loaded ") && self.load_ms.is_none() {
                self.load_ms = line
                    .rsplit_once(" in ")
                    .and_then(|(_, t)| t.trim_end_matches(" ms").parse().ok());
            } else if line.get(24..).is_some_and(|r| r.starts_with("ERROR "))
                && !statsline::is_check_line(&line)
            {
                self.errors.push(line);
            }
        }
    }

    /// Polls until `done` says so, failing after `limit`.
    pub fn wait_until(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&Daemon) -> bool,
    ) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            self.poll()?;
            if done(self) {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(format!("timed out after {limit:?} waiting for {what}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the next stats line and returns it.
    pub fn next_stats(&mut self, limit: Duration) -> Result<StatsLine, Error> {
        let seen = self.stats.len();
        self.wait_until(limit, "a stats line", |d| d.stats.len() > seen)?;
        Ok(self.stats[seen].clone())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after `limit`). Returns the exit status and
    /// how long the shutdown took.
    pub fn stop(&mut self, limit: Duration) -> Result<(ExitStatus, Duration), Error> {
        let started = Instant::now();
        // SAFETY: kill with the pid of a child we started and a valid signal number.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                self.read_log();
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.read_log();
                return Err(format!(
                    "the daemon did not exit within {limit:?} of SIGTERM; killed"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash, no shutdown.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The line logged once the pipeline stopped, if the daemon logs one.
    pub fn final_stats(&self) -> Option<&StatsLine> {
        self.stats.iter().rev().find(|s| s.last)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Follows a growing file, handing out complete lines.
struct LogTail {
    path: PathBuf,
    file: Option<File>,
    partial: Vec<u8>,
}

impl LogTail {
    fn new(path: PathBuf) -> LogTail {
        LogTail {
            path,
            file: None,
            partial: Vec::new(),
        }
    }

    fn new_lines(&mut self) -> Vec<String> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(file) = self.file.as_mut() else {
            return Vec::new();
        };
        let _ = file.read_to_end(&mut self.partial);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        String::from_utf8_lossy(&done)
            .lines()
            .map(String::from)
            .collect()
    }
}
