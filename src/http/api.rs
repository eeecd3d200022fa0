//! The read-only JSON API (handler threads): `/api/v1/targets`, `/api/v1/targets/ID`,
//! `/api/v1/incidents`. Fields are documented in skypunch(8); URLs are in their display form
//! and no credential (`authn_parms`, a password in a URL) is ever read; the values of
//! secret-named request headers are `***`, and so is every value of `[secrets]` in any string
//! of any answer (the redactor of the daemon's keyring, as it is when the answer starts).
//! Times are RFC 3339 UTC. The lists come a page at a time (`?limit=N&after=ID`, [`Paging`])
//! and are written row by row as the database hands them over: an answer holds one row, not
//! its whole text.
//!
//! A target's `conditions` and `request_headers` are in its own answer only: each column can
//! hold 64 KiB, which would make a list's row (and a page of 5,000) unbounded in practice; a
//! list's row stays within its short fields.

use std::io::{self, Write};

use serde_json::{json, Value};

use super::answer::{Answer, Body};
use super::paging::Paging;
use super::query::{self, Bounds, Listed, Streamed, Which};
use super::Shared;
use crate::base::headers;
use crate::base::phases::Phases;
use crate::base::redactor::Redactor;
use crate::db::targets::TargetRow;
use crate::db::{self, Conn};

/// Ended incidents shown: those of the last this many days (and on a target's own answer,
/// at most [`INCIDENTS`]).
pub const INCIDENT_DAYS: u32 = 30;
pub const INCIDENTS: u32 = 500;

pub fn targets(shared: &Shared, query: &str) -> Answer {
    let paging = match Paging::parse(query) {
        Ok(p) => p,
        Err(e) => return json_answer(400, &json!({ "error": e.to_string() })),
    };
    let which = Which {
        public_only: shared.config.http.public_only,
        ..Which::default()
    };
    let vault = shared.keyring.now();
    list(
        shared,
        "targets",
        paging,
        move |conn| query::target_bounds(conn, which, paging),
        move |conn, page, rows| {
            query::each_target(conn, which, paging, page, |t| {
                rows.push(&redacted(target_json(&t), &vault.redactor))
            })
        },
    )
}

pub fn target(shared: &Shared, id: i64) -> Answer {
    let public_only = shared.config.http.public_only;
    let vault = shared.keyring.now();
    read(shared, |conn| {
        let Some(t) = query::detail(conn, id, public_only)? else {
            return Ok(None);
        };
        let incidents = query::incidents(conn, Some(id), public_only, INCIDENT_DAYS, INCIDENTS)?;
        let mut v = target_json(&t);
        v["conditions"] = lines(t.conditions.as_deref());
        let headers = t.request_headers.as_deref().map(headers::shown);
        v["request_headers"] = lines(headers.as_deref());
        v["incidents"] = incidents.iter().map(incident_json).collect();
        Ok(Some(redacted(v, &vault.redactor)))
    })
}

pub fn incidents(shared: &Shared, query: &str) -> Answer {
    let paging = match Paging::parse(query) {
        Ok(p) => p,
        Err(e) => return json_answer(400, &json!({ "error": e.to_string() })),
    };
    let public_only = shared.config.http.public_only;
    let vault = shared.keyring.now();
    list(
        shared,
        "incidents",
        paging,
        move |conn| query::incident_bounds(conn, public_only, INCIDENT_DAYS, paging),
        move |conn, page, rows| {
            query::each_incident(conn, public_only, INCIDENT_DAYS, paging, page, |i| {
                rows.push(&redacted(incident_json(&i), &vault.redactor))
            })
        },
    )
}

/// The rows of a list as they are written: `{"NAME": [` before them, `,` between them.
struct Rows<'a> {
    out: &'a mut dyn Write,
    first: bool,
}

impl Rows<'_> {
    fn push(&mut self, row: &Value) -> io::Result<()> {
        self.out
            .write_all(if self.first { b"\n" } else { b",\n" })?;
        self.first = false;
        serde_json::to_writer(&mut *self.out, row)?;
        Ok(())
    }
}

/// A page of a list: `{"NAME": [rows], "next": LINK}`, with a `Link` header when a page
/// follows. The page's bounds are read first (503 when the database cannot be read), then
/// its rows as the answer is written; the connection goes with the answer.
fn list<B, R>(shared: &Shared, name: &'static str, paging: Paging, bounds: B, rows: R) -> Answer
where
    B: FnOnce(&mut Conn) -> Result<Bounds, db::Error>,
    R: FnOnce(&mut Conn, Bounds, &mut Rows) -> Result<(), Streamed> + 'static,
{
    let read = query::checkout(&shared.pool)
        .and_then(|mut conn| bounds(&mut conn).map(|page| (conn, page)));
    let (mut conn, page) = match read {
        Ok(ok) => ok,
        Err(e) => return unavailable(&e),
    };
    let next = page
        .last
        .filter(|_| page.more)
        .map(|last| paging.next(last));
    let link = next.as_ref().map(|n| format!("<{n}>; rel=\"next\""));
    let body = Body::Stream(Box::new(move |out: &mut dyn Write| {
        write!(out, "{{\"{name}\": [")?;
        let mut list = Rows { out, first: true };
        match rows(&mut conn, page, &mut list) {
            Ok(()) => {}
            Err(Streamed::Write(e)) => return Err(e),
            Err(Streamed::Db(e)) => {
                log::warn!("http: API read failed half-way, answer cut short: {e}");
                if e.class() == db::Class::Outage {
                    conn.discard();
                }
                return Err(io::Error::other("database read failed"));
            }
        }
        write!(out, "\n],\n\"next\": {}}}\n", json!(next))
    }));
    let answer = Answer {
        status: 200,
        content_type: "application/json",
        headers: Vec::new(),
        body,
    };
    match link {
        Some(link) => answer.with_header("Link", link),
        None => answer,
    }
}

/// Runs `f` on a connection: 200 with its JSON, 404 for `None`, 503 when the database
/// cannot be read.
fn read(shared: &Shared, f: impl FnOnce(&mut Conn) -> Result<Option<Value>, db::Error>) -> Answer {
    let result = query::checkout(&shared.pool).and_then(|mut conn| f(&mut conn));
    match result {
        Ok(Some(v)) => json_answer(200, &v),
        Ok(None) => json_answer(404, &json!({ "error": "no such target" })),
        Err(e) => unavailable(&e),
    }
}

fn unavailable(e: &db::Error) -> Answer {
    // The reason names the database host and user: for the log, not for clients.
    log::warn!("http: API read failed: {e}");
    json_answer(
        503,
        &json!({ "error": "database unavailable; the daemon's log says why" }),
    )
}

fn json_answer(status: u16, v: &Value) -> Answer {
    let mut body = serde_json::to_vec_pretty(v).unwrap_or_default();
    body.push(b'\n');
    Answer::new(status, "application/json", body)
}

/// RFC 3339 UTC with milliseconds, from ms since the epoch.
pub fn time(ms: Option<i64>) -> Value {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}

fn target_json(t: &TargetRow) -> Value {
    let c = t.counts();
    json!({
        "id": t.id,
        "name": t.name,
        "group": t.group(),
        "public": t.public,
        "enabled": t.enabled,
        "status": t.status,
        "description": t.description(),
        "url": t.shown_url(),
        "method": t.method,
        "frequency_s": t.frequency,
        "last_check": if t.status == "NEW" { Value::Null } else { time(t.last_updated_ms()) },
        "last_http_status": t.last_http_status,
        "last_response_ms": t.last_response_ms,
        "checks": { "pass": c.pass, "fail": c.fail },
        "responses": { "2xx": c.c200, "3xx": c.c300, "4xx": c.c400, "5xx": c.c500 },
        "network_failures": c.network,
        "incident_started": time(t.incident_started_ms),
        "incident_reason": t.incident_reason,
        "depends_on": t.depends_on,
        // Why its FAILURE alert is held (`parent db is down`), while it is; else null.
        "held": t.held,
        "phases": t.last_phases.map(|p| phases_json(&p)),
        "push_token": t.push_token.as_deref().map(crate::base::push::masked),
    })
}

/// The last check's phases in seconds, by name, as blackbox_exporter names them.
fn phases_json(p: &Phases) -> Value {
    let map: serde_json::Map<String, Value> = p
        .seconds()
        .map(|(name, s)| (name.to_string(), json!(s)))
        .collect();
    Value::Object(map)
}

/// A column of several lines as `targets ID` shows them: a string per line, the blank lines
/// at its end left out (so a condition's line number in a config error is its place here);
/// null when the column is NULL.
fn lines(text: Option<&str>) -> Value {
    let Some(text) = text.map(str::trim_end) else {
        return Value::Null;
    };
    if text.is_empty() {
        return json!([]);
    }
    text.split('\n').map(|l| l.trim_end_matches('\r')).collect()
}

/// `v` with every `[secrets]` value in its strings replaced by `***` (see [`Redactor`]).
fn redacted(mut v: Value, redactor: &Redactor) -> Value {
    if !redactor.is_empty() {
        redact_in(&mut v, redactor);
    }
    v
}

fn redact_in(v: &mut Value, redactor: &Redactor) {
    match v {
        Value::String(s) if redactor.finds(s) => *s = redactor.redact(s).into_owned(),
        Value::Array(items) => items.iter_mut().for_each(|x| redact_in(x, redactor)),
        Value::Object(fields) => fields.values_mut().for_each(|x| redact_in(x, redactor)),
        _ => {}
    }
}

fn incident_json(
    Listed {
        incident: i,
        target_name,
        suppressed_by,
        monitor_blind,
    }: &Listed,
) -> Value {
    json!({
        "id": i.id,
        "target_id": i.target_id,
        "target_name": target_name,
        "started": time(Some(i.started)),
        "ended": time(i.ended),
        "first_reason": i.first_reason,
        "last_reason": i.last_reason,
        "failed_checks": i.failed_checks,
        "http_status": i.http_status,
        // What held its FAILURE alert: the parent's incident, or the node's blindness.
        "suppressed_by": suppressed_by,
        "monitor_blind": monitor_blind,
        // A second node found the target up as its FAILURE became due: nobody was paged.
        "unconfirmed": i.unconfirmed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_of_lines_is_an_array_as_targets_id_shows_it() {
        assert_eq!(lines(None), Value::Null);
        assert_eq!(lines(Some(" \n")), json!([]));
        assert_eq!(
            lines(Some("[STATUS] == 200\r\n\n  [BODY].ok == true\n\n")),
            json!(["[STATUS] == 200", "", "  [BODY].ok == true"])
        );
    }

    #[test]
    fn every_string_of_an_answer_is_redacted_and_nothing_else_changes() {
        let r = Redactor::new(["hunter22"]);
        let v = json!({
            "name": "x hunter22 y",
            "n": 7,
            "lines": ["a: hunter22", "b: c"],
            "nested": {"deep": ["hunter22"], "null": null},
        });
        assert_eq!(
            redacted(v.clone(), &r),
            json!({
                "name": "x *** y",
                "n": 7,
                "lines": ["a: ***", "b: c"],
                "nested": {"deep": ["***"], "null": null},
            })
        );
        assert_eq!(redacted(v.clone(), &Redactor::none()), v);
    }
}
