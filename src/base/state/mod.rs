//! The result state machine: how one check changes a target's row, and when it raises an
//! alert. Pure; owned by the writer thread (`targets ID test` takes only [`Counts`] and
//! [`CertSeen`] of its check).
//!
//! Rules (the original's, shared/legacy.md, without its alerting bugs):
//! previous_status := status; PASS → pass_count+1, repeated_fails := 0; FAIL → fail_count+1,
//! repeated_fails+1; then the 2xx..5xx counter of the response, or network_fails+1 when no
//! response came. A FAIL alert goes out when repeated_fails reaches the target's
//! fail_threshold (a first check included); a recovery alert when, after one, repeated_passes
//! reaches its success_threshold (1 by default: the first pass; more for flap control).
//!
//! This file holds the transition (the counters, the thresholds, the alerts); `row.rs` folds
//! its effects into what a target's row is owed ([`RowUpdate`]).

mod row;
#[cfg(test)]
mod tests;

pub use row::{CertSeen, IncidentEvent, RowUpdate};

use crate::base::model::{AlertKind, CertInfo, Status, TargetState, Verdict};

/// The counters one or more checks add to a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub pass: u64,
    pub fail: u64,
    pub c200: u64,
    pub c300: u64,
    pub c400: u64,
    pub c500: u64,
    pub network: u64,
}

impl Counts {
    /// What a single check adds.
    pub fn of(verdict: Verdict, http_status: Option<u16>) -> Counts {
        let mut c = Counts::default();
        match verdict {
            Verdict::Pass => c.pass = 1,
            Verdict::Fail => c.fail = 1,
        }
        match http_status {
            Some(200..=299) => c.c200 = 1,
            Some(300..=399) => c.c300 = 1,
            Some(400..=499) => c.c400 = 1,
            Some(500..=599) => c.c500 = 1,
            Some(_) => {}
            None => c.network = 1,
        }
        c
    }

    pub fn add(&mut self, o: &Counts) {
        self.pass += o.pass;
        self.fail += o.fail;
        self.c200 += o.c200;
        self.c300 += o.c300;
        self.c400 += o.c400;
        self.c500 += o.c500;
        self.network += o.network;
    }

    pub fn checks(&self) -> u64 {
        self.pass + self.fail
    }
}

/// The effect of one check on a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub previous: Status,
    pub next: TargetState,
    pub alert: Option<AlertKind>,
}

/// How many checks in a row make an alert: `fail_threshold` failures for FAILURE,
/// `success_threshold` passes after it for SUCCESS (flap control).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub fail: u64,
    pub success: u64,
    /// A reminder this often while failed, in milliseconds.
    pub realert_ms: Option<i64>,
}

impl Thresholds {
    /// A target's thresholds, as its row sets them.
    pub fn of(t: &crate::base::model::Target) -> Thresholds {
        Thresholds {
            fail: t.fail_threshold,
            success: t.success_threshold,
            realert_ms: t.realert.map(|d| d.as_millis() as i64),
        }
    }
}

/// Applies one check's verdict, of a check that ended at `now_ms` (milliseconds since the
/// epoch), to a target's state.
pub fn transition(
    state: TargetState,
    verdict: Verdict,
    thresholds: Thresholds,
    now_ms: i64,
) -> Transition {
    let mut next = TargetState {
        status: verdict.status(),
        ..state
    };
    let mut alert = None;
    match verdict {
        Verdict::Pass => {
            next.repeated_fails = 0;
            next.repeated_passes = state.repeated_passes + 1;
            if state.alerted && next.repeated_passes >= thresholds.success.max(1) {
                next.alerted = false;
                alert = Some(AlertKind::Success);
            }
        }
        Verdict::Fail => {
            next.repeated_fails = state.repeated_fails + 1;
            next.repeated_passes = 0;
            if !state.alerted && next.repeated_fails >= thresholds.fail.max(1) {
                next.alerted = true;
                next.last_alerted_ms = Some(now_ms);
                alert = Some(AlertKind::Failure);
            } else if state.alerted && reminder_due(&state, thresholds, now_ms) {
                next.last_alerted_ms = Some(now_ms);
                alert = Some(AlertKind::Reminder);
            }
        }
    }
    Transition {
        previous: state.status,
        next,
        alert,
    }
}

/// A target still failed `realert` after its last FAILURE or reminder is owed a reminder.
fn reminder_due(state: &TargetState, thresholds: Thresholds, now_ms: i64) -> bool {
    match (thresholds.realert_ms, state.last_alerted_ms) {
        (Some(every), Some(last)) if every > 0 => now_ms - last >= every,
        _ => false,
    }
}

/// The certificate a CERTIFICATE alert is owed for, seen by a check at `now_ms`: one that
/// expires within `warn_days` (0: never) and that no alert was about yet. A renewed
/// certificate has another expiry, so it is alerted again once it nears its own.
pub fn certificate_due(
    state: &TargetState,
    cert: Option<&CertInfo>,
    warn_days: u32,
    now_ms: i64,
) -> Option<i64> {
    let cert = cert?;
    let window_ms = i64::from(warn_days) * 86_400_000;
    let near = warn_days > 0 && cert.expires.saturating_mul(1000) - now_ms < window_ms;
    (near && state.cert_alerted_for != Some(cert.expires)).then_some(cert.expires)
}
