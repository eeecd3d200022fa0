//! A property over every output: for target URLs and Keystone endpoints with secrets in the
//! user info and in secret-named query parameters, and for `[secrets]` values a row names in
//! its URL, a request header and its body (which the server echoes back, and a failed
//! condition quotes), no secret reaches the log line, the check's trace, the CLI's `targets
//! ID`, the alert e-mail, or what is stored (the alert's snapshot as the writer makes it, and
//! as `upgrade-db` redacts one an older release stored). The check is real, against a server
//! on 127.0.0.1. (`/metrics` and the JSON API read the stored rows: tests/it/secrets.rs looks
//! at them on a running daemon.)

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use proptest::prelude::*;

use crate::base::keyring::Keyring;
use crate::base::model::Alert;
use crate::base::redactor::Redactor;
use crate::base::secrets::Secrets;
use crate::base::urls;
use crate::check::{CheckSettings, Checker};
use crate::db::targets::TargetRow;
use crate::{cli, db, notifier, target, worker};

/// A server that answers every request `200 ok`; its port.
fn answering_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    port
}

fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{12,20}".prop_map(|s| format!("S3{s}"))
}

/// A server that wants `X-Api-Key: key` (401 without) and answers `200` with the request it
/// got, head and body, as its body; its port.
fn echoing_server(key: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = read_request(&mut stream);
            let text = String::from_utf8_lossy(&request);
            let allowed = text
                .lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("x-api-key: {key}")));
            let head = match allowed {
                true => "200 OK",
                false => "401 Unauthorized",
            };
            let answer = format!(
                "HTTP/1.1 {head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                request.len()
            );
            let _ = stream.write_all(answer.as_bytes());
            let _ = stream.write_all(&request);
        }
    });
    port
}

/// A request's head and its `content-length` body.
fn read_request(stream: &mut std::net::TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                break;
            }
        }
    }
    got
}

/// A target row checked every 60 s with a 5 s timeout.
fn row(url: &str, authn: &str, authn_parms: Option<String>) -> TargetRow {
    TargetRow {
        id: 7,
        name: "secretive".into(),
        status: "NEW".into(),
        url: url.into(),
        method: "GET".into(),
        authn: authn.into(),
        authn_parms,
        pass_result: 200,
        frequency: 60,
        timeout: 5,
        enabled: true,
        verify_tls: true,
        fail_threshold: 1,
        success_threshold: 1,
        ..TargetRow::default()
    }
}

/// Every output of one check of `url`, by name; `keystone`: the `osauthendpoint` of an
/// OPENSTACK target, else none.
fn outputs(url: &str, keystone: Option<&str>) -> Vec<(&'static str, String)> {
    let row = match keystone {
        Some(endpoint) => row(
            url,
            "OPENSTACK",
            Some(format!(
                "user=ops,password=pw,osauthendpoint={endpoint},tenantid=t1"
            )),
        ),
        None => row(url, "NONE", None),
    };
    outputs_of(row, &Secrets::new())
}

/// Every output of one check of the target of `row`, with these `[secrets]` in force.
fn outputs_of(row: TargetRow, secrets: &Secrets) -> Vec<(&'static str, String)> {
    let target = target::from_row(&row, &mut crate::base::ca::CaFiles::default(), secrets).unwrap();
    let checker = Checker::new(CheckSettings::default()).with_keyring(Keyring::new(secrets));
    let outcome = checker.check(&target);
    let trace = outcome.trace.to_string();
    let url = row.url.clone();
    let shown_row = TargetRow {
        last_trace: Some(trace.clone()),
        status_description: Some(outcome.description.clone()),
        ..row
    };
    // As the writer stores it (the URL in its display form), and as an older release did.
    let stored = serde_json::json!({"id": 7, "name": "secretive", "url": urls::shown(&url),
        "status_description": outcome.description});
    let old = serde_json::json!({"id": 7, "name": "secretive", "url": &url}).to_string();
    let upgraded = db::redact::snapshot(&old).unwrap_or(old);
    let mail = notifier::message::render(&Alert {
        id: 1,
        target_id: 7,
        kind: "FAILURE".into(),
        snapshot: stored.to_string(),
        trace: trace.clone(),
    });
    vec![
        ("log line", worker::check_line(&target, &outcome)),
        ("status description", outcome.description.clone()),
        ("trace", trace),
        (
            "targets ID",
            cli::targets::detail(
                &shown_row,
                "node-a (of 1 live nodes)",
                &Redactor::from_secrets(secrets),
            )
            .to_string(),
        ),
        ("mail subject", mail.subject),
        ("mail text", mail.text),
        ("mail html", mail.html),
        ("alerts.snapshot", stored.to_string()),
        ("alerts.snapshot after upgrade-db", upgraded),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn no_secret_in_a_target_url_reaches_any_output(
        user in "[a-z]{1,8}",
        password in secret(),
        token in secret(),
        name in prop::sample::select(vec!["token", "api_key", "apikey", "access_token",
            "password", "secret", "signature", "sig", "auth", "key"]),
        path in "(/[a-z0-9]{0,6}){0,3}",
    ) {
        let port = answering_server();
        let url = format!("http://{user}:{password}@127.0.0.1:{port}{path}?a=1&{name}={token}");
        let outputs = outputs(&url, None);
        prop_assert!(outputs[2].1.contains("127.0.0.1"), "the trace names the URL");
        for (place, text) in outputs {
            for secret in [&password, &token] {
                prop_assert!(!text.contains(secret.as_str()), "{} shows {}:\n{}", place, secret, text);
            }
        }
    }

    /// A Keystone endpoint with user info or a secret parameter: the token request's URL in
    /// the trace, and the error naming the endpoint, show neither.
    #[test]
    fn no_secret_in_a_keystone_endpoint_reaches_any_output(
        user in "[a-z]{1,8}",
        password in secret(),
        token in secret(),
        in_query in any::<bool>(),
    ) {
        // Not Keystone: it answers `200 ok`, so the check fails for want of a token, after
        // asking for one.
        let port = answering_server();
        let endpoint = if in_query {
            format!("http://127.0.0.1:{port}/v3?api_key={token}")
        } else {
            format!("http://{user}:{password}@127.0.0.1:{port}/v3")
        };
        let outputs = outputs(&format!("http://127.0.0.1:{port}/x"), Some(&endpoint));
        prop_assert!(outputs[2].1.contains("keystone: POST http://"), "{}", outputs[2].1);
        prop_assert!(outputs[1].1.contains("without a token"), "{}", outputs[1].1);
        for (place, text) in outputs {
            for secret in [&password, &token] {
                prop_assert!(!text.contains(secret.as_str()), "{} shows {}:\n{}", place, secret, text);
            }
        }
    }

    /// `[secrets]` values in the URL's path, a secret-named and a plainly named request
    /// header and the body: the server needs the key (the check gets past its 401), echoes
    /// the whole request back, and a condition that fails quotes that body; not one value
    /// shows anywhere, while the references are shown by name.
    #[test]
    fn no_value_of_the_secrets_a_row_names_reaches_any_output(
        key in secret(),
        path in secret(),
        tenant in secret(),
        body in secret(),
    ) {
        let port = echoing_server(key.clone());
        let mut secrets = Secrets::new();
        for (name, value) in [("API_KEY", &key), ("PATH", &path), ("TENANT", &tenant), ("BODY", &body)] {
            secrets.insert(name, value.as_str());
        }
        let mut r = row(&format!("http://127.0.0.1:{port}/v1/${{secret:PATH}}/status"), "NONE", None);
        r.method = "POST".into();
        r.request_headers = Some("X-Api-Key: ${secret:API_KEY}\nX-Tenant: ${secret:TENANT}".into());
        r.request_body = Some(r#"{"auth":"${secret:BODY}"}"#.into());
        r.conditions = Some("[STATUS] == 200\n[BODY] == pat(*green*)".into());
        let outputs = outputs_of(r, &secrets);
        let description = &outputs[1].1;
        prop_assert!(description.starts_with("[BODY] == pat(*green*): got \"POST /v1/***/status"), "{}", description);
        let trace = &outputs[2].1;
        prop_assert!(trace.contains("request headers: x-api-key: ***, x-tenant: ***"), "{}", trace);
        prop_assert!(trace.contains("/v1/${secret:PATH}/status"), "{}", trace);
        for (place, text) in outputs {
            for secret in [&key, &path, &tenant, &body] {
                prop_assert!(!text.contains(secret.as_str()), "{} shows {}:\n{}", place, secret, text);
            }
        }
    }
}
