//! The status pages, rendered on the server as plain HTML with their style inline: no script,
//! no font, no image from anywhere else, so they work on a host without internet and under a
//! strict Content-Security-Policy. `/` lists the enabled targets by `group_name` with their
//! state, response time and a bar per day of their last 90 days; `/target/ID` shows one
//! target, its last 24 hours as an SVG chart, and its incidents. Every text from the database
//! goes through one [`Sanitizer`]: the values of `[secrets]` masked, then HTML-escaped; URLs
//! are in their display form. Links are relative, so the pages also work behind a reverse
//! proxy under a sub-path. Here: the two pages and a target's line; [`days`]
//! draws the bars, [`tables`] the facts and incidents, [`style`] holds the stylesheet.

mod days;
mod style;
mod tables;

use std::collections::BTreeMap;
use std::fmt::Write;

use super::answer::Answer;
use super::query;
use super::status::{self, Detail, Overview, TargetStatus, DAYS, RECENT_DAYS};
use super::{chart, Shared};
use crate::base::redactor::Redactor;
use crate::base::text::html;
use days::{bars, percent};
use style::STYLE;
use tables::{facts, incident_table, time};

/// Seconds between the page's reloads of itself.
pub const REFRESH_S: u32 = 30;

/// The answer to `/`.
pub fn front(shared: &Shared) -> Answer {
    let public_only = shared.config.http.public_only;
    let vault = shared.keyring.now();
    let read =
        query::checkout(&shared.pool).and_then(|mut c| status::overview(&mut c, public_only));
    match read {
        Ok(o) => page(200, overview(&o, Sanitizer(&vault.redactor))),
        Err(e) => unavailable(&e),
    }
}

/// The answer to `/target/ID`.
pub fn target(shared: &Shared, id: i64) -> Answer {
    let public_only = shared.config.http.public_only;
    let vault = shared.keyring.now();
    let read =
        query::checkout(&shared.pool).and_then(|mut c| status::detail(&mut c, id, public_only));
    match read {
        Ok(Some(d)) => page(200, detail(&d, Sanitizer(&vault.redactor))),
        Ok(None) => page(
            404,
            layout(
                "Not found",
                "<h1>No such target</h1>\n<p><a href=\"../\">All targets</a></p>\n",
            ),
        ),
        Err(e) => unavailable(&e),
    }
}

/// The database cannot be read: the reason (which names the database host and user) goes to
/// the log, not to the page.
fn unavailable(e: &crate::db::Error) -> Answer {
    log::warn!("http: status page read failed: {e}");
    let body = "<h1>Status unavailable</h1>\n<p>The monitoring database cannot be read just now; \
                the daemon's log says why. This page tries again by itself.</p>\n";
    page(503, layout("Status unavailable", body))
}

/// An HTML answer that may load nothing from anywhere (the style is inline).
fn page(status: u16, text: String) -> Answer {
    Answer::new(status, "text/html; charset=utf-8", text.into_bytes())
        .with_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
        )
        .with_header("Cache-Control", "no-store")
}

/// How a page writes a text from the database (a name, group, URL, result, reason): every
/// value of `[secrets]` in it masked as `***`, then HTML-escaped. In that order: a secret
/// holding `&` or `<` is found in the raw text, not once escaped. The redactor is the daemon
/// keyring's as it was when the answer started (taken once per answer); without secrets it
/// finds nothing at once and the text is only escaped. Copied into every function that writes.
#[derive(Debug, Clone, Copy)]
struct Sanitizer<'r>(&'r Redactor);

impl Sanitizer<'_> {
    fn html(self, text: &str) -> String {
        html(&self.0.redact(text))
    }
}

/// What a target's line says about it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Up,
    Down,
    /// Not checked yet since it was added or changed.
    Pending,
    /// In a maintenance window: failures there raise no alert.
    Maintenance,
    /// Its row cannot be checked (the loader wrote why).
    ConfigError,
    Disabled,
}

impl State {
    pub fn of(t: &TargetStatus) -> State {
        let now = &t.now;
        if !now.enabled {
            State::Disabled
        } else if now.config_error() {
            State::ConfigError
        } else if t.maintenance {
            State::Maintenance
        } else {
            match now.status.as_str() {
                "PASS" => State::Up,
                "FAIL" => State::Down,
                _ => State::Pending,
            }
        }
    }

    /// The CSS class and the word shown.
    fn class_and_word(self) -> (&'static str, &'static str) {
        match self {
            State::Up => ("up", "Up"),
            State::Down => ("down", "Down"),
            State::Pending => ("pending", "Pending"),
            State::Maintenance => ("maint", "Maintenance"),
            State::ConfigError => ("error", "Config error"),
            State::Disabled => ("off", "Disabled"),
        }
    }
}

/// The front page.
fn overview(o: &Overview, s: Sanitizer) -> String {
    let mut body = String::new();
    body.push_str("<header><h1>Service status</h1>");
    banner(&mut body, &o.targets);
    body.push_str("</header>\n");
    for (group, targets) in groups(&o.targets) {
        group_section(&mut body, group, &targets, s);
    }
    if o.targets.is_empty() {
        body.push_str("<p class=\"note\">No target is shown here yet.</p>\n");
    }
    if o.left_out > 0 {
        let _ = writeln!(
            body,
            "<p class=\"note\">{} more targets are not listed (a page shows {}); the JSON API \
             at <a href=\"api/v1/targets\">api/v1/targets</a> has them all.</p>",
            o.left_out,
            o.targets.len()
        );
    }
    let _ = writeln!(body, "<section><h2>Incidents, last {RECENT_DAYS} days</h2>");
    incident_table(&mut body, &o.incidents, true, s);
    body.push_str("</section>\n");
    footer(&mut body, o.now_ms);
    layout("Service status", &body)
}

/// One target's page.
fn detail(d: &Detail, s: Sanitizer) -> String {
    let t = &d.target;
    let (class, word) = State::of(t).class_and_word();
    let name = s.html(&t.now.name);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<p class=\"back\"><a href=\"../\">&larr; All targets</a></p>\n<header><h1>{name}</h1>\
         <p class=\"badge {class}\">{word}</p></header>",
    );
    facts(&mut body, t, d.now_ms, s);
    body.push_str("<section><h2>Uptime</h2>\n<ul class=\"uptimes\">");
    for (label, a) in &t.recent {
        let _ = write!(
            body,
            "<li><b>{}</b> {label}</li>",
            a.uptime().map_or("no data".to_string(), percent)
        );
    }
    body.push_str("</ul>\n");
    bars(&mut body, &t.days, true);
    body.push_str("</section>\n<section><h2>Response time, last 24 hours (UTC)</h2>\n");
    body.push_str(&chart::response_times(&d.hours));
    let _ = writeln!(
        body,
        "</section>\n<section><h2>Incidents, last {DAYS} days</h2>"
    );
    incident_table(&mut body, &d.incidents, false, s);
    body.push_str("</section>\n");
    footer(&mut body, d.now_ms);
    layout(&name, &body)
}

/// The page around `body`: meta refresh, viewport for phones, the style. `title` is HTML,
/// as a [`Sanitizer`] makes a text from the database.
fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <title>{title}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n"
    )
}

/// The line under the title: everything up, or how many are down.
fn banner(out: &mut String, targets: &[TargetStatus]) {
    let count = |s: State| targets.iter().filter(|t| State::of(t) == s).count();
    let (down, maint) = (count(State::Down), count(State::Maintenance));
    let (class, text) = if down > 0 {
        ("down", format!("{down} of {} targets down", targets.len()))
    } else if maint > 0 {
        (
            "maint",
            format!("All systems operational; {maint} in maintenance"),
        )
    } else {
        ("up", "All systems operational".to_string())
    };
    let _ = write!(out, "<p class=\"banner {class}\">{text}</p>");
    let (pending, errors) = (count(State::Pending), count(State::ConfigError));
    if pending + errors > 0 {
        let _ = write!(
            out,
            "<p class=\"note\">{pending} not checked yet, {errors} with a config error.</p>"
        );
    }
}

/// The targets by `group_name`, groups in name order, those without a group last.
fn groups(targets: &[TargetStatus]) -> Vec<(Option<&str>, Vec<&TargetStatus>)> {
    let mut named: BTreeMap<&str, Vec<&TargetStatus>> = BTreeMap::new();
    let mut other = Vec::new();
    for t in targets {
        match t.now.group() {
            Some(g) => named.entry(g).or_default().push(t),
            None => other.push(t),
        }
    }
    let mut out: Vec<(Option<&str>, Vec<&TargetStatus>)> =
        named.into_iter().map(|(g, ts)| (Some(g), ts)).collect();
    if !other.is_empty() {
        out.push((None, other));
    }
    for (_, ts) in &mut out {
        ts.sort_by(|a, b| a.now.name.cmp(&b.now.name).then(a.now.id.cmp(&b.now.id)));
    }
    out
}

fn group_section(out: &mut String, group: Option<&str>, targets: &[&TargetStatus], s: Sanitizer) {
    let up = targets.iter().filter(|t| State::of(t) == State::Up).count();
    let name = group.map_or("Other services".to_string(), |g| s.html(g));
    let _ = writeln!(
        out,
        "<section class=\"group\"><h2>{name} <small>{up} of {} up</small></h2><ul class=\"targets\">",
        targets.len()
    );
    for t in targets {
        target_line(out, t, s);
    }
    out.push_str("</ul></section>\n");
}

fn target_line(out: &mut String, t: &TargetStatus, s: Sanitizer) {
    let (class, word) = State::of(t).class_and_word();
    let response = match (State::of(t), t.now.last_response_ms) {
        (State::Up | State::Down | State::Maintenance, Some(ms)) => format!("{ms} ms"),
        _ => String::new(),
    };
    let uptime = t.availability().uptime().map_or(String::new(), percent);
    let held = held_note(t, s);
    let _ = writeln!(
        out,
        "<li class=\"target {class}\" id=\"target-{id}\"><div class=\"line\">\
         <span class=\"dot\"></span><a class=\"name\" href=\"target/{id}\">{name}</a>\
         <span class=\"state\">{word}</span>{held}<span class=\"rt\">{response}</span>\
         <span class=\"pct\" title=\"uptime, last {DAYS} days\">{uptime}</span></div>",
        id = t.now.id,
        name = s.html(&t.now.name),
    );
    bars(out, &t.days, false);
    out.push_str("</li>\n");
}

/// `held: parent db is down` beside a down target whose FAILURE alert is held, when it is.
fn held_note(t: &TargetStatus, s: Sanitizer) -> String {
    match (&t.now.held, State::of(t)) {
        (Some(why), State::Down) => format!("<span class=\"held\">held: {}</span>", s.html(why)),
        _ => String::new(),
    }
}

fn footer(out: &mut String, now_ms: i64) {
    let _ = writeln!(
        out,
        "<footer>Updated {}; this page reloads itself every {REFRESH_S} s. \
         Served by skypunch.</footer>",
        time(now_ms)
    );
}

#[cfg(test)]
mod tests;
