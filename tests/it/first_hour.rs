//! What a new operator reads in the first hour, and whether it is true: `status` from a
//! configuration with another pid file agrees with the node table; `targets ID history`
//! says an incident alerted only when someone was told; and times: the daemon and
//! `targets ID test` store trace times in UTC marked `Z`, whatever zone each runs in, while
//! the CLI shows them in the reader's zone with its offset.

use std::process::Command;
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};

use crate::support::http::HttpServer;
use crate::support::{skypunch_cmd, stdout, wait_for, Daemon, TestDb};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn status_with_another_pid_file_says_this_hosts_node_runs_elsewhere() {
    let db = TestDb::new();
    let _daemon = Daemon::start(&db);
    let other = db.dir.join("other.conf");
    let text = std::fs::read_to_string(db.config_path()).unwrap();
    let other_pid = db.dir.join("other.pid");
    let text = text.replace(
        &format!("PidFile: {}", db.pid_path().display()),
        &format!("PidFile: {}", other_pid.display()),
    );
    std::fs::write(&other, text).unwrap();
    let out = skypunch_cmd(&other, &["status"]).output().unwrap();
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    let first = said.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "skypunch is not running here (pid file {}); this host's node ",
            other_pid.display()
        )) && first.contains(" is active in the cluster"),
        "{said}"
    );
    assert!(said.contains("(this host)"), "{said}");
}

/// The cells of the incident row of `targets ID history`.
fn incident_row(db: &TestDb, id: u64) -> Vec<String> {
    let out = skypunch_cmd(&db.config_path(), &["targets", &id.to_string(), "history"])
        .output()
        .unwrap();
    let text = stdout(&out);
    let header = text.lines().next().unwrap_or_default().to_string();
    assert!(header.contains("(1 incident, "), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains("target status:503 != 200"))
        .unwrap_or_else(|| panic!("no incident row:\n{text}"));
    row.split('|').map(|c| c.trim().to_string()).collect()
}

#[test]
fn history_says_alerted_only_when_a_notifier_was_told() {
    let db = TestDb::new();
    db.exec(
        "INSERT INTO notifiers (name, type, address, params, enabled) \
         VALUES ('On call', 'SMTP', 'oncall@example.com', 'server=127.0.0.1', 0)",
    );
    let web = HttpServer::start(503);
    let id = db.add_watched("shop", &web.url("/"));
    let daemon = Daemon::start(&db);
    wait_for(LIMIT, "the FAILURE alert, expanded", || {
        let n: i64 = db.one(&format!(
            "SELECT COUNT(*) FROM alerts WHERE target_id = {id} AND kind = 'FAILURE' AND expanded = 1"
        ));
        (n > 0).then_some(())
    });
    drop(daemon);
    let row = incident_row(&db, id);
    assert!(
        row.iter().any(|c| c == "No (no enabled notifier)"),
        "{row:?}"
    );
    assert!(!row.iter().any(|c| c == "Yes"), "{row:?}");

    // Once a delivery was made, the same incident alerted.
    db.exec(&format!(
        "INSERT INTO alert_deliveries (alert_id, notifier_id, state, sent_at) \
         SELECT a.id, n.id, 'SENT', NOW(3) FROM alerts a, notifiers n WHERE a.target_id = {id}"
    ));
    let row = incident_row(&db, id);
    assert!(row.iter().any(|c| c == "Yes"), "{row:?}");
}

/// The offset of `zone` now, as `date` (the tz database) gives it: `+01:00`.
fn offset_of(zone: &str) -> String {
    let out = Command::new("date")
        .arg("+%:z")
        .env("TZ", zone)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every line of a stored trace starts with a UTC time marked `Z`; they are returned.
fn utc_stamps(trace: &str) -> Vec<NaiveDateTime> {
    trace
        .lines()
        .map(|l| {
            let stamp = &l[..24];
            assert!(stamp.ends_with('Z'), "no UTC mark: {l}");
            NaiveDateTime::parse_from_str(&stamp[..23], "%Y-%m-%d %H:%M:%S%.3f").unwrap()
        })
        .collect()
}

fn assert_recent(stamps: &[NaiveDateTime], who: &str) {
    let now = Utc::now().naive_utc();
    for t in stamps {
        let off = (now - *t).num_seconds().abs();
        assert!(off < 120, "{who} stored {t}, {off} s from UTC now");
    }
}

#[test]
fn trace_times_are_stored_in_utc_and_shown_in_the_readers_zone() {
    let db = TestDb::new();
    let web = HttpServer::start(200);
    let id = db.add_watched("shop", &web.url("/"));
    let trace =
        || db.one::<Option<String>>(&format!("SELECT last_trace FROM targets WHERE id = {id}"));
    let daemon = Daemon::start_with(&db, &[("TZ", "America/New_York")]);
    let by_daemon = wait_for(LIMIT, "a check by the daemon", trace);
    drop(daemon);
    assert_recent(&utc_stamps(&by_daemon), "the daemon in New York");

    let paris = offset_of("Europe/Paris");
    let test = skypunch_cmd(&db.config_path(), &["targets", &id.to_string(), "test"])
        .env("TZ", "Europe/Paris")
        .output()
        .unwrap();
    let printed = stdout(&test);
    assert_eq!(test.status.code(), Some(0), "{printed}");
    let steps: Vec<&str> = printed.lines().skip(1).collect();
    assert!(!steps.is_empty(), "{printed}");
    for step in &steps {
        assert_eq!(
            &step[23..24 + paris.len()],
            format!(" {paris}"),
            "not Paris time: {step}"
        );
    }
    let by_cli = trace().unwrap();
    assert_ne!(by_cli, by_daemon, "the test's check was not recorded");
    assert_recent(&utc_stamps(&by_cli), "targets ID test in Paris");

    let shown = skypunch_cmd(&db.config_path(), &["targets", &id.to_string()])
        .env("TZ", "Europe/Paris")
        .output()
        .unwrap();
    let shown = stdout(&shown);
    let updated = shown.lines().find(|l| l.contains("Last Updated")).unwrap();
    assert!(
        updated.trim_end_matches([' ', '|']).ends_with(&paris),
        "{updated}"
    );
    let after = shown
        .split("Last check trace:\n")
        .nth(1)
        .expect("no trace shown");
    for line in after.lines() {
        assert!(
            !line[..24].ends_with('Z'),
            "a UTC time shown as it is stored: {line}"
        );
        assert_eq!(&line[23..24 + paris.len()], format!(" {paris}"), "{line}");
    }
}
