//! A target's status: the `targets.status` column, the part of the row the state machine
//! reads and writes (owned by the writer), and the incidents (its times in FAIL) it leaves.

use std::fmt;

use super::TargetId;

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
    /// A second node found the target up as its FAILURE became due: nobody was paged.
    pub unconfirmed: bool,
}
