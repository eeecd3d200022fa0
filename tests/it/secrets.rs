//! `[secrets]` a target names as `${secret:NAME}` in its URL, request headers and its body,
//! checked by the real daemon against a server that wants the key (401 without) and echoes
//! the whole request back: the values reach the server and no output — the log, the stored
//! row, trace, incident and alert, the mail, `/metrics`, the JSON API, `targets ID`. A SIGHUP
//! that takes a secret away makes its row a config error, one that brings it back (with a new
//! value) heals it; `check-config` names the rows whose secrets the file lacks. Values of
//! `[secrets]` written out in a row's name, group, URL and incident reasons, and in a
//! notifier's name, show as `***` on the status pages and in `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql::prelude::Queryable;

use crate::http::{get, start};
use crate::support::notify::{add_notifier, plain, SmtpOptions, SmtpServer};
use crate::support::servers::{serve, write_response, Request, Server};
use crate::support::{skypunch_cmd, stdout, wait_for, Daemon, TestDb};

const KEY: &str = "k3y-7f3a9c21d0e4b5";
const PATH: &str = "p4th-5b8e2a61c0ff";
const BODY: &str = "b0dy-91c4e7aa3d2e";

/// What the server wants and answers.
struct Wants {
    key: String,
    /// Whether the answer starts with `green` (what the target's condition asks for).
    green: bool,
}

/// 401 without `X-Api-Key` of the wanted key; else 200 with the request echoed back.
fn keyed_server(wants: Arc<Mutex<Wants>>) -> Server {
    serve(move |req: &Request, w| {
        let wants = wants.lock().unwrap();
        if req.header("x-api-key") != Some(wants.key.as_str()) {
            return write_response(w, "401 Unauthorized", &[], b"key please");
        }
        let mut headers: Vec<String> = req
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        headers.sort();
        let echo = format!(
            "{}{} {}\n{}\n\n{}",
            if wants.green { "green\n" } else { "" },
            req.method,
            req.path,
            headers.join("\n"),
            String::from_utf8_lossy(&req.body)
        );
        write_response(w, "200 OK", &[], echo.as_bytes())
    })
}

/// A target naming the three secrets, and its id.
fn add_keyed(db: &TestDb, server: &Server) -> u64 {
    let mut conn = db.conn();
    conn.exec_drop(
        "INSERT INTO targets (name, url, method, frequency, timeout, request_headers, \
         request_body, conditions) VALUES ('keyed', ?, 'POST', 1, 2, ?, ?, ?)",
        (
            server.url("/v1/${secret:PATH}/status"),
            // An `Authorization` masked by its name, a header holding a value of `[secrets]`
            // written out (masked by the redactor), one naming a secret (shown as written).
            format!(
                "X-Api-Key: ${{secret:API_KEY}}\nX-Trace-Id: ${{secret:BODY}}\n\
                 Authorization: Bearer ${{secret:API_KEY}}\nX-Tenant: {PATH}\nAccept: text/plain"
            ),
            r#"{"auth": "${secret:BODY}"}"#,
            "[STATUS] == 200\n[BODY] == pat(green*)",
        ),
    )
    .unwrap();
    conn.last_insert_id()
}

fn state(db: &TestDb, id: u64) -> (String, String) {
    let (status, description): (String, Option<String>) = db.one(&format!(
        "SELECT status, status_description FROM targets WHERE id = {id}"
    ));
    (status, description.unwrap_or_default())
}

#[track_caller]
fn assert_no_secret(place: &str, text: &str) {
    for secret in [KEY, PATH, BODY] {
        assert!(!text.contains(secret), "{place} shows {secret}:\n{text}");
    }
}

#[test]
fn the_values_of_the_secrets_a_row_names_reach_the_server_and_no_output() {
    let db = TestDb::new();
    let wants = Arc::new(Mutex::new(Wants {
        key: KEY.into(),
        green: true,
    }));
    let server = keyed_server(wants.clone());
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    add_notifier(
        &db,
        "ops",
        "SMTP",
        "ops@example.com",
        &plain(smtp.port),
        true,
    );
    let keyed = add_keyed(&db, &server);
    let keyless = db.add_watched("keyless", &server.url("/v1/open"));
    db.write_config(&format!(
        "StatsInterval: 0\n[notifications]\nSmtpTimeout: 2\nRetryInitial: 1\n\
         [http]\nListen: 127.0.0.1:0\n[secrets]\nAPI_KEY: {KEY}\nPATH: {PATH}\nBODY: {BODY}\n"
    ));
    let daemon = Daemon::start(&db);
    let port = wait_for(Duration::from_secs(10), "the http listening line", || {
        db.log()
            .lines()
            .find_map(|l| l.split("http: listening on 127.0.0.1:").nth(1))
            .and_then(|p| p.trim().parse::<u16>().ok())
    });
    wait_for(Duration::from_secs(15), "the keyed target to pass", || {
        (state(&db, keyed).0 == "PASS").then_some(())
    });
    let sent = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.header("x-api-key").is_some())
        .cloned()
        .unwrap();
    assert_eq!(sent.path, format!("/v1/{PATH}/status"));
    assert_eq!(sent.header("x-trace-id"), Some(BODY));
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(sent.header("x-tenant"), Some(PATH));
    assert_eq!(sent.body, format!(r#"{{"auth": "{BODY}"}}"#).as_bytes());
    let (_, without) = wait_for(
        Duration::from_secs(15),
        "the keyless target to fail",
        || Some(state(&db, keyless)).filter(|(s, _)| s == "FAIL"),
    );
    assert_eq!(
        without, "target status:401 != 200",
        "the server wants the key"
    );

    // The answer no longer pleases the condition, which quotes it: the echoed secrets.
    wants.lock().unwrap().green = false;
    let (_, description) = wait_for(Duration::from_secs(15), "the keyed target to fail", || {
        Some(state(&db, keyed)).filter(|(s, _)| s == "FAIL")
    });
    assert!(
        description.starts_with(r#"[BODY] == pat(green*): got "POST /v1/***/status\n"#),
        "{description}"
    );
    let mails = smtp.wait_messages(2);
    let metrics = get(port, "/metrics");
    let api_one = get(port, &format!("/api/v1/targets/{keyed}"));
    let api_list = get(port, "/api/v1/targets");
    let incidents = get(port, "/api/v1/incidents");
    let shown = stdout(&db.cli(&["targets", &keyed.to_string()]));
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));

    assert_eq!((metrics.status, api_one.status), (200, 200));
    assert!(
        api_one.body.contains("/v1/${secret:PATH}/status"),
        "{}",
        api_one.body
    );
    let one: serde_json::Value = serde_json::from_str(&api_one.body).unwrap();
    assert_eq!(
        one["conditions"],
        serde_json::json!(["[STATUS] == 200", "[BODY] == pat(green*)"]),
        "{}",
        api_one.body
    );
    assert_eq!(
        one["request_headers"],
        serde_json::json!([
            "X-Api-Key: ***",
            "X-Trace-Id: ${secret:BODY}",
            "Authorization: ***",
            "X-Tenant: ***",
            "Accept: text/plain",
        ]),
        "{}",
        api_one.body
    );
    let list: serde_json::Value = serde_json::from_str(&api_list.body).unwrap();
    let listed = &list["targets"][0];
    assert_eq!(listed["id"], keyed, "{}", api_list.body);
    assert!(
        listed.get("conditions").is_none() && listed.get("request_headers").is_none(),
        "a list's rows leave the long columns to the target's own answer: {}",
        api_list.body
    );
    assert!(
        shown.contains("X-Api-Key: ***")
            && shown.contains("X-Trace-Id: ${secret:BODY}")
            && shown.contains("Authorization: ***")
            && shown.contains("X-Tenant: ***"),
        "{shown}"
    );
    assert!(shown.contains("[BODY] == pat(green*)"), "{shown}");
    let log = db.log();
    assert!(log.contains(&format!("[{keyed}] keyed")), "{log}");
    let stored: Vec<(String, String)> = db.query(&format!(
        "SELECT COALESCE(status_description, ''), COALESCE(last_trace, '') FROM targets \
         WHERE id = {keyed} UNION ALL SELECT snapshot, COALESCE(trace, '') FROM alerts \
         UNION ALL SELECT first_reason, last_reason FROM incidents"
    ));
    assert!(stored.len() >= 3, "{stored:?}");
    let mut outputs = vec![
        ("the log".to_string(), log),
        ("/metrics".into(), metrics.body),
        ("the API's target".into(), api_one.body),
        ("the API's list".into(), api_list.body),
        ("the API's incidents".into(), incidents.body),
        ("targets ID".into(), shown),
    ];
    for (i, (a, b)) in stored.into_iter().enumerate() {
        outputs.push((format!("stored row {i}"), format!("{a}\n{b}")));
    }
    for mail in &mails {
        outputs.push(("a mail".into(), mail.to_string()));
    }
    for (place, text) in &outputs {
        assert_no_secret(place, text);
    }
}

#[test]
fn a_sighup_takes_a_secret_away_and_brings_a_new_value_and_check_config_names_the_row() {
    let db = TestDb::new();
    let wants = Arc::new(Mutex::new(Wants {
        key: KEY.into(),
        green: true,
    }));
    let server = keyed_server(wants.clone());
    let keyed = add_keyed(&db, &server);
    let config = |secrets: &str| {
        db.write_config(&format!(
            "StatsInterval: 0\n[secrets]\nPATH: {PATH}\nBODY: {BODY}\n{secrets}"
        ));
    };
    config(&format!("API_KEY: {KEY}\n"));
    let daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(15), "the keyed target to pass", || {
        (state(&db, keyed).0 == "PASS").then_some(())
    });

    config("");
    daemon.signal(libc::SIGHUP);
    let (status, description) = wait_for(Duration::from_secs(15), "the config error", || {
        Some(state(&db, keyed)).filter(|(_, d)| d.starts_with("config error"))
    });
    assert_eq!(status, "FAIL");
    assert_eq!(
        description,
        "config error: request_headers: unknown secret `API_KEY`: add it to [secrets] in the \
         config file, then SIGHUP"
    );
    let defaults = db.dir.join("defaults");
    std::fs::write(&defaults, "SKYPUNCH_USER=root\n").unwrap();
    let checked = skypunch_cmd(&db.config_path(), &["check-config"])
        .env("SKYPUNCH_DEFAULTS", &defaults)
        .output()
        .unwrap();
    assert_eq!(checked.status.code(), Some(1), "{}", stdout(&checked));
    assert!(
        stdout(&checked).contains(&format!(
            "error: target {keyed} (keyed): request_headers: unknown secret `API_KEY`"
        )),
        "{}",
        stdout(&checked)
    );

    let rotated = "n3w-k3y-0c1d2e3f4a5b";
    wants.lock().unwrap().key = rotated.into();
    config(&format!("API_KEY: {rotated}\n"));
    daemon.signal(libc::SIGHUP);
    wait_for(Duration::from_secs(15), "the target to heal", || {
        (state(&db, keyed).0 == "PASS").then_some(())
    });
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    let log = db.log();
    assert!(
        log.contains("SIGHUP: [secrets] re-read: 2 secrets")
            && log.contains("SIGHUP: [secrets] re-read: 3 secrets"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "[{keyed}] keyed config error: request_headers: unknown secret"
        )),
        "{log}"
    );
    assert_no_secret("the log", &log);
    assert!(!log.contains(rotated), "{log}");
}

/// What an operator may type into a row: the values themselves rather than references, or
/// rows written before the values were secrets.
#[test]
fn values_of_the_secrets_written_out_in_rows_show_as_stars_on_the_pages_and_in_metrics() {
    let db = TestDb::new();
    let server = serve(|_: &Request, w| write_response(w, "200 OK", &[], b"ok"));
    let id = db.add_target(
        "name, url, frequency, timeout, group_name",
        &format!(
            "'shop {KEY}', '{}', 1, 2, 'team {BODY}'",
            server.url(&format!("/v1/{PATH}/status"))
        ),
    );
    // An incident of an hour ago whose reasons quote the path.
    db.exec(&format!(
        "INSERT INTO incidents (target_id, started, ended, first_reason, last_reason, \
         failed_checks, alerted) VALUES ({id}, UTC_TIMESTAMP(3) - INTERVAL 1 HOUR, \
         UTC_TIMESTAMP(3) - INTERVAL 50 MINUTE, 'HTTP 502 at /v1/{PATH}/status', \
         'HTTP 503 at /v1/{PATH}/status', 600, 1)"
    ));
    add_notifier(
        &db,
        &format!("ops {KEY}"),
        "SMTP",
        "ops@example.com",
        &plain(1),
        false,
    );
    let (daemon, port) = start(
        &db,
        &format!("[secrets]\nAPI_KEY: {KEY}\nPATH: {PATH}\nBODY: {BODY}\n"),
    );
    wait_for(Duration::from_secs(15), "the target to pass", || {
        (state(&db, id).0 == "PASS").then_some(())
    });
    let front = get(port, "/");
    let own = get(port, &format!("/target/{id}"));
    let metrics = get(port, "/metrics");
    let api = get(port, &format!("/api/v1/targets/{id}"));
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    assert!(
        server
            .requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.path == format!("/v1/{PATH}/status")),
        "the check asks for the URL as written"
    );

    let shown = [
        (
            "the front page",
            &front,
            vec!["shop ***", "team ***", "HTTP 503 at /v1/***/status"],
        ),
        (
            "the target's page",
            &own,
            vec![
                "<title>shop ***</title>",
                "<h1>shop ***</h1>",
                "team ***",
                "/v1/***/status",
                "HTTP 503 at /v1/***/status",
            ],
        ),
        (
            "/metrics",
            &metrics,
            vec![r#"name="shop ***""#, r#"name="ops ***""#],
        ),
        (
            "the API",
            &api,
            vec![r#""name": "shop ***""#, "/v1/***/status"],
        ),
    ];
    for (place, reply, wanted) in shown {
        assert_eq!(reply.status, 200, "{place}: {}", reply.body);
        assert_no_secret(place, &reply.body);
        for want in wanted {
            assert!(
                reply.body.contains(want),
                "{place} lacks {want}:\n{}",
                reply.body
            );
        }
    }
    assert_no_secret("the log", &db.log());
}
