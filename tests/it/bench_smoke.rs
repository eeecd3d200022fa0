//! The benchmark tool's smoke run, so that it cannot rot: 200 targets every second for 5 s
//! against the built-in HTTP server and a fresh database on the test MariaDB
//! (`SKYPUNCH_TEST_DB`), checking that nothing was lost. No timing assertions.

use std::process::Command;

#[test]
fn the_smoke_run_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("bench_smoke_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench-results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_skypunch-bench"))
        .args([
            "--smoke",
            "--skypunch",
            env!("CARGO_BIN_EXE_skypunch"),
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("running skypunch-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    let lost = stdout
        .lines()
        .find(|l| l.starts_with("| LOST "))
        .unwrap_or_else(|| panic!("no LOST row in:\n{stdout}"));
    assert!(lost.trim_end().ends_with("| 0 |"), "{lost}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(results["verify"]["lost"], 0, "{results}");
    assert_eq!(results["verify"]["never_checked"], 0, "{results}");
    assert!(
        results["checks_in_window"].as_u64().unwrap() > 0,
        "{results}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--http`, small: every scrape and page answered 200 and the daemon stopped cleanly while
/// hostile clients hammered its server. No timing assertions.
#[test]
fn the_http_run_gets_every_page_and_the_daemon_exits_cleanly() {
    let dir = std::env::temp_dir().join(format!("bench_http_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench-http.json");
    let out = Command::new(env!("CARGO_BIN_EXE_skypunch-bench"))
        .args(["--http", "--targets", "300", "--frequency", "5"])
        .args(["--duration", "2", "--warmup", "1", "--workers", "8"])
        .args(["--skypunch", env!("CARGO_BIN_EXE_skypunch"), "--json"])
        .arg(&json)
        .output()
        .expect("running skypunch-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(results["daemon_exit"], "exit status: 0", "{results}");
    assert!(results["samples"].as_u64().unwrap() > 300 * 5, "{results}");
    assert!(
        results["front_page_gzip_bytes"].as_u64().unwrap() > 0,
        "{results}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
