//! A target's `conditions` as the operator types them into its row, judged against real
//! servers on 127.0.0.1: a JSON body passing and then failing (the failure stored in
//! `status_description` by the running daemon), a bad line a config error on its row, a
//! response header, the response time, and `[STATUS]` standing in for `pass_result`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql::prelude::Queryable;

use crate::support::servers::{serve, write_response};
use crate::support::{stdout, wait_for, Daemon, TestDb};

/// `(status, status_description)` of target `id`.
fn state(db: &TestDb, id: u64) -> (String, String) {
    let (status, description): (String, Option<String>) = db.one(&format!(
        "SELECT status, status_description FROM targets WHERE id = {id}"
    ));
    (status, description.unwrap_or_default())
}

/// Inserts a target checked every second with a 2 s timeout and these conditions; its id.
fn add(db: &TestDb, name: &str, url: &str, conditions: &str) -> u64 {
    let mut conn = db.conn();
    conn.exec_drop(
        "INSERT INTO targets (name, url, frequency, timeout, conditions) VALUES (?, ?, 1, 2, ?)",
        (name, url, conditions),
    )
    .unwrap();
    conn.last_insert_id()
}

#[test]
fn a_json_body_passes_then_fails_by_its_conditions_and_a_bad_line_is_a_config_error() {
    let db = TestDb::new();
    let body = Arc::new(Mutex::new(
        r#"{"status": "ok", "items": [{"id": 7}, {"id": 8}]}"#,
    ));
    let served = body.clone();
    let server = serve(move |_, w| {
        let body = *served.lock().unwrap();
        let json = [("Content-Type", "application/json")];
        write_response(w, "200 OK", &json, body.as_bytes())
    });
    let watched = add(
        &db,
        "api",
        &server.url("/health"),
        "# the API says it is well\n[BODY].status == ok\nlen([BODY].items) > 1\n\
         [BODY].items[0].id == 7\nhas([BODY].error) == false",
    );
    let broken = add(
        &db,
        "typo",
        &server.url("/health"),
        "[STATUS] == 200\n[BODY].status ok",
    );
    db.write_config("StatsInterval: 0");
    let daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(15), "the conditions to pass", || {
        (state(&db, watched).0 == "PASS").then_some(())
    });
    let (status, description) = wait_for(Duration::from_secs(15), "the config error", || {
        Some(state(&db, broken)).filter(|(_, d)| d.starts_with("config error"))
    });
    assert_eq!(status, "FAIL");
    assert_eq!(
        description,
        "config error: conditions line 2, column 15: expected an operator after \
         [BODY].status: one of ==, !=, <, <=, >, >="
    );

    *body.lock().unwrap() = r#"{"status": "degraded", "items": []}"#;
    let (_, description) = wait_for(Duration::from_secs(15), "the conditions to fail", || {
        Some(state(&db, watched)).filter(|(s, _)| s == "FAIL")
    });
    assert_eq!(description, r#"[BODY].status == ok: got "degraded""#);
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    let log = db.log();
    assert!(
        log.contains(&format!(
            "[{watched}] api                            GET {} FAIL ([BODY].status == ok: got \
             \"degraded\")",
            server.url("/health")
        )),
        "{log}"
    );
    let (kind, last_trace): (String, String) = db.one(&format!(
        "SELECT JSON_VALUE(snapshot, '$.status_description'), t.last_trace FROM alerts a \
         JOIN targets t ON t.id = a.target_id WHERE a.target_id = {watched} \
         AND a.kind = 'FAILURE'"
    ));
    assert_eq!(kind, r#"[BODY].status == ok: got "degraded""#);
    assert!(
        last_trace.contains(r#"[Fail] reason: [BODY].status == ok: got "degraded""#),
        "{last_trace}"
    );
}

/// Checks target `id` now with `targets ID test`: its exit status and output.
fn test(db: &TestDb, id: u64) -> (Option<i32>, String) {
    let out = db.cli(&["targets", &id.to_string(), "test"]);
    (out.status.code(), stdout(&out))
}

#[test]
fn a_header_and_the_response_time_are_judged() {
    let db = TestDb::new();
    let slow = Arc::new(Mutex::new(false));
    let delay = slow.clone();
    let server = serve(move |_, w| {
        if *delay.lock().unwrap() {
            std::thread::sleep(Duration::from_millis(400));
        }
        let headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("X-Version", "2.10"),
        ];
        write_response(w, "200 OK", &headers, b"{}")
    });
    let url = server.url("/");
    let id = add(
        &db,
        "headers",
        &url,
        "[HEADER].content-type == pat(application/json*)\n[HEADER].X-Version >= 2.1\n\
         [RESPONSE_TIME] < 300",
    );
    let (code, out) = test(&db, id);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(" PASS (OK) "), "{out}");

    *slow.lock().unwrap() = true;
    let (code, out) = test(&db, id);
    assert_eq!(code, Some(1), "{out}");
    let line = out.lines().next().unwrap();
    assert!(
        line.contains(" FAIL ([RESPONSE_TIME] < 300: got ") && line.contains(" ms)"),
        "{out}"
    );

    db.exec(&format!(
        "UPDATE targets SET conditions = '[HEADER].Content-Type == pat(text/html*)' WHERE id = {id}"
    ));
    *slow.lock().unwrap() = false;
    let (code, out) = test(&db, id);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "FAIL ([HEADER].Content-Type == pat(text/html*): got \
             \"application/json; charset=utf-8\")"
        ),
        "{out}"
    );
}

#[test]
fn a_condition_on_the_status_replaces_pass_result() {
    let db = TestDb::new();
    let server = serve(|_, w| write_response(w, "503 Service Unavailable", &[], b"draining"));
    let url = server.url("/");
    let plain = db.add_watched("plain", &url);
    let (code, out) = test(&db, plain);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL (target status:503 != 200)"), "{out}");

    let judged = add(&db, "draining is fine", &url, "[STATUS] == any(200, 503)");
    let (code, out) = test(&db, judged);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(" PASS (Service Unavailable) "), "{out}");

    let body_only = add(&db, "body only", &url, "[BODY] == draining");
    let (code, out) = test(&db, body_only);
    assert_eq!(code, Some(1), "pass_result still holds: {out}");
    assert!(out.contains("FAIL (target status:503 != 200)"), "{out}");
}
