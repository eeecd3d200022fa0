//! Helpers for the lifecycle tests: a slow HTTP server on 127.0.0.1 for the daemon to check,
//! a guard that kills a daemon a failed test left behind, and pid file and process probes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// Starts an HTTP server that answers every request `200 OK` after `delay`, each connection
/// on its own thread; lives as long as the test process.
pub fn slow_http_server(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                // Read the request head up to the blank line.
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" || line == "\n" {
                        break;
                    }
                    line.clear();
                }
                std::thread::sleep(delay);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            });
        }
    });
    addr
}

/// Sends a signal to a process.
pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill with a pid this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// Whether some process holds an flock on the file (tried without waiting).
pub fn is_locked(path: &Path) -> bool {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0
}

/// The pid in `skypunch started (pid N)`.
pub fn started_pid(out: &Output) -> i32 {
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = text
        .split("skypunch started (pid ")
        .nth(1)
        .unwrap_or_else(|| panic!("no `skypunch started (pid N)` in {text:?}"));
    rest.split(')').next().unwrap().parse().unwrap()
}

/// Lines of a log that are check lines of this target: `... [id] name ... PASS (...)`, not
/// the other lines about it (a schedule warning).
pub fn check_lines(log: &str, id: u64) -> usize {
    let mark = format!(" [{id}] ");
    log.lines()
        .filter(|l| l.contains(&mark) && (l.contains(" PASS (") || l.contains(" FAIL (")))
        .count()
}

/// The exit code, which a test expects to exist (no death by signal).
pub fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {out:?}"))
}

/// Whether process `pid` is running, as `ps` would tell an operator: it exists (`kill -0`;
/// EPERM means it exists but is not ours) and is not a zombie that nobody has reaped yet (in
/// a container without an init that reaps, a daemon that has exited can stay one).
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only asks whether the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        // Gone between the two looks.
        Err(_) => false,
    }
}
