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

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::model::{CertInfo, Phase};

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
    /// A step off the common path, in its own words (see [`note`]): the proxy's, a client
    /// certificate asked for. Untimed when `took` is `None`. The text is kept beside the
    /// marks, so that they stay `Copy` and a plain check's cost what they did.
    Note {
        at: Instant,
        took: Option<Duration>,
        text: usize,
    },
}

struct Recorder {
    armed: bool,
    phase: Phase,
    marks: Vec<Mark>,
    /// The texts of the check's [`Mark::Note`]s, by their `text` index.
    notes: Vec<String>,
    /// The leaf certificate of the check's first TLS handshake (the target's own host; a
    /// redirect's is not kept).
    cert: Option<Arc<CertInfo>>,
}

thread_local! {
    static RECORDER: RefCell<Recorder> = const {
        RefCell::new(Recorder {
            armed: false,
            phase: Phase::Start,
            marks: Vec::new(),
            notes: Vec::new(),
            cert: None,
        })
    };
}

/// Starts recording for a check on this thread, forgetting anything left from the last one.
pub(super) fn begin() {
    RECORDER.with_borrow_mut(|r| {
        r.armed = true;
        r.phase = Phase::Start;
        r.marks.clear();
        r.notes.clear();
        r.cert = None;
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

/// Records a step in its own words (a [`Mark::Note`]), at the phase the check is in.
pub(super) fn note(at: Instant, took: Option<Duration>, text: String) {
    RECORDER.with_borrow_mut(|r| {
        if r.armed {
            let index = r.notes.len();
            r.notes.push(text);
            r.marks.push(Mark::Note {
                at,
                took,
                text: index,
            });
        }
    });
}

/// The text of the [`Mark::Note`] whose `text` is `index` (handed over once).
pub(super) fn note_text(index: usize) -> String {
    RECORDER.with_borrow_mut(|r| {
        r.notes
            .get_mut(index)
            .map(std::mem::take)
            .unwrap_or_default()
    })
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
        note(at, None, "server asked for a client certificate".into());
        let mut texts = Vec::new();
        drain(|mark| {
            if let Mark::Note { text, took, .. } = mark {
                texts.push((note_text(text), took));
            }
        });
        assert_eq!(
            texts,
            [("server asked for a client certificate".to_string(), None)]
        );
        end();
        record(Phase::Body, Some(Mark::FirstByte { at, took }));
        drain(|mark| panic!("{mark:?} recorded after the check"));
        assert_eq!(phase(), Phase::Waiting);
    }
}
