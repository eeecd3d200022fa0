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

use crate::base::model::{AlertKind, CertInfo, CheckOutcome, Status, TargetState, Verdict};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(verdicts: &[Verdict], threshold: u64) -> (TargetState, Vec<Option<AlertKind>>) {
        let mut state = TargetState::default();
        let mut alerts = Vec::new();
        for v in verdicts {
            let t = transition(
                state,
                *v,
                Thresholds {
                    fail: threshold,
                    success: 1,
                    realert_ms: None,
                },
                0,
            );
            state = t.next;
            alerts.push(t.alert);
        }
        (state, alerts)
    }

    use AlertKind::{Failure, Reminder, Success};

    #[test]
    fn a_certificate_near_expiry_is_alerted_once_and_again_when_renewed() {
        let day = 86_400_000_i64;
        let now = 1_000 * day;
        let cert = |expires_ms: i64| CertInfo {
            expires: expires_ms / 1000,
            subject: "svc".into(),
            issuer: "CN=ca".into(),
        };
        let mut state = TargetState::default();
        let far = cert(now + 30 * day);
        assert_eq!(certificate_due(&state, Some(&far), 14, now), None);
        let near = cert(now + 5 * day);
        assert_eq!(
            certificate_due(&state, Some(&near), 14, now),
            Some(near.expires)
        );
        assert_eq!(certificate_due(&state, Some(&near), 0, now), None, "0: off");
        assert_eq!(certificate_due(&state, None, 14, now), None);
        state.cert_alerted_for = Some(near.expires);
        assert_eq!(certificate_due(&state, Some(&near), 14, now), None, "once");
        let renewed = cert(now + 6 * day);
        assert_eq!(
            certificate_due(&state, Some(&renewed), 14, now),
            Some(renewed.expires)
        );
        let expired = cert(now - day);
        assert!(certificate_due(&state, Some(&expired), 14, now).is_some());
    }
    use Verdict::{Fail, Pass};

    #[test]
    fn a_target_down_from_its_first_check_alerts() {
        let (state, alerts) = run(&[Fail], 1);
        assert_eq!(alerts, vec![Some(Failure)]);
        assert_eq!(
            (state.status, state.repeated_fails, state.alerted),
            (Status::Fail, 1, true)
        );
    }

    #[test]
    fn recovery_alerts_only_after_a_failure_alert() {
        let (_, alerts) = run(&[Pass, Fail, Fail, Pass, Pass], 1);
        assert_eq!(alerts, vec![None, Some(Failure), None, Some(Success), None]);
    }

    #[test]
    fn a_threshold_of_three_alerts_on_the_third_failure_only() {
        let (_, alerts) = run(&[Fail, Fail, Pass, Fail, Fail, Fail, Fail, Pass], 3);
        assert_eq!(
            alerts,
            vec![
                None,
                None,
                None,
                None,
                None,
                Some(Failure),
                None,
                Some(Success)
            ]
        );
    }

    #[test]
    fn a_success_threshold_waits_for_that_many_passes_in_a_row() {
        let mut state = TargetState::default();
        let mut alerts = Vec::new();
        let flapping = [Fail, Pass, Fail, Pass, Pass, Fail, Pass, Pass, Pass, Pass];
        for v in flapping {
            let t = transition(
                state,
                v,
                Thresholds {
                    fail: 1,
                    success: 3,
                    realert_ms: None,
                },
                0,
            );
            state = t.next;
            alerts.push(t.alert);
        }
        let expected = [
            Some(Failure),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some(Success),
            None,
        ];
        assert_eq!(
            alerts, expected,
            "one FAILURE, one SUCCESS across the flapping"
        );
        assert_eq!((state.repeated_passes, state.alerted), (4, false));
    }

    #[test]
    fn a_failed_target_gets_a_reminder_every_realert_period() {
        let thresholds = Thresholds {
            fail: 1,
            success: 1,
            realert_ms: Some(600_000),
        };
        let mut state = TargetState::default();
        let mut alerts = Vec::new();
        // A check a minute: FAILURE at 0, reminders at 10 and 20 minutes, SUCCESS at 25.
        for minute in 0..26 {
            let verdict = if minute < 25 { Fail } else { Pass };
            let t = transition(state, verdict, thresholds, minute * 60_000);
            state = t.next;
            if let Some(a) = t.alert {
                alerts.push((minute, a));
            }
        }
        assert_eq!(
            alerts,
            [(0, Failure), (10, Reminder), (20, Reminder), (25, Success)]
        );
    }

    #[test]
    fn counters_follow_the_original_rules() {
        assert_eq!(
            Counts::of(Pass, Some(200)),
            Counts {
                pass: 1,
                c200: 1,
                ..Counts::default()
            }
        );
        assert_eq!(
            Counts::of(Fail, Some(503)),
            Counts {
                fail: 1,
                c500: 1,
                ..Counts::default()
            }
        );
        assert_eq!(
            Counts::of(Fail, None),
            Counts {
                fail: 1,
                network: 1,
                ..Counts::default()
            }
        );
        assert_eq!(
            Counts::of(Fail, Some(302)),
            Counts {
                fail: 1,
                c300: 1,
                ..Counts::default()
            }
        );
    }
}
