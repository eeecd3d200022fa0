//! Per-phase timing of one check, on the worker thread running it: the resolver, the
//! connector and the transport (see [`super::resolve`], [`super::transport`]) write marks
//! (resolved, connected, TLS done, request sent, first byte) and the phase reached into a
//! thread-local recorder that the check reads back into its trace and its description.
//!
//! Why a thread-local: ureq builds its connector chain once per agent and shares it between
//! threads, so a connector has no per-request place to write to. A check runs synchronously on
//! one worker thread from start to verdict (ureq spawns no thread except for DNS with a
//! timeout, and our resolver records from the calling thread), so "the recorder of this
//! thread" is exactly "the recorder of this check".
//!
//! What cannot be timed: the request's header *serialisation* is inside ureq; `sent` marks the
//! end of the last write, which is what matters on the wire.
//!
//! The same marks, summed per phase, are the check's [`Phases`] (`/metrics`, the API): the
//! check counts the marks of its own requests ([`time_phases`]), not a token request's, and
//! the body it read ([`body_read`]).

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::model::{CertInfo, Phase};
use crate::base::phases::{Phases, Step};

/// One timed step, turned into a trace line by the check.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mark {
    Resolved {
        at: Instant,
        took: Duration,
        first: IpAddr,
        count: usize,
    },
    Connected {
        at: Instant,
        took: Duration,
        peer: SocketAddr,
    },
    Handshake {
        at: Instant,
        took: Duration,
    },
    Sent {
        at: Instant,
        took: Duration,
    },
    FirstByte {
        at: Instant,
        took: Duration,
    },
}

struct Recorder {
    armed: bool,
    phase: Phase,
    marks: Vec<Mark>,
    /// The leaf certificate of the check's first TLS handshake (the target's own host; a
    /// redirect's is not kept).
    cert: Option<Arc<CertInfo>>,
    /// The phases of the check's own requests, once it has sent one.
    times: Option<Phases>,
    /// When the answer's first byte came: the body's phase runs from there.
    first_byte: Option<Instant>,
}

thread_local! {
    static RECORDER: RefCell<Recorder> = const {
        RefCell::new(Recorder {
            armed: false,
            phase: Phase::Start,
            marks: Vec::new(),
            cert: None,
            times: None,
            first_byte: None,
        })
    };
}

/// Starts recording for a check on this thread, forgetting anything left from the last one.
pub(super) fn begin() {
    RECORDER.with_borrow_mut(|r| {
        r.armed = true;
        r.phase = Phase::Start;
        r.marks.clear();
        r.cert = None;
        r.times = None;
        r.first_byte = None;
    });
}

/// Stops recording; hooks used outside a check (none today) then record nothing.
pub(super) fn end() {
    RECORDER.with_borrow_mut(|r| r.armed = false);
}

/// The leaf certificate the check's first TLS handshake saw, if any; it stays recorded for
/// [`take_cert`].
pub(super) fn cert() -> Option<Arc<CertInfo>> {
    RECORDER.with_borrow(|r| r.cert.clone())
}

/// Takes the leaf certificate recorded by this check.
pub(super) fn take_cert() -> Option<Arc<CertInfo>> {
    RECORDER.with_borrow_mut(|r| r.cert.take())
}

/// Keeps the certificate `leaf` reads, if this is the check's first TLS handshake (`leaf`
/// is not called otherwise: parsing costs).
pub(super) fn record_cert(leaf: impl FnOnce() -> Option<Arc<CertInfo>>) {
    RECORDER.with_borrow_mut(|r| {
        if r.armed && r.cert.is_none() {
            r.cert = leaf();
        }
    });
}

pub(super) fn phase() -> Phase {
    RECORDER.with_borrow(|r| r.phase)
}

pub(super) fn set_phase(phase: Phase) {
    RECORDER.with_borrow_mut(|r| r.phase = phase);
}

/// Hands the marks recorded since the last call to `f`, in order.
pub(super) fn drain(mut f: impl FnMut(Mark)) {
    let marks = RECORDER.with_borrow_mut(|r| std::mem::take(&mut r.marks));
    marks.iter().copied().for_each(&mut f);
    // Give the allocation back so the next check records without allocating.
    RECORDER.with_borrow_mut(|r| {
        if r.marks.is_empty() {
            let mut marks = marks;
            marks.clear();
            r.marks = marks;
        }
    });
}

/// Counts the marks recorded and not yet drained into the check's phases: called by the
/// check right after a request to the target (whether it got an answer or not), before the
/// marks become trace lines. A token request's marks are drained before, and not counted.
pub(super) fn time_phases() {
    RECORDER.with_borrow_mut(|r| {
        let times = r.times.get_or_insert_with(Phases::default);
        for mark in &r.marks {
            let (step, took) = match *mark {
                Mark::Resolved { took, .. } => (Step::Dns, took),
                Mark::Connected { took, .. } => (Step::Connect, took),
                Mark::Handshake { took, .. } => (Step::Tls, took),
                Mark::Sent { took, .. } => (Step::Request, took),
                Mark::FirstByte { at, took } => {
                    r.first_byte = Some(at);
                    (Step::FirstByte, took)
                }
            };
            times.add(step, took);
        }
    });
}

/// The check read the answer's body to its end at `end` (`took` reading it): the body's
/// phase, from the first byte on as blackbox_exporter's `transfer` is.
pub(super) fn body_read(end: Instant, took: Duration) {
    RECORDER.with_borrow_mut(|r| {
        let took = r
            .first_byte
            .map_or(took, |first| end.saturating_duration_since(first));
        if let Some(times) = r.times.as_mut() {
            times.add(Step::Body, took);
        }
    });
}

/// Takes the check's phases: `None` when it never sent a request to the target (a token
/// request failed first, say).
pub(super) fn take_phases() -> Option<Phases> {
    RECORDER.with_borrow_mut(|r| r.times.take())
}

/// Notes that the check reached `phase`, and the step that got it there, if timed.
pub(super) fn record(phase: Phase, mark: Option<Mark>) {
    RECORDER.with_borrow_mut(|r| {
        if r.armed {
            r.phase = phase;
            r.marks.extend(mark);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_reads_back_what_its_own_steps_recorded() {
        let at = Instant::now();
        let took = Duration::from_millis(3);
        record(Phase::Connecting, Some(Mark::Handshake { at, took }));
        assert_eq!(phase(), Phase::Start, "nothing is recorded outside a check");
        begin();
        record(Phase::Sending, Some(Mark::Handshake { at, took }));
        record(Phase::Waiting, Some(Mark::Sent { at, took }));
        record_cert(|| None);
        assert_eq!(phase(), Phase::Waiting);
        let mut seen = Vec::new();
        drain(|mark| seen.push(mark));
        assert!(
            matches!(seen[..], [Mark::Handshake { .. }, Mark::Sent { .. }]),
            "{seen:?}"
        );
        drain(|mark| panic!("{mark:?} handed over twice"));
        end();
        record(Phase::Body, Some(Mark::FirstByte { at, took }));
        drain(|mark| panic!("{mark:?} recorded after the check"));
        assert_eq!(phase(), Phase::Waiting);
    }

    #[test]
    fn a_check_times_its_own_requests_not_a_token_request() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        begin();
        // A token request first: drained without being counted.
        record(
            Phase::Connecting,
            Some(Mark::Handshake {
                at: t0,
                took: ms(9),
            }),
        );
        drain(|_| {});
        assert_eq!(take_phases(), None, "no request to the target yet");
        let peer: SocketAddr = "127.0.0.1:80".parse().unwrap();
        record(
            Phase::Connecting,
            Some(Mark::Connected {
                at: t0,
                took: ms(2),
                peer,
            }),
        );
        record(
            Phase::Waiting,
            Some(Mark::Sent {
                at: t0,
                took: ms(1),
            }),
        );
        let first = t0 + ms(10);
        record(
            Phase::Receiving,
            Some(Mark::FirstByte {
                at: first,
                took: ms(7),
            }),
        );
        time_phases();
        drain(|_| {});
        body_read(first + ms(4), ms(3));
        let seconds: Vec<f64> = take_phases().unwrap().seconds().map(|(_, s)| s).collect();
        assert_eq!(seconds, [0.0, 0.002, 0.0, 0.001, 0.007, 0.004]);
        assert_eq!(take_phases(), None, "taken once");
        end();
    }
}
