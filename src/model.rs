//! The plain data types that cross threads: target definitions (loader → wheel → workers),
//! check outcomes (workers → writer) and alerts (writer → notifier). No I/O here.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::authn::Auth;
use crate::trace::Trace;

/// A target id, the `targets.id` column.
pub type TargetId = u64;

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
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Head,
        Method::Patch,
        Method::Options,
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
    pub url: String,
    pub method: Method,
    pub auth: Auth,
    pub pass_result: u16,
    pub frequency: Duration,
    pub timeout: Duration,
    pub request_body: Option<String>,
    pub content_type: Option<String>,
    pub expect_body: Option<String>,
    pub max_response_ms: Option<u64>,
    pub follow_redirects: bool,
    pub verify_tls: bool,
    pub fail_threshold: u64,
}

impl Target {
    /// The target a new row gets when only its id and URL are given: GET, no authentication,
    /// expect 200, every 60 s, a 10 s timeout (the schema's defaults), state NEW.
    pub fn new(id: TargetId, url: &str) -> Target {
        Target {
            id,
            name: String::new(),
            url: url.to_string(),
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
}

impl Default for TargetState {
    fn default() -> Self {
        TargetState {
            status: Status::New,
            repeated_fails: 0,
            alerted: false,
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

/// What one check found. A failed check is data, never an error.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub verdict: Verdict,
    /// The reason phrase on PASS (`OK`), what went wrong on FAIL.
    pub description: String,
    /// The final response status, `None` when no response arrived (a network failure).
    pub http_status: Option<u16>,
    /// From the start of the check to the verdict.
    pub elapsed: Duration,
    pub trace: Trace,
}

/// A due check handed from the wheel to a worker.
#[derive(Debug, Clone)]
pub struct Job {
    pub target: Arc<Target>,
    /// When the wheel wanted it to start; the worker measures its lag against this.
    pub due: Instant,
}

/// A finished check, handed from a worker to the writer.
#[derive(Debug)]
pub struct Finished {
    pub target: Arc<Target>,
    pub outcome: CheckOutcome,
    /// Wall-clock time the check ended, in UTC: the row's `last_updated`.
    pub at: chrono::DateTime<chrono::Utc>,
    /// How late the check started (start minus due).
    pub lag: Duration,
}

/// What the writer thread hears: finished checks from the workers, and from the loader the
/// targets that are no longer checked here (deleted, disabled, invalid), whose state it may
/// forget once it owes their rows nothing.
#[derive(Debug)]
pub enum Report {
    Checked(Finished),
    Forget(TargetId),
}

/// Which way a target's alert goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    Failure,
    Success,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Failure => "FAILURE",
            AlertKind::Success => "SUCCESS",
        }
    }
}
