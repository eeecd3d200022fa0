//! Hostile targets and hostile rows against the running daemon: servers that misbehave in
//! every way a check can meet, and target rows filled with values nobody should write. The
//! daemon must fail each precisely and in time, stay small, keep checking the good targets,
//! and never panic.

use crate::support::{self as common, run, Daemon};
use std::io::Write;
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::Value;
use serde_json::json;

use crate::support::http::HttpServer;
use crate::support::servers::{serve, write_response};
use crate::support::{check_lines, wait_for, TestDb};

/// Inserts a target with these columns, every value a parameter (never spliced into SQL).
fn insert(db: &TestDb, columns: &[(&str, Value)]) -> u64 {
    let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
    let marks = vec!["?"; columns.len()].join(",");
    let sql = format!("INSERT INTO targets ({}) VALUES ({marks})", names.join(","));
    let params: Vec<Value> = columns.iter().map(|(_, v)| v.clone()).collect();
    let mut conn = db.conn();
    conn.exec_drop(&sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.last_insert_id()
}

fn v(s: &str) -> Value {
    Value::from(s)
}

fn n(i: i64) -> Value {
    Value::from(i)
}

/// The duration at the end of a check line (`... FAIL (reason) 2003ms`).
fn line_ms(line: &str) -> u64 {
    line.rsplit(' ')
        .next()
        .and_then(|w| w.strip_suffix("ms"))
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line}"))
}

/// A plain TCP server that writes `reply` to each connection and keeps it open a while.
fn raw(reply: &'static [u8]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let _ = stream.write_all(reply);
                thread::sleep(Duration::from_secs(3));
            });
        }
    });
    addr
}

const TIMEOUT_S: u64 = 2;

/// The redirect loop makes eleven requests in one check: on a loaded machine they can take
/// longer than the others' 2 s, and then the check times out before it sees the loop. Its
/// timeout is three times the others', so the test still asks what it means to.
fn timeout_s(name: &str) -> u64 {
    if name == "redirect loop" {
        3 * TIMEOUT_S
    } else {
        TIMEOUT_S
    }
}

#[test]
fn hostile_servers_fail_precisely_in_time_in_bounded_memory_without_delaying_others() {
    let db = TestDb::new();
    db.write_config("Workers: 32\nStatsInterval: 0");
    let never = serve(|_, _| {
        thread::sleep(Duration::from_secs(30));
        Ok(())
    });
    let drip = serve(|_, w| {
        for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".iter() {
            w.write_all(&[*b])?;
            w.flush()?;
            thread::sleep(Duration::from_secs(1));
        }
        Ok(())
    });
    let drip_body = serve(|_, w| {
        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")?;
        for _ in 0..100 {
            w.write_all(b"x")?;
            w.flush()?;
            thread::sleep(Duration::from_secs(1));
        }
        Ok(())
    });
    let endless = serve(|_, w| {
        w.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
        let chunk = [b'z'; 64 * 1024];
        loop {
            w.write_all(&chunk)?;
        }
    });
    let huge = serve(|_, w| {
        let size: usize = 100 << 20;
        w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n").as_bytes())?;
        let chunk = [b'h'; 64 * 1024];
        for _ in 0..size / chunk.len() {
            w.write_all(&chunk)?;
        }
        Ok(())
    });
    let garbage = raw(b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n");
    let header = serve(|_, w| {
        let big = "a".repeat(1 << 20);
        w.write_all(
            format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        )
    });
    let redirect = serve(|_, w| write_response(w, "302 Found", &[("Location", "/loop")], b""));
    // Like a plain HTTP server, it answers the ClientHello with a 400 at once.
    let plain = raw(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    let normal = HttpServer::start(200);

    let hostile: Vec<(&str, String, i64, String)> = vec![
        (
            "never answers",
            never.url("/"),
            0,
            format!("timed out after {TIMEOUT_S}s waiting for the response"),
        ),
        (
            "drips its head",
            drip.url("/"),
            0,
            format!("timed out after {TIMEOUT_S}s waiting for the response"),
        ),
        (
            "drips its body",
            drip_body.url("/"),
            0,
            format!("timed out after {TIMEOUT_S}s while reading the response body"),
        ),
        (
            "endless body",
            endless.url("/"),
            0,
            "response body larger than 1048576 bytes".into(),
        ),
        (
            "100 MB body",
            huge.url("/"),
            0,
            "response body larger than 1048576 bytes".into(),
        ),
        (
            "garbage",
            format!("http://{garbage}/"),
            0,
            format!("invalid HTTP response from server ({garbage})"),
        ),
        (
            "huge header",
            header.url("/"),
            0,
            format!(
                "response header too large (more than 65536 bytes) ({})",
                header.addr
            ),
        ),
        (
            "redirect loop",
            redirect.url("/loop"),
            1,
            "too many redirects (10)".into(),
        ),
        (
            "plain text on TLS",
            format!("https://{plain}/"),
            0,
            "TLS error: ".into(),
        ),
    ];
    let mut ids = Vec::new();
    for (name, url, follow, _) in &hostile {
        ids.push(insert(
            &db,
            &[
                ("name", v(name)),
                ("url", v(url)),
                ("frequency", n(1)),
                ("timeout", n(timeout_s(name) as i64)),
                ("follow_redirects", n(*follow)),
                ("verify_tls", n(0)),
            ],
        ));
    }
    let good = insert(
        &db,
        &[
            ("name", v("normal")),
            ("url", v(&normal.url("/"))),
            ("frequency", n(1)),
            ("timeout", n(2)),
        ],
    );

    let mut daemon = Daemon::start(&db);
    let window = Duration::from_secs(12);
    let started = Instant::now();
    let mut max_rss = 0;
    while started.elapsed() < window {
        max_rss = max_rss.max(daemon.rss_kib());
        thread::sleep(Duration::from_millis(200));
    }
    let normal_checks = run::logged_checks(&db, good);
    max_rss = max_rss.max(daemon.rss_kib());
    assert!(daemon.is_running());
    let (code, _) = daemon.terminate(Duration::from_secs(TIMEOUT_S + 10));
    assert_eq!(code, Some(0));

    let log = db.log();
    let mut per_target = Vec::new();
    for ((name, _, _, expected), id) in hostile.iter().zip(&ids) {
        let lines = check_lines(&log, *id);
        assert!(lines.len() >= 2, "{name}: {} checks in 12 s", lines.len());
        let mut worst = 0;
        for line in &lines {
            assert!(
                line.contains(&format!(" FAIL ({expected}")),
                "{name}: {line}"
            );
            worst = worst.max(line_ms(line));
        }
        let timeout = timeout_s(name);
        assert!(
            worst <= timeout * 1000 + 1500,
            "{name}: a check took {worst} ms, timeout {timeout} s"
        );
        let (status, description): (String, String) = db.one(&format!(
            "SELECT status, status_description FROM targets WHERE id = {id}"
        ));
        assert_eq!(status, "FAIL", "{name}");
        assert!(
            description.starts_with(expected.as_str()),
            "{name}: {description}"
        );
        per_target.push(json!({"target": name, "checks": lines.len(),
            "description": description, "slowest_check_ms": worst}));
    }
    // About once a second beside them: 12 s, with slack for the spread first check.
    assert!(
        normal_checks >= 10,
        "the normal 1 s target was checked {normal_checks} times in 12 s"
    );
    assert!(
        max_rss < 200 * 1024,
        "the daemon's RSS reached {max_rss} KiB"
    );
    assert_eq!(
        run::counted_checks(&db, good),
        run::logged_checks(&db, good)
    );
    run::assert_rows_consistent(&db);
    assert!(
        !run::stderr(&db).contains("panicked"),
        "{}",
        run::stderr(&db)
    );
    run::figures(
        "hostile_targets",
        json!({
            "fault": "9 hostile servers checked every second with a 2 s timeout, beside one normal target",
            "window_seconds": window.as_secs(),
            "normal_target_checks": normal_checks,
            "max_rss_kib": max_rss,
            "hostile": per_target,
        }),
    );
}

#[test]
fn hostile_rows_get_their_config_errors_and_never_stop_the_daemon() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let server = HttpServer::start(200);
    let url = server.url("/ok");
    let u = || v(&url);

    // (columns, the config error expected; None for rows that are valid however odd).
    type Case = (Vec<(&'static str, Value)>, Option<&'static str>);
    let long_name: String = "ñ名😀".repeat(42);
    let forged = "evil\n2026-01-01 00:00:00,000 INFO [999] forged PASS (OK) 1ms";
    let bad: Vec<Case> = vec![
        (vec![("url", v(""))], Some("url is empty")),
        (
            vec![("url", v("http://a b/c"))],
            Some("contains white space"),
        ),
        (
            vec![("url", v("javascript:alert(1)"))],
            Some("is not an absolute http"),
        ),
        (vec![("url", v("http://"))], Some("is not an absolute http")),
        (
            vec![("url", u()), ("frequency", n(0))],
            Some("frequency 0 is less than 1 second"),
        ),
        (
            vec![("url", u()), ("frequency", n(-5))],
            Some("frequency -5 is less than 1 second"),
        ),
        (
            vec![("url", u()), ("frequency", n(i32::MAX as i64))],
            Some("is more than 604800 seconds"),
        ),
        (
            vec![("url", u()), ("timeout", n(-1))],
            Some("timeout -1 is less than 1 second"),
        ),
        (
            vec![("url", u()), ("timeout", n(i32::MIN as i64))],
            Some("is less than 1 second"),
        ),
        (
            vec![("url", u()), ("pass_result", n(-1))],
            Some("pass_result -1 is not an HTTP status"),
        ),
        (
            vec![("url", u()), ("pass_result", n(99999))],
            Some("pass_result 99999 is not"),
        ),
        (
            vec![("url", u()), ("method", v("FETCH"))],
            Some("unknown method `FETCH`"),
        ),
        (
            vec![("url", u()), ("method", v(""))],
            Some("unknown method ``"),
        ),
        (
            vec![("url", u()), ("authn", v("KERBEROS"))],
            Some("unknown authn `KERBEROS`"),
        ),
        (
            vec![
                ("url", u()),
                ("authn", v("BASIC")),
                ("authn_parms", Value::NULL),
            ],
            Some("BASIC needs user and password"),
        ),
        (
            vec![
                ("url", u()),
                ("authn", v("BASIC")),
                ("authn_parms", v("user")),
            ],
            Some("BASIC needs user and password"),
        ),
        (
            vec![
                ("url", u()),
                ("authn", v("OPENSTACK")),
                ("authn_parms", v("user=u,password=p")),
            ],
            Some("OPENSTACK needs"),
        ),
        (
            vec![("url", u()), ("fail_threshold", n(0))],
            Some("fail_threshold 0 is less than 1"),
        ),
        (
            vec![("url", u()), ("max_response_ms", n(-1))],
            Some("max_response_ms -1 is less than 1"),
        ),
        (
            vec![("name", v(forged)), ("url", v("http://x y/"))],
            Some("contains white space"),
        ),
        (
            vec![("url", v("http://a\nb/"))],
            Some("contains white space"),
        ),
        (
            vec![
                ("name", v("x'; DROP TABLE targets; --")),
                ("url", u()),
                ("method", v("GET'; --")),
            ],
            Some("unknown method"),
        ),
    ];
    let odd_but_valid: Vec<Case> = vec![
        (
            vec![("name", v("x'; DROP TABLE targets; --")), ("url", u())],
            None,
        ),
        (
            vec![
                ("name", v("<script>alert(\"x\")</script> & <b>")),
                ("url", u()),
            ],
            None,
        ),
        (vec![("name", v(&long_name)), ("url", u())], None),
        (
            vec![("name", v("")), ("url", v(&format!("  {url}  ")))],
            None,
        ),
        (
            vec![
                ("name", v("nulls")),
                ("url", u()),
                ("authn_parms", Value::NULL),
                ("request_body", Value::NULL),
                ("content_type", Value::NULL),
                ("expect_body", Value::NULL),
                ("max_response_ms", Value::NULL),
                ("status_description", Value::NULL),
            ],
            None,
        ),
        (
            vec![
                ("name", v("empties")),
                ("url", u()),
                ("authn", v("")),
                ("authn_parms", v("")),
                ("content_type", v("")),
                ("expect_body", v("")),
                ("tenantid", v("")),
            ],
            None,
        ),
        (
            vec![
                ("name", v("odd state")),
                ("url", u()),
                ("status", v("WEIRD")),
                ("previous_status", v("")),
                ("repeated_fails", n(-5)),
                ("pass_count", n(-3)),
                ("count200", n(-3)),
            ],
            None,
        ),
        (
            vec![
                ("name", v("odd booleans")),
                ("url", u()),
                ("enabled", n(2)),
                ("follow_redirects", n(7)),
                ("verify_tls", n(-1)),
            ],
            None,
        ),
        (
            vec![
                ("name", v("huge threshold")),
                ("url", u()),
                ("fail_threshold", n(i32::MAX as i64)),
                ("max_response_ms", n(i32::MAX as i64)),
            ],
            None,
        ),
    ];

    // Every row checked each second unless it says otherwise.
    let with_frequency = |columns: &[(&'static str, Value)]| {
        let mut c = columns.to_vec();
        if !c.iter().any(|(name, _)| *name == "frequency") {
            c.push(("frequency", n(1)));
        }
        c
    };
    // Half before the daemon starts, half while it runs.
    let (before_bad, after_bad) = bad.split_at(bad.len() / 2);
    let (before_ok, after_ok) = odd_but_valid.split_at(odd_but_valid.len() / 2);
    let mut cases: Vec<(u64, Option<&str>)> = Vec::new();
    for (columns, expected) in before_bad.iter().chain(before_ok) {
        cases.push((insert(&db, &with_frequency(columns)), *expected));
    }
    let mut daemon = Daemon::start(&db);
    thread::sleep(Duration::from_millis(1500));
    for (columns, expected) in after_bad.iter().chain(after_ok) {
        cases.push((insert(&db, &with_frequency(columns)), *expected));
    }

    // A row whose counter cannot take one more check: repaired (started again at 0) when the
    // loader reads it, with one log line, then counted like any other.
    let poison = insert(
        &db,
        &[
            ("name", v("poison")),
            ("url", u()),
            ("frequency", n(1)),
            ("pass_count", n(i64::MAX)),
        ],
    );
    // A good row turned bad and back while it runs.
    let flipped = insert(
        &db,
        &[("name", v("flipped")), ("url", u()), ("frequency", n(1))],
    );
    wait_for(
        Duration::from_secs(20),
        "the flipped row's first check",
        || (run::counted_checks(&db, flipped) >= 1).then_some(()),
    );
    db.exec(&format!(
        "UPDATE targets SET frequency = -1 WHERE id = {flipped}"
    ));
    // The log, not the row: a check result still in flight may overwrite the row's config
    // error (a known race, see RELIABILITY.md).
    wait_for(
        Duration::from_secs(20),
        "the flipped row's config error",
        || {
            run::lines_with(
                &db,
                &format!("[{flipped}] flipped config error: frequency -1"),
            )
            .pop()
            .map(|_| ())
        },
    );
    db.exec(&format!(
        "UPDATE targets SET frequency = 1 WHERE id = {flipped}"
    ));

    let valid: Vec<u64> = cases
        .iter()
        .filter(|(_, e)| e.is_none())
        .map(|(id, _)| *id)
        .chain([flipped])
        .collect();
    wait_for(
        Duration::from_secs(30),
        "two checks of every valid row",
        || {
            valid
                .iter()
                .all(|id| run::counted_checks(&db, *id) >= 2)
                .then_some(())
        },
    );
    for (id, expected) in &cases {
        let Some(expected) = expected else { continue };
        let (status, description, checks): (String, Option<String>, i64) = db.one(&format!(
            "SELECT status, status_description, pass_count + fail_count FROM targets WHERE id = {id}"
        ));
        assert_eq!(status, "FAIL", "row {id}");
        let description = description.unwrap_or_default();
        assert!(
            description.starts_with("config error: ") && description.contains(expected),
            "row {id}: {description:?} should name {expected:?}"
        );
        assert_eq!(checks, 0, "row {id} with a config error was checked");
        let logged = run::lines_with(&db, &format!("[{id}] "))
            .into_iter()
            .filter(|l| l.contains("config error"))
            .count();
        assert_eq!(logged, 1, "row {id}: the config error is logged once");
    }
    let repaired = format!(
        "targets row with id {poison} repaired: pass_count {} -> 0",
        i64::MAX
    );
    wait_for(Duration::from_secs(10), "the poison row's repair", || {
        run::lines_with(&db, &repaired).pop()
    });
    assert!(daemon.is_running(), "the daemon is still running");
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    assert_eq!(run::lines_with(&db, &repaired).len(), 1);
    assert!(run::lines_with(&db, "the row refused them").is_empty());
    let log = db.log();
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-01-01 00:00:00,000")),
        "a target's name forged a log line:\n{log}"
    );
    assert!(
        !run::stderr(&db).contains("panicked"),
        "{}",
        run::stderr(&db)
    );
    let tables: Vec<String> = db.query("SHOW TABLES");
    assert!(tables.contains(&"targets".to_string()));
    // Counters hand-set below zero start again at 0 before the row's first check, with one
    // log line: from then on they count every check.
    let odd_state: u64 = db.one("SELECT id FROM targets WHERE name = 'odd state'");
    let odd = format!(
        "targets row with id {odd_state} repaired: pass_count -3 -> 0, count200 -3 -> 0, \
         repeated_fails -5 -> 0"
    );
    assert_eq!(run::lines_with(&db, &odd).len(), 1, "{odd}");
    for id in valid.iter().chain([&poison]) {
        assert_eq!(
            run::counted_checks(&db, *id),
            run::logged_checks(&db, *id),
            "row {id}"
        );
    }
    run::assert_rows_consistent(&db);

    // Names with SQL and HTML metacharacters are stored and shown verbatim.
    for name in [
        "x'; DROP TABLE targets; --",
        "<script>alert(\"x\")</script> & <b>",
        long_name.as_str(),
    ] {
        let (id,): (u64,) = db
            .conn()
            .exec_first(
                "SELECT id FROM targets WHERE name = ? AND url = ?",
                (name, &url),
            )
            .unwrap()
            .expect("the name stored verbatim");
        let out = db.cli(&["targets", &id.to_string()]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        assert!(
            common::stdout(&out).contains(name),
            "{}",
            common::stdout(&out)
        );
        let list = common::stdout(&db.cli(&["targets"]));
        assert!(list.contains(name), "{list}");
    }
    run::figures(
        "hostile_rows",
        json!({
            "fault": "target rows with hostile values inserted before and while the daemon runs",
            "bad_rows": cases.iter().filter(|(_, e)| e.is_some()).count(),
            "odd_but_valid_rows": valid.len(),
            "config_errors_logged_once_each": true,
            "panics": 0,
        }),
    );
}
