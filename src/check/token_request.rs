//! The HTTP exchange of a token request, Keystone's or OAuth2's, on the worker thread whose
//! check needs the token: one POST on a connection of its own that follows no redirect and
//! ends by the check's timeout, its answer read up to a bound, and the words for a request
//! that got no answer. The protocols build the request and read the answer.

use std::time::Duration;

use ureq::http::{request::Builder, Response};
use ureq::Body;

use crate::base::model::Phase;
use crate::check::{describe, phase};

/// POSTs `body` with the headers `request` already has, asking for JSON. Any status is an
/// answer, a redirect too: credentials are not sent on to wherever an endpoint points.
pub(super) fn post(
    agent: &ureq::Agent,
    request: Builder,
    body: String,
    timeout: Duration,
) -> Result<Response<Body>, ureq::Error> {
    let request = request
        .header("accept", "application/json")
        .header("connection", "close")
        .body(body)
        .map_err(ureq::Error::Http)?;
    let request = agent
        .configure_request(request)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .build();
    agent.run(request)
}

/// The answer's body, at most `max` bytes: token answers are small, a wrong endpoint may send
/// anything.
pub(super) fn read_answer(response: &mut Response<Body>, max: u64) -> Result<Vec<u8>, ureq::Error> {
    phase::set_phase(Phase::Body);
    response.body_mut().with_config().limit(max).read_to_vec()
}

/// Why a token request to `host` got no whole answer (refused, unknown host, timed out and
/// in which phase, TLS), as a check's description says it; the caller names the endpoint.
pub(super) fn no_answer(err: &ureq::Error, host: &str, timeout: Duration) -> String {
    let cx = describe::Context {
        phase: phase::phase(),
        addr: None,
        host,
        timeout,
    };
    describe::failure(err, &cx)
}
