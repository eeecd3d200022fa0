//! Unit tests of the transition: alerts, thresholds, reminders, certificates, counters.

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
