//! The daemon's HTTP server (`[http]`): the status pages (`/`, `/target/ID`), `/metrics`,
//! `/healthz`, the read-only JSON API (`/api/v1/...`) and PUSH targets' `/push/TOKEN`. One poller thread
//! ("skypunch-http-poll") accepts on every listen address and reads every request head
//! through epoll, answering `/healthz` itself; a fixed pool of [`HANDLERS`] threads
//! ("skypunch-http-N") answers the rest; a small thread ("skypunch-http-stop") wakes the
//! poller at the stop. Handlers read the daemon's counters ([`Stats`], atomics) and the
//! database through the server's own r2d2 pool; they take no lock the pipeline uses, so a
//! slow scrape or client never delays a check.
//!
//! Why not `tiny_http`: 0.12 reads each request on a thread of its own pool, which grows by one
//! thread per waiting connection, without read timeouts or a bound on header size: a client
//! sending a byte a second holds a thread, and 500 such clients make 500 threads. A thread per
//! connection cannot give every connection a head deadline and still answer `/healthz` under a
//! thousand of them; a poller can. The HTTP spoken is small: one request per connection, GET
//! and HEAD (and POST at `/push/`), no request bodies ([`conn`]).
//!
//! - [`server`]: the poller: accepting, the connection cap, head deadlines, dispatch;
//! - [`conn`]: reading and parsing one request head; [`handler`]: the handler threads;
//! - [`answer`]: answers and how they are written, under a deadline;
//! - [`route`]: which page answers which path, and Basic authentication;
//! - [`health`], [`metrics`], [`api`] (with [`paging`]), [`page`] (with [`chart`]),
//!   [`push`]: the answers; [`query`] and [`status`]: their reads.

mod answer;
mod api;
mod chart;
mod conn;
mod handler;
mod health;
mod metrics;
mod page;
mod paging;
mod push;
mod status;

mod query;
mod route;
mod server;

use std::fmt;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;

use crate::base::keyring::Keyring;
use crate::base::stats::Stats;
use crate::base::stop::Stop;
use crate::base::threads::{Group, Liveness, SpawnError};
use crate::config::{Config, Endpoint};
use crate::db::Pool;

pub use handler::HANDLERS;

/// Why the server could not start. Every message names the address and the key.
#[derive(Debug)]
pub enum Error {
    /// An address of `[http] Listen` does not resolve.
    Resolve { address: String, reason: String },
    /// An address resolved but could not be bound (in use, not ours, no permission).
    Bind { address: String, reason: String },
    /// The poller could not be set up (epoll, its waker).
    Poll(std::io::Error),
    /// A thread of the server could not be started.
    Thread(SpawnError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Resolve { address, reason } => write!(
                f,
                "cannot resolve {address} ([http] Listen): {reason}; give an IP address or a \
                 host name this host knows"
            ),
            Error::Bind { address, reason } => write!(
                f,
                "cannot listen on {address} ([http] Listen): {reason}; choose another address \
                 or port, stop what uses it, or set `Listen:` empty to turn the server off"
            ),
            Error::Poll(e) => write!(f, "cannot poll the HTTP server's sockets: {e}"),
            Error::Thread(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Resolve { .. } | Error::Bind { .. } => None,
            Error::Poll(e) => Some(e),
            Error::Thread(e) => Some(e),
        }
    }
}

/// What the handlers read, shared by them as one `Arc`.
pub struct Shared {
    pub config: Arc<Config>,
    pub pool: Pool,
    pub stats: Arc<Stats>,
    pub liveness: Arc<Liveness>,
    pub stop: Stop,
    /// The `[secrets]` in force, which SIGHUP replaces: the API masks their values with its
    /// redactor, taken once per answer (a read lock for the time of an `Arc` clone).
    pub keyring: Keyring,
}

/// The server's own database connections, one per handler: a list is read while it is
/// written to its client, so a handler holds its connection for as long as its answer takes
/// (at most [`answer::WRITE_TIMEOUT`]). Answers never wait for the pipeline, and never take a
/// connection the pipeline needs.
pub fn pool(db: &crate::config::DbConfig) -> Result<Pool, crate::db::Error> {
    let mut cfg = db.clone();
    cfg.pool_size = HANDLERS as u32;
    crate::db::connect(&cfg)
}

/// Binds every address of `[http] Listen` (before any pipeline thread starts, so a port in
/// use fails the start). Logs a warning for an address off the loopback without a password.
/// Raises the open file limit first (see [`raise_open_files`]).
pub fn bind(config: &Config) -> Result<Vec<TcpListener>, Error> {
    raise_open_files(config);
    let mut listeners = Vec::new();
    for endpoint in &config.http.listen {
        for addr in resolve(endpoint)? {
            let listener = TcpListener::bind(addr).map_err(|e| Error::Bind {
                address: addr.to_string(),
                reason: e.to_string(),
            })?;
            if !addr.ip().is_loopback() && config.http.password.is_empty() {
                log::warn!(
                    "http: listening on {addr}, beyond this host, without a password: set \
                     [http] User and Password, or listen on 127.0.0.1"
                );
            }
            listeners.push(listener);
        }
    }
    Ok(listeners)
}

/// File descriptors the daemon may hold at once: one per HTTP connection, two per worker
/// (its check's socket, and a token request's), the database pools, and a margin for the
/// listening sockets, the log, the poller and what the libraries open.
pub fn files_needed(config: &Config) -> u64 {
    let http = if config.http.listen.is_empty() {
        0
    } else {
        config.http.max_connections + HANDLERS
    };
    (http + 2 * config.workers + config.db.pool_size as usize + 64) as u64
}

/// Raises the soft limit on open files to the hard one: every connection and every check is
/// a file descriptor, and the usual soft limit (1024) is below what `[http] MaxConnections`
/// and `[settings] Workers` may need. Warns when even the hard limit is below that.
fn raise_open_files(config: &Config) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit this function owns.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                ..limit
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let needed = files_needed(config);
    if limit.rlim_cur < needed {
        log::warn!(
            "the open file limit is {} but [http] MaxConnections ({}) and [settings] Workers \
             ({}) may need {needed}: raise LimitNOFILE (systemd) or `ulimit -Hn`, or lower them",
            limit.rlim_cur,
            config.http.max_connections,
            config.workers
        );
    }
}

fn resolve(endpoint: &Endpoint) -> Result<Vec<SocketAddr>, Error> {
    let address = endpoint.to_string();
    let bad = |reason: String| Error::Resolve {
        address: address.clone(),
        reason,
    };
    let addrs: Vec<SocketAddr> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(bad("no address found".into()));
    }
    // `localhost` may give both ::1 and 127.0.0.1: one of each family is enough.
    let mut chosen: Vec<SocketAddr> = Vec::new();
    for a in addrs {
        if !chosen.iter().any(|c| c.is_ipv4() == a.is_ipv4()) {
            chosen.push(a);
        }
    }
    Ok(chosen)
}

/// Starts the poller, its waker and the handlers under the supervisor. They end once
/// `shared.stop` is pulled: the poller at once (closing the listening sockets and the
/// connections still sending their head), the handlers once the answer in hand is written
/// (within [`answer::AT_STOP`]), dropping the requests still queued.
pub fn spawn(
    threads: &mut Group,
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
) -> Result<(), Error> {
    if listeners.is_empty() {
        return Ok(());
    }
    for listener in &listeners {
        if let Ok(addr) = listener.local_addr() {
            log::info!("http: listening on {addr}");
        }
    }
    let (tx, rx) = crossbeam_channel::bounded(handler::QUEUE);
    let (server, waker) =
        server::Server::new(listeners, tx, shared.clone()).map_err(Error::Poll)?;
    for i in 0..HANDLERS {
        let (rx, shared) = (rx.clone(), shared.clone());
        threads
            .spawn(&format!("skypunch-http-{i}"), None, move || {
                handler::run(rx, &shared)
            })
            .map_err(Error::Thread)?;
    }
    threads
        .spawn("skypunch-http-poll", None, move || server.run())
        .map_err(Error::Thread)?;
    let stop = shared.stop.clone();
    threads
        .spawn("skypunch-http-stop", None, move || {
            // Returns once the stop is asked for (the trigger's end is dropped).
            let _ = stop.channel().recv();
            if let Err(e) = waker.wake() {
                log::error!("http: cannot wake the poller to stop it: {e}");
            }
        })
        .map_err(Error::Thread)
}
