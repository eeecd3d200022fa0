//! What one check found: its verdict, why it failed (named by the step that failed, and the
//! phase a network failure hit), its timings and the certificate it saw.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Status;
use crate::base::trace::Trace;

/// Where a check is, so that a timeout or a reset can be named by the phase it hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Start,
    Resolving,
    Connecting,
    Handshaking,
    Sending,
    Waiting,
    Receiving,
    Body,
}

/// Pass or fail, the verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
}

impl Verdict {
    pub fn status(self) -> Status {
        match self {
            Verdict::Pass => Status::Pass,
            Verdict::Fail => Status::Fail,
        }
    }
}

/// Why a check failed, named by the step that failed (as ureq names its errors), so that
/// code and tests match on the variant; `Display` is the description the log line, the
/// trace and `status_description` show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// Keystone gave no token: unreachable, refused the credentials, or answered without one.
    Keystone(String),
    /// No complete response head arrived; `phase` is where the check was when it failed
    /// (resolving, connecting, the TLS handshake, sending, waiting, or the whole timeout).
    /// `unanswered`: nothing answered at all before the request could be sent (the name did
    /// not resolve, no route, the connection or the TLS handshake timed out), unlike a host
    /// that refused or reset the connection, which proves the network reaches it.
    NoResponse {
        phase: Phase,
        description: String,
        unanswered: bool,
    },
    /// The response body could not be read to its end.
    Body { status: u16, description: String },
    /// The response body was longer than `MaxBodyBytes`.
    BodyTooLarge { status: u16, max: u64 },
    /// The status was not the one the target expects (`pass_result`).
    Status { expected: u16, got: u16 },
    /// The body did not contain `expect_body`.
    BodyLacks { status: u16, expected: String },
    /// The answer took longer than `max_response_ms`.
    TooSlow {
        status: u16,
        took_ms: u128,
        max_ms: u64,
    },
    /// The check itself panicked: a bug, logged with its place.
    Internal,
    /// The OAuth2 server gave no token: unreachable, refused the client, or answered without
    /// one.
    OAuth2(String),
    /// A condition of the target's `conditions` did not hold: the condition and what was
    /// seen, redacted and cut to fit `status_description`.
    Condition { status: u16, description: String },
    /// A PUSH target got no push within its `frequency` + `timeout`: whole seconds since
    /// its last one (or since this node began to watch it, when none came).
    NoHeartbeat { seconds: u64 },
    /// A PUSH target's last push said `status=fail`; its message (printable, bounded).
    PushedFailure(String),
}

impl CheckError {
    /// Every kind, in [`CheckError::index`] order: the names the stats line counts them by.
    pub const KINDS: [&'static str; 12] = [
        "keystone",
        "no_response",
        "body",
        "body_too_large",
        "status",
        "body_lacks",
        "too_slow",
        "internal",
        "oauth2",
        "condition",
        "no_heartbeat",
        "pushed_failure",
    ];

    /// This kind's place in [`CheckError::KINDS`].
    pub fn index(&self) -> usize {
        match self {
            CheckError::Keystone(_) => 0,
            CheckError::NoResponse { .. } => 1,
            CheckError::Body { .. } => 2,
            CheckError::BodyTooLarge { .. } => 3,
            CheckError::Status { .. } => 4,
            CheckError::BodyLacks { .. } => 5,
            CheckError::TooSlow { .. } => 6,
            CheckError::Internal => 7,
            CheckError::OAuth2(_) => 8,
            CheckError::Condition { .. } => 9,
            CheckError::NoHeartbeat { .. } => 10,
            CheckError::PushedFailure(_) => 11,
        }
    }

    /// Whether nothing on the way to the target's server answered the check: its name did
    /// not resolve, there was no route, or the connection or the TLS handshake timed out.
    /// What a monitor cut off from its network sees of every target; a refused connection
    /// or an answer it did not like is not (the network reached the host).
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            CheckError::NoResponse {
                unanswered: true,
                ..
            }
        )
    }

    /// The response status, when a response arrived.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            CheckError::Keystone(_)
            | CheckError::OAuth2(_)
            | CheckError::NoResponse { .. }
            | CheckError::Internal
            | CheckError::NoHeartbeat { .. }
            | CheckError::PushedFailure(_) => None,
            CheckError::Body { status, .. }
            | CheckError::Condition { status, .. }
            | CheckError::BodyTooLarge { status, .. }
            | CheckError::BodyLacks { status, .. }
            | CheckError::TooSlow { status, .. } => Some(*status),
            CheckError::Status { got, .. } => Some(*got),
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Keystone(d)
            | CheckError::OAuth2(d)
            | CheckError::NoResponse { description: d, .. }
            | CheckError::Body { description: d, .. }
            | CheckError::Condition { description: d, .. } => f.write_str(d),
            CheckError::BodyTooLarge { max, .. } => {
                write!(f, "response body larger than {max} bytes")
            }
            // The original's words, which scripts reading status_description match.
            CheckError::Status { expected, got } => {
                write!(f, "target status:{got} != {expected}")
            }
            CheckError::BodyLacks { expected, .. } => {
                write!(f, "response body does not contain {expected:?}")
            }
            CheckError::TooSlow {
                took_ms, max_ms, ..
            } => write!(
                f,
                "response took {took_ms} ms, more than max_response_ms {max_ms}"
            ),
            CheckError::Internal => {
                f.write_str("internal error: the check panicked (see the log); please report it")
            }
            CheckError::NoHeartbeat { seconds } => write!(f, "no heartbeat for {seconds} s"),
            CheckError::PushedFailure(message) => f.write_str(message),
        }
    }
}

/// What one check found. A failed check is data, never an error.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub verdict: Verdict,
    /// Why it failed; `None` on PASS.
    pub error: Option<CheckError>,
    /// The reason phrase on PASS (`OK`), the error's text on FAIL.
    pub description: String,
    /// The final response status, `None` when no response arrived (a network failure).
    pub http_status: Option<u16>,
    /// From the start of the check to the verdict.
    pub elapsed: Duration,
    pub trace: Trace,
    /// The leaf certificate, when the check got through a TLS handshake; shared with the
    /// worker's cache of parsed certificates, so a check of a known one allocates nothing.
    pub cert: Option<Arc<CertInfo>>,
    /// How long each phase of its requests took; `None` when it sent none (a PUSH target,
    /// a token request that failed first).
    pub phases: Option<crate::base::phases::Phases>,
}

/// The leaf certificate a check's TLS handshake saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Its `notAfter`, seconds since the epoch.
    pub expires: i64,
    /// Its subject's common name (the whole subject when it has none).
    pub subject: String,
    /// Its issuer's distinguished name, as RFC 4514 text.
    pub issuer: String,
}
