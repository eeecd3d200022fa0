//! A property over every sink: a target named, addressed and failing with whatever a hostile
//! row or server can hold (controls, line breaks, bidi overrides, markup, quotes) reaches the
//! log line, the check's trace, the alert e-mail (subject, text and HTML parts) and the
//! Slack, PagerDuty and webhook bodies, and each stays what its readers parse: one log line,
//! one mail line per field, no markup but ours. The Prometheus labels have the same property
//! beside their encoder, in `http::metrics`.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;

use crate::base::model::{Alert, CheckOutcome, Verdict};
use crate::base::text::{is_hidden, mail_line};
use crate::base::trace::Trace;
use crate::db::notifiers::NotifierRow;
use crate::db::targets::TargetRow;
use crate::notifier::{hooks, message};
use crate::{logging, target, worker};

/// Text a hostile row could hold: mostly what a sink must handle (controls, line breaks,
/// bidi overrides, markup, quotes, a backslash), mixed with any character at all.
pub(crate) fn hostile() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '\x1b', '\x07', '\0', '\r', '\n', '\t', '\x7f', '\u{85}', '\u{9b}', '\u{2028}', '\u{2029}',
        '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '<', '>', '&', '"', '\'', '\\', '`', '@',
        ' ',
    ]);
    let any = prop_oneof![
        3 => special,
        2 => prop::char::range('a', 'z'),
        1 => any::<char>(),
    ];
    prop::collection::vec(any, 0..40).prop_map(|cs| cs.into_iter().collect())
}

/// A URL as typed into a row: secrets in it, hostile text in its path and query.
pub(crate) fn hostile_url() -> impl Strategy<Value = String> {
    (hostile(), hostile())
        .prop_map(|(path, query)| format!("https://ops:S3cretPW@h.example/{path}?q={query}"))
}

fn assert_one_clean_line(what: &str, line: &str) {
    assert!(
        !line.contains('\n'),
        "{what} is more than one line: {line:?}"
    );
    if let Some(c) = line.chars().find(|c| is_hidden(*c)) {
        panic!("{what} holds {c:?}: {line:?}");
    }
}

/// Every `<` opens one of our tags and every `&` one of html()'s entities; no `>` stands
/// outside a tag; the text holds no hidden character but the line breaks of our markup and of
/// the trace's `<pre>`.
fn assert_markup_is_ours(html: &str) {
    const TAGS: [&str; 12] = [
        "!DOCTYPE", "html", "head", "meta", "title", "body", "h2", "h3", "table", "tr", "th", "td",
    ];
    const ENTITIES: [&str; 5] = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"];
    let mut rest = html;
    while let Some(i) = rest.find(['<', '>', '&']) {
        let text = &rest[..i];
        if let Some(c) = text.chars().find(|c| is_hidden(*c) && *c != '\n') {
            panic!("a raw {c:?} in the HTML: {html}");
        }
        rest = &rest[i..];
        if rest.starts_with('&') {
            let entity = ENTITIES.iter().find(|e| rest.starts_with(**e));
            let entity = entity.unwrap_or_else(|| panic!("a raw & in the HTML: {html}"));
            rest = &rest[entity.len()..];
        } else if rest.starts_with('<') {
            let end = rest.find('>').expect("a tag ends");
            let tag = rest[1..end].trim_start_matches('/');
            let name = tag.split([' ', '>']).next().unwrap_or("");
            assert!(
                TAGS.contains(&name) || name == "pre",
                "tag {name:?} is not ours: {html}"
            );
            assert!(!rest[1..end].contains('<'), "a raw < in a tag: {html}");
            rest = &rest[end + 1..];
        } else {
            panic!("a raw > in the HTML: {html}");
        }
    }
}

fn alert(name: &str, url: &str, reason: &str, trace: &str) -> Alert {
    Alert {
        id: 30,
        target_id: 7,
        kind: "FAILURE".into(),
        snapshot: json!({
            "id": 7, "name": name, "url": url, "status": "FAIL",
            "status_description": reason, "method": "GET", "enabled": 1,
        })
        .to_string(),
        trace: trace.into(),
    }
}

/// A trace of one failed check whose reason is `reason`.
fn failed_trace(url: &str, reason: &str) -> Trace {
    let mut trace = Trace::new();
    trace.step(format!("GET {url} sent"));
    trace.fail(reason);
    trace
}

fn hook(kind: &str, address: &str) -> hooks::Hook {
    let row = NotifierRow {
        id: 3,
        name: "n".into(),
        kind: kind.into(),
        address: address.into(),
        params: "routing_key=rk".into(),
        pass_count: 0,
        fail_count: 0,
        enabled: true,
    };
    let kind = hooks::Kind::of(&row).unwrap();
    hooks::Hook::build(&row, kind).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The log: a check line and the notifier's line, written by the formatter every log
    /// line goes through, are one line each with every hidden character shown escaped.
    #[test]
    fn every_log_line_is_one_clean_line(name in hostile(), reason in hostile(), url in hostile_url()) {
        let row = TargetRow {
            id: 7,
            name: name.clone(),
            url: "http://127.0.0.1:9/x".into(),
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
        let target = target::from_row(&row, &mut crate::base::ca::CaFiles::default(), &Default::default()).unwrap();
        let outcome = CheckOutcome {
            verdict: Verdict::Fail,
            error: None,
            description: reason.clone(),
            http_status: None,
            elapsed: Duration::from_millis(3),
            trace: failed_trace(&url, &reason),
            cert: None,
            phases: None,
        };
        let rendered = message::render(&alert(&name, &url, &reason, ""));
        let lines = [
            worker::check_line(&target, &outcome),
            format!(
                "notifier 3 ({name}) <{url}>: sent alert 30 `{}` via 127.0.0.1:25",
                rendered.subject
            ),
            outcome.trace.to_string(),
        ];
        for message in lines {
            let line = logging::Line {
                at: chrono::Local::now(),
                level: log::Level::Error,
                message: &message,
            }
            .to_string();
            assert_one_clean_line("a log line", &line);
        }
    }

    /// The trace: one line per step, whatever a step's text holds.
    #[test]
    fn a_trace_is_one_line_per_step(url in hostile_url(), reason in hostile()) {
        let text = failed_trace(&url, &reason).to_string();
        prop_assert_eq!(text.lines().count(), 2);
        for line in text.lines() {
            assert_one_clean_line("a trace line", line);
        }
    }

    /// The e-mail: the subject is one clean line and a header of the message; the text part
    /// has one line per field and one per line of the stored trace; the HTML part has no
    /// markup but ours.
    #[test]
    fn a_mail_has_one_line_per_field_and_only_our_markup(
        name in hostile(),
        url in hostile_url(),
        reason in hostile(),
        stored_trace in hostile(),
    ) {
        let r = message::render(&alert(&name, &url, &reason, &stored_trace));
        assert_one_clean_line("the subject", &r.subject);
        let trace_lines = stored_trace.split('\n').count();
        // Subject, blank, "Target", 12 fields, blank, "Statistics", 8 fields, blank, "Trace".
        prop_assert_eq!(r.text.lines().count(), 3 + 12 + 2 + 8 + 2 + trace_lines, "{}", r.text);
        let lines: Vec<&str> = r.text.lines().collect();
        let shown_name = if name.is_empty() { "target 7" } else { &name };
        prop_assert_eq!(lines[3].to_string(), format!("  {:<16} {}", "Name", mail_line(shown_name)));
        prop_assert_eq!(lines[7].to_string(), format!("  {:<16} {}", "Reason", mail_line(&reason)));
        for line in &lines {
            assert_one_clean_line("a line of the text part", line);
            prop_assert!(!line.contains("S3cretPW"), "{}", line);
        }
        assert_markup_is_ours(&r.html);
        prop_assert!(!r.html.contains("S3cretPW"));

        let from = "SkyPunch <sp@localhost>".parse().unwrap();
        let to = "ops@example.com".parse().unwrap();
        let wire = String::from_utf8(message::build(&r, &from, &to).unwrap().formatted()).unwrap();
        let head = wire.split("\r\n\r\n").next().unwrap();
        for line in head.split("\r\n") {
            let header = line.split_once(": ").is_some_and(|(n, _)| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            prop_assert!(header || line.starts_with([' ', '\t']), "{:?} in\n{}", line, head);
        }
        prop_assert_eq!(head.matches("\r\nSubject: ").count(), 1, "{}", head);
    }

    /// Slack: one line with `&`, `<` and `>` escaped but for the link to the status page;
    /// PagerDuty: a one-line summary; the webhook: the name as it is, in valid JSON.
    #[test]
    fn chat_and_incident_bodies_escape_their_text(name in hostile(), url in hostile_url(), reason in hostile()) {
        let alert = alert(&name, &url, &reason, "");
        let incident = None;
        let slack = hook("SLACK", "https://hooks.slack.example/T/B/x").body(&alert, incident);
        let text = slack["text"].as_str().unwrap();
        assert_one_clean_line("the Slack text", text);
        prop_assert!(!text.contains(['<', '>']), "{}", text);
        let no_entities = ["&amp;", "&lt;", "&gt;"].iter().fold(text.to_string(), |t, e| t.replace(e, ""));
        prop_assert!(!no_entities.contains('&'), "{}", text);
        prop_assert!(!text.contains("S3cretPW"));

        let pd = hook("PAGERDUTY", "").body(&alert, incident);
        assert_one_clean_line("the PagerDuty summary", pd["payload"]["summary"].as_str().unwrap());

        let webhook = hook("WEBHOOK", "http://127.0.0.1:9/hook").body(&alert, incident);
        let parsed: serde_json::Value = serde_json::from_str(&webhook.to_string()).unwrap();
        prop_assert_eq!(parsed["target"]["name"].as_str(), Some(name.as_str()));
        prop_assert!(!webhook.to_string().contains("S3cretPW"));
    }
}
