//! The pid file, held with an `flock` for as long as the daemon runs: the lock, not the
//! file's existence, says that a daemon is running, so a file left behind by a killed daemon
//! is recognised as stale. Used on the daemon's main thread (acquire, release) and by the
//! `start`, `stop` and `status` commands (probe).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The pid file of this running daemon. The lock is released and the file removed on drop.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    /// Held only for its lock, which goes when the descriptor is closed.
    _lock: File,
}

/// Why the pid file could not be taken.
#[derive(Debug)]
pub enum AcquireError {
    /// Another process holds the lock: a daemon with this configuration runs already.
    Running(i32),
    /// The file could not be created, locked or written.
    Io { path: PathBuf, reason: String },
}

impl std::fmt::Display for AcquireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcquireError::Running(pid) => write!(f, "skypunch is already running (pid {pid})"),
            AcquireError::Io { path, reason } => {
                write!(f, "cannot use pid file {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for AcquireError {}

/// What a pid file says about the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No pid file.
    Absent,
    /// The lock is held: the daemon runs with this pid, started at this time (the file's
    /// modification time, written once at start).
    Running { pid: i32, since: SystemTime },
    /// A pid file whose lock nobody holds: the daemon died without cleaning up. `pid` is what
    /// the file says, when it says anything.
    Stale { pid: Option<i32> },
    /// The pid file exists but cannot be read (permissions): the state is unknown.
    Unknown { reason: String },
}

/// Takes the lock (shared or exclusive) without waiting: false when someone else holds it.
/// On Linux std's file locks are `flock`s, which the original's users and tools expect.
fn try_lock(file: &File, shared: bool) -> io::Result<bool> {
    let result = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match result {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

fn read_pid(file: &mut File) -> Option<i32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok().filter(|&pid: &i32| pid > 0)
}

impl PidFile {
    /// Creates (or takes over a stale) pid file, locks it and writes this process's pid.
    /// Fails with [`AcquireError::Running`] when another process holds the lock.
    pub fn acquire(path: &Path) -> Result<PidFile, AcquireError> {
        let io_err = |e: io::Error| AcquireError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        // A daemon that is stopping unlinks its file and then drops the lock; if we opened the
        // file just before the unlink, our lock is on a file nobody can see. Retry then.
        for _ in 0..10 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .map_err(io_err)?;
            if !try_lock(&file, false).map_err(io_err)? {
                // Held. The holder writes its pid right after locking; give it a moment.
                for _ in 0..20 {
                    if let Some(pid) = read_pid(&mut file) {
                        return Err(AcquireError::Running(pid));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                return Err(AcquireError::Running(0));
            }
            let same = match (file.metadata(), std::fs::metadata(path)) {
                (Ok(open), Ok(named)) => open.ino() == named.ino() && open.dev() == named.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
            // The umask (027 in the daemon) would hide the pid from `status` run by others.
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(io_err)?;
            file.set_len(0).map_err(io_err)?;
            file.rewind().map_err(io_err)?;
            writeln!(file, "{}", std::process::id()).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            return Ok(PidFile {
                path: path.to_path_buf(),
                _lock: file,
            });
        }
        Err(io_err(io::Error::other(
            "the file kept being replaced while locking it",
        )))
    }
}

impl Drop for PidFile {
    /// Removes the file while still holding the lock, so that nobody sees a file without a
    /// lock; the lock goes with the descriptor.
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("cannot remove pid file {}: {e}", self.path.display());
        }
        // `_lock`, and with it the lock, is closed after this body.
    }
}

/// Reads the pid file without changing it: is a daemon holding it?
pub fn probe(path: &Path) -> Probe {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Probe::Absent,
        Err(e) => {
            return Probe::Unknown {
                reason: format!("cannot read pid file {}: {e}", path.display()),
            }
        }
    };
    match try_lock(&file, true) {
        Ok(true) => {
            // Nobody holds it. Our shared lock goes when `file` is dropped.
            Probe::Stale {
                pid: read_pid(&mut file),
            }
        }
        Ok(false) => {
            // Held; the pid is written right after the lock is taken.
            for _ in 0..20 {
                if let Some(pid) = read_pid(&mut file) {
                    let since = file
                        .metadata()
                        .and_then(|m| m.modified())
                        .unwrap_or_else(|_| SystemTime::now());
                    return Probe::Running { pid, since };
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Probe::Unknown {
                reason: format!("pid file {} is locked but holds no pid", path.display()),
            }
        }
        Err(e) => Probe::Unknown {
            reason: format!("cannot lock pid file {}: {e}", path.display()),
        },
    }
}

/// Removes a stale pid file, unless a daemon took it over meanwhile.
pub fn remove_stale(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    match try_lock(&file, false)? {
        true => std::fs::remove_file(path),
        false => Ok(()),
    }
}

/// Is a process with this pid alive (or a zombie)? EPERM means it exists but is not ours.
pub fn process_exists(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sp-pidfile-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("skypunch.pid")
    }

    #[test]
    fn a_held_file_is_running_and_refuses_a_second_holder() {
        let path = temp("held");
        let held = PidFile::acquire(&path).unwrap();
        let me = std::process::id() as i32;
        assert!(matches!(probe(&path), Probe::Running { pid, .. } if pid == me));
        // flock locks belong to the open file description, so a second open in this same
        // process conflicts just as another process would.
        match PidFile::acquire(&path) {
            Err(AcquireError::Running(pid)) => assert_eq!(pid, me),
            other => panic!("expected Running, got {other:?}"),
        }
        drop(held);
        assert_eq!(probe(&path), Probe::Absent);
    }

    #[test]
    fn a_file_nobody_locks_is_stale_and_can_be_taken_over() {
        let path = temp("stale");
        std::fs::write(&path, "999999\n").unwrap();
        assert_eq!(probe(&path), Probe::Stale { pid: Some(999999) });
        let held = PidFile::acquire(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        drop(held);
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(probe(&path), Probe::Stale { pid: None });
        remove_stale(&path).unwrap();
        assert_eq!(probe(&path), Probe::Absent);
    }
}
