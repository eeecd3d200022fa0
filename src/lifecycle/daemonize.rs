//! Detaching from the terminal, on the main thread of `skypunch start` before any other
//! thread exists: fork, setsid, fork again, stdio to /dev/null, working folder `/`,
//! umask 027. The starting process keeps the read end of a pipe and waits there until the
//! daemon reports that it has started, or why it could not; so a bad database or a second
//! daemon is an error on the terminal, not a silent death in the background.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};

/// The daemon's start-up verdict, carried over the pipe.
#[derive(Debug, PartialEq, Eq)]
pub enum StartReport {
    /// Running and checking; `note` says what it still waits for (the database, with --wait).
    Started { pid: i32, note: Option<String> },
    /// Another daemon holds the pid file.
    AlreadyRunning(i32),
    /// Start-up failed, for this reason; the daemon has exited.
    Failed(String),
}

impl StartReport {
    fn encode(&self) -> String {
        match self {
            StartReport::Started { pid, note: None } => format!("started {pid}\n"),
            StartReport::Started {
                pid,
                note: Some(note),
            } => format!("waiting {pid} {note}"),
            StartReport::AlreadyRunning(pid) => format!("running {pid}\n"),
            StartReport::Failed(reason) => format!("error {reason}"),
        }
    }

    fn decode(text: &str) -> StartReport {
        let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
        let (pid, after_pid) = rest.split_once(' ').unwrap_or((rest, ""));
        let pid = pid.trim().parse::<i32>();
        match (word, pid) {
            ("started", Ok(pid)) => StartReport::Started { pid, note: None },
            ("waiting", Ok(pid)) => StartReport::Started {
                pid,
                note: Some(after_pid.to_string()),
            },
            ("running", Ok(pid)) => StartReport::AlreadyRunning(pid),
            ("error", _) => StartReport::Failed(rest.to_string()),
            _ if text.is_empty() => StartReport::Failed(
                "the daemon exited during start-up without saying why (see its log file)".into(),
            ),
            _ => StartReport::Failed(format!("unexpected start-up report `{text}`")),
        }
    }
}

/// Which side of the fork this is.
pub enum Forked {
    /// The process that ran `skypunch start`, with the daemon's report.
    Parent(StartReport),
    /// The daemon, detached; it must [`Reporter::report`] once start-up is over.
    Daemon(Reporter),
}

/// The daemon's end of the start-up pipe. Reporting (or dropping it) closes the pipe and
/// releases the waiting `skypunch start`.
pub struct Reporter(Option<File>);

impl Reporter {
    /// Sends the verdict; only the first report counts.
    pub fn report(&mut self, report: &StartReport) {
        if let Some(mut pipe) = self.0.take() {
            // The starter may have been interrupted (^C); nobody to tell then.
            let _ = pipe.write_all(report.encode().as_bytes());
        }
    }
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// The number of threads in this process, from /proc; `None` where /proc is not mounted.
fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// Forks the daemon off. Must run before any thread is started: fork copies only the calling
/// thread, and a lock held by another thread would stay locked forever in the child.
pub fn daemonize() -> Result<Forked, String> {
    if let Some(n) = thread_count().filter(|&n| n > 1) {
        return Err(format!(
            "internal error: {n} threads are running before the daemon forks; please report it"
        ));
    }
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_error("cannot create the start-up pipe"));
    }
    // SAFETY: the descriptors were just created and are owned by nothing else.
    let (mut read_end, write_end) =
        unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: the process is single-threaded (checked above), so the child is a faithful copy.
    match unsafe { libc::fork() } {
        -1 => Err(os_error("cannot fork")),
        0 => {
            drop(read_end);
            Ok(Forked::Daemon(first_child(write_end)))
        }
        child => {
            drop(write_end);
            let mut status = 0;
            // SAFETY: waits for the intermediate child, which exits at once; no memory shared.
            unsafe { libc::waitpid(child, &mut status, 0) };
            let mut text = String::new();
            if let Err(e) = read_end.read_to_string(&mut text) {
                return Err(format!("cannot read the daemon's start-up report: {e}"));
            }
            Ok(Forked::Parent(StartReport::decode(&text)))
        }
    }
}

/// Runs in the intermediate child: new session, second fork (so the daemon is not a session
/// leader and can never acquire a controlling terminal), then the daemon's own set-up.
fn first_child(pipe: File) -> Reporter {
    let mut reporter = Reporter(Some(pipe));
    let fail = |reporter: &mut Reporter, what: &str| -> ! {
        reporter.report(&StartReport::Failed(os_error(what)));
        // SAFETY: _exit ends this forked copy without running the parent's exit handlers.
        unsafe { libc::_exit(1) }
    };
    // SAFETY: setsid has no memory arguments; it fails only if we lead a group, which a fresh
    // child does not.
    if unsafe { libc::setsid() } == -1 {
        fail(&mut reporter, "setsid");
    }
    // SAFETY: still single-threaded.
    match unsafe { libc::fork() } {
        -1 => fail(&mut reporter, "cannot fork a second time"),
        0 => {}
        _ => {
            // SAFETY: the intermediate child's work is done; the daemon holds the pipe now.
            unsafe { libc::_exit(0) }
        }
    }
    close_inherited_fds(reporter.0.as_ref().map(|f| f.as_raw_fd()));
    if let Err(reason) = detach_stdio_and_cwd() {
        reporter.report(&StartReport::Failed(reason));
        // SAFETY: as above.
        unsafe { libc::_exit(1) }
    }
    reporter
}

/// Closes every descriptor above stderr that the daemon did not open itself (but `keep`): a
/// pipe inherited from whatever ran `skypunch start` must not stay open for the daemon's life.
fn close_inherited_fds(keep: Option<RawFd>) {
    let listed: Option<Vec<RawFd>> = std::fs::read_dir("/proc/self/fd").ok().map(|dir| {
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    });
    // Without /proc, try every possible descriptor number.
    let fds = listed.unwrap_or_else(|| {
        // SAFETY: sysconf has no memory arguments.
        let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) }.clamp(256, 65536) as RawFd;
        (0..max).collect()
    });
    for fd in fds.into_iter().filter(|&fd| fd > 2 && Some(fd) != keep) {
        // SAFETY: nothing in this fresh process owns these descriptors (the directory listing
        // above is closed already); closing a number that is not open only returns EBADF.
        unsafe { libc::close(fd) };
    }
}

fn detach_stdio_and_cwd() -> Result<(), String> {
    std::env::set_current_dir("/").map_err(|e| format!("cannot change directory to /: {e}"))?;
    // SAFETY: umask only sets the process's file creation mask.
    unsafe { libc::umask(0o027) };
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("cannot open /dev/null: {e}"))?;
    for fd in 0..=2 {
        // SAFETY: dup2 onto the standard descriptors, replacing the terminal.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
            return Err(os_error(
                "cannot redirect the standard streams to /dev/null",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_survive_the_pipe() {
        for report in [
            StartReport::Started {
                pid: 42,
                note: None,
            },
            StartReport::Started {
                pid: 42,
                note: Some("waiting for database u@h:1/db: refused".into()),
            },
            StartReport::AlreadyRunning(7),
            StartReport::Failed(
                "cannot connect to database u@127.0.0.1:1/x: refused\nsecond".into(),
            ),
        ] {
            assert_eq!(StartReport::decode(&report.encode()), report);
        }
    }

    #[test]
    fn silence_is_a_failure_that_points_at_the_log() {
        assert!(
            matches!(StartReport::decode(""), StartReport::Failed(m) if m.contains("log file"))
        );
    }
}
