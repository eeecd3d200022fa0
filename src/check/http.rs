//! The steps of one HTTP check on the worker thread: authenticate, send, read the answer,
//! judge it; each step leaves trace lines. Reads the target and the token cache.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ureq::http::{self as h, Response};
use ureq::{Agent, AsSendBody, Body};

use super::describe::{self, Context};
use super::phase::{self, Mark};
use super::{CheckSettings, MAX_REDIRECTS};
use crate::base::authn::{Auth, IdentityVersion, KeystoneParams};
use crate::base::model::{CheckError, CheckOutcome, Method, Phase, Target, Verdict};
use crate::base::trace::Trace;
use crate::check::keystone::{self, Source, Token, TokenCache};

/// What the target answered.
struct Answer {
    status: u16,
    /// The body when `expect_body` needs it.
    body: Option<Vec<u8>>,
    /// From sending the (last) request to the end of its body.
    took: Duration,
}

enum Credential<'a> {
    None,
    Basic(String),
    Token(&'a KeystoneParams, Arc<Token>, Source),
}

struct Run<'a> {
    agent: &'a Agent,
    tokens: &'a TokenCache,
    settings: &'a CheckSettings,
    target: &'a Target,
    trace: Trace,
    deadline: Instant,
    /// The target URL's display form, for the trace.
    url: String,
    /// `host:port`, for descriptions of connection failures.
    addr: String,
}

pub(super) fn run(
    agent: &Agent,
    tokens: &TokenCache,
    settings: &CheckSettings,
    target: &Target,
) -> CheckOutcome {
    let trace = Trace::new();
    let mut run = Run {
        agent,
        tokens,
        settings,
        target,
        deadline: trace.started() + target.timeout,
        trace,
        url: target.url.shown().to_string(),
        addr: target.url.addr(),
    };
    let result = run.execute().and_then(|answer| judge(target, &answer));
    let (verdict, http_status, description) = match &result {
        Ok(status) => (Verdict::Pass, Some(*status), pass_text(*status)),
        Err(e) => (Verdict::Fail, e.http_status(), e.to_string()),
    };
    match verdict {
        Verdict::Pass => run.trace.step(format!("[Pass] {description}")),
        Verdict::Fail => run.trace.fail(&description),
    }
    CheckOutcome {
        verdict,
        error: result.err(),
        description,
        http_status,
        elapsed: run.trace.started().elapsed(),
        trace: run.trace,
        cert: phase::take_cert(),
    }
}

fn pass_text(status: u16) -> String {
    match describe::reason_phrase(status) {
        "" => status.to_string(),
        reason => reason.to_string(),
    }
}

/// PASS when the status, the body and the time are as the target wants; otherwise says which
/// one was not.
fn judge(target: &Target, answer: &Answer) -> Result<u16, CheckError> {
    let status = answer.status;
    if status != target.pass_result {
        return Err(CheckError::Status {
            expected: target.pass_result,
            got: status,
        });
    }
    if let (Some(want), Some(body)) = (&target.expect_body, &answer.body) {
        if !String::from_utf8_lossy(body).contains(want.as_str()) {
            return Err(CheckError::BodyLacks {
                status,
                expected: want.clone(),
            });
        }
    }
    if let Some(max) = target.max_response_ms {
        let ms = answer.took.as_millis();
        if ms > u128::from(max) {
            return Err(CheckError::TooSlow {
                status,
                took_ms: ms,
                max_ms: max,
            });
        }
    }
    Ok(status)
}

impl<'a> Run<'a> {
    fn execute(&mut self) -> Result<Answer, CheckError> {
        let mut credential = self.credential()?;
        let started = Instant::now();
        let mut response = self.send(&credential)?;
        let refused = match &credential {
            Credential::Token(params, token, Source::Cached) if response.status() == 401 => {
                Some((*params, token.clone()))
            }
            _ => None,
        };
        if let Some((params, token)) = refused {
            // A cached token can be revoked before it expires: fetch one new token, once.
            drop(response);
            self.tokens.invalidate(params, &token);
            self.trace
                .step("target refused the cached keystone token: authenticating again");
            credential = self.keystone(params)?;
            response = self.send(&credential)?;
        }
        let status = response.status().as_u16();
        let body = self.read_body(&mut response, status)?;
        Ok(Answer {
            status,
            body,
            took: started.elapsed(),
        })
    }

    fn credential(&mut self) -> Result<Credential<'a>, CheckError> {
        let target: &'a Target = self.target;
        match &target.auth {
            Auth::None => Ok(Credential::None),
            Auth::Basic { user, password } => {
                self.trace.step(format!("auth: BASIC as user {user}"));
                let pair = format!("{user}:{}", password.expose());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                Ok(Credential::Basic(format!("Basic {encoded}")))
            }
            Auth::OpenStack(params) => self.keystone(params),
        }
    }

    /// A Keystone token for `params` from the shared cache, fetched on this thread if needed.
    fn keystone<'p>(&mut self, params: &'p KeystoneParams) -> Result<Credential<'p>, CheckError> {
        let (agent, lifetime) = (self.agent, self.settings.token_lifetime);
        let timeout = self.remaining();
        let result = self.tokens.get(params, self.deadline, || {
            keystone::fetch(agent, params, timeout, lifetime)
        });
        let version = match params.version {
            IdentityVersion::V2 => "v2",
            IdentityVersion::V3 => "v3",
        };
        marks_to_trace(
            &mut self.trace,
            "keystone: ",
            "POST",
            &keystone::token_url(params),
        );
        // The row's certificate is the target's, not Keystone's (its trace line has it).
        let _ = phase::take_cert();
        let endpoint = params.endpoint.shown();
        match result {
            Ok((token, source)) => {
                let (source_text, expires) = (source.as_str(), token.expires());
                self.trace.step(format!(
                    "keystone {version} token obtained from {endpoint} ({source_text}), expires {expires}"
                ));
                Ok(Credential::Token(params, token, source))
            }
            Err(e) => Err(CheckError::Keystone(e.to_string())),
        }
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
            Credential::Basic(value) => request = request.header("authorization", value.as_str()),
            Credential::Token(_, token, _) => {
                request = request.header("x-auth-token", token.value().expose())
            }
        }
        let result = match &target.request_body {
            Some(body) => {
                let content_type = target.content_type.as_deref().unwrap_or("application/json");
                let request = request.header("content-type", content_type);
                self.call(request.body(body.as_bytes()))
            }
            None => self.call(request.body(())),
        };
        let method = method(target.method);
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
        let request = self
            .agent
            .configure_request(request?)
            .timeout_global(Some(remaining))
            .max_redirects(redirects)
            .max_redirects_will_error(true)
            .http_status_as_error(false)
            .build();
        self.agent.run(request)
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

    /// Reads at most `max_body_bytes` of the body, keeping it only when `expect_body` needs
    /// it. A longer body FAILs and the connection is dropped unread.
    fn read_body(
        &mut self,
        response: &mut Response<Body>,
        status: u16,
    ) -> Result<Option<Vec<u8>>, CheckError> {
        phase::set_phase(Phase::Body);
        let started = Instant::now();
        let max = self.settings.max_body_bytes;
        let mut kept = self.target.expect_body.as_ref().map(|_| Vec::new());
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            id: 1,
            name: "t".into(),
            url: crate::base::urls::WebUrl::parse("http://127.0.0.1/").unwrap(),
            method: Method::Get,
            auth: Auth::None,
            pass_result: 200,
            frequency: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            request_body: None,
            content_type: None,
            expect_body: Some("healthy".into()),
            max_response_ms: Some(500),
            follow_redirects: false,
            verify_tls: true,
            fail_threshold: 1,
            success_threshold: 1,
            realert: None,
            ca: None,
            cert_warn_days: 14,
            depends_on: None,
        }
    }

    fn answer(status: u16, body: &str, ms: u64) -> Answer {
        Answer {
            status,
            body: Some(body.as_bytes().to_vec()),
            took: Duration::from_millis(ms),
        }
    }

    #[test]
    fn the_verdict_says_what_did_not_match() {
        let t = target();
        assert_eq!(judge(&t, &answer(200, "all healthy", 10)), Ok(200));
        assert_eq!(
            judge(&t, &answer(503, "", 10)).unwrap_err().to_string(),
            "target status:503 != 200"
        );
        assert_eq!(
            judge(&t, &answer(200, "sick", 10)).unwrap_err().to_string(),
            "response body does not contain \"healthy\""
        );
        let slow = judge(&t, &answer(200, "healthy", 1234)).unwrap_err();
        assert_eq!(
            slow,
            CheckError::TooSlow {
                status: 200,
                took_ms: 1234,
                max_ms: 500
            }
        );
        assert_eq!(slow.http_status(), Some(200));
        assert_eq!(
            slow.to_string(),
            "response took 1234 ms, more than max_response_ms 500"
        );
        assert_eq!(pass_text(200), "OK");
        assert_eq!(pass_text(299), "299");
    }
}
