//! Heartbeat (PUSH) targets, as an operator meets them: a row with `method = 'PUSH'` gets a
//! token from the daemon, a cron job calls `/push/TOKEN` on the daemon's HTTP server, and
//! the target passes while the pushes come, fails `no heartbeat for N s` when they stop,
//! fails with the job's message on `?status=fail&msg=...`, and recovers on the next push,
//! with its history and alerts as for any target. The token is the secret: it is shown
//! whole by `targets ID` alone, and a stranger's guess gets the same 404 as any path. With
//! two daemons on one database, a push to either becomes a result on the one that checks
//! the target.

use std::time::Duration;

use crate::http::{get, get_as, raw, Reply};
use crate::support::daemon::node_config;
use crate::support::{field, stdout, wait_for, Daemon, TestDb};

/// A PUSH target due every `frequency` s with 1 s to spare: no push for `frequency` + 1 s
/// is a failure.
fn push_target(db: &TestDb, name: &str, frequency: u32) -> u64 {
    db.add_target(
        "name, method, url, frequency, timeout",
        &format!("'{name}', 'PUSH', '', {frequency}, 1"),
    )
}

/// Starts the daemon with `settings` and `[http]` on a free port with `http`; the port.
fn start(db: &TestDb, settings: &str, http: &str) -> (Daemon, u16) {
    db.write_config(&format!(
        "StatsInterval: 0\n{settings}\n[http]\nListen: 127.0.0.1:0\n{http}"
    ));
    let daemon = Daemon::start(db);
    let port = wait_for(Duration::from_secs(10), "the http listening line", || {
        db.log()
            .lines()
            .find_map(|l| l.split("http: listening on 127.0.0.1:").nth(1))
            .and_then(|p| p.trim().parse::<u16>().ok())
    });
    (daemon, port)
}

/// The token the daemon made for target `id`.
fn token_of(db: &TestDb, id: u64) -> String {
    wait_for(Duration::from_secs(15), "the daemon's push token", || {
        db.one::<(Option<String>,)>(&format!("SELECT push_token FROM targets WHERE id = {id}"))
            .0
    })
}

fn push(port: u16, token: &str, query: &str) -> Reply {
    get(port, &format!("/push/{token}{query}"))
}

/// Waits until target `id` shows `status` with a description `description` accepts; the
/// description.
fn wait_status(db: &TestDb, id: u64, status: &str, description: impl Fn(&str) -> bool) -> String {
    wait_for(
        Duration::from_secs(15),
        &format!("{status} of {id}"),
        || {
            let (s, d): (String, Option<String>) = db.one(&format!(
                "SELECT status, status_description FROM targets WHERE id = {id}"
            ));
            let d = d.unwrap_or_default();
            (s == status && description(&d)).then_some(d)
        },
    )
}

fn seconds_missing(description: &str) -> u64 {
    description
        .strip_prefix("no heartbeat for ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a missing heartbeat: {description}"))
}

#[test]
fn a_push_target_passes_on_pushes_fails_without_them_and_recovers_on_a_push() {
    let db = TestDb::new();
    let id = push_target(&db, "Nightly backup", 3);
    let (_daemon, port) = start(&db, "", "");
    let token = token_of(&db, id);
    assert_eq!(token.len(), 32, "{token}");

    // Never pushed: one window from when the daemon began to watch, then a failure.
    let missing = wait_status(&db, id, "FAIL", |d| d.starts_with("no heartbeat for "));
    assert!(seconds_missing(&missing) >= 4, "{missing}");

    let ok = push(port, &token, "");
    assert_eq!((ok.status, ok.body.as_str()), (200, "OK\n"));
    wait_status(&db, id, "PASS", |d| d == "heartbeat received");

    // Pushes a little faster than the frequency keep it up; each counts at most once.
    let passes_before: u64 = db
        .one::<(u64,)>(&format!("SELECT pass_count FROM targets WHERE id = {id}"))
        .0;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(push(port, &token, "?msg=run+ok").status, 200);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (status, passes): (String, u64) = db.one(&format!(
        "SELECT status, pass_count FROM targets WHERE id = {id}"
    ));
    assert_eq!(status, "PASS");
    assert!(
        (passes_before + 1..=passes_before + 3).contains(&passes),
        "3 pushes made {} passes",
        passes - passes_before
    );

    // The job stops: a failure once the window (3 s + 1 s) has passed.
    let missing = wait_status(&db, id, "FAIL", |d| d.starts_with("no heartbeat for "));
    let n = seconds_missing(&missing);
    assert!((4..12).contains(&n), "{missing}");

    // It comes back, then reports a failure of its own, then is fine again.
    assert_eq!(push(port, &token, "").status, 200);
    wait_status(&db, id, "PASS", |_| true);
    let failed = push(
        port,
        &token,
        "?status=fail&msg=disk+full%3A+%2Fvar%0Aforged+line",
    );
    assert_eq!(failed.status, 200, "{}", failed.body);
    wait_status(&db, id, "FAIL", |d| d == "disk full: /var forged line");
    assert_eq!(push(port, &token, "?status=ok").status, 200);
    wait_status(&db, id, "PASS", |d| d == "heartbeat received");

    // History and alerts as for any target: three FAIL periods, each alerted and closed.
    let (incidents, open): (u64, u64) = db.one(&format!(
        "SELECT COUNT(*), CAST(COALESCE(SUM(ended IS NULL), 0) AS UNSIGNED) FROM incidents \
         WHERE target_id = {id}"
    ));
    assert_eq!((incidents, open), (3, 0));
    let kinds: Vec<(String,)> = db.query(&format!(
        "SELECT kind FROM alerts WHERE target_id = {id} ORDER BY id"
    ));
    let kinds: Vec<&str> = kinds.iter().map(|k| k.0.as_str()).collect();
    assert_eq!(
        kinds,
        ["FAILURE", "SUCCESS", "FAILURE", "SUCCESS", "FAILURE", "SUCCESS"]
    );
    let trace: (String,) = db.one(&format!(
        "SELECT trace FROM alerts WHERE target_id = {id} AND kind = 'FAILURE' ORDER BY id DESC LIMIT 1"
    ));
    assert!(trace.0.contains("(status=fail)"), "{}", trace.0);

    // The check lines name the target and /push/, never the token.
    let log = db.log();
    let lines = crate::support::check_lines(&log, id);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Nightly backup")
                && l.contains("PUSH /push/ FAIL (no heartbeat for ")),
        "{lines:?}"
    );
    assert!(!log.contains(&token), "the log shows the token");
}

#[test]
fn a_token_is_the_secret_shown_whole_by_targets_id_alone() {
    let db = TestDb::new();
    let id = push_target(&db, "Cron", 60);
    db.add_target(
        "name, method, url, push_token, enabled",
        "'Retired', 'PUSH', '', 'retired-job-token-0001', 0",
    );
    let (_daemon, port) = start(&db, "LogLevel: debug", "User: mon\nPassword: pw");
    let token = token_of(&db, id);

    // A stranger's guess, a disabled target's token and any unknown path answer alike.
    let unknown = push(port, &format!("{}x", &token[..31]), "");
    let disabled = push(port, "retired-job-token-0001", "");
    let elsewhere = get_as(port, "/no/such/page", "mon:pw");
    for r in [&unknown, &disabled, &elsewhere] {
        assert_eq!((r.status, r.body.as_str()), (404, "not found\n"));
    }
    // No Basic authentication is asked: the token is enough (PushAuth is off).
    assert_eq!(push(port, &token, "").status, 200);
    assert_eq!(get(port, "/metrics").status, 401);

    // What the push endpoint refuses.
    assert_eq!(push(port, &token, "?status=maybe").status, 400);
    let put = raw(
        port,
        format!("PUT /push/{token} HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(put.status, 405);
    assert!(
        put.headers.contains("allow: get, head, post"),
        "{}",
        put.headers
    );
    let post = raw(
        port,
        format!("POST /push/{token}?msg=from+post HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(post.status, 200, "{}", post.body);
    let with_body = raw(
        port,
        format!("POST /push/{token} HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody").as_bytes(),
    );
    assert_eq!(with_body.status, 413);
    wait_status(&db, id, "PASS", |d| d == "heartbeat: from post");

    // Masked everywhere but `targets ID`.
    let masked = format!("{}…", &token[..4]);
    let api = get_as(port, &format!("/api/v1/targets/{id}"), "mon:pw");
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v["push_token"], serde_json::json!(masked));
    assert_eq!(v["method"], "PUSH");
    assert_eq!(
        v["phases"],
        serde_json::Value::Null,
        "nothing was requested"
    );
    for path in ["/api/v1/targets", "/metrics", "/", &format!("/target/{id}")] {
        let r = get_as(port, path, "mon:pw");
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.body.contains(&token), "{path} shows the token");
    }
    let list = stdout(&db.cli(&["targets"]));
    assert!(list.contains("Cron") && !list.contains(&token), "{list}");
    let detail = stdout(&db.cli(&["targets", &id.to_string()]));
    assert_eq!(field(&detail, "Push Token"), token);
    assert!(
        field(&detail, "Push URL").ends_with(&format!("/push/{token}")),
        "{detail}"
    );
    assert!(
        field(&detail, "Last Push").contains("status=ok"),
        "{detail}"
    );
    assert!(
        field(&detail, "Schedule").contains("FAIL after 61s without one"),
        "{detail}"
    );
    let test = db.cli(&["targets", &id.to_string(), "test"]);
    assert!(test.status.success(), "{}", stdout(&test));
    assert!(
        stdout(&test).contains("PUSH /push/ PASS (heartbeat: from post)"),
        "{}",
        stdout(&test)
    );
    let log = db.log();
    assert!(log.contains(&format!("push token {masked} made")), "{log}");
    assert!(
        log.contains(&format!("http: push PASS for {masked}")),
        "{log}"
    );
    assert!(!log.contains(&token), "the log shows the token");
}

#[test]
fn push_auth_asks_a_push_for_the_basic_credentials_too() {
    let db = TestDb::new();
    let id = push_target(&db, "Guarded job", 60);
    let (_daemon, port) = start(&db, "", "User: mon\nPassword: pw\nPushAuth: yes");
    let token = token_of(&db, id);
    let bare = push(port, &token, "");
    assert_eq!(bare.status, 401);
    assert!(
        bare.headers.contains("www-authenticate: basic"),
        "{}",
        bare.headers
    );
    let wrong = get_as(port, &format!("/push/{token}"), "mon:nope");
    assert_eq!(wrong.status, 401);
    let right = get_as(port, &format!("/push/{token}"), "mon:pw");
    assert_eq!((right.status, right.body.as_str()), (200, "OK\n"));
    wait_status(&db, id, "PASS", |d| d == "heartbeat received");
}

/// A daemon of a cluster sharing `db`, with its own log, pid file and HTTP server; its log's
/// path and its port.
fn start_node(db: &TestDb, name: &str) -> (Daemon, std::path::PathBuf, u16) {
    let (config, log) = node_config(db, name, &[], "", "[http]\nListen: 127.0.0.1:0");
    let daemon = Daemon::spawn_at(&config, &log.with_extension("stderr"), &[], &[]);
    let port = wait_for(Duration::from_secs(20), "the node's http line", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.split("http: listening on 127.0.0.1:").nth(1))
            .and_then(|p| p.trim().parse::<u16>().ok())
    });
    (daemon, log, port)
}

#[test]
fn a_push_to_any_node_becomes_a_result_on_the_node_that_checks_the_target() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let ids: Vec<u64> = (0..8)
        .map(|i| push_target(&db, &format!("Job {i}"), 60))
        .collect();
    let nodes = [start_node(&db, "alpha"), start_node(&db, "beta")];
    let log = |i: usize| std::fs::read_to_string(&nodes[i].1).unwrap_or_default();
    wait_for(Duration::from_secs(20), "both nodes see both", || {
        (0..2)
            .all(|i| log(i).contains("cluster: live nodes alpha, beta;"))
            .then_some(())
    });
    // Which node checks each target, as the nodes decide it.
    let owner = |id: u64| -> usize {
        let detail = stdout(&db.cli(&["targets", &id.to_string()]));
        let by = field(&detail, "Checked By");
        usize::from(by.starts_with("beta"))
    };
    let pick = |node: usize| {
        *ids.iter()
            .find(|id| owner(**id) == node)
            .expect("a target each")
    };
    for owned_by in [0, 1] {
        let id = pick(owned_by);
        let token = token_of(&db, id);
        // Pushed to the other node.
        let other = 1 - owned_by;
        assert_eq!(
            push(nodes[other].2, &token, "?msg=via+the+other+node").status,
            200
        );
        wait_status(&db, id, "PASS", |d| d == "heartbeat: via the other node");
        let line = "PUSH /push/ PASS (heartbeat: via the other node)";
        let in_log = |i: usize| {
            crate::support::check_lines(&log(i), id)
                .iter()
                .any(|l| l.contains(line))
        };
        assert!(in_log(owned_by), "the owner records it");
        assert!(!in_log(other), "the node that got the push only stored it");
    }
}
