//! The tables of a status page, rendered on an HTTP thread: a target's facts, the incidents,
//! and how their times and spans read. Their texts from the database go through the page's
//! [`Sanitizer`] (secrets masked, then escaped).

use std::fmt::Write;

use super::{Sanitizer, State};
use crate::http::query::Listed;
use crate::http::status::TargetStatus;

/// The target's figures as a definition list.
pub(super) fn facts(out: &mut String, t: &TargetStatus, now_ms: i64, s: Sanitizer) {
    let n = &t.now;
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(g) = n.group() {
        rows.push(("Group", s.html(g)));
    }
    rows.push((
        "URL",
        format!("{} {}", s.html(&n.method), s.html(&n.shown_url())),
    ));
    rows.push(("Checked every", format!("{} s", n.frequency)));
    if n.status != "NEW" {
        let when = n
            .last_updated_ms()
            .map_or(String::new(), |ms| ago(ms, now_ms));
        rows.push(("Last check", when));
        let status = n
            .last_http_status
            .map_or(String::new(), |s| format!(", HTTP {s}"));
        let ms = n
            .last_response_ms
            .map_or(String::new(), |ms| format!("{ms} ms"));
        rows.push(("Response", format!("{ms}{status}")));
    }
    if !n.description().is_empty() {
        rows.push(("Result", s.html(n.description())));
    }
    if let Some(why) = n.held.as_deref().filter(|_| State::of(t) == State::Down) {
        rows.push(("Alerts", format!("held: {}", s.html(why))));
    }
    if let Some(s) = n.cert_expires_s() {
        let left = crate::base::text::time_left(s - now_ms / 1000);
        rows.push((
            "Certificate expires",
            format!("{} ({left})", time(s * 1000)),
        ));
    }
    out.push_str("<dl class=\"facts\">");
    for (k, v) in rows {
        let _ = write!(out, "<dt>{k}</dt><dd>{v}</dd>");
    }
    out.push_str("</dl>\n");
}

pub(super) fn incident_table(
    out: &mut String,
    incidents: &[Listed],
    with_target: bool,
    s: Sanitizer,
) {
    if incidents.is_empty() {
        out.push_str("<p class=\"note\">None.</p>\n");
        return;
    }
    out.push_str("<table class=\"incidents\"><thead><tr>");
    if with_target {
        out.push_str("<th>Target</th>");
    }
    out.push_str("<th>Started</th><th>Lasted</th><th>Failed checks</th><th>Reason</th></tr></thead><tbody>\n");
    for Listed {
        incident: i,
        target_name,
        ..
    } in incidents
    {
        let (class, lasted) = match i.ended {
            Some(end) => ("ended", span(end - i.started)),
            None => ("open", "ongoing".to_string()),
        };
        let _ = write!(out, "<tr class=\"{class}\">");
        if with_target {
            let _ = write!(
                out,
                "<td><a href=\"target/{}\">{}</a></td>",
                i.target_id,
                s.html(target_name)
            );
        }
        let reason = if i.last_reason.is_empty() {
            &i.first_reason
        } else {
            &i.last_reason
        };
        // Seen failing from one node only: nobody was paged.
        let unconfirmed = if i.unconfirmed {
            " <span class=\"held\">unconfirmed</span>"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<td>{}</td><td>{lasted}</td><td>{}</td><td>{}{unconfirmed}</td></tr>",
            time(i.started),
            i.failed_checks,
            s.html(reason)
        );
    }
    out.push_str("</tbody></table>\n");
}

/// `2026-11-30 06:42 +01:00`: the daemon host's time, with its offset.
pub(super) fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M %:z")
                .to_string()
        })
        .unwrap_or_default()
}

/// `2026-11-30 06:42 +01:00 (12 s ago)`.
pub(super) fn ago(ms: i64, now_ms: i64) -> String {
    format!("{} ({} ago)", time(ms), span(now_ms - ms))
}

/// `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}
