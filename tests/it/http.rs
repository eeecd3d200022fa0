//! The daemon's HTTP server, as an operator and a hostile client meet it: `/healthz`,
//! `/metrics` read by a real Prometheus parser, the JSON API, Basic authentication,
//! `PublicOnly`, escaping and secrets, and clients that are slow, large or many.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::http::HttpServer;
use crate::support::{wait_for, Daemon, TestDb};

/// A target name an attacker would choose.
const HOSTILE: &str = "<script>alert('x')</script> & \"co\"";
const URL_SECRET: &str = "hunter2pw";
const PARAM_SECRET: &str = "tok3nsecret";
const AUTHN_SECRET: &str = "keystonepw9";

/// An answer: status, headers (lowercase names), body.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

pub(crate) fn raw(port: u16, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

pub(crate) fn get(port: u16, path: &str) -> Reply {
    raw(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

pub(crate) fn get_as(port: u16, path: &str, user_password: &str) -> Reply {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(user_password);
    let req = format!("GET {path} HTTP/1.1\r\nAuthorization: Basic {auth}\r\n\r\n");
    raw(port, req.as_bytes())
}

/// Starts the daemon with `[http]` on a free port (`Listen: 127.0.0.1:0`) and `http_extra`;
/// the port it logged.
pub(crate) fn start(db: &TestDb, http_extra: &str) -> (Daemon, u16) {
    db.write_config(&format!(
        "StatsInterval: 0\n[http]\nListen: 127.0.0.1:0\n{http_extra}"
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

/// A passing, a failing (with an open incident), a disabled and a hostile target; their ids.
fn targets(db: &TestDb, up: &HttpServer, down: &HttpServer) -> [u64; 4] {
    let pass = db.add_target(
        "name, url, frequency, timeout, group_name, public",
        &format!("'Billing API', '{}', 1, 2, 'Payments', 1", up.url("/ok")),
    );
    let fail = db.add_target(
        "name, url, frequency, timeout, group_name, public",
        &format!("'Search', '{}', 1, 2, 'Payments', 0", down.url("/down")),
    );
    let off = db.add_target(
        "name, url, enabled, public",
        &format!("'Old thing', '{}', 0, 1", up.url("/old")),
    );
    let secret_url = format!(
        "http://admin:{URL_SECRET}@127.0.0.1:{}/h?token={PARAM_SECRET}",
        up.port
    );
    let hostile = db.add_target(
        "name, url, frequency, timeout, authn, authn_parms, public",
        &format!(
            "'{}', '{secret_url}', 1, 2, 'BASIC', 'user=u,password={AUTHN_SECRET}', 1",
            HOSTILE.replace('\'', "''")
        ),
    );
    [pass, fail, off, hostile]
}

fn wait_states(db: &TestDb, pass: u64, fail: u64) {
    wait_for(Duration::from_secs(15), "PASS and an open incident", || {
        let s: (String, String, u64) = db.one(&format!(
            "SELECT (SELECT status FROM targets WHERE id = {pass}), \
             (SELECT status FROM targets WHERE id = {fail}), \
             (SELECT COUNT(*) FROM incidents WHERE target_id = {fail} AND ended IS NULL)"
        ));
        (s.0 == "PASS" && s.1 == "FAIL" && s.2 == 1).then_some(())
    });
}

fn assert_no_secret(what: &str, body: &str) {
    for secret in [URL_SECRET, PARAM_SECRET, AUTHN_SECRET] {
        assert!(!body.contains(secret), "{what} shows a secret: {body}");
    }
}

/// The samples of a scrape, parsed by prometheus-parse.
pub(crate) fn scrape(port: u16) -> prometheus_parse::Scrape {
    let r = get(port, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        r.headers
    );
    let lines = r.body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("a valid exposition")
}

pub(crate) fn sample(
    s: &prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn every_endpoint_answers_from_the_running_daemon() {
    let db = TestDb::new();
    let (up, down) = (HttpServer::start(200), HttpServer::start(503));
    let [pass, fail, off, hostile] = targets(&db, &up, &down);
    let (_daemon, port) = start(&db, "");
    wait_states(&db, pass, fail);

    let health = get(port, "/healthz");
    assert_eq!(health.status, 200, "{}", health.body);
    assert!(
        health.body.starts_with("ok: every thread alive"),
        "{}",
        health.body
    );

    let s = scrape(port);
    let id = |n: u64| n.to_string();
    assert_eq!(
        sample(
            &s,
            "skypunch_target_up",
            &[("id", &id(pass)), ("name", "Billing API")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&s, "skypunch_target_up", &[("id", &id(fail))]),
        Some(0.0)
    );
    assert_eq!(
        sample(&s, "skypunch_target_up", &[("id", &id(off))]),
        None,
        "disabled: no series"
    );
    assert_eq!(
        sample(&s, "skypunch_target_http_status", &[("id", &id(fail))]),
        Some(503.0)
    );
    assert!(
        sample(
            &s,
            "skypunch_target_checks_total",
            &[("id", &id(pass)), ("result", "pass")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &s,
            "skypunch_target_responses_total",
            &[("id", &id(fail)), ("class", "5xx")]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &s,
            "skypunch_target_incident_start_timestamp_seconds",
            &[("id", &id(fail))]
        )
        .unwrap()
            > 1.6e9
    );
    assert_eq!(
        sample(
            &s,
            "skypunch_target_incident_start_timestamp_seconds",
            &[("id", &id(pass))]
        ),
        None
    );
    // prometheus-parse does not unescape label values: the escaped form is checked as text.
    let escaped = HOSTILE.replace('"', "\\\"");
    let line = format!("skypunch_target_up{{id=\"{hostile}\",name=\"{escaped}\"}}");
    assert!(get(port, "/metrics").body.contains(&line), "{line}");
    assert!(sample(&s, "skypunch_checks_total", &[]).unwrap() >= 2.0);
    assert_eq!(sample(&s, "skypunch_database_up", &[]), Some(1.0));
    assert_eq!(sample(&s, "skypunch_workers", &[]), Some(8.0));
    assert_eq!(
        sample(&s, "skypunch_checks_started_late_total", &[]),
        Some(0.0)
    );
    assert!(sample(&s, "skypunch_check_wait_oldest_seconds", &[]).is_some());
    assert_eq!(sample(&s, "skypunch_targets_owned", &[]), Some(3.0));
    assert_eq!(sample(&s, "skypunch_node_share_ratio", &[]), Some(1.0));
    let lag_count = s
        .samples
        .iter()
        .find(|x| x.metric == "skypunch_dispatch_lag_seconds_count");
    assert!(lag_count.is_some(), "the lag histogram is there");
    let inf = s.samples.iter().find(|x| {
        x.metric == "skypunch_check_duration_seconds"
            && matches!(&x.value, prometheus_parse::Value::Histogram(h) if !h.is_empty())
    });
    assert!(inf.is_some(), "the duration histogram has buckets");

    let list = get(port, "/api/v1/targets");
    assert_eq!(list.status, 200);
    assert!(list.headers.contains("content-type: application/json"));
    let v: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    let all = v["targets"].as_array().unwrap();
    assert_eq!(all.len(), 4, "disabled ones included: {}", list.body);
    let by_id = |n: u64| all.iter().find(|t| t["id"] == n).unwrap().clone();
    assert_eq!(by_id(pass)["status"], "PASS");
    assert_eq!(by_id(pass)["group"], "Payments");
    assert_eq!(by_id(fail)["status"], "FAIL");
    assert!(by_id(fail)["incident_started"].is_string());
    assert_eq!(by_id(off)["enabled"], false);
    assert_eq!(by_id(hostile)["name"], HOSTILE);
    assert!(by_id(hostile)["url"].as_str().unwrap().contains("***"));
    assert!(by_id(pass).get("conditions").is_none(), "{}", list.body);

    let one = get(port, &format!("/api/v1/targets/{fail}"));
    let v: serde_json::Value = serde_json::from_str(&one.body).unwrap();
    assert_eq!(v["conditions"], serde_json::Value::Null, "{}", one.body);
    assert_eq!(
        v["request_headers"],
        serde_json::Value::Null,
        "{}",
        one.body
    );
    assert_eq!(
        v["incidents"][0]["ended"],
        serde_json::Value::Null,
        "{}",
        one.body
    );
    assert!(
        v["incidents"][0]["first_reason"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{}",
        one.body
    );
    assert_eq!(get(port, "/api/v1/targets/999999").status, 404);
    let inc = get(port, "/api/v1/incidents");
    let v: serde_json::Value = serde_json::from_str(&inc.body).unwrap();
    assert_eq!(v["incidents"][0]["target_id"], fail, "{}", inc.body);
    assert_eq!(v["incidents"][0]["suppressed_by"], serde_json::Value::Null);
    assert_eq!(v["incidents"][0]["monitor_blind"], false, "{}", inc.body);

    assert_eq!(get(port, "/nothing-here").status, 404);
    let post = raw(port, b"DELETE /api/v1/targets HTTP/1.1\r\n\r\n");
    assert_eq!(post.status, 405);
    assert!(post.headers.contains("allow: get, head"));
    let head = raw(port, b"HEAD /api/v1/targets HTTP/1.1\r\n\r\n");
    assert_eq!((head.status, head.body.as_str()), (200, ""));

    for path in [
        "/metrics",
        "/api/v1/targets",
        "/api/v1/incidents",
        &format!("/api/v1/targets/{hostile}"),
    ] {
        assert_no_secret(path, &get(port, path).body);
    }
    assert_no_secret("the log", &db.log());
}

#[test]
fn basic_authentication_guards_all_but_healthz_and_public_only_hides_the_rest() {
    let db = TestDb::new();
    let (up, down) = (HttpServer::start(200), HttpServer::start(503));
    let [pass, fail, _, _] = targets(&db, &up, &down);
    let (_daemon, port) = start(&db, "User: mon\nPassword: s3cr3t-http\nPublicOnly: yes\n");
    wait_states(&db, pass, fail);

    assert_eq!(get(port, "/healthz").status, 200);
    for path in ["/metrics", "/api/v1/targets", "/api/v1/incidents"] {
        let r = get(port, path);
        assert_eq!(r.status, 401, "{path}");
        assert!(r.headers.contains("www-authenticate: basic"), "{path}");
        assert_eq!(get_as(port, path, "mon:wrong").status, 401, "{path}");
        assert_eq!(get_as(port, path, "mon:s3cr3t-http").status, 200, "{path}");
    }
    let list = get_as(port, "/api/v1/targets", "mon:s3cr3t-http");
    let v: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    let ids: Vec<u64> = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert!(
        ids.contains(&pass) && !ids.contains(&fail),
        "only public ones: {ids:?}"
    );
    assert_eq!(
        get_as(port, &format!("/api/v1/targets/{fail}"), "mon:s3cr3t-http").status,
        404
    );
    let inc = get_as(port, "/api/v1/incidents", "mon:s3cr3t-http");
    assert!(
        !inc.body.contains("Search"),
        "a private target's incident: {}",
        inc.body
    );
    // The metrics are for the operator: every enabled target.
    let m = get_as(port, "/metrics", "mon:s3cr3t-http");
    assert!(m.body.contains(&format!("id=\"{fail}\"")));
    assert!(!db.log().contains("s3cr3t-http"), "the password is logged");
}

#[test]
fn slow_large_and_many_clients_do_not_stop_the_server_or_the_checks() {
    let db = TestDb::new();
    let up = HttpServer::start(200);
    let watched = db.add_watched("Watched", &up.url("/"));
    let (_daemon, port) = start(&db, "");

    // A client sending a byte a second is cut off (408) while others are served.
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        for b in b"GET /api/v1/targets HTTP/1.1\r\nX-Slow: ".iter().cycle() {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_millis(900));
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        get(port, "/healthz").status,
        200,
        "served beside the slow client"
    );

    // A 10 MB request: refused after its first 16 KiB, the connection closed.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nX-Big: ");
    let mut sent = 0;
    let chunk = vec![b'a'; 64 * 1024];
    while sent < 10 << 20 {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
    // And a 10 MB body announced: refused before it is read.
    let body = raw(
        port,
        b"GET /metrics HTTP/1.1\r\nContent-Length: 10485760\r\n\r\n",
    );
    assert_eq!(body.status, 413);

    // 500 connections at once: each gets an answer (200, or 503 "busy" past the queue).
    let many: Vec<_> = (0..500)
        .map(|_| std::thread::spawn(move || get(port, "/healthz").status))
        .collect();
    let statuses: Vec<u16> = many.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 200).count() >= 64,
        "{statuses:?}"
    );

    let slow_answer = slow.join().unwrap();
    assert!(slow_answer.starts_with("HTTP/1.1 408"), "{slow_answer:?}");
    assert_eq!(get(port, "/healthz").status, 200);
    // The checks went on all along.
    let before: u64 = db.one(&format!(
        "SELECT pass_count FROM targets WHERE id = {watched}"
    ));
    wait_for(Duration::from_secs(10), "more checks", || {
        let now: u64 = db.one(&format!(
            "SELECT pass_count FROM targets WHERE id = {watched}"
        ));
        (now > before).then_some(())
    });
}

#[test]
fn a_port_in_use_is_a_start_error_naming_the_address_and_key() {
    let db = TestDb::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    db.write_config(&format!(
        "StatsInterval: 0\n[http]\nListen: 127.0.0.1:{port}"
    ));
    let out = db.cli(&["start", "--foreground"]);
    assert!(!out.status.success());
    let err = crate::support::stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot listen on 127.0.0.1:{port} ([http] Listen)"
        )),
        "{err}"
    );
}
