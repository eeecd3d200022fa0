//! What a target's row is owed by its checks: the latest check's values, the counters of
//! every check since the last write, the certificate seen and the incidents opened or closed.
//! Checks made while the database is away fold into one [`RowUpdate`] per target.

use super::{Counts, Transition};
use crate::base::model::{AlertKind, CertInfo, CheckOutcome, Status, Verdict};

/// `YYYY-MM-DD HH:MM:SS.mmm` UTC of milliseconds since the epoch.
fn utc_millis(ms: i64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
}

/// What checks do to a target's incidents (its FAIL periods), in the order they happened.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentEvent {
    /// One or more failed checks in a row: they open the target's incident when none is open
    /// (started at the first), and extend it otherwise.
    Failed {
        /// When the first of them ended, `YYYY-MM-DD HH:MM:SS.mmm` UTC.
        at: String,
        first_reason: String,
        last_reason: String,
        checks: u64,
        /// The FAILURE alert went out during them.
        alerted: bool,
        http_status: Option<u16>,
    },
    /// The first passing check after a failure: it closes the open incident.
    Recovered { at: String },
}

impl IncidentEvent {
    /// The event of one check, if it has one.
    fn of(t: &Transition, outcome: &CheckOutcome, at: &str) -> Option<IncidentEvent> {
        match outcome.verdict {
            Verdict::Fail => Some(IncidentEvent::Failed {
                at: at.to_string(),
                first_reason: outcome.description.clone(),
                last_reason: outcome.description.clone(),
                checks: 1,
                alerted: t.alert == Some(AlertKind::Failure),
                http_status: outcome.http_status,
            }),
            Verdict::Pass if t.previous == Status::Fail => {
                Some(IncidentEvent::Recovered { at: at.to_string() })
            }
            Verdict::Pass => None,
        }
    }
}

/// Appends `later` to `events`, folding consecutive failures into one event.
fn push_event(events: &mut Vec<IncidentEvent>, later: IncidentEvent) {
    if let (
        Some(IncidentEvent::Failed {
            last_reason,
            checks,
            alerted,
            http_status,
            ..
        }),
        IncidentEvent::Failed {
            last_reason: reason,
            checks: more,
            alerted: alerted_later,
            http_status: status,
            ..
        },
    ) = (events.last_mut(), &later)
    {
        *last_reason = reason.clone();
        *checks += more;
        *alerted |= alerted_later;
        *http_status = *status;
        return;
    }
    events.push(later);
}

/// What a row's certificate columns get from a check.
#[derive(Debug, Clone, PartialEq)]
pub enum CertSeen {
    /// A TLS handshake showed this leaf certificate.
    Seen(std::sync::Arc<CertInfo>),
    /// The target is `http://`: the columns are cleared.
    NotTls,
    /// No handshake got through: the columns keep what the last one saw.
    Unknown,
}

impl CertSeen {
    /// What a check saw; `https` tells a check that saw no certificate because it talks plain
    /// HTTP from one whose handshake did not get through.
    pub fn of(outcome: &CheckOutcome, https: bool) -> CertSeen {
        match (&outcome.cert, https) {
            (Some(c), _) => CertSeen::Seen(c.clone()),
            (None, false) => CertSeen::NotTls,
            (None, true) => CertSeen::Unknown,
        }
    }
}

/// What is owed to one target's row: the latest check's values and the counters of every
/// check since the last write. Checks made while the database is away fold into one of these
/// per target, so holding results costs memory per target, not per check.
#[derive(Debug, Clone, PartialEq)]
pub struct RowUpdate {
    pub status: Status,
    pub previous_status: Status,
    pub description: String,
    /// `last_updated`, local time `YYYY-MM-DD HH:MM:SS.mmm`.
    pub at: String,
    pub counts: Counts,
    pub repeated_fails: u64,
    pub repeated_passes: u64,
    pub alerted: bool,
    /// `last_alerted`, UTC `YYYY-MM-DD HH:MM:SS.mmm`, when known.
    pub last_alerted: Option<String>,
    pub http_status: Option<u16>,
    pub response_ms: u64,
    pub trace: String,
    /// What the checks did to the target's incidents, in order.
    pub incidents: Vec<IncidentEvent>,
    /// The row's `state_seq` this update was made from: it is written only if the row still
    /// holds it (the writer sets it when the update goes into a batch).
    pub seq: u64,
    pub cert: CertSeen,
    /// `cert_alerted_for`, seconds since the epoch.
    pub cert_alerted_for: Option<i64>,
    /// `last_phases`: the latest check's phases.
    pub phases: Option<crate::base::phases::Phases>,
}

impl RowUpdate {
    /// The update for one check; `https` as [`CertSeen::of`] takes it.
    pub fn new(t: &Transition, outcome: &CheckOutcome, https: bool, at: String) -> RowUpdate {
        let cert = CertSeen::of(outcome, https);
        let incidents = IncidentEvent::of(t, outcome, &at).into_iter().collect();
        RowUpdate {
            status: t.next.status,
            previous_status: t.previous,
            description: outcome.description.clone(),
            at,
            counts: Counts::of(outcome.verdict, outcome.http_status),
            repeated_fails: t.next.repeated_fails,
            repeated_passes: t.next.repeated_passes,
            last_alerted: t.next.last_alerted_ms.and_then(utc_millis),
            alerted: t.next.alerted,
            http_status: outcome.http_status,
            response_ms: outcome.elapsed.as_millis() as u64,
            trace: outcome.trace.render(),
            incidents,
            seq: t.next.seq,
            cert,
            cert_alerted_for: t.next.cert_alerted_for,
            phases: outcome.phases,
        }
    }

    /// Folds a later check into this one.
    pub fn merge(&mut self, mut later: RowUpdate) {
        let mut counts = self.counts;
        counts.add(&later.counts);
        let mut incidents = std::mem::take(&mut self.incidents);
        for event in later.incidents.drain(..) {
            push_event(&mut incidents, event);
        }
        if later.cert == CertSeen::Unknown {
            later.cert = std::mem::replace(&mut self.cert, CertSeen::Unknown);
        }
        *self = RowUpdate {
            counts,
            incidents,
            ..later
        };
    }
}
