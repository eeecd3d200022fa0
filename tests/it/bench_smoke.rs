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
