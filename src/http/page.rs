//! The status pages, rendered on the server as plain HTML with their style inline: no script,
//! no font, no image from anywhere else, so they work on a host without internet and under a
//! strict Content-Security-Policy. `/` lists the enabled targets by `group_name` with their
//! state, response time and a bar per day of their last 90 days; `/target/ID` shows one
//! target, its last 24 hours as an SVG chart, and its incidents. Every text from the database
//! is HTML-escaped; URLs are in their display form. Links are relative, so the pages also work
//! behind a reverse proxy under a sub-path.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::answer::Answer;
use super::query::{self, Listed};
use super::status::{self, Day, Detail, Overview, TargetStatus, DAYS, RECENT_DAYS};
use super::{chart, Shared};
use crate::base::text::html;

/// Seconds between the page's reloads of itself.
pub const REFRESH_S: u32 = 30;

/// The answer to `/`.
pub fn front(shared: &Shared) -> Answer {
    let public_only = shared.config.http.public_only;
    let read =
        query::checkout(&shared.pool).and_then(|mut c| status::overview(&mut c, public_only));
    match read {
        Ok(o) => page(200, overview(&o)),
        Err(e) => unavailable(&e),
    }
}

/// The answer to `/target/ID`.
pub fn target(shared: &Shared, id: i64) -> Answer {
    let public_only = shared.config.http.public_only;
    let read =
        query::checkout(&shared.pool).and_then(|mut c| status::detail(&mut c, id, public_only));
    match read {
        Ok(Some(d)) => page(200, detail(&d)),
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
pub fn overview(o: &Overview) -> String {
    let mut body = String::new();
    body.push_str("<header><h1>Service status</h1>");
    banner(&mut body, &o.targets);
    body.push_str("</header>\n");
    for (group, targets) in groups(&o.targets) {
        group_section(&mut body, group, &targets);
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
    incident_table(&mut body, &o.incidents, true);
    body.push_str("</section>\n");
    footer(&mut body, o.now_ms);
    layout("Service status", &body)
}

/// One target's page.
pub fn detail(d: &Detail) -> String {
    let t = &d.target;
    let (class, word) = State::of(t).class_and_word();
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<p class=\"back\"><a href=\"../\">&larr; All targets</a></p>\n<header><h1>{}</h1>\
         <p class=\"badge {class}\">{word}</p></header>",
        html(&t.now.name)
    );
    facts(&mut body, t, d.now_ms);
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
    incident_table(&mut body, &d.incidents, false);
    body.push_str("</section>\n");
    footer(&mut body, d.now_ms);
    layout(&t.now.name, &body)
}

/// The page around `body`: meta refresh, viewport for phones, the style.
fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n",
        html(title)
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

fn group_section(out: &mut String, group: Option<&str>, targets: &[&TargetStatus]) {
    let up = targets.iter().filter(|t| State::of(t) == State::Up).count();
    let name = group.map_or("Other services".to_string(), html);
    let _ = writeln!(
        out,
        "<section class=\"group\"><h2>{name} <small>{up} of {} up</small></h2><ul class=\"targets\">",
        targets.len()
    );
    for t in targets {
        target_line(out, t);
    }
    out.push_str("</ul></section>\n");
}

fn target_line(out: &mut String, t: &TargetStatus) {
    let (class, word) = State::of(t).class_and_word();
    let response = match (State::of(t), t.now.last_response_ms) {
        (State::Up | State::Down | State::Maintenance, Some(ms)) => format!("{ms} ms"),
        _ => String::new(),
    };
    let uptime = t.availability().uptime().map_or(String::new(), percent);
    let held = held_note(t);
    let _ = writeln!(
        out,
        "<li class=\"target {class}\" id=\"target-{id}\"><div class=\"line\">\
         <span class=\"dot\"></span><a class=\"name\" href=\"target/{id}\">{name}</a>\
         <span class=\"state\">{word}</span>{held}<span class=\"rt\">{response}</span>\
         <span class=\"pct\" title=\"uptime, last {DAYS} days\">{uptime}</span></div>",
        id = t.now.id,
        name = html(&t.now.name),
    );
    bars(out, &t.days, false);
    out.push_str("</li>\n");
}

/// `held: parent db is down` beside a down target whose FAILURE alert is held, when it is.
fn held_note(t: &TargetStatus) -> String {
    match (&t.now.held, State::of(t)) {
        (Some(why), State::Down) => format!("<span class=\"held\">held: {}</span>", html(why)),
        _ => String::new(),
    }
}

/// A bar per day, oldest first, coloured by uptime, its figures in its title (shown on
/// hover and read by screen readers): the date, uptime and incidents, and with `detailed`
/// the checks and response time (kept off the front page, whose size grows with the fleet).
fn bars(out: &mut String, days: &[Option<Day>], detailed: bool) {
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
fn day_title(d: &Day, detailed: bool) -> String {
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
fn uptime_class(up: Option<f64>) -> &'static str {
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

/// The target's figures as a definition list.
fn facts(out: &mut String, t: &TargetStatus, now_ms: i64) {
    let n = &t.now;
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(g) = n.group() {
        rows.push(("Group", html(g)));
    }
    rows.push((
        "URL",
        format!("{} {}", html(&n.method), html(&n.shown_url())),
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
        rows.push(("Result", html(n.description())));
    }
    if let Some(why) = n.held.as_deref().filter(|_| State::of(t) == State::Down) {
        rows.push(("Alerts", format!("held: {}", html(why))));
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

fn incident_table(out: &mut String, incidents: &[Listed], with_target: bool) {
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
                html(target_name)
            );
        }
        let reason = if i.last_reason.is_empty() {
            &i.first_reason
        } else {
            &i.last_reason
        };
        let _ = writeln!(
            out,
            "<td>{}</td><td>{lasted}</td><td>{}</td><td>{}</td></tr>",
            time(i.started),
            i.failed_checks,
            html(reason)
        );
    }
    out.push_str("</tbody></table>\n");
}

fn footer(out: &mut String, now_ms: i64) {
    let _ = writeln!(
        out,
        "<footer>Updated {}; this page reloads itself every {REFRESH_S} s. \
         Served by skypunch.</footer>",
        time(now_ms)
    );
}

/// `2026-11-30 06:42 +01:00`: the daemon host's time, with its offset.
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M %:z")
                .to_string()
        })
        .unwrap_or_default()
}

/// `2026-11-30 06:42 +01:00 (12 s ago)`.
fn ago(ms: i64, now_ms: i64) -> String {
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

const STYLE: &str = "\
:root{--ok:#2e7d32;--ok2:#66bb6a;--warn:#f9a825;--warn2:#ef6c00;--bad:#c62828;--idle:#9e9e9e;\
--maint:#1565c0;--bg:#fff;--fg:#1d1d1f;--mute:#666;--line:#e2e2e2;--card:#f7f7f8}\
@media (prefers-color-scheme:dark){:root{--bg:#141414;--fg:#ececec;--mute:#a0a0a0;\
--line:#333;--card:#1d1d1d}}\
*{box-sizing:border-box}\
body{margin:0 auto;max-width:980px;padding:16px;background:var(--bg);color:var(--fg);\
font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
a{color:inherit}h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.15em;margin:1.4em 0 .5em}\
h2 small{font-weight:normal;color:var(--mute);font-size:.8em;margin-left:.5em}\
.banner{padding:12px 16px;border-radius:8px;color:#fff;font-weight:600;margin:.5em 0}\
.banner.up{background:var(--ok)}.banner.down{background:var(--bad)}\
.banner.maint{background:var(--maint)}\
.note,footer,.axis{color:var(--mute);font-size:.85em}footer{margin-top:2em}\
ul.targets{list-style:none;margin:0;padding:0}\
li.target{background:var(--card);border:1px solid var(--line);border-radius:8px;\
padding:10px 12px;margin:0 0 8px}\
.line{display:flex;align-items:center;gap:10px;flex-wrap:wrap}\
.name{font-weight:600;flex:1 1 12em;overflow-wrap:anywhere}\
.rt,.pct{color:var(--mute);font-variant-numeric:tabular-nums;min-width:4.5em;text-align:right}\
.dot{width:10px;height:10px;border-radius:50%;background:var(--idle);flex:none}\
.up .dot{background:var(--ok)}.down .dot{background:var(--bad)}\
.maint .dot{background:var(--maint)}.error .dot{background:var(--warn2)}\
.state{font-size:.85em;font-weight:600}.down .state{color:var(--bad)}\
.held{font-size:.85em;color:var(--mute)}\
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;\
background:var(--idle);font-weight:600;margin:0}\
.badge.up{background:var(--ok)}.badge.down{background:var(--bad)}\
.badge.maint{background:var(--maint)}.badge.error{background:var(--warn2)}\
.bars{display:flex;gap:2px;height:26px;margin-top:8px}\
.bars i{flex:1;border-radius:2px;background:var(--line)}\
.bars i.u4{background:var(--ok)}.bars i.u3{background:var(--ok2)}\
.bars i.u2{background:var(--warn)}.bars i.u1{background:var(--warn2)}\
.bars i.u0{background:var(--bad)}.bars i:hover{opacity:.7}\
.axis{display:flex;justify-content:space-between;margin-top:2px}.axis .last30{display:none}\
table.incidents{border-collapse:collapse;width:100%;font-size:.9em}\
.incidents th,.incidents td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);\
vertical-align:top}.incidents td:last-child{overflow-wrap:anywhere}\
tr.open td{color:var(--bad)}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:1em 0}\
dl.facts dt{color:var(--mute)}dl.facts dd{margin:0;overflow-wrap:anywhere}\
ul.uptimes{list-style:none;padding:0;display:flex;gap:24px;flex-wrap:wrap;margin:0}\
ul.uptimes b{display:block;font-size:1.3em}\
svg.chart{width:100%;height:auto;display:block}\
svg.chart .grid{stroke:var(--line)}svg.chart text{fill:var(--mute);font-size:11px}\
svg.chart .avg{fill:none;stroke:var(--maint);stroke-width:2}\
svg.chart .pt{fill:var(--maint)}svg.chart .fail{fill:var(--bad)}\
svg.chart .hover{fill:transparent}svg.chart .hover:hover{fill:rgba(128,128,128,.15)}\
.back{margin:0}\
@media (max-width:640px){body{padding:10px}.bars i:nth-child(-n+60){display:none}\
.axis .all{display:none}.axis .last30{display:inline}.rt{display:none}\
.incidents th:nth-child(4),.incidents td:nth-child(4){display:none}}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_never_round_up_to_100() {
        assert_eq!(percent(100.0), "100%");
        assert_eq!(percent(99.999), "99.99%");
        assert_eq!(percent(95.5), "95.50%");
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(45_000), "45 s");
        assert_eq!(span(12 * 60_000), "12 min");
        assert_eq!(span(3 * 3_600_000 + 5 * 60_000), "3 h 5 min");
        assert_eq!(span(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
    }

    #[test]
    fn uptime_colours() {
        assert_eq!(uptime_class(Some(100.0)), "u4");
        assert_eq!(uptime_class(Some(99.95)), "u3");
        assert_eq!(uptime_class(Some(99.5)), "u2");
        assert_eq!(uptime_class(Some(97.0)), "u1");
        assert_eq!(uptime_class(Some(50.0)), "u0");
        assert_eq!(uptime_class(None), "none");
    }
}
