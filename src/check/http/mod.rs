//! The steps of one HTTP check on the worker thread: authenticate (`credential.rs`), send
//! (with the target's request headers and body), read the answer, judge it (`judge.rs`); each
//! step leaves trace lines, and the `[secrets]` values are masked in all of them at the end.
//! Reads the target and the token caches.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Read;
use std::time::{Duration, Instant};

use ureq::http::{self as h, HeaderMap, Response};
use ureq::{Agent, AsSendBody, Body};

use super::describe::{self, Context};
use super::phase::{self, Mark};
use super::{keystone, oauth2, CheckSettings, MAX_REDIRECTS};
use crate::base::model::{CheckError, CheckOutcome, Method, Phase, Target, Verdict};
use crate::base::redactor::Redactor;
use crate::base::trace::Trace;
use credential::Credential;
use judge::{judge, Answer};

mod credential;
mod judge;

/// What a check works with besides its target: shared by every check (the agent, the token
/// caches, the settings) or taken for this one (the `[secrets]` redactor in force).
pub(super) struct Tools<'a> {
    pub agent: &'a Agent,
    pub keystone: &'a keystone::TokenCache,
    pub oauth2: &'a oauth2::TokenCache,
    pub settings: &'a CheckSettings,
    pub redactor: &'a Redactor,
}

struct Run<'a> {
    tools: Tools<'a>,
    target: &'a Target,
    trace: Trace,
    deadline: Instant,
    /// The target URL's display form, for the trace.
    url: String,
    /// `host:port`, for descriptions of connection failures.
    addr: String,
}

pub(super) fn run(tools: Tools, target: &Target) -> CheckOutcome {
    let trace = Trace::new();
    let redactor = tools.redactor;
    let mut run = Run {
        tools,
        target,
        deadline: trace.started() + target.timeout,
        trace,
        url: target.url.shown().to_string(),
        addr: target.url.addr(),
    };
    let result = run
        .execute()
        .and_then(|answer| judge(target, &answer, redactor));
    let (verdict, http_status, description) = match &result {
        Ok(status) => (Verdict::Pass, Some(*status), pass_text(*status)),
        Err(e) => (Verdict::Fail, e.http_status(), fail_text(e, target)),
    };
    match verdict {
        Verdict::Pass => run.trace.step(format!("[Pass] {description}")),
        Verdict::Fail => run.trace.fail(&description),
    }
    // The one place every check's text passes before the log line, the writer, the alerts
    // and the faces get it: a `[secrets]` value a server echoed, or a secret host named in
    // an error, becomes `***` here.
    run.trace.redact(redactor);
    CheckOutcome {
        verdict,
        error: result.err().map(|e| redacted(e, redactor)),
        description: owned(redactor, description),
        http_status,
        elapsed: run.trace.started().elapsed(),
        trace: run.trace,
        cert: phase::take_cert(),
        phases: phase::take_phases(),
    }
}

/// `text` with the `[secrets]` values masked, without a copy when it holds none.
fn owned(redactor: &Redactor, text: String) -> String {
    match redactor.redact(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(masked) => masked,
    }
}

/// The error with the `[secrets]` values masked in the text it carries.
fn redacted(e: CheckError, redactor: &Redactor) -> CheckError {
    if redactor.is_empty() {
        return e;
    }
    let mask = |text: String| owned(redactor, text);
    match e {
        CheckError::Keystone(d) => CheckError::Keystone(mask(d)),
        CheckError::OAuth2(d) => CheckError::OAuth2(mask(d)),
        CheckError::NoResponse {
            phase,
            description,
            unanswered,
        } => CheckError::NoResponse {
            phase,
            description: mask(description),
            unanswered,
        },
        CheckError::Body {
            status,
            description,
        } => CheckError::Body {
            status,
            description: mask(description),
        },
        CheckError::BodyLacks { status, expected } => CheckError::BodyLacks {
            status,
            expected: mask(expected),
        },
        CheckError::Condition {
            status,
            description,
        } => CheckError::Condition {
            status,
            description: mask(description),
        },
        other => other,
    }
}

/// The description of a failure; a refused status says whether the server asked for a
/// client certificate.
fn fail_text(e: &CheckError, target: &Target) -> String {
    let text = e.to_string();
    let hint = match e {
        CheckError::Status { got, .. } => super::client_cert::status_hint(*got, target),
        _ => None,
    };
    match hint {
        Some(hint) => format!("{text}; {hint}"),
        None => text,
    }
}

fn pass_text(status: u16) -> String {
    match describe::reason_phrase(status) {
        "" => status.to_string(),
        reason => reason.to_string(),
    }
}

impl<'a> Run<'a> {
    fn execute(&mut self) -> Result<Answer, CheckError> {
        let mut credential = self.credential()?;
        let started = Instant::now();
        let mut response = self.send(&credential)?;
        if response.status() == 401 {
            // A cached token can be revoked before it expires: fetch one new token, once.
            if let Some(renewed) = self.renew(&credential) {
                drop(response);
                credential = renewed?;
                response = self.send(&credential)?;
            }
        }
        let status = response.status().as_u16();
        let conditions = self.target.conditions.as_deref();
        // Kept only for conditions: most targets have none, and a map is a copy per check.
        let headers = match conditions {
            Some(_) => response.headers().clone(),
            None => HeaderMap::new(),
        };
        let body = self.read_body(&mut response, status)?;
        let took = started.elapsed();
        let cert_left_ms = conditions
            .filter(|c| c.needs_certificate())
            .and_then(|_| phase::cert())
            .map(|cert| cert.expires * 1000 - chrono::Utc::now().timestamp_millis());
        Ok(Answer {
            status,
            body,
            headers,
            took,
            cert_left_ms,
        })
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn send(&mut self, credential: &Credential) -> Result<Response<Body>, CheckError> {
        let target = self.target;
        let mut request = h::Request::builder()
            .method(method(target.method))
            .uri(target.url.as_str())
            .header("connection", "close");
        match credential {
            Credential::None => {}
            Credential::Authorization(value) => {
                request = request.header("authorization", value.as_str())
            }
            Credential::Keystone(_, token, _) => {
                request = request.header("x-auth-token", token.value().expose())
            }
            Credential::OAuth2(_, token, _) => {
                request = request.header("authorization", token.authorization())
            }
        }
        let headers = &target.request_headers;
        if !headers.is_empty() {
            self.trace.step(format!(
                "request headers: {}",
                headers.shown_lines().join(", ")
            ));
            for (name, value) in headers.iter() {
                request = request.header(name, value);
            }
        }
        let result = match &target.request_body {
            Some(body) => {
                let content_type = target.content_type.as_deref().unwrap_or("application/json");
                let request = request.header("content-type", content_type);
                self.call(request.body(body.expose().as_bytes()))
            }
            None => self.call(request.body(())),
        };
        let method = method(target.method);
        phase::time_phases();
        marks_to_trace(&mut self.trace, "", method.as_str(), &self.url);
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = describe::status_text(status);
                self.trace.step(format!("response {text}"));
                Ok(response)
            }
            Err(e) => Err(CheckError::NoResponse {
                phase: phase::phase(),
                description: self.failure_text(&e),
                unanswered: describe::unanswered(&e, phase::phase()),
            }),
        }
    }

    fn call<S: AsSendBody>(
        &self,
        request: Result<h::Request<S>, h::Error>,
    ) -> Result<Response<Body>, ureq::Error> {
        let remaining = self.remaining();
        if remaining.is_zero() {
            return Err(ureq::Error::Timeout(ureq::Timeout::Global));
        }
        let redirects = if self.target.follow_redirects {
            MAX_REDIRECTS
        } else {
            0
        };
        let agent = self.tools.agent;
        let request = agent
            .configure_request(request?)
            .timeout_global(Some(remaining))
            .max_redirects(redirects)
            .max_redirects_will_error(true)
            .http_status_as_error(false)
            .build();
        agent.run(request)
    }

    fn failure_text(&self, err: &ureq::Error) -> String {
        describe::failure(
            err,
            &Context {
                phase: phase::phase(),
                addr: Some(&self.addr),
                host: self.target.url.host(),
                timeout: self.target.timeout,
            },
        )
    }

    /// Reads at most `max_body_bytes` of the body, keeping it only when `expect_body` or a
    /// condition needs it. A longer body FAILs and the connection is dropped unread.
    fn read_body(
        &mut self,
        response: &mut Response<Body>,
        status: u16,
    ) -> Result<Option<Vec<u8>>, CheckError> {
        phase::set_phase(Phase::Body);
        let started = Instant::now();
        let max = self.tools.settings.max_body_bytes;
        let target = self.target;
        let needed = target.expect_body.is_some()
            || target.conditions.as_deref().is_some_and(|c| c.needs_body());
        let mut kept = needed.then(Vec::new);
        let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
        let mut total: u64 = 0;
        let read = CHUNK.with_borrow_mut(|chunk| loop {
            let n = match reader.read(chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) => return Err(Some(e)),
            };
            total += n as u64;
            if total > max {
                return Err(None);
            }
            if let Some(kept) = kept.as_mut() {
                kept.extend_from_slice(&chunk[..n]);
            }
        });
        match read {
            Ok(()) => {}
            Err(None) => return Err(CheckError::BodyTooLarge { status, max }),
            Err(Some(e)) => {
                return Err(CheckError::Body {
                    status,
                    description: self.failure_text(&ureq::Error::from(e)),
                })
            }
        }
        let took = started.elapsed();
        phase::body_read(Instant::now(), took);
        self.trace
            .phase(Instant::now(), took, format!("read {total} bytes of body"));
        Ok(kept)
    }
}

thread_local! {
    /// What a worker reads a body through: zeroed once per thread, not once per check
    /// (std's io::copy zeroes its 8 KiB buffer for a reader without read_buf, as ureq's is).
    /// The reads come from ureq's own buffer, so its size sets no number of system calls.
    static CHUNK: RefCell<[u8; 4096]> = const { RefCell::new([0; 4096]) };
}

/// Turns what the connector hooks recorded into trace lines.
fn marks_to_trace(trace: &mut Trace, prefix: &str, method: &str, url: &str) {
    let mut sent = 0;
    let mut handshakes = 0;
    phase::drain(|mark| {
        let (at, took, text): (Instant, Duration, Cow<str>) = match mark {
            Mark::Resolved {
                at,
                took,
                first,
                count: 1,
            } => (at, took, format!("resolved host to {first}").into()),
            Mark::Resolved {
                at,
                took,
                first,
                count,
            } => (
                at,
                took,
                format!("resolved host to {first} (of {count} addresses)").into(),
            ),
            Mark::Connected { at, took, peer } => (at, took, format!("connected to {peer}").into()),
            Mark::Handshake { at, took } => {
                handshakes += 1;
                match phase::cert().filter(|_| handshakes == 1) {
                    Some(cert) => {
                        let now = chrono::Utc::now().timestamp();
                        let seen = super::cert::describe(&cert, now);
                        (at, took, format!("TLS handshake done; {seen}").into())
                    }
                    None => (at, took, "TLS handshake done".into()),
                }
            }
            Mark::Sent { at, took } => {
                sent += 1;
                match sent {
                    1 => (at, took, format!("{method} {url} sent").into()),
                    _ => (at, took, "request sent to the redirect location".into()),
                }
            }
            Mark::FirstByte { at, took } => (at, took, "first byte of the response".into()),
            Mark::Note {
                at,
                took: Some((_, took)),
                text,
            } => (at, took, phase::note_text(text).into()),
            Mark::Note {
                at,
                took: None,
                text,
            } => return trace.note(at, format!("{prefix}{}", phase::note_text(text))),
        };
        trace.phase(at, took, format!("{prefix}{text}"));
    });
}

fn method(m: Method) -> h::Method {
    match m {
        Method::Get => h::Method::GET,
        Method::Post => h::Method::POST,
        Method::Put => h::Method::PUT,
        Method::Delete => h::Method::DELETE,
        Method::Head => h::Method::HEAD,
        Method::Patch => h::Method::PATCH,
        Method::Options => h::Method::OPTIONS,
        // Never sent: a PUSH target is judged from its pushes (`check::push`).
        Method::Push => h::Method::GET,
    }
}
