//! Renders an alert (its JSON snapshot of the target row and its trace) into the e-mail the
//! original sent: subject `Skypunch FAILURE|SUCCESS detected for <name>`, a text part and an
//! HTML part with the target table, the statistics table and the trace. Pure apart from the
//! Date and Message-ID headers; runs on the notifier thread.
//!
//! No secret reaches a message: the snapshot never holds `authn_parms`, every value is
//! HTML-escaped, and a password in the URL's userinfo or in a secret-named query parameter is
//! replaced by `***`. No row forges a line: in the text part and the subject every field is
//! one line ([`mail_line`]: hidden characters shown escaped), the trace one line per step.
//! A grouped message (several alerts in one e-mail) is rendered by [`group`].

pub mod group;

use lettre::message::{Mailbox, MultiPart};
use lettre::Message;
use serde_json::Value;

use crate::base::model::Alert;
use crate::base::text::{html, html_lines, mail_line, yes_no};

/// The three texts of one alert's message.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The target rows of the message: label and snapshot key.
const TARGET_FIELDS: [(&str, &str); 12] = [
    ("Name", "name"),
    ("ID", "id"),
    ("Enabled", "enabled"),
    ("Status", "status"),
    ("Reason", "status_description"),
    ("Last Updated", "last_updated"),
    ("URL", "url"),
    ("Method", "method"),
    ("Authentication", "authn"),
    ("Frequency (sec)", "frequency"),
    ("Timeout (sec)", "timeout"),
    ("Required Result", "pass_result"),
];

/// Rows added for an HTTPS target whose certificate a check has seen.
const CERT_FIELDS: [(&str, &str); 2] = [
    ("Certificate Expires", "cert_expires_at"),
    ("Certificate Issuer", "cert_issuer"),
];

const STAT_FIELDS: [(&str, &str); 8] = [
    ("Success", "pass_count"),
    ("Fail", "fail_count"),
    ("2XX", "count200"),
    ("3XX", "count300"),
    ("4XX", "count400"),
    ("5XX", "count500"),
    ("Repeated Fails", "repeated_fails"),
    ("Network Fails", "network_fails"),
];

/// Renders the alert. A snapshot that is not a JSON object still gives a message (the target
/// named by id), so a damaged row cannot block the outbox.
pub fn render(alert: &Alert) -> Rendered {
    let snap: Snapshot = serde_json::from_str::<Value>(&alert.snapshot)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let mut name = field(&snap, "name");
    if name.is_empty() {
        name = format!("target {}", alert.target_id);
    }
    let success = alert.kind.eq_ignore_ascii_case("SUCCESS");
    let kind = if success { "SUCCESS" } else { "FAILURE" };
    // Header injection is impossible through lettre, but a line break would still fold oddly.
    let one_line = mail_line(&name);
    let subject = if alert.kind.eq_ignore_ascii_case("REMINDER") {
        let down = down_for(&snap)
            .map(|d| format!(": down for {d}"))
            .unwrap_or_default();
        format!("Skypunch FAILURE reminder for {one_line}{down}")
    } else if alert.kind.eq_ignore_ascii_case("CERTIFICATE") {
        let left = cert_left(&snap).unwrap_or_else(|| "soon".into());
        format!("Skypunch CERTIFICATE of {one_line} expires {left}")
    } else {
        format!("Skypunch {kind} detected for {one_line}")
    };
    let target: Vec<(&str, String)> = TARGET_FIELDS
        .iter()
        .chain(
            CERT_FIELDS
                .iter()
                .filter(|(_, key)| !field(&snap, key).is_empty()),
        )
        .map(|(label, key)| {
            let value = match *key {
                "name" => name.clone(),
                // Stored in UTC; the reader wants this host's time and zone.
                "last_updated" | "cert_expires_at" => {
                    crate::base::trace::local_from_utc(&field(&snap, key))
                }
                _ => field(&snap, key),
            };
            (*label, value)
        })
        .collect();
    let stats: Vec<(&str, String)> = STAT_FIELDS
        .iter()
        .map(|(l, k)| (*l, field(&snap, k)))
        .collect();
    let trace = crate::base::trace::localize(&alert.trace);
    let sections = Sections {
        target: &target,
        stats: &stats,
        trace: &trace,
    };
    Rendered {
        text: text_body(&subject, &sections),
        html: html_body(&subject, success, &sections),
        subject,
    }
}

type Snapshot = serde_json::Map<String, Value>;

/// How long the certificate had left at the check (`in 5 days`, `expired 2 days ago`).
pub fn cert_left(snap: &Snapshot) -> Option<String> {
    let left = seconds_between(snap, "last_updated", "cert_expires_at")?;
    Some(crate::base::text::time_left(left))
}

/// Seconds from the snapshot's time `from` to its time `to` (both UTC, as the writer stores
/// them).
fn seconds_between(snap: &Snapshot, from: &str, to: &str) -> Option<i64> {
    let at = |key: &str| {
        let text = snap.get(key)?.as_str()?;
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").ok()
    };
    Some((at(to)? - at(from)?).num_seconds())
}

/// How long the target has been down at the alert: from its open incident's start to the
/// check (both UTC in the snapshot), as `2h 5m`, `25m` or `40s`.
pub fn down_for(snap: &Snapshot) -> Option<String> {
    let secs = seconds_between(snap, "incident_started", "last_updated")?.max(0);
    Some(match secs {
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    })
}

/// The three parts of every message.
struct Sections<'a> {
    target: &'a [(&'a str, String)],
    stats: &'a [(&'a str, String)],
    trace: &'a str,
}

/// A snapshot value as the reader should see it.
fn field(snap: &Snapshot, key: &str) -> String {
    let v = match snap.get(key) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => yes_no(*b).to_string(),
        Some(other) => other.to_string(),
    };
    match key {
        "enabled" => match v.as_str() {
            "1" => yes_no(true).to_string(),
            "0" => yes_no(false).to_string(),
            _ => v,
        },
        "url" => crate::base::urls::shown(&v),
        _ => v,
    }
}

fn text_body(subject: &str, s: &Sections) -> String {
    let mut text = format!("{}\n\nTarget\n", mail_line(subject));
    for (label, value) in s.target {
        text.push_str(&format!("  {label:<16} {}\n", mail_line(value)));
    }
    text.push_str("\nStatistics\n");
    for (label, value) in s.stats {
        text.push_str(&format!("  {label:<16} {}\n", mail_line(value)));
    }
    // A stored trace is one step a line; a row written by hand (or by an older release) may
    // hold anything, so each of its lines is made one line again.
    text.push_str("\nTrace\n");
    for line in s.trace.split('\n') {
        text.push_str(&mail_line(line));
        text.push('\n');
    }
    text
}

fn html_body(subject: &str, success: bool, s: &Sections) -> String {
    let colour = if success { "#2e7d32" } else { "#c62828" };
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head><body>\n\
         <h2 style=\"color:{colour}\">{t}</h2>\n<h3>Target</h3>\n",
        t = html(subject)
    );
    page.push_str(&html_table(s.target));
    page.push_str("<h3>Statistics</h3>\n");
    page.push_str(&html_table(s.stats));
    page.push_str(&format!(
        "<h3>Trace</h3>\n<pre>{}</pre>\n</body></html>\n",
        html_lines(s.trace)
    ));
    page
}

/// The message a `notifiers ID test` sends.
pub fn render_test(notifier_name: &str, server: &str) -> Rendered {
    let subject = format!(
        "Skypunch test message for notifier {}",
        mail_line(notifier_name)
    );
    let text = format!(
        "{subject}\n\nThis message was sent by `skypunch notifiers ID test` through {server}.\n\
         Alerts for failing and recovering targets will arrive the same way.\n"
    );
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{s}</title></head><body>\n\
         <h2>{s}</h2>\n<p>This message was sent by <code>skypunch notifiers ID test</code> through \
         {server}.</p>\n<p>Alerts for failing and recovering targets will arrive the same way.</p>\n\
         </body></html>\n",
        s = html(&subject),
        server = html(server)
    );
    Rendered {
        subject,
        text,
        html,
    }
}

/// Why an e-mail could not be put together (lettre refused a header or a part).
#[derive(Debug)]
pub enum Error {
    Build(lettre::error::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Build(e) => write!(f, "cannot build the message: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Build(e) => Some(e),
        }
    }
}

/// The e-mail: From, To, Subject, Date, Message-ID, multipart/alternative text and HTML.
pub fn build(r: &Rendered, from: &Mailbox, to: &Mailbox) -> Result<Message, Error> {
    Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(r.subject.clone())
        .date_now()
        .message_id(None)
        .user_agent(format!("skypunch {}", crate::base::version::VERSION))
        .multipart(MultiPart::alternative_plain_html(
            r.text.clone(),
            r.html.clone(),
        ))
        .map_err(Error::Build)
}

fn html_table(rows: &[(&str, String)]) -> String {
    let mut s = String::from("<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n");
    for (label, value) in rows {
        s.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            html(label),
            html(value)
        ));
    }
    s.push_str("</table>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: &str, snapshot: &str) -> Alert {
        Alert {
            id: 1,
            target_id: 7,
            kind: kind.into(),
            snapshot: snapshot.into(),
            trace: "10:00:00 connecting\n10:00:01 [Fail] reason: <refused>".into(),
        }
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html("<b a=\"1\">&'</b>"),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn a_failure_renders_every_table_escaped() {
        let snap = r#"{"id":7,"name":"<script>x</script>","enabled":1,"status":"FAIL",
            "status_description":"target status:500 != 200","last_updated":"2024-01-02 03:04:05",
            "url":"https://ops:hunter2@api.example/health","method":"GET","authn":"BASIC",
            "frequency":60,"timeout":10,"pass_result":200,"pass_count":5,"fail_count":2,
            "count200":5,"count300":0,"count400":0,"count500":2,"repeated_fails":2,"network_fails":0}"#;
        let r = render(&alert("FAILURE", snap));
        assert_eq!(
            r.subject,
            "Skypunch FAILURE detected for <script>x</script>"
        );
        assert!(r
            .html
            .contains("<th align=\"left\">Name</th><td>&lt;script&gt;x&lt;/script&gt;</td>"));
        assert!(!r.html.contains("<script>"));
        assert!(r
            .html
            .contains("<th align=\"left\">Enabled</th><td>Yes</td>"));
        assert!(r
            .html
            .contains("<th align=\"left\">Reason</th><td>target status:500 != 200</td>"));
        assert!(r.html.contains("<th align=\"left\">5XX</th><td>2</td>"));
        assert!(r
            .html
            .contains("<th align=\"left\">Required Result</th><td>200</td>"));
        assert!(r
            .html
            .contains("<pre>10:00:00 connecting\n10:00:01 [Fail] reason: &lt;refused&gt;</pre>"));
        assert!(r.text.contains("  Success          5\n"));
        for part in [&r.text, &r.html] {
            assert!(!part.contains("hunter2"));
            assert!(part.contains("https://***@api.example/health"));
        }
    }

    #[test]
    fn a_recovery_has_the_success_subject_and_a_damaged_snapshot_still_renders() {
        let r = render(&alert("SUCCESS", r#"{"name":"api"}"#));
        assert_eq!(r.subject, "Skypunch SUCCESS detected for api");
        let r = render(&alert("FAILURE", "not json"));
        assert_eq!(r.subject, "Skypunch FAILURE detected for target 7");
    }

    #[test]
    fn the_message_has_both_parts_and_the_headers() {
        let r = render(&alert("FAILURE", r#"{"name":"api"}"#));
        let from: Mailbox = "SkyPunch <sp@localhost>".parse().unwrap();
        let to: Mailbox = "ops@example.com".parse().unwrap();
        let m = String::from_utf8(build(&r, &from, &to).unwrap().formatted()).unwrap();
        for h in [
            "From: SkyPunch <sp@localhost>",
            "To: ops@example.com",
            "Date: ",
            "Message-ID: <",
        ] {
            assert!(m.contains(h), "{h} missing in\n{m}");
        }
        assert!(m.contains("Subject: Skypunch FAILURE detected for api"));
        assert!(m.contains("multipart/alternative"));
        assert!(m.contains("text/plain") && m.contains("text/html"));
    }

    #[test]
    fn a_reminder_says_how_long_the_target_has_been_down() {
        let snap = r#"{"name":"api","last_updated":"2026-11-30 12:25:00","incident_started":"2026-11-30 10:20:00"}"#;
        let r = render(&alert("REMINDER", snap));
        assert_eq!(
            r.subject,
            "Skypunch FAILURE reminder for api: down for 2h 5m"
        );
    }
}
