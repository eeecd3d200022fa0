//! A target whose name holds ESC, BEL, NUL, CR, LF and a bidi override, checked by the real
//! daemon and alerted through a real SMTP server: the log file, `/metrics` and the mail that
//! arrives show each of them escaped, and none of them forges a line.

use std::time::Duration;

use mysql::prelude::Queryable;

use crate::http::get;
use crate::support::notify::{add_notifier, plain, SmtpOptions, SmtpServer};
use crate::support::{wait_for, Daemon, TestDb};

/// What an attacker names a target: colours, a bell, a NUL, a forged log line, a reversal.
const EVIL: &str =
    "evil\x1b[31mRED\x1b[0m\x07\0end\r\n2026-01-01 00:00:00,000 INFO forged\u{202e}txt";
/// The same, as every line-oriented sink shows it.
const EVIL_SHOWN: &str =
    r"evil\x1b[31mRED\x1b[0m\x07\x00end\r\n2026-01-01 00:00:00,000 INFO forged\u{202e}txt";
/// A notifier named to clear the terminal of whoever tails the log.
const NOTIFIER: &str = "ops\x1b[2J\u{2028}cleared";

/// The characters that must never reach a line-oriented sink raw.
fn raw_hidden(text: &str) -> Option<char> {
    text.chars()
        .find(|c| (c.is_control() && *c != '\n') || matches!(c, '\u{2028}' | '\u{202e}'))
}

#[test]
fn a_hostile_name_is_shown_escaped_in_the_log_the_metrics_and_the_mail() {
    let db = TestDb::new();
    let smtp = SmtpServer::start(&db.dir.join("mail"), &SmtpOptions::default());
    add_notifier(
        &db,
        NOTIFIER,
        "SMTP",
        "ops@example.com",
        &plain(smtp.port),
        true,
    );
    db.conn()
        .exec_drop(
            "INSERT INTO targets (name, url, frequency, timeout) VALUES (?, ?, 1, 2)",
            (EVIL, "http://127.0.0.1:9/"),
        )
        .unwrap();
    db.write_config(
        "StatsInterval: 0\n[notifications]\nSmtpTimeout: 2\nRetryInitial: 1\n\
         [http]\nListen: 127.0.0.1:0",
    );
    let daemon = Daemon::start(&db);
    let port = wait_for(Duration::from_secs(10), "the http listening line", || {
        db.log()
            .lines()
            .find_map(|l| l.split("http: listening on 127.0.0.1:").nth(1))
            .and_then(|p| p.trim().parse::<u16>().ok())
    });
    let mail = smtp.wait_messages(1).remove(0);
    wait_for(Duration::from_secs(20), "the notifier's line", || {
        db.log().contains(": sent alert 1 ").then_some(())
    });
    let metrics = get(port, "/metrics");
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));

    // The log: one event per line, each starting with its time; the name shown escaped in
    // the check line and in the notifier's.
    let log = db.log();
    assert_eq!(raw_hidden(&log), None, "a raw control in the log:\n{log}");
    for line in log.lines() {
        let stamp = line.get(..23).unwrap_or("");
        assert!(
            chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S,%3f").is_ok(),
            "a line that is no event of its own: {line:?}"
        );
    }
    assert!(
        log.contains(&format!("[1] {EVIL_SHOWN} GET http://127.0.0.1:9/ FAIL")),
        "{log}"
    );
    let sent = log.lines().find(|l| l.contains(": sent alert 1 ")).unwrap();
    assert!(
        sent.contains(r"(ops\x1b[2J\u{2028}cleared)")
            && sent.contains(&format!("FAILURE detected for {EVIL_SHOWN}`")),
        "{sent}"
    );

    // /metrics: label values with the name shown escaped, then escaped as the format says.
    assert_eq!(metrics.status, 200);
    assert_eq!(raw_hidden(&metrics.body), None, "{:?}", metrics.body);
    let label = format!("name=\"{}\"", EVIL_SHOWN.replace('\\', "\\\\"));
    assert!(
        metrics
            .body
            .contains(&format!("skypunch_target_up{{id=\"1\",{label}}} 0")),
        "{}",
        metrics.body
    );
    let notifier_label = r#"name="ops\\x1b[2J\\u{2028}cleared""#;
    assert!(metrics.body.contains(notifier_label), "{}", metrics.body);

    // The mail: a subject of one line, one line per field in the text part, nothing raw in
    // either part or on the wire.
    let subject = mail["subject"].as_str().unwrap();
    assert_eq!(
        subject,
        format!("Skypunch FAILURE detected for {EVIL_SHOWN}")
    );
    let text = mail["text"].as_str().unwrap();
    assert_eq!(raw_hidden(text), None, "{text:?}");
    assert!(
        text.contains(&format!("\n  Name             {EVIL_SHOWN}\n")),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("2026-01-01")),
        "a forged line: {text}"
    );
    let html = mail["html"].as_str().unwrap();
    assert_eq!(raw_hidden(html), None, "{html:?}");
    assert!(
        html.contains(r"<td>evil\x1b[31mRED\x1b[0m\x07\x00end\r\n2026"),
        "{html}"
    );
    let wire = mail["raw"].as_str().unwrap().replace("\r\n", "\n");
    assert_eq!(raw_hidden(&wire), None, "{wire:?}");
}
