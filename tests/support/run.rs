//! What the reliability tests share: starting the real daemon with its stderr kept in a
//! file, killing it, reading its memory, counting a target's checks in the log, and writing
//! the figures a test measured to `target/reliability/<test>.json` for RELIABILITY.md.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{check_lines, skypunch_cmd, wait_for, Daemon, TestDb};

/// Starts `skypunch -c <config> start --foreground [extra...]`, stderr appended to
/// `<dir>/stderr.log`; does not wait for anything.
pub fn spawn(db: &TestDb, extra: &[&str]) -> Daemon {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_path(db))
        .unwrap();
    let mut args = vec!["start", "--foreground"];
    args.extend_from_slice(extra);
    let child = skypunch_cmd(&db.config_path(), &args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    Daemon { child }
}

/// Starts the daemon and waits for its `started` line (the `started` lines already in the log
/// from an earlier run are not counted).
pub fn start(db: &TestDb) -> Daemon {
    let before = started_lines(db);
    let d = spawn(db, &[]);
    wait_for(
        Duration::from_secs(15),
        "the daemon's `started` line",
        || (started_lines(db) > before).then_some(()),
    );
    d
}

fn started_lines(db: &TestDb) -> usize {
    db.log()
        .lines()
        .filter(|l| l.contains(" skypunch ") && l.contains(" started: "))
        .count()
}

pub fn stderr_path(db: &TestDb) -> PathBuf {
    db.dir.join("stderr.log")
}

/// Everything the daemon wrote to stderr.
pub fn stderr(db: &TestDb) -> String {
    std::fs::read_to_string(stderr_path(db)).unwrap_or_default()
}

/// SIGKILL: no shutdown, no flush.
pub fn kill(mut daemon: Daemon) {
    let _ = daemon.child.kill();
    let _ = daemon.child.wait();
}

/// SIGTERM, then waits at most `limit`; returns the exit code and how long the exit took.
pub fn terminate(mut daemon: Daemon, limit: Duration) -> (Option<i32>, Duration) {
    let pid = daemon.child.id() as i32;
    let started = Instant::now();
    // SAFETY: kill with the pid of a child we spawned and a valid signal number.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    while started.elapsed() < limit {
        if let Ok(Some(status)) = daemon.child.try_wait() {
            return (status.code(), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = daemon.child.kill();
    panic!("the daemon did not exit within {limit:?} of SIGTERM");
}

/// True while the process has not exited.
pub fn alive(daemon: &mut Daemon) -> bool {
    matches!(daemon.child.try_wait(), Ok(None))
}

/// The daemon's resident memory in KiB, from /proc/<pid>/status.
pub fn rss_kib(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id()))
        .expect("the daemon's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// The number of check lines the log holds for target `id`.
pub fn logged_checks(db: &TestDb, id: u64) -> i64 {
    check_lines(&db.log(), id).len() as i64
}

/// `pass_count + fail_count` of target `id`.
pub fn counted_checks(db: &TestDb, id: u64) -> i64 {
    db.one(&format!(
        "SELECT pass_count + fail_count FROM targets WHERE id = {id}"
    ))
}

/// Log lines containing `needle`.
pub fn lines_with(db: &TestDb, needle: &str) -> Vec<String> {
    db.log()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

/// Asserts the invariants every row must keep whatever happened: the pass and fail counters
/// add up to the status counters, and the status is the last check's.
#[track_caller]
pub fn assert_rows_consistent(db: &TestDb) {
    type Row = (u64, i64, i64, i64, String, String, i64);
    let rows: Vec<Row> = db.query(
        "SELECT id, pass_count + fail_count, \
         count200 + count300 + count400 + count500 + network_fails, repeated_fails, status, \
         COALESCE(status_description, ''), fail_count FROM targets",
    );
    for (id, checks, by_status, repeated, status, description, fails) in rows {
        assert_eq!(
            checks, by_status,
            "target {id}: pass_count + fail_count != count200..count500 + network_fails"
        );
        assert!(
            ["NEW", "PASS", "FAIL"].contains(&status.as_str()),
            "target {id}: status {status}"
        );
        if status == "PASS" {
            assert_eq!(repeated, 0, "target {id}: PASS with repeated_fails");
        }
        if status == "FAIL" && !description.starts_with("config error: ") {
            assert!(
                repeated >= 1 && repeated <= fails,
                "target {id}: FAIL with repeated_fails {repeated} of {fails} fails"
            );
        }
    }
}

/// Writes this test's figures to `target/reliability/<name>.json` and prints them.
pub fn figures(name: &str, value: serde_json::Value) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("reliability");
    std::fs::create_dir_all(&dir).unwrap();
    let text = serde_json::to_string_pretty(&value).unwrap();
    std::fs::write(dir.join(format!("{name}.json")), &text).unwrap();
    println!("reliability figures {name}: {text}");
}
