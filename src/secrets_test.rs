//! A property over every output: for target URLs and Keystone endpoints with secrets in the
//! user info and in secret-named query parameters, no secret reaches the log line, the check's
//! trace, the CLI's `targets ID`, the alert e-mail, or what is stored (the alert's snapshot as
//! the writer makes it, and as `upgrade-db` redacts one an older release stored). The check is
//! real, against a server on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpListener;

use proptest::prelude::*;

use crate::base::model::Alert;
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

/// Every output of one check of `url`, by name; `keystone`: the `osauthendpoint` of an
/// OPENSTACK target, else none.
fn outputs(url: &str, keystone: Option<&str>) -> Vec<(&'static str, String)> {
    let (authn, authn_parms) = match keystone {
        Some(endpoint) => (
            "OPENSTACK",
            Some(format!(
                "user=ops,password=pw,osauthendpoint={endpoint},tenantid=t1"
            )),
        ),
        None => ("NONE", None),
    };
    let row = TargetRow {
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
    };
    let target = target::from_row(&row, &mut crate::target::Shared::default()).unwrap();
    let outcome = Checker::new(CheckSettings::default()).check(&target);
    let trace = outcome.trace.to_string();
    let shown_row = TargetRow {
        last_trace: Some(trace.clone()),
        ..row
    };
    // As the writer stores it (the URL in its display form), and as an older release did.
    let stored = serde_json::json!({"id": 7, "name": "secretive", "url": urls::shown(url)});
    let old = serde_json::json!({"id": 7, "name": "secretive", "url": url}).to_string();
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
            cli::targets::detail(&shown_row, "node-a (of 1 live nodes)").to_string(),
        ),
        ("mail subject", mail.subject),
        ("mail text", mail.text),
        ("mail html", mail.html),
        ("alerts.snapshot", stored.to_string()),
        ("alerts.snapshot after upgrade-db", upgraded),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

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
}
