//! Which deliveries owed to one notifier go out together, and when: pure logic for the
//! notifier thread, with the clock given (the database's, in ms since the epoch), so that
//! every node, and every start after a crash, decides alike from the outbox alone.
//! [`plan`] decides from a notifier's [`Owed`] summary; [`Tally`] counts a group's alerts by
//! kind for the line that heads its message.
//!
//! The rules (`[notifications] GroupWait` and `GroupInterval`, see skypunch(8) ALERTS):
//! - the first alert owed to a notifier waits `GroupWait` from when it was raised; then every
//!   alert owed to that notifier by then goes out in one message (at most [`MAX_GROUP`]; the
//!   rest follow at once in further messages). One alert alone is the message it always was;
//! - a notifier that was sent two or more alerts in the last `GroupInterval` is in a storm:
//!   its next message waits until `GroupInterval` after its last one as well;
//! - a delivery that failed and waits out its backoff goes when the backoff ends, with what
//!   else is owed by then; at stop, what is owed goes at once.
//!
//! Only PENDING deliveries that are due form groups: one in any other state (SENT, DROPPED,
//! or one a later rule holds back before delivery) is never part of one, and never delays
//! one.

use std::time::Duration;

use crate::config::NotifyConfig;

/// Alerts one message carries at most: a larger storm goes out in several messages, one
/// after the other.
pub const MAX_GROUP: usize = 10_000;

/// The grouping settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `GroupWait`; zero: no grouping, each alert its own message at once.
    pub wait: Duration,
    /// `GroupInterval`.
    pub interval: Duration,
}

impl Settings {
    pub fn of(notify: &NotifyConfig) -> Settings {
        Settings {
            wait: notify.group_wait,
            interval: notify.group_interval,
        }
    }

    pub fn grouping(&self) -> bool {
        !self.wait.is_zero()
    }
}

/// The first delivery owed to a notifier (the earliest due that no other node is sending):
/// when its alert was raised and when it is due (its `next_attempt`), in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct First {
    pub raised_ms: i64,
    pub due_ms: i64,
}

/// What the outbox says of one notifier, in ms of the database's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owed {
    /// `None`: nothing owed.
    pub first: Option<First>,
    /// When it was last sent an alert.
    pub last_sent_ms: Option<i64>,
    /// It was sent two or more alerts in the last `GroupInterval`.
    pub storm: bool,
}

/// What to do for one notifier now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Nothing is owed.
    Idle,
    /// Grouping is off: send what is due, each alert a message of its own.
    EachAlone,
    /// Send what is due now as one message (a single alert: its own message, as always).
    Together,
    /// Nothing to send before this instant (ms of the database's clock).
    WaitUntil(i64),
}

/// What to do for a notifier at `now_ms`. `urgent`: send what is owed without waiting for
/// the group to fill (the last pass at stop, or the rest of a storm that did not fit in
/// one message); it never sends before a backoff ends, unless the caller ignores backoff
/// when reading what is owed.
pub fn plan(settings: Settings, now_ms: i64, owed: &Owed, urgent: bool) -> Plan {
    let Some(first) = owed.first else {
        return Plan::Idle;
    };
    if first.due_ms > now_ms && !urgent {
        return Plan::WaitUntil(first.due_ms);
    }
    if !settings.grouping() {
        return Plan::EachAlone;
    }
    if urgent {
        return Plan::Together;
    }
    let mut at = first
        .due_ms
        .max(first.raised_ms.saturating_add(ms(settings.wait)));
    if owed.storm {
        if let Some(last) = owed.last_sent_ms {
            at = at.max(last.saturating_add(ms(settings.interval)));
        }
    }
    if now_ms >= at {
        Plan::Together
    } else {
        Plan::WaitUntil(at)
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A group's alerts counted by what they say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub failed: usize,
    pub still_down: usize,
    pub recovered: usize,
    pub certificates: usize,
}

impl Tally {
    /// Counts alert kinds as the messages render them: anything not SUCCESS, REMINDER or
    /// CERTIFICATE is a failure.
    pub fn of<'a>(kinds: impl IntoIterator<Item = &'a str>) -> Tally {
        let mut t = Tally::default();
        for kind in kinds {
            match kind.to_ascii_uppercase().as_str() {
                "SUCCESS" => t.recovered += 1,
                "REMINDER" => t.still_down += 1,
                "CERTIFICATE" => t.certificates += 1,
                _ => t.failed += 1,
            }
        }
        t
    }

    /// `10000 targets FAILED`, `3 targets recovered`, or for a mix, `3 FAILED, 2 recovered`
    /// (the order: FAILED, still down, recovered, certificates expiring).
    pub fn headline(&self) -> String {
        let parts = [
            (self.failed, "FAILED"),
            (self.still_down, "still down"),
            (self.recovered, "recovered"),
        ];
        let present: Vec<(usize, &str)> = parts.into_iter().filter(|(n, _)| *n > 0).collect();
        let certificates = match self.certificates {
            1 => "1 certificate expiring".to_string(),
            n => format!("{n} certificates expiring"),
        };
        match (present.as_slice(), self.certificates) {
            ([], 0) => "no alerts".into(),
            ([], _) => certificates,
            ([(n, what)], 0) => {
                format!("{n} {} {what}", if *n == 1 { "target" } else { "targets" })
            }
            (many, c) => {
                let mut words: Vec<String> = many.iter().map(|(n, w)| format!("{n} {w}")).collect();
                if c > 0 {
                    words.push(certificates);
                }
                words.join(", ")
            }
        }
    }

    /// Whether anything in the group says a target is down (a page is due).
    pub fn pages(&self) -> bool {
        self.failed + self.still_down > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;
    /// A storm's clock: the first alert at 100 s.
    const T0: i64 = 100 * S;

    fn settings(wait: u64, interval: u64) -> Settings {
        Settings {
            wait: Duration::from_secs(wait),
            interval: Duration::from_secs(interval),
        }
    }

    fn owed(raised: i64, due: i64) -> Owed {
        Owed {
            first: Some(First {
                raised_ms: raised,
                due_ms: due,
            }),
            ..Owed::default()
        }
    }

    #[test]
    fn the_first_alert_of_a_burst_waits_group_wait_then_all_go_together() {
        let s = settings(10, 60);
        let o = owed(T0, T0 + 5);
        assert_eq!(plan(s, T0 + 5, &o, false), Plan::WaitUntil(T0 + 10 * S));
        assert_eq!(plan(s, T0 + 9 * S, &o, false), Plan::WaitUntil(T0 + 10 * S));
        assert_eq!(plan(s, T0 + 10 * S, &o, false), Plan::Together);
        assert_eq!(
            plan(s, T0 + 60 * S, &o, false),
            Plan::Together,
            "late: at once"
        );
    }

    #[test]
    fn with_group_wait_zero_every_alert_goes_alone_at_once() {
        let s = settings(0, 60);
        assert_eq!(plan(s, T0, &owed(T0, T0), false), Plan::EachAlone);
        let storm = Owed {
            storm: true,
            last_sent_ms: Some(T0),
            ..owed(T0, T0)
        };
        assert_eq!(
            plan(s, T0, &storm, false),
            Plan::EachAlone,
            "no interval either"
        );
        assert_eq!(plan(s, T0, &Owed::default(), false), Plan::Idle);
    }

    #[test]
    fn in_a_storm_the_next_message_waits_group_interval_after_the_last() {
        let s = settings(10, 60);
        // The first group went at T0 + 10 s; a straggler raised at T0 + 12 s.
        let o = Owed {
            first: Some(First {
                raised_ms: T0 + 12 * S,
                due_ms: T0 + 12 * S,
            }),
            last_sent_ms: Some(T0 + 10 * S),
            storm: true,
        };
        assert_eq!(
            plan(s, T0 + 22 * S, &o, false),
            Plan::WaitUntil(T0 + 70 * S)
        );
        assert_eq!(plan(s, T0 + 70 * S, &o, false), Plan::Together);
        // One alert sent lately is no storm: the next waits GroupWait only.
        let calm = Owed { storm: false, ..o };
        assert_eq!(plan(s, T0 + 22 * S, &calm, false), Plan::Together);
        // A storm long past: GroupWait only.
        let old = Owed {
            last_sent_ms: Some(T0 - 120 * S),
            ..o
        };
        assert_eq!(plan(s, T0 + 22 * S, &old, false), Plan::Together);
    }

    #[test]
    fn a_backoff_is_waited_out_then_the_group_goes_at_once() {
        let s = settings(10, 60);
        // Raised long ago, failed, due again at T0 + 40 s.
        let o = owed(T0, T0 + 40 * S);
        assert_eq!(
            plan(s, T0 + 20 * S, &o, false),
            Plan::WaitUntil(T0 + 40 * S)
        );
        assert_eq!(plan(s, T0 + 40 * S, &o, false), Plan::Together);
        let off = settings(0, 60);
        assert_eq!(
            plan(off, T0 + 20 * S, &o, false),
            Plan::WaitUntil(T0 + 40 * S)
        );
    }

    #[test]
    fn at_stop_what_is_owed_goes_at_once() {
        let s = settings(10, 60);
        let o = Owed {
            storm: true,
            last_sent_ms: Some(T0),
            ..owed(T0, T0 + 30 * S)
        };
        assert_eq!(plan(s, T0 + S, &o, true), Plan::Together);
        assert_eq!(plan(settings(0, 60), T0 + S, &o, true), Plan::EachAlone);
    }

    #[test]
    fn an_alert_waits_at_most_the_longer_of_wait_and_interval() {
        // Every raise time over two minutes, every storm state: the plan never sends later
        // than max(GroupWait, GroupInterval) after the alert was raised.
        let s = settings(10, 60);
        for raised in (0..120).map(|i| T0 + i * S) {
            for last in [None, Some(raised - 5 * S), Some(raised)] {
                for storm in [false, true] {
                    let o = Owed {
                        last_sent_ms: last,
                        storm,
                        ..owed(raised, raised)
                    };
                    let latest = raised + 60 * S;
                    match plan(s, latest, &o, false) {
                        Plan::Together => {}
                        other => panic!("{other:?} at {latest} for {o:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn the_headline_says_how_many_of_each() {
        let t = Tally::of(std::iter::repeat_n("FAILURE", 10_000));
        assert_eq!(t.headline(), "10000 targets FAILED");
        let t = Tally::of(["FAILURE", "SUCCESS", "failure", "SUCCESS", "FAILURE"]);
        assert_eq!(t.headline(), "3 FAILED, 2 recovered");
        assert_eq!(
            Tally::of(["SUCCESS", "SUCCESS"]).headline(),
            "2 targets recovered"
        );
        assert_eq!(
            Tally::of(["REMINDER", "REMINDER"]).headline(),
            "2 targets still down"
        );
        assert_eq!(
            Tally::of(["CERTIFICATE", "CERTIFICATE"]).headline(),
            "2 certificates expiring"
        );
        assert_eq!(
            Tally::of(["SUCCESS", "CERTIFICATE", "REMINDER", "odd"]).headline(),
            "1 FAILED, 1 still down, 1 recovered, 1 certificate expiring"
        );
        assert_eq!(Tally::of(["FAILURE"]).headline(), "1 target FAILED");
        assert!(Tally::of(["REMINDER"]).pages());
        assert!(!Tally::of(["SUCCESS", "CERTIFICATE"]).pages());
    }
}
