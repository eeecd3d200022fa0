//! Renders a grouped message (two or more alerts to one notifier, see
//! [`crate::notifier::group`]) into one e-mail: subject `Skypunch: 2000 targets FAILED` (or
//! `Skypunch: 3 FAILED, 2 recovered`), a text part and an HTML part listing the first
//! [`LISTED`] alerts, oldest first: the state, the target's name and id, since when, the
//! reason, the last steps of the check's trace and, with the HTTP server on, a link to the
//! target's status page; then how many more there are. Pure apart from what `message::build`
//! adds; runs on the notifier thread. Sanitized as the single message is (see `message`).

use serde_json::Value;

use super::{cert_left, field, Rendered, Snapshot};
use crate::base::model::Alert;
use crate::base::text::{html, mail_line};
use crate::notifier::group::Tally;

/// Alerts a grouped e-mail lists; the rest are counted.
pub const LISTED: usize = 100;

/// Lines of a trace each listed alert shows: its last steps (the one that failed and the
/// verdict), each at most [`EXCERPT_CHARS`] characters.
const EXCERPT_LINES: usize = 3;
const EXCERPT_CHARS: usize = 300;

/// One listed alert, as both parts show it.
struct Line {
    state: &'static str,
    name: String,
    target: u64,
    /// `since 2026-11-24 11:04:22 +01:00`, `at ...` (a recovery) or `expires in 5 days`.
    when: String,
    reason: String,
    trace: Vec<String>,
    page: Option<String>,
}

/// Renders the group. `pages`: the status pages' base URL (`[http]` on), for a link to
/// each target's page.
pub fn render(alerts: &[Alert], pages: Option<&str>) -> Rendered {
    let tally = Tally::of(alerts.iter().map(|a| a.kind.as_str()));
    let subject = format!("Skypunch: {}", tally.headline());
    let lines: Vec<Line> = alerts.iter().take(LISTED).map(|a| line(a, pages)).collect();
    let more = alerts.len().saturating_sub(LISTED);
    Rendered {
        text: text_body(&subject, &lines, more),
        html: html_body(&subject, tally.pages(), &lines, more),
        subject,
    }
}

fn line(alert: &Alert, pages: Option<&str>) -> Line {
    let snap: Snapshot = serde_json::from_str::<Value>(&alert.snapshot)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let mut name = field(&snap, "name");
    if name.is_empty() {
        name = format!("target {}", alert.target_id);
    }
    let local = |key: &str| crate::base::trace::local_from_utc(&field(&snap, key));
    let (state, when) = match alert.kind.to_ascii_uppercase().as_str() {
        "SUCCESS" => ("RECOVERED", format!("at {}", local("last_updated"))),
        "CERTIFICATE" => (
            "CERTIFICATE",
            format!(
                "expires {}",
                cert_left(&snap).unwrap_or_else(|| "soon".into())
            ),
        ),
        kind => {
            let state = if kind == "REMINDER" {
                "STILL DOWN"
            } else {
                "FAILED"
            };
            let since = Some(local("incident_started"))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| local("last_updated"));
            (state, format!("since {since}"))
        }
    };
    Line {
        state,
        name,
        target: alert.target_id,
        when,
        reason: field(&snap, "status_description"),
        trace: excerpt(&alert.trace),
        page: pages.map(|base| format!("{base}/target/{}", alert.target_id)),
    }
}

/// The trace's last steps, in local time, each one line.
fn excerpt(trace: &str) -> Vec<String> {
    let local = crate::base::trace::localize(trace);
    let steps: Vec<&str> = local.lines().filter(|l| !l.trim().is_empty()).collect();
    steps[steps.len().saturating_sub(EXCERPT_LINES)..]
        .iter()
        .map(|l| crate::base::text::clip(l, EXCERPT_CHARS).to_string())
        .collect()
}

fn text_body(subject: &str, lines: &[Line], more: usize) -> String {
    let mut text = format!("{}\n\n", mail_line(subject));
    for l in lines {
        text.push_str(&format!(
            "{:<11} {} (target {}) {}\n",
            l.state,
            mail_line(&l.name),
            l.target,
            mail_line(&l.when)
        ));
        if !l.reason.is_empty() {
            text.push_str(&format!("  reason  {}\n", mail_line(&l.reason)));
        }
        for step in &l.trace {
            text.push_str(&format!("  trace   {}\n", mail_line(step)));
        }
        if let Some(page) = &l.page {
            text.push_str(&format!("  page    {}\n", mail_line(page)));
        }
    }
    if more > 0 {
        text.push_str(&format!(
            "\nand {more} more, not listed here (the first {LISTED} are).\n"
        ));
    }
    text
}

fn html_body(subject: &str, pages: bool, lines: &[Line], more: usize) -> String {
    let colour = if pages { "#c62828" } else { "#2e7d32" };
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head><body>\n\
         <h2 style=\"color:{colour}\">{t}</h2>\n\
         <table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n\
         <tr><th align=\"left\">State</th><th align=\"left\">Target</th>\
         <th align=\"left\">When</th><th align=\"left\">Reason</th>\
         <th align=\"left\">Trace</th></tr>\n",
        t = html(subject)
    );
    for l in lines {
        let name = match &l.page {
            Some(href) => format!("<a href=\"{}\">{}</a>", html(href), html(&l.name)),
            None => html(&l.name),
        };
        let trace: Vec<String> = l.trace.iter().map(|s| html(s)).collect();
        page.push_str(&format!(
            "<tr><td>{}</td><td>{name} ({})</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>\n",
            html(l.state),
            l.target,
            html(&l.when),
            html(&l.reason),
            trace.join("\n")
        ));
    }
    page.push_str("</table>\n");
    if more > 0 {
        page.push_str(&format!(
            "<p>and {more} more, not listed here (the first {LISTED} are).</p>\n"
        ));
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: u64, kind: &str, name: &str) -> Alert {
        Alert {
            id,
            target_id: id + 100,
            kind: kind.into(),
            snapshot: serde_json::json!({
                "name": name,
                "status_description": "connect: connection refused",
                "last_updated": "2026-11-24 10:05:00",
                "incident_started": "2026-11-24 10:04:22",
            })
            .to_string(),
            trace: "2026-11-24 10:04:22.100Z +     0.0ms (    0.0ms) GET http://10.0.0.1/ \n\
                    2026-11-24 10:04:22.101Z +     0.1ms (    0.1ms) connecting to 10.0.0.1:80\n\
                    2026-11-24 10:04:22.102Z +     0.2ms (    0.1ms) connect: connection refused\n\
                    2026-11-24 10:04:22.102Z +     0.2ms (    0.0ms) [Fail] connect: connection refused\n"
                .into(),
        }
    }

    #[test]
    fn a_storm_is_one_message_listing_the_first_hundred_then_a_count() {
        let alerts: Vec<Alert> = (1..=2000)
            .map(|i| alert(i, "FAILURE", &format!("api-{i}")))
            .collect();
        let r = render(&alerts, Some("https://status.example.com"));
        assert_eq!(r.subject, "Skypunch: 2000 targets FAILED");
        assert!(r.text.starts_with(
            "Skypunch: 2000 targets FAILED\n\nFAILED      api-1 (target 101) since 2026-11-24 "
        ));
        assert!(r.text.contains("  reason  connect: connection refused\n"));
        assert!(r
            .text
            .contains("  page    https://status.example.com/target/101\n"));
        assert_eq!(
            r.text.matches("  trace   ").count(),
            300,
            "three steps each"
        );
        assert!(
            !r.text.contains("GET http://10.0.0.1/"),
            "only the last steps"
        );
        assert!(r.text.contains("api-100 (target 200)") && !r.text.contains("api-101 "));
        assert!(r
            .text
            .ends_with("\nand 1900 more, not listed here (the first 100 are).\n"));
        assert!(r
            .html
            .contains("<a href=\"https://status.example.com/target/101\">api-1</a>"));
        assert_eq!(r.html.matches("<tr><td>").count(), 100);
    }

    #[test]
    fn a_mixed_group_says_each_state_and_escapes_names() {
        let alerts = vec![
            alert(1, "FAILURE", "<b>shop</b>"),
            alert(2, "SUCCESS", "api\nBcc: x@y"),
            alert(3, "REMINDER", "db"),
        ];
        let r = render(&alerts, None);
        assert_eq!(r.subject, "Skypunch: 1 FAILED, 1 still down, 1 recovered");
        assert!(r
            .text
            .contains("RECOVERED   api\\nBcc: x@y (target 102) at 2026-11-24 "));
        assert!(r.text.contains("STILL DOWN  db (target 103) since "));
        assert!(!r.text.contains("  page  "), "no HTTP server: no links");
        assert!(!r.html.contains("<b>shop") && r.html.contains("&lt;b&gt;shop"));
        assert!(!r.text.contains("and 0 more"));
    }
}
