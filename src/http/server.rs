//! The poller thread ("skypunch-http-poll"): accepts on every listening socket, reads every
//! connection's request head through one epoll set (mio), answers `/healthz` and refusals
//! itself, and hands the other requests to the handler threads ([`super::handler`]). No
//! client holds a thread: a connection that sends nothing costs a socket and what it sent,
//! until its head deadline ([`super::conn::HEAD_TIMEOUT`], from the accept) answers it 408.
//!
//! At most `[http] MaxConnections` connections are open (idle ones reading their head, plus
//! those queued for or held by a handler). At the cap, a new connection takes the place of
//! the oldest one that has spent [`EVICTABLE`] without finishing its head (that one is told
//! 503 and closed); when there is none, the new one is told 503 and closed. A client that
//! means to ask sends its head at once, so a probe gets in past any number of slow clients.
//!
//! At the stop request (a waker thread wakes the poll), the thread returns: the listening
//! sockets close, so new connections are refused, and the connections still reading their
//! head close; handlers drop what is queued and finish the answer in hand ([`super::answer`]).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::answer::Answer;
use super::conn::{Conn, Progress, Refused, Request, MAX_HEAD};
use super::handler::{Job, Slot, HANDLERS, QUEUE};
use super::Shared;

/// How long a connection must have gone without finishing its head before it may be closed
/// to make room at `[http] MaxConnections`.
pub const EVICTABLE: Duration = Duration::from_secs(1);
/// How long accepting pauses after it failed (out of file descriptors, most likely).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// At most one line this often about refused and closed connections.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// The poll's token for the stop waker; listeners are 1..=N, connections after them.
const WAKE: Token = Token(0);

/// The poller's state; owned by its thread.
pub struct Server {
    poll: Poll,
    listeners: Vec<TcpListener>,
    /// Connections whose head is being read, by accept order: the first is the oldest, and
    /// the first to reach its head deadline.
    idle: BTreeMap<usize, Conn>,
    next_key: usize,
    /// Connections queued for or held by a handler.
    busy: Arc<AtomicUsize>,
    max: usize,
    jobs: Sender<Job>,
    shared: Arc<Shared>,
    scratch: Vec<u8>,
    accept_paused: Option<Instant>,
    tally: Tally,
    /// Kept here too: the waker's eventfd must outlive the wake, or closing it may take the
    /// event away before the poll returns it.
    _waker: Arc<Waker>,
}

impl Server {
    /// The poller over `listeners`, and the waker that ends its wait at the stop.
    pub fn new(
        listeners: Vec<TcpListener>,
        jobs: Sender<Job>,
        shared: Arc<Shared>,
    ) -> io::Result<(Server, Arc<Waker>)> {
        let poll = Poll::new()?;
        for (i, listener) in listeners.iter().enumerate() {
            listener.set_nonblocking(true)?;
            let fd = listener.as_raw_fd();
            poll.registry()
                .register(&mut SourceFd(&fd), Token(i + 1), Interest::READABLE)?;
        }
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let server = Server {
            poll,
            next_key: listeners.len() + 1,
            listeners,
            idle: BTreeMap::new(),
            busy: Arc::new(AtomicUsize::new(0)),
            max: shared.config.http.max_connections,
            jobs,
            shared,
            scratch: vec![0; MAX_HEAD],
            accept_paused: None,
            tally: Tally::default(),
            _waker: waker.clone(),
        };
        Ok((server, waker))
    }

    /// The thread's body: serves until the stop request.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        while !self.shared.stop.requested() {
            let wait = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, wait) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("http: cannot poll the connections: {e}");
                    std::thread::sleep(ACCEPT_PAUSE);
                }
                continue;
            }
            for event in events.iter() {
                let token = event.token();
                let step = std::panic::AssertUnwindSafe(|| self.on(token));
                if std::panic::catch_unwind(step).is_err() {
                    // The panic is logged by the hook; only this connection is lost.
                    self.remove(token.0);
                }
            }
            let now = Instant::now();
            self.expire(now);
            self.resume_accepting(now);
            self.tally.report(now, self.open(), self.max);
        }
        // Dropping self closes the listening sockets and the idle connections, and the job
        // queue's sender: the handlers end once they have dropped what it holds.
        log::info!("http: stopped accepting connections");
    }

    fn on(&mut self, token: Token) {
        match token {
            WAKE => {}
            Token(i) if i <= self.listeners.len() => self.accept(i - 1),
            Token(key) => self.read(key),
        }
    }

    /// Open connections: the cap's count.
    fn open(&self) -> usize {
        self.idle.len() + self.busy.load(Ordering::Relaxed)
    }

    /// The next head deadline, or the end of a pause in accepting.
    fn next_deadline(&self) -> Option<Instant> {
        let head = self.idle.first_key_value().map(|(_, c)| c.deadline());
        match (head, self.accept_paused) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Accepts every connection waiting on listener `i` (the poll reports edges).
    fn accept(&mut self, i: usize) {
        if self.accept_paused.is_some() {
            return;
        }
        loop {
            match self.listeners[i].accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of file descriptors, most likely: an idle connection gives one
                    // back, and the waiting ones are taken after a pause.
                    let now = Instant::now();
                    self.tally.accept_error = Some(e.to_string());
                    self.evict(now);
                    self.accept_paused = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    fn resume_accepting(&mut self, now: Instant) {
        if self.accept_paused.is_some_and(|t| t <= now) {
            self.accept_paused = None;
            for i in 0..self.listeners.len() {
                self.accept(i);
            }
        }
    }

    /// Takes a new connection in, within the cap.
    fn admit(&mut self, stream: TcpStream) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let now = Instant::now();
        if self.open() >= self.max && !self.evict(now) {
            self.tally.refused += 1;
            send(
                &stream,
                Answer::busy("too many connections; try again\n"),
                false,
            );
            return;
        }
        let key = self.next_key;
        self.next_key += 1;
        let fd = stream.as_raw_fd();
        let registry = self.poll.registry();
        if registry
            .register(&mut SourceFd(&fd), Token(key), Interest::READABLE)
            .is_ok()
        {
            // Bytes that came with the connection are reported by the poll all the same.
            self.idle.insert(key, Conn::new(stream, now));
        }
    }

    /// Closes the oldest idle connection, if it is old enough to be given up; whether it was.
    fn evict(&mut self, now: Instant) -> bool {
        let Some((&key, oldest)) = self.idle.first_key_value() else {
            return false;
        };
        if now.duration_since(oldest.since) < EVICTABLE {
            return false;
        }
        if let Some(conn) = self.remove(key) {
            let text = "closed to make room for other clients\n";
            send(&conn.stream, Answer::busy(text), false);
        }
        self.tally.evicted += 1;
        true
    }

    /// Reads what connection `key` sent; acts on a complete head.
    fn read(&mut self, key: usize) {
        let Some(conn) = self.idle.get_mut(&key) else {
            return;
        };
        let Progress::Done(request) = conn.read(&mut self.scratch) else {
            return;
        };
        let Some(conn) = self.remove(key) else {
            return;
        };
        match request {
            Ok(request) => self.dispatch(conn.stream, request),
            Err(refused) => refuse(&conn.stream, refused),
        }
    }

    /// `/healthz` is answered here, from the daemon's counters, so that it never waits behind
    /// a page or a scrape; the rest goes to the handlers, or is told 503 when they are full.
    fn dispatch(&mut self, stream: TcpStream, request: Request) {
        if request.path == "/healthz" {
            let answer = super::route::answer(&request, &self.shared);
            send(&stream, answer, request.head_only());
            return;
        }
        let slot = Slot::take(&self.busy);
        let job = Job {
            stream,
            request,
            slot,
        };
        if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) =
            self.jobs.try_send(job)
        {
            self.tally.busy += 1;
            let text = "every handler is busy; try again\n";
            send(&job.stream, Answer::busy(text), job.request.head_only());
        }
    }

    /// Answers 408 to the connections whose head is late, oldest first.
    fn expire(&mut self, now: Instant) {
        while let Some((&key, oldest)) = self.idle.first_key_value() {
            if oldest.deadline() > now {
                break;
            }
            if let Some(conn) = self.remove(key) {
                refuse(&conn.stream, Refused::TooSlow);
            }
        }
    }

    /// Takes connection `key` out of the poll.
    fn remove(&mut self, key: usize) -> Option<Conn> {
        let conn = self.idle.remove(&key)?;
        let fd = conn.stream.as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        Some(conn)
    }
}

fn refuse(stream: &TcpStream, refused: Refused) {
    if let Some((status, text)) = refused.status() {
        send(stream, Answer::text(status, text), false);
    }
}

/// Writes a small answer to a non-blocking socket, once: a fresh connection's send buffer
/// takes it whole, and a client that cannot take a few hundred bytes gets no more tries.
/// Then takes in what the client sent unread (a request refused before it was read), so
/// that closing sends a FIN, not a reset that may overtake the answer. The caller closes.
fn send(stream: &TcpStream, answer: Answer, head_only: bool) {
    let _ = (&*stream).write(&answer.into_bytes(head_only));
    let _ = stream.shutdown(Shutdown::Write);
    let _ = (&*stream).read(&mut [0u8; 4096]);
}

/// What was refused and closed since the last line about it.
#[derive(Debug, Default)]
struct Tally {
    refused: u64,
    evicted: u64,
    busy: u64,
    accept_error: Option<String>,
    last: Option<Instant>,
}

impl Tally {
    /// One warning, at most every [`REPORT_EVERY`], for what happened since the last.
    fn report(&mut self, now: Instant, open: usize, max: usize) {
        let nothing = self.refused + self.evicted + self.busy == 0 && self.accept_error.is_none();
        if nothing
            || self
                .last
                .is_some_and(|t| now.duration_since(t) < REPORT_EVERY)
        {
            return;
        }
        self.last = Some(now);
        if self.refused + self.evicted > 0 {
            log::warn!(
                "http: at [http] MaxConnections ({max}; {open} open now): {} new connections \
                 refused (503) and {} idle ones closed to make room since the last such line; \
                 raise MaxConnections if these are real clients",
                self.refused,
                self.evicted
            );
        }
        if self.busy > 0 {
            log::warn!(
                "http: {} requests refused (503) with all {HANDLERS} handlers and their queue of \
                 {QUEUE} busy since the last such line",
                self.busy
            );
        }
        if let Some(e) = &self.accept_error {
            log::warn!(
                "http: cannot accept connections: {e}; retrying every {} ms (raise the open \
                 file limit, or lower [http] MaxConnections)",
                ACCEPT_PAUSE.as_millis()
            );
        }
        *self = Tally {
            last: self.last,
            ..Tally::default()
        };
    }
}
