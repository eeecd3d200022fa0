//! The daemon's life outside its pipeline: detaching from the terminal ([`daemonize`]), the
//! locked pid file ([`pidfile`]), and what `stop`, `status` and `reload` do with it. Runs on
//! the main thread of the daemon and of the CLI; nothing here starts a thread.

pub mod daemonize;
pub mod pidfile;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

pub use pidfile::{PidFile, Probe};

/// Is the process running, not counting a zombie that its parent has not reaped yet (in a
/// container without an init that reaps, a daemon that has exited can stay one)?
pub fn process_alive(pid: i32) -> bool {
    if !pidfile::process_exists(pid) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => true,
    }
}

/// How `stop` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The daemon exited within the time allowed.
    Exited { pid: i32 },
    /// No daemon was running.
    NotRunning,
    /// No daemon was running, but a pid file was left behind; it was removed.
    Stale { pid: Option<i32> },
}

/// Why `stop` failed.
#[derive(Debug, PartialEq, Eq)]
pub enum StopError {
    /// The daemon did not exit in time; it is still finishing.
    Timeout { pid: i32, waited: Duration },
    /// Not allowed to read the pid file or to signal the process.
    Denied(String),
}

/// Sends SIGTERM to the daemon named by the pid file and waits (at most `limit`) until it has
/// let go of the pid file and the process is gone.
pub fn stop(path: &Path, limit: Duration) -> Result<Stopped, StopError> {
    let pid = match pidfile::probe(path) {
        Probe::Absent => return Ok(Stopped::NotRunning),
        Probe::Stale { pid } => {
            pidfile::remove_stale(path).map_err(|e| {
                StopError::Denied(format!(
                    "cannot remove stale pid file {}: {e}",
                    path.display()
                ))
            })?;
            return Ok(Stopped::Stale { pid });
        }
        Probe::Unknown { reason } => return Err(StopError::Denied(reason)),
        Probe::Running { pid, .. } => pid,
    };
    // SAFETY: kill with a pid read from the locked pid file and a constant signal.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(StopError::Denied(format!(
                "cannot send SIGTERM to skypunch (pid {pid}): {e}"
            )));
        }
    }
    let start = Instant::now();
    loop {
        let released = !matches!(pidfile::probe(path), Probe::Running { pid: p, .. } if p == pid);
        if released && !process_alive(pid) {
            return Ok(Stopped::Exited { pid });
        }
        if start.elapsed() >= limit {
            return Err(StopError::Timeout { pid, waited: limit });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGHUP to the running daemon: it reopens its log file and re-reads its configuration.
pub fn reload(path: &Path) -> Result<Option<i32>, String> {
    match pidfile::probe(path) {
        Probe::Running { pid, .. } => {
            // SAFETY: kill with a pid read from the locked pid file and a constant signal.
            if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(format!("cannot send SIGHUP to skypunch (pid {pid}): {e}"));
            }
            Ok(Some(pid))
        }
        Probe::Unknown { reason } => Err(reason),
        Probe::Absent | Probe::Stale { .. } => Ok(None),
    }
}

/// `3h 2m`, `2d 4h`, `5m 3s`: the two largest units of an uptime.
pub fn format_uptime(since: SystemTime, now: SystemTime) -> String {
    let secs = now.duration_since(since).unwrap_or_default().as_secs();
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_shows_the_two_largest_units() {
        let t0 = SystemTime::UNIX_EPOCH;
        let at = |s: u64| format_uptime(t0, t0 + Duration::from_secs(s));
        assert_eq!(at(7), "7s");
        assert_eq!(at(125), "2m 5s");
        assert_eq!(at(3 * 3600 + 2 * 60 + 9), "3h 2m");
        assert_eq!(at(2 * 86400 + 4 * 3600 + 1), "2d 4h");
        assert_eq!(format_uptime(t0 + Duration::from_secs(5), t0), "0s");
    }

    #[test]
    fn this_process_is_alive_and_a_free_pid_is_not() {
        assert!(process_alive(std::process::id() as i32));
        assert!(!process_alive(0));
        assert!(!process_alive(i32::MAX));
    }
}
