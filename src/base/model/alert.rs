//! Alerts: which way one goes, one raised by a state change (to the outbox), and one read
//! from the outbox (by the notifier).

use std::time::{Duration, SystemTime};

use super::TargetId;

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

/// An alert raised by a state change, written to the outbox with the change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub target_id: TargetId,
    pub kind: AlertKind,
    pub trace: String,
    /// The target's `depends_on`: a FAILURE or REMINDER is held while that target is in FAIL.
    pub parent: Option<TargetId>,
    /// When the check that raised it ended, if it failed with a network error
    /// ([`CheckError::is_network`](super::CheckError::is_network)): held if this node could not
    /// reach its network then.
    pub network: Option<SystemTime>,
    /// Set by the store thread from that time: the node was blind then.
    pub blind: bool,
    /// The target's timeout, which bounds a second node's check of it before its FAILURE
    /// goes out (`[cluster] ConfirmFailures`); `None`: not confirmed (a PUSH target, which no
    /// other node can check again).
    pub confirm: Option<Duration>,
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
