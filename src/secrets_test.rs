//! A property over every output: for target URLs with secrets in the user info and in
//! secret-named query parameters, no secret reaches the log line, the check's trace, the CLI's
//! `targets ID`, or the alert e-mail. The check is real, against a server on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpListener;

use proptest::prelude::*;

use crate::check::{CheckSettings, Checker};
use crate::db::targets::TargetRow;
use crate::model::Alert;
use crate::{cli, notifier, target, worker};

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

/// Every output of one check of `url`, by name.
fn outputs(url: &str) -> Vec<(&'static str, String)> {
    let row = TargetRow {
        id: 7,
        name: "secretive".into(),
        status: "NEW".into(),
        url: url.into(),
        method: "GET".into(),
        authn: "NONE".into(),
        pass_result: 200,
        frequency: 60,
        timeout: 5,
        enabled: true,
        verify_tls: true,
        fail_threshold: 1,
        success_threshold: 1,
        ..TargetRow::default()
    };
    let target = target::from_row(&row, &mut crate::check::CaFiles::default()).unwrap();
    let outcome = Checker::new(CheckSettings::default()).check(&target);
    let trace = outcome.trace.to_string();
    let shown_row = TargetRow {
        last_trace: Some(trace.clone()),
        ..row
    };
    let snapshot = serde_json::json!({"id": 7, "name": "secretive", "url": url}).to_string();
    let mail = notifier::message::render(&Alert {
        id: 1,
        target_id: 7,
        kind: "FAILURE".into(),
        snapshot,
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
        let outputs = outputs(&url);
        prop_assert!(outputs[2].1.contains("127.0.0.1"), "the trace names the URL");
        for (place, text) in outputs {
            for secret in [&password, &token] {
                prop_assert!(!text.contains(secret.as_str()), "{} shows {}:\n{}", place, secret, text);
            }
        }
    }
}
