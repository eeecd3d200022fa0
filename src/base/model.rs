//! The plain data types that cross threads, in one place so one file shows what travels
//! between them: target definitions and controls (loader → wheel → workers), check outcomes
//! (workers → writer), alerts (writer → outbox → notifier) and incidents (the history every
//! face reads). No I/O here; what only the writer and its store thread exchange is
//! `writer::batch`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::base::authn::{Auth, Secret};
use crate::base::conditions::Conditions;
use crate::base::headers::RequestHeaders;
use crate::base::trace::Trace;
use crate::base::urls::WebUrl;

/// A target id, the `targets.id` column.
pub type TargetId = u64;

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

/// HTTP methods a target may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
    Head,
    Patch,
    Options,
    /// Not a request: a heartbeat target, passing while `/push/TOKEN` is called (see
    /// `check::push`).
    Push,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Head,
        Method::Patch,
        Method::Options,
        Method::Push,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Push => "PUSH",
        }
    }

    /// Parses a `targets.method` value; surrounding spaces and case are forgiven.
    pub fn parse(s: &str) -> Option<Method> {
        let s = s.trim();
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `targets.status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    New,
    Pass,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
        }
    }

    /// Reads a stored status; anything unknown (a hand edit) counts as NEW.
    pub fn parse(s: &str) -> Status {
        match s.trim().to_ascii_uppercase().as_str() {
            "PASS" => Status::Pass,
            "FAIL" => Status::Fail,
            _ => Status::New,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated target definition: everything a worker needs to run one check. Built by the
/// loader from a row; shared read-only as `Arc<Target>` by the wheel and the workers, and
/// replaced (never changed in place) when the row is edited. It holds no result state: that
/// belongs to the writer alone ([`TargetState`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub id: TargetId,
    pub name: String,
    pub url: WebUrl,
    pub method: Method,
    pub auth: Auth,
    pub pass_result: u16,
    pub frequency: Duration,
    pub timeout: Duration,
    /// The body as sent, its `${secret:NAME}` references expanded: never shown.
    pub request_body: Option<Secret>,
    pub content_type: Option<String>,
    pub expect_body: Option<String>,
    pub max_response_ms: Option<u64>,
    pub follow_redirects: bool,
    pub verify_tls: bool,
    pub fail_threshold: u64,
    /// Passes in a row before a SUCCESS alert (flap control); 1: the first pass.
    pub success_threshold: u64,
    /// A REMINDER alert this often while the target stays failed.
    pub realert: Option<Duration>,
    /// CA certificates trusted besides the public roots.
    pub ca: Option<Arc<crate::base::ca::CaBundle>>,
    /// A CERTIFICATE alert once the certificate expires within this many days; 0: never.
    pub cert_warn_days: u32,
    /// The client certificate presented when a server asks for one (`client_cert`).
    pub client_identity: Option<Arc<crate::base::client_cert::ClientIdentity>>,
    /// The proxy the checks go through (`proxy_url`, or `[settings] Proxy`).
    pub proxy: Option<Arc<crate::base::proxy::ProxyUrl>>,
    /// The addresses a check connects to (`ip_family`).
    pub ip_family: IpFamily,
    /// The target this one depends on (`depends_on`): while that one is in FAIL, this one's
    /// FAILURE alert is held.
    pub depends_on: Option<TargetId>,
    /// What the answer must show besides (or, naming `[STATUS]`, instead of) `pass_result`.
    pub conditions: Option<Arc<Conditions>>,
    /// Sent with every request of the check (not with a token request), references expanded.
    pub request_headers: RequestHeaders,
}

impl Target {
    /// The target a new row gets when only its id and URL are given: GET, no authentication,
    /// expect 200, every 60 s, a 10 s timeout (the schema's defaults), state NEW. For URLs
    /// known to be valid (tests, benchmarks); rows go through `target::from_row`.
    pub fn new(id: TargetId, url: &str) -> Target {
        Target {
            id,
            name: String::new(),
            url: WebUrl::parse(url).expect("a valid http(s) URL"),
            method: Method::Get,
            auth: Auth::None,
            pass_result: 200,
            frequency: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            request_body: None,
            content_type: None,
            expect_body: None,
            max_response_ms: None,
            follow_redirects: false,
            verify_tls: true,
            fail_threshold: 1,
            success_threshold: 1,
            realert: None,
            ca: None,
            cert_warn_days: 14,
            client_identity: None,
            proxy: None,
            ip_family: IpFamily::Any,
            depends_on: None,
            conditions: None,
            request_headers: RequestHeaders::default(),
        }
    }
}

/// Which addresses of a target's host a check connects to (`ip_family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpFamily {
    /// Every address, in the resolver's order.
    #[default]
    Any,
    /// IPv4 addresses only.
    V4,
    /// IPv6 addresses only.
    V6,
}

impl IpFamily {
    /// `any` (any case; empty as well), `4` or `6`, around white space.
    pub fn parse(s: &str) -> Option<IpFamily> {
        match s.trim().to_ascii_lowercase().as_str() {
            "any" | "" => Some(IpFamily::Any),
            "4" => Some(IpFamily::V4),
            "6" => Some(IpFamily::V6),
            _ => None,
        }
    }

    /// Whether `ip` is of this family.
    pub fn admits(self, ip: std::net::IpAddr) -> bool {
        match self {
            IpFamily::Any => true,
            IpFamily::V4 => ip.is_ipv4(),
            IpFamily::V6 => ip.is_ipv6(),
        }
    }
}

/// The part of a target's row that the state machine reads and writes. Owned by the writer
/// thread, which reads it from the row once, the first time it writes a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetState {
    pub status: Status,
    pub repeated_fails: u64,
    /// A FAIL alert was queued and no recovery alert since.
    pub alerted: bool,
    /// Consecutive passes now; 0 after a failure.
    pub repeated_passes: u64,
    /// When the last FAILURE or REMINDER alert was queued, milliseconds since the epoch.
    pub last_alerted_ms: Option<i64>,
    /// The row's `state_seq` as last written or read: every write is conditional on it.
    pub seq: u64,
    /// The expiry (seconds since the epoch) of the certificate the last CERTIFICATE alert
    /// was about: one alert per certificate.
    pub cert_alerted_for: Option<i64>,
}

impl Default for TargetState {
    fn default() -> Self {
        TargetState {
            status: Status::New,
            repeated_fails: 0,
            alerted: false,
            repeated_passes: 0,
            last_alerted_ms: None,
            seq: 0,
            cert_alerted_for: None,
        }
    }
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

/// An incident: a target's time in FAIL, as the reports, the pages and the alerts read it;
/// times in ms since the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incident {
    pub id: u64,
    pub target_id: TargetId,
    pub started: i64,
    pub ended: Option<i64>,
    pub first_reason: String,
    /// The reason of its latest failed check.
    pub last_reason: String,
    pub failed_checks: u64,
    pub alerted: bool,
    /// The last HTTP status seen in it, `None` when no response came.
    pub http_status: Option<i64>,
}

/// A due check handed from the wheel to a worker.
#[derive(Debug, Clone)]
pub struct Job {
    pub target: Arc<Target>,
    /// When the wheel wanted it to start; the worker measures its lag against this.
    pub due: Instant,
    /// The node's ownership generation when the wheel dispatched it (see
    /// `cluster::Member::generation`): its result is dropped if the target was handed to
    /// another node since.
    pub generation: u64,
}

/// A finished check, handed from a worker to the writer.
#[derive(Debug)]
pub struct CheckResult {
    pub target: Arc<Target>,
    pub outcome: CheckOutcome,
    /// Wall-clock time the check ended, in UTC: the row's `last_updated`.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The ownership generation its check was dispatched under ([`Job::generation`]).
    pub generation: u64,
}

/// A message to the writer thread: a finished check from a worker, or from the loader or the
/// cluster thread a target no longer checked here (deleted, disabled, invalid, handed to
/// another node), whose state it may forget once it owes its row nothing.
#[derive(Debug)]
pub enum ToWriter {
    Checked(CheckResult),
    Forget(TargetId),
    /// Handed to another node at ownership generation `generation` (the cluster thread):
    /// forgotten as by `Forget`, and the results of checks dispatched at or before that
    /// generation, which arrive late, are dropped and counted instead of written.
    HandedOver {
        id: TargetId,
        generation: u64,
    },
}

/// Which way a target's alert goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Failure,
    Success,
    /// The target is still failed `realert_minutes` after the last FAILURE or reminder.
    Reminder,
    /// The target's TLS certificate expires within its `cert_warn_days`.
    Certificate,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Failure => "FAILURE",
            AlertKind::Success => "SUCCESS",
            AlertKind::Reminder => "REMINDER",
            AlertKind::Certificate => "CERTIFICATE",
        }
    }
}

/// What the loader tells the wheel.
#[derive(Debug)]
pub enum Control {
    /// A new or edited target. `first` is true for the targets read at start, whose first
    /// checks are spread over their period; a target added later is checked at once.
    Upsert { target: Arc<Target>, first: bool },
    /// A target deleted, disabled or no longer valid.
    Remove(TargetId),
}

/// An alert raised by a state change, written to the outbox with the change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub target_id: TargetId,
    pub kind: AlertKind,
    pub trace: String,
    /// The target's `depends_on`: a FAILURE or REMINDER is held while that target is in FAIL.
    pub parent: Option<TargetId>,
    /// When the check that raised it ended, if it failed with a network error
    /// ([`CheckError::is_network`]): held if this node could not reach its network then.
    pub network: Option<SystemTime>,
    /// Set by the store thread from that time: the node was blind then.
    pub blind: bool,
}

/// An alert as read from the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: u64,
    pub target_id: u64,
    /// `FAILURE` or `SUCCESS`.
    pub kind: String,
    /// The JSON object the writer stored (see `db::results`).
    pub snapshot: String,
    pub trace: String,
}
