//! What the reliability tests share: the daemon's stderr, counting a target's checks in the
//! log and the database, the invariants of every row, and writing the figures a test measured
//! to `target/reliability/<test>.json` for RELIABILITY.md.

#![allow(dead_code)]

use std::path::PathBuf;

use super::{check_lines, TestDb};

pub use super::daemon::stderr;

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
