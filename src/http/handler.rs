//! The handler threads ("skypunch-http-N"): each takes a request whose head the poller has
//! read, routes it, and writes the answer to the (now blocking) socket under a
//! [`Deadline`]. They read the database through the server's pool and the daemon's counters;
//! `/healthz` never comes here (the poller answers it), so no page or scrape delays it.

use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::answer::Deadline;
use super::conn::Request;
use super::Shared;

/// Handler threads: enough that a few slow clients (each held at most the answer's
/// [`super::answer::WRITE_TIMEOUT`]) leave others served, few enough to be cheap.
pub const HANDLERS: usize = 4;
/// Requests read and waiting for a handler; past them a request is told 503 at once.
pub const QUEUE: usize = 64;

/// A request for a handler, with its connection.
pub struct Job {
    pub stream: TcpStream,
    pub request: Request,
    pub slot: Slot,
}

/// One of the open connections that `[http] MaxConnections` bounds, while it is out of the
/// poller's hands (queued or being answered): dropping it gives the place back.
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    pub fn take(count: &Arc<AtomicUsize>) -> Slot {
        count.fetch_add(1, Ordering::Relaxed);
        Slot(count.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A handler's body: answers requests until the poller has ended. Requests still queued
/// once the stop is asked for are dropped unanswered (their connections closed): the node is
/// going, and a load balancer should try another.
pub fn run(jobs: Receiver<Job>, shared: &Shared) {
    for job in jobs {
        if shared.stop.requested() {
            continue;
        }
        // A bug in one page must not take a handler away: the panic is logged by the hook.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(job, shared)));
    }
}

fn serve(job: Job, shared: &Shared) {
    // The slot is given back once the answer is written and the connection closed.
    let Job {
        stream,
        request,
        slot: _slot,
    } = job;
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let mut answer = super::route::answer(&request, shared);
    if request.gzip {
        answer = answer.gzipped();
    }
    let mut out = Deadline::new(&stream, &shared.stop);
    if let Err(e) = answer.write(&mut out, request.head_only()) {
        log::debug!("http: answer to {} not delivered: {e}", request.path);
    }
    drop(stream);
}
