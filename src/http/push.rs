//! `/push/TOKEN` (handler threads): a PUSH target's heartbeat, on whichever node gets it.
//! GET, HEAD or POST (without a body: `status=` and `msg=` go in the query); no Basic
//! authentication unless `[http] PushAuth` (the token is the secret). One statement on the
//! server's own pool ([`db::targets::push::record`]), which writes the push into the row;
//! the node that owns the target turns it into a result (see `check::push`).
//!
//! Answers: 200 `OK` when a target took the push; 404 `not found` for an unknown token, a
//! disabled target or one that is not PUSH, alike and by the same statement, so that neither
//! the answer nor its time tells which tokens exist; 400 for a query it cannot read; 503
//! when the database cannot be written (the client should retry). Tokens are logged masked.

use super::answer::Answer;
use super::conn::Request;
use super::route::{authorized, unauthorized};
use super::Shared;
use crate::base::push::{self, masked, MAX_TOKEN};
use crate::db;

pub fn answer(request: &Request, token: &str, shared: &Shared) -> Answer {
    if !matches!(request.method.as_str(), "GET" | "HEAD" | "POST") {
        return Answer::text(405, "only GET, HEAD and POST are served at /push/\n")
            .with_header("Allow", "GET, HEAD, POST");
    }
    if shared.config.http.push_auth
        && !authorized(&shared.config.http, request.authorization.as_deref())
    {
        return unauthorized();
    }
    let report = match push::report(&request.query) {
        Ok(report) => report,
        Err(e) => return Answer::text(400, &format!("{e}\n")),
    };
    // A longer token matches no row either way; the statement need not carry all of it.
    let token = crate::base::text::clip(token, MAX_TOKEN + 1);
    let recorded = db::checkout(&shared.pool)
        .and_then(|mut conn| db::targets::push::record(&mut conn, token, &report));
    match recorded {
        Ok(true) => {
            log::debug!("http: push {} for {}", report.status(), masked(token));
            Answer::text(200, "OK\n")
        }
        Ok(false) => {
            log::debug!(
                "http: push for {}: no enabled PUSH target has it",
                masked(token)
            );
            Answer::text(404, "not found\n")
        }
        Err(e) => {
            // The reason names the database host and user: for the log, not for clients.
            log::warn!("http: push for {} not recorded: {e}", masked(token));
            Answer::busy("database unavailable; try again\n")
        }
    }
}
