//! The bars of a status page, one a day coloured by uptime with its figures in its title,
//! rendered on an HTTP thread for the front page (each target's line) and a target's page.

use std::fmt::Write;

use crate::http::status::{Day, DAYS};

/// A bar per day, oldest first, coloured by uptime, its figures in its title (shown on
/// hover and read by screen readers): the date, uptime and incidents, and with `detailed`
/// the checks and response time (kept off the front page, whose size grows with the fleet).
pub(super) fn bars(out: &mut String, days: &[Option<Day>], detailed: bool) {
    out.push_str("<div class=\"bars\" role=\"img\" aria-label=\"uptime per day\">");
    for day in days {
        match day {
            Some(d) => {
                let up = d.availability.uptime();
                let _ = write!(
                    out,
                    "<i class=\"{}\" title=\"{}\"></i>",
                    uptime_class(up),
                    day_title(d, detailed)
                );
            }
            None => out.push_str("<i></i>"),
        }
    }
    let _ = write!(
        out,
        "</div><div class=\"axis\"><span class=\"all\">{DAYS} days ago</span>\
         <span class=\"last30\">30 days ago</span><span>today</span></div>"
    );
}

/// `2026-11-29: 99.30%, 1 incident`, and with `detailed` `; 1440 checks, 3 failed, 13 ms on
/// average`.
pub(super) fn day_title(d: &Day, detailed: bool) -> String {
    let date = chrono::DateTime::from_timestamp_millis(d.start_ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let up = d
        .availability
        .uptime()
        .map_or("paused".to_string(), percent);
    let incidents = match d.availability.incidents {
        0 => String::new(),
        1 => ", 1 incident".to_string(),
        n => format!(", {n} incidents"),
    };
    let mut title = format!("{date}: {up}{incidents}");
    if detailed {
        let r = &d.rollup;
        let avg = r.response_ms_sum.checked_div(r.checks).unwrap_or(0);
        let _ = write!(
            title,
            "; {} checks, {} failed, {avg} ms on average",
            r.checks, r.failures
        );
    }
    title
}

/// The colour class of a day's uptime: u4 (100 %) down to u0 (below 95 %).
pub(super) fn uptime_class(up: Option<f64>) -> &'static str {
    match up {
        None => "none",
        Some(p) if p >= 100.0 => "u4",
        Some(p) if p >= 99.9 => "u3",
        Some(p) if p >= 99.0 => "u2",
        Some(p) if p >= 95.0 => "u1",
        Some(_) => "u0",
    }
}

/// `100%`, or two decimals rounded down (99.999 is not 100).
pub fn percent(p: f64) -> String {
    if p >= 100.0 {
        "100%".to_string()
    } else {
        format!("{:.2}%", (p * 100.0).floor() / 100.0)
    }
}
