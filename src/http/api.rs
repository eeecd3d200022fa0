//! The read-only JSON API: `/api/v1/targets`, `/api/v1/targets/ID`, `/api/v1/incidents`.
//! Fields are documented in skypunch(8); URLs are in their display form and no credential
//! (`authn_parms`, a password in a URL) is ever read. Times are RFC 3339 UTC.

use serde_json::{json, Value};

use super::query::{self, IncidentRow, TargetNow, Which};
use super::server::Answer;
use super::Shared;

/// Ended incidents shown: those of the last this many days, at most [`INCIDENTS`].
pub const INCIDENT_DAYS: u32 = 30;
pub const INCIDENTS: u32 = 500;

pub fn targets(shared: &Shared) -> Answer {
    let which = Which {
        public_only: shared.config.http.public_only,
        ..Which::default()
    };
    read(shared, |conn| {
        let list = query::targets(conn, which)?;
        Ok(Some(
            json!({ "targets": list.iter().map(target_json).collect::<Vec<_>>() }),
        ))
    })
}

pub fn target(shared: &Shared, id: i64) -> Answer {
    let which = Which {
        public_only: shared.config.http.public_only,
        id: Some(id),
        ..Which::default()
    };
    let public_only = shared.config.http.public_only;
    read(shared, |conn| {
        let Some(t) = query::targets(conn, which)?.pop() else {
            return Ok(None);
        };
        let incidents = query::incidents(conn, Some(id), public_only, INCIDENT_DAYS, INCIDENTS)?;
        let mut v = target_json(&t);
        v["incidents"] = incidents.iter().map(incident_json).collect();
        Ok(Some(v))
    })
}

pub fn incidents(shared: &Shared) -> Answer {
    let public_only = shared.config.http.public_only;
    read(shared, |conn| {
        let list = query::incidents(conn, None, public_only, INCIDENT_DAYS, INCIDENTS)?;
        Ok(Some(
            json!({ "incidents": list.iter().map(incident_json).collect::<Vec<_>>() }),
        ))
    })
}

/// Runs `f` on a connection: 200 with its JSON, 404 for `None`, 503 when the database
/// cannot be read.
fn read(
    shared: &Shared,
    f: impl FnOnce(&mut crate::db::Conn) -> Result<Option<Value>, crate::db::Error>,
) -> Answer {
    let result = query::checkout(&shared.pool).and_then(|mut conn| f(&mut conn));
    match result {
        Ok(Some(v)) => json_answer(200, &v),
        Ok(None) => json_answer(404, &json!({ "error": "no such target" })),
        Err(e) => {
            // The reason names the database host and user: for the log, not for clients.
            log::warn!("http: API read failed: {e}");
            json_answer(
                503,
                &json!({ "error": "database unavailable; the daemon's log says why" }),
            )
        }
    }
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

fn target_json(t: &TargetNow) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "group": t.group,
        "public": t.public,
        "enabled": t.enabled,
        "status": t.status,
        "description": t.description,
        "url": t.url,
        "method": t.method,
        "frequency_s": t.frequency,
        "last_check": if t.status == "NEW" { Value::Null } else { time(t.last_check_ms) },
        "last_http_status": t.http_status,
        "last_response_ms": t.response_ms,
        "checks": { "pass": t.pass, "fail": t.fail },
        "responses": {
            "2xx": t.classes[0], "3xx": t.classes[1], "4xx": t.classes[2], "5xx": t.classes[3]
        },
        "network_failures": t.network_fails,
        "incident_started": time(t.incident_ms),
        "incident_reason": t.incident_reason,
    })
}

fn incident_json(i: &IncidentRow) -> Value {
    json!({
        "id": i.id,
        "target_id": i.target_id,
        "target_name": i.target_name,
        "started": time(Some(i.started)),
        "ended": time(i.ended),
        "first_reason": i.first_reason,
        "last_reason": i.last_reason,
        "failed_checks": i.failed_checks,
        "http_status": i.http_status,
    })
}
