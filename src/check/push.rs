//! PUSH (heartbeat) targets: the pushes this node has read from the database, and the
//! "check" a worker makes of a PUSH target from them, with no network.
//!
//! How a push becomes a result, on any number of nodes sharing the database: the node whose
//! HTTP server gets `/push/TOKEN` writes it into the target's row (`last_push_at`, its status
//! and message, `push_count` + 1; `db::targets::push`). Every node's heartbeat thread
//! (`crate::heartbeats`) reads the rows pushed in the last seconds once a second into its
//! [`Heartbeats`], and tells the wheel which targets were pushed; the node that owns one
//! checks it at once, and its worker turns the new push into a PASS (or a FAIL with the
//! push's message). Without a push the wheel comes back when the window (`frequency` +
//! `timeout` after the last push) closes: a FAIL `no heartbeat for N s`, then one every
//! `frequency` while none comes. A result is written only when there is something new to
//! say (a push not yet reported here, or a missing one), so each push counts once.
//!
//! [`Heartbeats`] is shared as one `Arc` by the heartbeat thread (writes), the workers
//! (judge) and the wheel (when to look next, which targets were pushed): one mutex, held for
//! a map lookup, never across I/O.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::base::model::{CheckError, CheckOutcome, Target, TargetId, Verdict};
use crate::base::trace::Trace;

/// How often the heartbeat thread reads the pushes: a push becomes a result within about
/// this long, and a target turns at most one push this often into a result (the latest).
pub const POLL: Duration = Duration::from_secs(1);
/// How long a deferred "no heartbeat" waits for the next read of the pushes (see
/// [`Heartbeats::judge`]).
const RETRY: Duration = Duration::from_millis(250);
/// Reads older than this: the node cannot see the pushes (the database is away), and a
/// missing heartbeat is not declared until it can again.
const BLIND_AFTER: Duration = Duration::from_secs(5);
/// What a node keeps of a target neither pushed nor looked at for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(86_400);

/// One push, as the heartbeat thread read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// The row's `push_count`: a new value is a new push.
    pub count: i64,
    /// When it came, on this host's monotonic clock (its age by the database's clock, taken
    /// from now: the nodes' clocks need not agree).
    pub at: Instant,
    /// When it came, milliseconds since the epoch (for the trace).
    pub wall_ms: i64,
    /// It said `status=fail`.
    pub failed: bool,
    pub message: Option<String>,
}

/// What a node knows of one PUSH target.
#[derive(Debug, Default)]
struct Beat {
    heard: Option<Heard>,
    /// The `push_count` of the push last turned into a result here.
    reported: Option<i64>,
    /// When this node began to watch the target (its start, a handover, the target enabled
    /// or added): a window closes no earlier than a full one after it.
    since: Option<Instant>,
    /// When it was last looked at.
    looked: Option<Instant>,
    /// When the wheel should look at it next.
    next: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    beats: HashMap<TargetId, Beat>,
    /// Targets pushed since the wheel last took them.
    arrivals: Vec<TargetId>,
    /// When the heartbeat thread last read the pushes (its start).
    read_at: Option<Instant>,
}

/// The pushes this node knows of, and what it has reported of them (see the module).
#[derive(Debug, Default)]
pub struct Heartbeats {
    inner: Mutex<Inner>,
}

/// What a look at a PUSH target found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// A push not yet reported here.
    Push(Heard),
    /// None within the window: since the last push (`Some`), or since the node began to
    /// watch (`None`).
    Missing { for_: Duration, last: Option<Heard> },
    /// No push ever read (`targets ID test` only: the daemon counts from when it began to
    /// watch).
    Never,
}

impl Heartbeats {
    pub fn new() -> Heartbeats {
        Heartbeats::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while the lock was held left plain data behind: still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in a push read from a row (heartbeat thread); true when it is new to this node,
    /// which then tells the wheel.
    pub fn heard(&self, id: TargetId, heard: Heard) -> bool {
        let mut inner = self.lock();
        let beat = inner.beats.entry(id).or_default();
        if beat.heard.as_ref().is_some_and(|h| h.count == heard.count) {
            return false;
        }
        beat.heard = Some(heard);
        inner.arrivals.push(id);
        true
    }

    /// This node begins to watch PUSH target `id` (the wheel, when it takes it in): the
    /// target gets a full window from now, whatever its last push, since pushes to it may
    /// have been refused meanwhile (it was disabled) or no node watched it (none ran).
    pub fn watch(&self, id: TargetId, now: Instant) {
        self.lock().beats.entry(id).or_default().since = Some(now);
    }

    /// The heartbeat thread read every push up to `at` (when its read began).
    pub fn read(&self, at: Instant) {
        self.lock().read_at = Some(at);
    }

    /// The targets pushed since the last call (wheel thread, once a tick).
    pub fn take_arrivals(&self) -> Vec<TargetId> {
        std::mem::take(&mut self.lock().arrivals)
    }

    /// When the wheel should look at PUSH target `id` again, once its look is done.
    pub fn next_look(&self, id: TargetId) -> Option<Instant> {
        self.lock().beats.get(&id).and_then(|b| b.next)
    }

    /// Forgets what it holds of targets neither pushed nor looked at for a day (deleted, or
    /// no longer PUSH), so that the map holds only live targets.
    pub fn forget_stale(&self, now: Instant) {
        let old =
            |t: Option<Instant>| t.is_none_or(|t| now.saturating_duration_since(t) > FORGET_AFTER);
        self.lock()
            .beats
            .retain(|_, b| !(old(b.heard.as_ref().map(|h| h.at)) && old(b.looked)));
    }

    /// The daemon's look at PUSH target `target` (a worker): its result when there is one to
    /// write, a push not yet reported here or a missing one; `None` when there is nothing
    /// new. Sets when the wheel should look again: when the window closes, or `frequency`
    /// after a missing heartbeat. A missing heartbeat is declared only once the pushes have
    /// been read past the window's end (so that one that came just in time, not yet read,
    /// is not taken for missing), and never while this node cannot read them.
    pub fn judge(&self, target: &Target, now: Instant) -> Option<CheckOutcome> {
        let window = target.frequency + target.timeout;
        let mut inner = self.lock();
        let read_at = inner.read_at;
        let beat = inner.beats.entry(target.id).or_default();
        let (found, next) = look(beat, window, target.frequency, read_at, now);
        beat.next = Some(next);
        drop(inner);
        found.map(|f| outcome(target, f, now))
    }

    /// What the pushes say of `target` now, whatever was reported before (`targets ID
    /// test`): PASS or FAIL by the last push within the window, FAIL without one.
    pub fn verdict(&self, target: &Target, now: Instant) -> CheckOutcome {
        let window = target.frequency + target.timeout;
        let heard = self
            .lock()
            .beats
            .get(&target.id)
            .and_then(|b| b.heard.clone());
        let found = match heard {
            Some(h) if now.saturating_duration_since(h.at) < window => Found::Push(h),
            Some(h) => Found::Missing {
                for_: now.saturating_duration_since(h.at),
                last: Some(h),
            },
            None => Found::Never,
        };
        outcome(target, found, now)
    }
}

/// The look itself: what is new, and when to look next. Pure.
fn look(
    beat: &mut Beat,
    window: Duration,
    frequency: Duration,
    read_at: Option<Instant>,
    now: Instant,
) -> (Option<Found>, Instant) {
    let since = *beat.since.get_or_insert(now);
    beat.looked = Some(now);
    if let Some(h) = beat.heard.as_ref() {
        let closes = h.at + window;
        if now < closes {
            if beat.reported == Some(h.count) {
                return (None, closes);
            }
            beat.reported = Some(h.count);
            return (Some(Found::Push(h.clone())), closes);
        }
    }
    let last = beat.heard.as_ref().map(|h| h.at);
    let closes = last.map_or(since, |at| at.max(since)) + window;
    if now < closes {
        return (None, closes);
    }
    match read_at {
        Some(read) if read >= closes => {
            let found = Found::Missing {
                for_: now.saturating_duration_since(last.unwrap_or(since)),
                last: beat.heard.clone(),
            };
            (Some(found), now + frequency)
        }
        // The next read is due: look again just after it.
        Some(read) if now.saturating_duration_since(read) < BLIND_AFTER => (None, now + RETRY),
        // Blind: look again a period later; the first look after the reads resume decides.
        _ => (None, now + frequency),
    }
}

/// The result of a look: its verdict, description and trace.
fn outcome(target: &Target, found: Found, now: Instant) -> CheckOutcome {
    let mut trace = Trace::new();
    let window = (target.frequency + target.timeout).as_secs();
    let (verdict, error, description) = match found {
        Found::Push(h) => {
            trace.step(format!("{}", Pushed(&h, now)));
            match (h.failed, h.message) {
                (false, message) => {
                    let text = message.map_or_else(
                        || "heartbeat received".to_string(),
                        |m| format!("heartbeat: {m}"),
                    );
                    (Verdict::Pass, None, text)
                }
                (true, message) => {
                    let text = message
                        .unwrap_or_else(|| "the push reported a failure (status=fail)".into());
                    let error = CheckError::PushedFailure(text.clone());
                    (Verdict::Fail, Some(error), text)
                }
            }
        }
        Found::Missing { for_, last } => {
            match &last {
                Some(h) => trace.step(format!("last {}", Pushed(h, now))),
                None => trace.step("no push received since this node began to watch the target"),
            }
            trace.step(format!(
                "a push is due every {}s, with {}s to spare: none within {window}s",
                target.frequency.as_secs(),
                target.timeout.as_secs()
            ));
            let error = CheckError::NoHeartbeat {
                seconds: for_.as_secs(),
            };
            (Verdict::Fail, Some(error.clone()), error.to_string())
        }
        Found::Never => {
            let error = CheckError::NoHeartbeat { seconds: 0 };
            let text = "no heartbeat received yet".to_string();
            (Verdict::Fail, Some(error), text)
        }
    };
    match verdict {
        Verdict::Pass => trace.step(format!("[Pass] {description}")),
        Verdict::Fail => trace.fail(&description),
    }
    CheckOutcome {
        verdict,
        error,
        description,
        http_status: None,
        elapsed: Duration::ZERO,
        trace,
        cert: None,
        phases: None,
    }
}

/// A push as a trace line: `push 17 (status=fail) at 2026-11-24 10:04:22.273Z, 3s ago: disk
/// full`.
struct Pushed<'a>(&'a Heard, Instant);

impl std::fmt::Display for Pushed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Pushed(h, now) = self;
        let status = if h.failed { "status=fail" } else { "status=ok" };
        let when = chrono::DateTime::from_timestamp_millis(h.wall_ms)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3fZ").to_string())
            .unwrap_or_else(|| "?".into());
        let ago = now.saturating_duration_since(h.at).as_secs();
        write!(f, "push {} ({status}) at {when}, {ago}s ago", h.count)?;
        match &h.message {
            Some(m) => write!(f, ": {m}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn target() -> Target {
        Target {
            method: crate::base::model::Method::Push,
            frequency: S(60),
            timeout: S(15),
            ..Target::new(7, "http://push.invalid/")
        }
    }

    fn heard(count: i64, at: Instant, failed: bool, message: Option<&str>) -> Heard {
        Heard {
            count,
            at,
            wall_ms: 1_795_514_662_273,
            failed,
            message: message.map(String::from),
        }
    }

    /// The board, read at `read` (the heartbeat thread keeps reading).
    fn board(read: Instant) -> Heartbeats {
        let b = Heartbeats::new();
        b.read(read);
        b
    }

    #[test]
    fn each_push_is_one_result_and_the_wheel_comes_back_when_the_window_closes() {
        let t0 = Instant::now();
        let b = board(t0);
        let t = target();
        assert!(b.heard(7, heard(1, t0, false, None)));
        assert!(
            !b.heard(7, heard(1, t0, false, None)),
            "read again: not new"
        );
        assert_eq!(b.take_arrivals(), vec![7]);
        let pass = b.judge(&t, t0 + S(1)).unwrap();
        assert_eq!(pass.verdict, Verdict::Pass);
        assert_eq!(pass.description, "heartbeat received");
        assert!(pass
            .trace
            .to_string()
            .contains("push 1 (status=ok) at 2026-11-24 10:04:22.273Z, 1s ago"));
        assert_eq!(b.next_look(7), Some(t0 + S(75)));
        assert!(b.judge(&t, t0 + S(30)).is_none(), "nothing new");

        assert!(b.heard(7, heard(2, t0 + S(40), true, Some("disk full"))));
        let fail = b.judge(&t, t0 + S(41)).unwrap();
        assert_eq!(
            (fail.verdict, fail.description.as_str()),
            (Verdict::Fail, "disk full")
        );
        assert_eq!(
            fail.error,
            Some(CheckError::PushedFailure("disk full".into()))
        );
        assert_eq!(b.next_look(7), Some(t0 + S(115)));
    }

    #[test]
    fn no_push_within_frequency_and_timeout_is_a_failure_every_period_until_one_comes() {
        let t0 = Instant::now();
        let b = board(t0);
        let t = target();
        b.heard(7, heard(1, t0, false, None));
        b.judge(&t, t0).unwrap();
        // The window closed, but the pushes were not read since: a push may be on its way.
        b.read(t0 + S(74));
        assert!(b.judge(&t, t0 + S(75)).is_none());
        assert_eq!(b.next_look(7), Some(t0 + S(75) + RETRY));
        b.read(t0 + S(75) + Duration::from_millis(400));
        let missing = b
            .judge(&t, t0 + S(75) + Duration::from_millis(500))
            .unwrap();
        assert_eq!(missing.description, "no heartbeat for 75 s");
        assert_eq!(missing.error, Some(CheckError::NoHeartbeat { seconds: 75 }));
        assert!(missing.trace.to_string().contains("none within 75s"));
        assert_eq!(
            b.next_look(7),
            Some(t0 + S(135) + Duration::from_millis(500))
        );
        b.read(t0 + S(136));
        let again = b.judge(&t, t0 + S(136)).unwrap();
        assert_eq!(again.description, "no heartbeat for 136 s");

        b.heard(7, heard(2, t0 + S(140), false, Some("back")));
        let back = b.judge(&t, t0 + S(140)).unwrap();
        assert_eq!(
            (back.verdict, back.description.as_str()),
            (Verdict::Pass, "heartbeat: back")
        );
    }

    #[test]
    fn a_target_never_pushed_gets_one_window_from_when_the_node_began_to_watch() {
        let t0 = Instant::now();
        let b = board(t0);
        let t = target();
        assert!(b.judge(&t, t0).is_none());
        assert_eq!(b.next_look(7), Some(t0 + S(75)));
        b.read(t0 + S(76));
        let missing = b.judge(&t, t0 + S(76)).unwrap();
        assert_eq!(missing.description, "no heartbeat for 76 s");
        assert!(missing
            .trace
            .to_string()
            .contains("no push received since this node began to watch"));
    }

    #[test]
    fn a_target_watched_anew_gets_a_full_window_whatever_its_last_push() {
        let t0 = Instant::now();
        let b = board(t0);
        let t = target();
        b.heard(7, heard(1, t0, false, None));
        // Enabled again (or taken over) long after its last push.
        let later = t0 + S(1000);
        b.watch(7, later);
        b.read(later);
        assert!(b.judge(&t, later).is_none(), "the window runs from now");
        assert_eq!(b.next_look(7), Some(later + S(75)));
        b.read(later + S(75));
        let missing = b.judge(&t, later + S(75)).unwrap();
        assert_eq!(
            missing.description, "no heartbeat for 1075 s",
            "since the last push"
        );
    }

    #[test]
    fn a_node_that_cannot_read_the_pushes_declares_nothing_missing() {
        let t0 = Instant::now();
        let b = board(t0);
        let t = target();
        b.heard(7, heard(1, t0, false, None));
        b.judge(&t, t0).unwrap();
        assert!(b.judge(&t, t0 + S(90)).is_none(), "blind since t0");
        assert_eq!(b.next_look(7), Some(t0 + S(150)));
        assert!(Heartbeats::new().judge(&t, t0 + S(900)).is_none());
    }

    #[test]
    fn the_cli_gets_a_verdict_whatever_was_reported() {
        let t0 = Instant::now();
        let b = board(t0);
        let t = target();
        assert_eq!(b.verdict(&t, t0).description, "no heartbeat received yet");
        b.heard(7, heard(3, t0, false, None));
        b.judge(&t, t0).unwrap();
        assert_eq!(b.verdict(&t, t0 + S(2)).verdict, Verdict::Pass);
        assert_eq!(
            b.verdict(&t, t0 + S(80)).description,
            "no heartbeat for 80 s"
        );
    }

    #[test]
    fn what_is_neither_pushed_nor_looked_at_for_a_day_is_forgotten() {
        let t0 = Instant::now();
        let b = board(t0);
        b.heard(1, heard(1, t0, false, None));
        b.heard(2, heard(1, t0, false, None));
        let _ = b.judge(&Target { id: 2, ..target() }, t0 + S(86_000));
        b.forget_stale(t0 + S(86_500));
        assert!(b.next_look(2).is_some(), "looked at 500 s ago: kept");
        assert!(!b.lock().beats.contains_key(&1), "a day old: forgotten");
    }
}
