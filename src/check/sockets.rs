//! The checks in flight and their open sockets, so that a stop can abandon them: each worker
//! thread has a [`Slot`] (bound to the thread), the check's connector registers every socket
//! it opens there (the target's and a Keystone token fetch's), and the main thread's
//! [`InFlight::abandon`] shuts them all down at once when `StopGrace` has passed. A read,
//! write or connect blocked on one returns at once, and the check ends with an error that the
//! worker knows to be the stop's doing, so it records nothing for it.
//!
//! Why a registry of descriptors and `shutdown(2)` rather than a flag: a check blocked in a
//! read for its 60 s timeout looks at nothing until the read returns; shutting the socket
//! down from another thread is what makes it return. A descriptor is registered under its
//! slot's lock and deregistered under the same lock before it is closed, so the stopping
//! thread never shuts down a number the kernel has given to another file meanwhile.
//!
//! Shared as an `Arc` between the daemon (which abandons) and the workers (one slot each);
//! each lock is held for a few instructions, and only a worker and the stopping thread ever
//! contend for a slot's.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Every worker's slot; the count of checks abandoned.
#[derive(Default)]
pub struct InFlight {
    slots: Mutex<Vec<Arc<SlotState>>>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Set by [`InFlight::abandon`]: no check starts, no socket opens after it.
    abandoned: AtomicBool,
    /// Checks cut by the abandon that did not end with a verdict of their own.
    cut: AtomicU64,
}

#[derive(Default)]
struct SlotState {
    inner: Mutex<SlotInner>,
    /// Set with `inner.cut` (under the lock); read without it by the check's transport.
    cut: AtomicBool,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct SlotInner {
    checking: bool,
    cut: bool,
    /// The check's open sockets: one, and briefly two (a Keystone fetch's and the target's).
    fds: Vec<RawFd>,
}

/// A worker's place in the registry, bound to its thread for the connector to find.
pub struct Slot(Arc<SlotState>);

/// How a check ended, for the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It ran to its end: record it.
    Finished,
    /// The stop cut it short: record nothing.
    Abandoned,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<SlotState>>> = const { RefCell::new(None) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl InFlight {
    /// A slot for the calling worker thread, bound to it: the sockets its checks open are
    /// registered there from now on.
    pub fn join(&self) -> Slot {
        let state = Arc::new(SlotState {
            shared: self.shared.clone(),
            ..SlotState::default()
        });
        lock(&self.slots).push(state.clone());
        CURRENT.with_borrow_mut(|c| *c = Some(state.clone()));
        Slot(state)
    }

    /// Abandons every check in flight: shuts down their sockets and marks them, so that their
    /// workers record nothing; no check starts and no socket opens after this. Returns how
    /// many checks were in flight.
    pub fn abandon(&self) -> usize {
        self.shared.abandoned.store(true, Ordering::SeqCst);
        let slots = lock(&self.slots).clone();
        // Every check in flight is marked before any socket is shut down: a check waiting
        // for another's Keystone request (no socket of its own) ends as soon as that one's
        // is, and must be known as cut by then.
        let mut cut = 0;
        for slot in &slots {
            let mut inner = lock(&slot.inner);
            if inner.checking && !inner.cut {
                inner.cut = true;
                slot.cut.store(true, Ordering::SeqCst);
                self.shared.cut.fetch_add(1, Ordering::SeqCst);
                cut += 1;
            }
        }
        for slot in &slots {
            let inner = lock(&slot.inner);
            for fd in &inner.fds {
                shutdown(*fd);
            }
        }
        cut
    }

    /// Checks cut by [`InFlight::abandon`] that ended without a verdict of their own, or
    /// have not ended yet: not recorded.
    pub fn abandoned(&self) -> u64 {
        self.shared.cut.load(Ordering::SeqCst)
    }
}

impl Slot {
    /// A check starts on this thread; false once the checks are abandoned (it must not
    /// start: the stop is past its grace).
    pub fn begin(&self) -> bool {
        let mut inner = lock(&self.0.inner);
        if self.0.shared.abandoned.load(Ordering::SeqCst) {
            return false;
        }
        inner.checking = true;
        true
    }

    /// The check ended; `has_verdict`: it ended with a verdict from a complete answer (or a
    /// failure the stop cannot cause), which stands even when the stop cut it just after.
    pub fn end(&self, has_verdict: bool) -> Ended {
        let mut inner = lock(&self.0.inner);
        inner.checking = false;
        let cut = std::mem::take(&mut inner.cut);
        self.0.cut.store(false, Ordering::SeqCst);
        match (cut, has_verdict) {
            (false, _) => Ended::Finished,
            (true, true) => {
                self.0.shared.cut.fetch_sub(1, Ordering::SeqCst);
                Ended::Finished
            }
            (true, false) => Ended::Abandoned,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        CURRENT.with_borrow_mut(|c| {
            if c.as_ref().is_some_and(|s| Arc::ptr_eq(s, &self.0)) {
                *c = None;
            }
        });
    }
}

/// A socket known to the registry; dropping it deregisters it. Whoever holds one must drop
/// it before closing the socket.
#[derive(Debug)]
pub(super) struct Registration {
    slot: Option<Arc<SlotState>>,
    fd: RawFd,
}

impl std::fmt::Debug for SlotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

/// Registers a socket a check on this thread just opened (on a thread without a slot, a
/// command-line check, nothing is registered). An error when the check was abandoned: the
/// caller closes the socket and fails the check.
pub(super) fn register(fd: RawFd) -> io::Result<Registration> {
    let slot = CURRENT.with_borrow(Clone::clone);
    if let Some(slot) = &slot {
        let mut inner = lock(&slot.inner);
        if inner.cut || slot.shared.abandoned.load(Ordering::SeqCst) {
            return Err(abandoned_error());
        }
        inner.fds.push(fd);
    }
    Ok(Registration { slot, fd })
}

/// Whether the stop cut the check running on this thread.
pub(super) fn this_check_cut() -> bool {
    CURRENT.with_borrow(|c| c.as_ref().is_some_and(|s| s.cut.load(Ordering::SeqCst)))
}

impl Registration {
    /// Whether the stop cut this socket's check: what it read last (an end of stream
    /// included) may be the shutdown's doing.
    pub(super) fn cut(&self) -> bool {
        self.slot
            .as_ref()
            .is_some_and(|s| s.cut.load(Ordering::SeqCst))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(slot) = &self.slot {
            let mut inner = lock(&slot.inner);
            if let Some(i) = inner.fds.iter().position(|fd| *fd == self.fd) {
                inner.fds.swap_remove(i);
            }
        }
    }
}

/// The error a socket operation of an abandoned check ends with.
pub(super) fn abandoned_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "check abandoned: skypunch is stopping",
    )
}

fn shutdown(fd: RawFd) {
    // SAFETY: `fd` is registered, so its owner has not closed it: it deregisters under the
    // slot's lock, which the caller holds, before closing. shutdown only changes the
    // connection's state; an error (not connected yet) leaves nothing to undo.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    #[test]
    fn abandoning_wakes_a_read_blocked_on_a_silent_server_at_once() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let registry = Arc::new(InFlight::default());
        let r = registry.clone();
        let worker = std::thread::spawn(move || {
            let slot = r.join();
            assert!(slot.begin());
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let registration = register(stream.as_raw_fd()).unwrap();
            let started = Instant::now();
            let read = stream.read(&mut [0u8; 16]);
            let cut = registration.cut();
            drop(registration);
            (
                read.map_err(|e| e.kind()),
                cut,
                started.elapsed(),
                slot.end(false),
            )
        });
        let (_held, _) = server.accept().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(registry.abandon(), 1, "one check in flight");
        let (read, cut, took, ended) = worker.join().unwrap();
        assert_eq!(read, Ok(0), "the shutdown ends the read");
        assert!(cut, "the check knows the stop cut it");
        assert!(took < Duration::from_secs(5), "the read took {took:?}");
        assert_eq!(ended, Ended::Abandoned);
        assert_eq!(registry.abandoned(), 1);
    }

    #[test]
    fn a_check_waiting_for_another_checks_socket_is_abandoned_too() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let registry = Arc::new(InFlight::default());
        let (woke_tx, woke_rx) = std::sync::mpsc::channel::<()>();
        let (r, started) = (
            registry.clone(),
            std::sync::Arc::new(std::sync::Barrier::new(3)),
        );
        let s = started.clone();
        // The one asking Keystone: its socket is the registry's first.
        let asking = std::thread::spawn(move || {
            let slot = r.join();
            assert!(slot.begin());
            let mut stream = TcpStream::connect(addr).unwrap();
            let registration = register(stream.as_raw_fd()).unwrap();
            s.wait();
            let _ = stream.read(&mut [0u8; 16]);
            drop(registration);
            woke_tx.send(()).unwrap();
            slot.end(false)
        });
        let (r, s) = (registry.clone(), started.clone());
        // One waiting for that answer, with no socket of its own.
        let waiting = std::thread::spawn(move || {
            let slot = r.join();
            assert!(slot.begin());
            s.wait();
            woke_rx.recv().unwrap();
            slot.end(false)
        });
        let (_held, _) = server.accept().unwrap();
        started.wait();
        assert_eq!(registry.abandon(), 2);
        assert_eq!(asking.join().unwrap(), Ended::Abandoned);
        assert_eq!(waiting.join().unwrap(), Ended::Abandoned);
        assert_eq!(registry.abandoned(), 2);
    }

    #[test]
    fn a_check_with_a_verdict_stands_and_none_starts_after_the_abandon() {
        let registry = InFlight::default();
        let slot = registry.join();
        assert!(slot.begin());
        assert_eq!(registry.abandon(), 1);
        assert_eq!(
            slot.end(true),
            Ended::Finished,
            "its answer was complete before the cut"
        );
        assert_eq!(registry.abandoned(), 0, "not counted as abandoned");
        assert!(!slot.begin(), "no check starts after the abandon");
        let err = register(0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[test]
    fn idle_workers_and_threads_without_a_slot_are_left_alone() {
        let registry = InFlight::default();
        let slot = registry.join();
        assert!(slot.begin());
        assert_eq!(slot.end(false), Ended::Finished, "not cut: it stands");
        drop(slot);
        assert_eq!(registry.abandon(), 0);
        let free = register(0).expect("a thread without a slot registers nothing");
        assert!(!free.cut());
    }
}
