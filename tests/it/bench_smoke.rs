//! The benchmark tool's smoke runs, so that they cannot rot: each starts a fresh database on
//! the test MariaDB (`SKYPUNCH_TEST_DB`) and built-in servers inside the tool (CI installs
//! nothing for them but the `openssl` command `scripts/test` already ensures), runs the real
//! daemon for 5 s, and fails on a lost result or a stalled schedule. No timing assertions.

use std::process::Command;

use serde_json::Value;

/// Runs `skypunch-bench --smoke <mode>`; the JSON it wrote and its table.
fn smoke(mode: &[&str]) -> (Value, String) {
    let dir = std::env::temp_dir().join(format!(
        "bench_smoke_{}_{}",
        std::process::id(),
        mode.join("")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench-results.json");
    let out = Command::new(env!("CARGO_BIN_EXE_skypunch-bench"))
        .arg("--smoke")
        .args(mode)
        .args(["--skypunch", env!("CARGO_BIN_EXE_skypunch"), "--json"])
        .arg(&json)
        .output()
        .expect("running skypunch-bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    let lost = stdout
        .lines()
        .find(|l| l.starts_with("| LOST "))
        .unwrap_or_else(|| panic!("no LOST row in:\n{stdout}"));
    assert!(lost.trim_end().ends_with("| 0 |"), "{lost}");
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(results["verify"]["lost"], 0, "{results}");
    // In a mix a hanging target whose first check is still waiting out its 4 s timeout at
    // the stop is never checked, rightly: the mix's own test asks that none was overdue.
    if !mode.contains(&"--mix") {
        assert_eq!(results["verify"]["never_checked"], 0, "{results}");
    }
    assert!(
        results["checks_in_window"].as_u64().unwrap() > 0,
        "{results}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    (results, stdout)
}

#[test]
fn the_smoke_run_loses_nothing() {
    smoke(&[]);
}

#[test]
fn https_targets_verified_through_a_private_ca_lose_nothing_and_all_pass() {
    let (results, table) = smoke(&["--tls"]);
    assert_eq!(results["verify"]["targets_failed"], 0, "{results}");
    assert_eq!(results["tls"]["key"], "ECDSA P-256", "{results}");
    assert!(
        results["tls"]["handshake_ms"]["n"].as_u64().unwrap() > 0,
        "the daemon's traces show its handshakes:\n{table}"
    );
}

#[test]
fn a_mixed_fleet_with_slow_and_hanging_services_keeps_its_schedule() {
    let (results, table) = smoke(&["--mix"]);
    let mix = &results["mix"];
    assert_eq!(mix["overdue_never_checked"], 0, "{table}");
    for kind in ["plain 200", "HTTPS 200", "slow 200", "hanging", "500"] {
        let k = &mix["kinds"][kind];
        assert!(
            k["checks"].as_u64().unwrap() > 0,
            "no {kind} check:\n{table}"
        );
    }
    let passed = |kind: &str| mix["kinds"][kind]["passed"].as_u64().unwrap();
    let checks = |kind: &str| mix["kinds"][kind]["checks"].as_u64().unwrap();
    assert_eq!(passed("HTTPS 200"), checks("HTTPS 200"), "{table}");
    assert_eq!(passed("slow 200"), checks("slow 200"), "{table}");
    assert_eq!(
        passed("hanging"),
        0,
        "a service that never answers fails:\n{table}"
    );
    assert_eq!(passed("500"), 0, "{table}");
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
    for walk in results["api_walks"].as_array().unwrap() {
        assert_eq!(walk["rows_each"], 300, "{walk}");
    }
    assert_eq!(results["healthz_beside_crowd"]["healthz_not_200"], 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
