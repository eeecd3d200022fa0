//! The daemon's HTTP server (`[http]`): the status pages (`/`, `/target/ID`), `/metrics`,
//! `/healthz` and the read-only JSON API (`/api/v1/...`). One acceptor thread per listen
//! address ("skypunch-http-accept-N") hands connections over a bounded channel to a fixed pool
//! of [`HANDLERS`] threads ("skypunch-http-N"). Handlers read the daemon's counters
//! ([`Stats`], atomics) and the database through the shared r2d2 pool; they take no lock the
//! pipeline uses, so a slow scrape or client never delays a check.
//!
//! Why not `tiny_http`: 0.12 reads requests on a thread pool of its own that grows by one
//! thread per waiting connection, without read timeouts or a bound on header size, so a client
//! sending a byte a second holds a thread forever and 500 such clients make 500 threads. The
//! server here is small ([`server`]): one request per connection, a deadline on reading the
//! request head and on writing the answer, heads of at most 16 KiB, no request bodies.
//!
//! - [`server`]: listening, accepting, reading requests, writing answers;
//! - [`route`]: which page answers which path, and Basic authentication;
//! - [`health`], [`metrics`], [`api`], [`page`] (with [`chart`]): the answers; [`query`] and
//!   [`status`]: their reads.

mod api;
mod chart;
mod health;
mod metrics;
mod page;
mod status;

mod query;
mod route;
mod server;

use std::fmt;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;

use crate::config::{Config, Endpoint};
use crate::db::Pool;
use crate::stats::Stats;
use crate::stop::Stop;
use crate::threads::{Liveness, Supervisor};

/// Handler threads: enough that a few slow clients (each held at most [`server::HEAD_TIMEOUT`]
/// plus [`server::WRITE_TIMEOUT`]) leave others served, few enough to be cheap.
pub const HANDLERS: usize = 4;

/// Why the server could not start. Every message names the address and the key.
#[derive(Debug)]
pub enum Error {
    /// An address of `[http] Listen` does not resolve.
    Resolve { address: String, reason: String },
    /// An address resolved but could not be bound (in use, not ours, no permission).
    Bind { address: String, reason: String },
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
        }
    }
}

impl std::error::Error for Error {}

/// What the handlers read, shared by them as one `Arc`.
pub struct Shared {
    pub config: Arc<Config>,
    pub pool: Pool,
    pub stats: Arc<Stats>,
    pub liveness: Arc<Liveness>,
    pub stop: Stop,
}

/// The server's own two database connections: answers wait for each other, never for the
/// pipeline, and never take a connection the pipeline needs.
pub fn pool(db: &crate::config::DbConfig) -> Result<Pool, crate::db::Error> {
    let mut cfg = db.clone();
    cfg.pool_size = 2;
    crate::db::connect(&cfg)
}

/// Binds every address of `[http] Listen` (before any pipeline thread starts, so a port in
/// use fails the start). Logs a warning for an address off the loopback without a password.
pub fn bind(config: &Config) -> Result<Vec<TcpListener>, Error> {
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

/// Starts the acceptors and the handlers under the supervisor. They end once `shared.stop`
/// is pulled: the acceptors at their next poll (within 200 ms), the handlers once the
/// connections already accepted are answered.
pub fn spawn(
    threads: &mut Supervisor,
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
) -> Result<(), String> {
    if listeners.is_empty() {
        return Ok(());
    }
    let (tx, rx) = crossbeam_channel::bounded(server::QUEUE);
    for (i, listener) in listeners.into_iter().enumerate() {
        if let Ok(addr) = listener.local_addr() {
            log::info!("http: listening on {addr}");
        }
        let (tx, stop) = (tx.clone(), shared.stop.clone());
        threads.spawn(&format!("skypunch-http-accept-{i}"), None, move || {
            server::accept(listener, tx, stop)
        })?;
    }
    drop(tx);
    for i in 0..HANDLERS {
        let (rx, shared) = (rx.clone(), shared.clone());
        threads.spawn(&format!("skypunch-http-{i}"), None, move || {
            server::handle(rx, &shared)
        })?;
    }
    Ok(())
}
