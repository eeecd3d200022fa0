//! A check's TCP connection, on the worker thread running it: connect within what is left of
//! the deadline, registered with the stop's socket registry ([`super::sockets`]) before the
//! connect, and the plain transport ureq reads and writes it through (an http request through
//! a proxy in absolute form, see [`super::proxy`]). Writes nothing but the socket.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ureq::unversioned::transport::time as ut;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, NextTimeout, Transport};

use super::buffers::PooledBuffers;
use super::proxy::AbsoluteForm;
use super::sockets;
use crate::base::source_address;

/// What is left of the connect timeout now (ureq computed it when the connect phase began).
pub(super) fn remaining(details: &ConnectionDetails) -> NextTimeout {
    let mut timeout = details.timeout;
    if let (ut::Duration::Exact(total), ut::Instant::Exact(start)) = (timeout.after, details.now) {
        timeout.after = ut::Duration::Exact(total.saturating_sub(start.elapsed()));
    }
    timeout
}

/// A check's connection and its registration. Fields drop in declaration order: the
/// registration goes before the socket closes, as [`sockets`] needs.
pub(super) struct Tracked {
    registration: sockets::Registration,
    stream: TcpStream,
}

/// Connects to the first of the host's addresses that answers within the connect timeout,
/// from `source` (`[settings] SourceAddress`) when set; the connection and the address it
/// reached. A stop that abandons the check ends it at once.
pub(super) fn connect_tcp(
    details: &ConnectionDetails,
    source: Option<IpAddr>,
) -> Result<(Tracked, SocketAddr), ureq::Error> {
    connect_to(&details.addrs, details, source)
}

/// [`connect_tcp`] to `addrs` (a proxy's). Inlined into [`connect_tcp`] as it was before
/// proxies called it too: a plain check's connect costs what it did.
#[inline]
pub(super) fn connect_to(
    addrs: &[SocketAddr],
    details: &ConnectionDetails,
    source: Option<IpAddr>,
) -> Result<(Tracked, SocketAddr), ureq::Error> {
    let mut last = None;
    for &addr in addrs.iter().filter(|a| source_address::reaches(source, a)) {
        let timeout = remaining(details);
        let result = match timeout.after {
            // The test suite's blind node (`base::fault`): its uplink is down.
            _ if crate::base::fault::blind() => {
                Err(io::Error::from_raw_os_error(libc::ENETUNREACH))
            }
            ut::Duration::Exact(d) if d.is_zero() => {
                return Err(ureq::Error::Timeout(timeout.reason))
            }
            ut::Duration::Exact(d) => connect_within(&addr, Some(d), source),
            ut::Duration::NotHappening => connect_within(&addr, None, source),
        };
        match result {
            Ok(tracked) => {
                tracked.stream.set_nodelay(true)?;
                return Ok((tracked, addr));
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                last = Some(ureq::Error::Timeout(timeout.reason));
            }
            // A stop abandoned the check: no other address is tried.
            Err(e) if sockets::this_check_cut() => return Err(ureq::Error::Io(e)),
            // Another address of the host may answer; the last error is what we report.
            Err(e) => last = Some(ureq::Error::Io(e)),
        }
    }
    match (last, source) {
        (Some(e), _) => Err(e),
        (None, Some(s)) if !addrs.is_empty() => Err(ureq::Error::Io(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            source_address::no_address_of_family(s),
        ))),
        (None, _) => Err(ureq::Error::HostNotFound),
    }
}

/// Connects within `timeout` (`None`: the kernel's own bound) in three system calls (socket,
/// setsockopt, connect): Linux bounds a blocking `connect` by the socket's send timeout and
/// then fails it with EINPROGRESS. std's `connect_timeout` takes six (socket, ioctl to
/// non-blocking, connect, poll, ioctl back to blocking) — two of every twelve a plain check
/// made. A signal that interrupts the connect leaves it going on in the kernel: then we wait
/// for it as std does. The socket is registered before the connect, so that a stop can cut
/// a connect that hangs as well as a read. With a `source`, the socket is bound to it first
/// (one more system call, only then).
fn connect_within(
    addr: &SocketAddr,
    timeout: Option<Duration>,
    source: Option<IpAddr>,
) -> io::Result<Tracked> {
    let started = Instant::now();
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(*addr),
        socket2::Type::STREAM,
        None,
    )?;
    // Declared after `socket`, so dropped (deregistered) before it on every early return.
    let registration = sockets::register(socket.as_raw_fd())?;
    if let Some(ip) = source {
        source_address::bind(&socket, ip)?;
    }
    if timeout.is_some() {
        socket.set_write_timeout(timeout)?;
    }
    let stream = match socket.connect(&(*addr).into()) {
        Ok(()) => socket.into(),
        // Whatever a connect cut by the stop reports, it is the stop's doing.
        Err(_) if registration.cut() => return Err(sockets::abandoned_error()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
            await_connected(socket.into(), left)?
        }
        Err(e) => return Err(e),
    };
    Ok(Tracked {
        registration,
        stream,
    })
}

/// Waits up to `left` (`None`: without a bound) for a connect still in progress; its outcome.
fn await_connected(stream: TcpStream, left: Option<Duration>) -> io::Result<TcpStream> {
    let deadline = left.map(|left| Instant::now() + left);
    loop {
        let ms = deadline.map_or(i32::MAX as u128, |d| {
            d.saturating_duration_since(Instant::now()).as_millis()
        });
        if ms == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            ));
        }
        let mut fd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd for a descriptor `stream` owns, for the call's duration.
        let n = unsafe { libc::poll(&mut fd, 1, ms.min(i32::MAX as u128) as i32) };
        match n {
            0 => continue,
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            _ => {
                return match stream.take_error()? {
                    Some(e) => Err(e),
                    None => stream.peer_addr().map(|_| stream),
                }
            }
        }
    }
}

/// A TCP connection as ureq's own (which it does not export), except that it is never
/// reused: `is_open` answers false, which tells ureq's pool to close it after the check
/// (and spares the probe's three system calls).
pub(super) struct TcpTransport {
    /// First: fields drop in declaration order, and the socket must be deregistered before
    /// it closes.
    registration: sockets::Registration,
    stream: TcpStream,
    buffers: PooledBuffers,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Whether anything was written yet.
    wrote: bool,
    /// An http request through a proxy: its request line is rewritten to absolute form, and
    /// the first answer looked at for the proxy's refusal. Taken when the answer begins.
    absolute: Option<Box<AbsoluteForm>>,
}

/// A first write this small goes into the empty send buffer of a new connection (at least
/// 16 KiB on Linux) without blocking, so it needs no send timeout of its own: one
/// setsockopt less per check (a GET's request, or a TLS ClientHello). The socket still has
/// the connect's send timeout.
const FIRST_WRITE_CANNOT_BLOCK: usize = 4096;

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpTransport({:?})", self.stream.peer_addr().ok())
    }
}

impl TcpTransport {
    pub(super) fn new(tracked: Tracked, buffers: PooledBuffers) -> TcpTransport {
        TcpTransport {
            registration: tracked.registration,
            stream: tracked.stream,
            buffers,
            read_timeout: None,
            write_timeout: None,
            wrote: false,
            absolute: None,
        }
    }

    /// The proxy's refusal of a request sent in absolute form, looked for in the answer's
    /// first bytes only.
    #[cold]
    fn proxy_refusal(&mut self) -> Option<super::proxy::ProxyError> {
        let form = self.absolute.take()?;
        form.refusal(self.buffers.input())
    }

    /// Sends the request through a proxy in absolute form (see [`AbsoluteForm`]).
    pub(super) fn set_absolute_form(&mut self, form: AbsoluteForm) {
        self.absolute = Some(Box::new(form));
    }
}

/// The socket timeout for the time left, or the timeout error when none is left; the
/// setsockopt is skipped when the value is unchanged.
fn set_timeout(
    timeout: NextTimeout,
    current: &mut Option<Duration>,
    apply: impl FnOnce(Option<Duration>) -> io::Result<()>,
) -> Result<(), ureq::Error> {
    let wanted = match timeout.after {
        ut::Duration::Exact(d) if d.is_zero() => return Err(ureq::Error::Timeout(timeout.reason)),
        ut::Duration::Exact(d) => Some(d),
        ut::Duration::NotHappening => None,
    };
    if wanted != *current {
        apply(wanted)?;
        *current = wanted;
    }
    Ok(())
}

fn timed_out(e: io::Error, timeout: NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ureq::Error::Timeout(timeout.reason),
        _ => ureq::Error::Io(e),
    }
}

impl Transport for TcpTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let stream = &self.stream;
        if self.wrote || amount > FIRST_WRITE_CANNOT_BLOCK {
            set_timeout(timeout, &mut self.write_timeout, |t| {
                stream.set_write_timeout(t)
            })?;
        } else if timeout.after == ut::Duration::Exact(Duration::ZERO) {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        let first = !std::mem::replace(&mut self.wrote, true);
        let output = &self.buffers.output()[..amount];
        let result = match &self.absolute {
            Some(form) if first => (&self.stream).write_all(&form.rewrite(output)),
            _ => (&self.stream).write_all(output),
        };
        result.map_err(|e| timed_out(e, timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let stream = &self.stream;
        set_timeout(timeout, &mut self.read_timeout, |t| {
            stream.set_read_timeout(t)
        })?;
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&self.stream).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The end of a stream the stop shut down is not the server's: a body read
                // to it would look complete.
                Ok(0) | Err(_) if self.registration.cut() => {
                    return Err(ureq::Error::Io(sockets::abandoned_error()))
                }
                result => break result.map_err(|e| timed_out(e, timeout))?,
            }
        };
        self.buffers.input_appended(amount);
        if amount > 0 && self.absolute.is_some() {
            if let Some(refused) = self.proxy_refusal() {
                return Err(ureq::Error::Io(io::Error::other(refused)));
            }
        }
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn abandoning_cuts_a_connect_that_hangs() {
        // A listener that never accepts, with a full queue: the kernel drops further SYNs,
        // so the next connect hangs as it would to a host that does not answer.
        let listener =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        listener.bind(&any.into()).unwrap();
        listener.listen(1).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        let mut queued = Vec::new();
        let hanging = loop {
            match connect_within(&addr, Some(Duration::from_millis(300)), None) {
                Ok(t) => queued.push(t),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => break true,
                Err(_) => break false,
            }
            if queued.len() > 64 {
                break false;
            }
        };
        assert!(hanging, "the queue never filled up");
        let in_flight = Arc::new(sockets::InFlight::default());
        let registry = in_flight.clone();
        let check = std::thread::spawn(move || {
            let slot = registry.join();
            assert!(slot.begin());
            let started = Instant::now();
            let result = connect_within(&addr, Some(Duration::from_secs(60)), None);
            (
                result.err().map(|e| e.kind()),
                started.elapsed(),
                slot.end(false),
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(in_flight.abandon(), 1);
        let (error, took, ended) = check.join().unwrap();
        assert_eq!(error, Some(io::ErrorKind::ConnectionAborted));
        assert!(took < Duration::from_secs(5), "the connect took {took:?}");
        assert_eq!(ended, sockets::Ended::Abandoned);
    }

    #[test]
    fn a_source_address_is_the_address_the_peer_sees() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.2".parse().unwrap();
        let tracked = connect_within(&addr, Some(Duration::from_secs(5)), Some(source)).unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), source);
        assert_eq!(tracked.stream.local_addr().unwrap().ip(), source);
        let v6: IpAddr = "::1".parse().unwrap();
        let err = connect_within(&addr, Some(Duration::from_secs(5)), Some(v6))
            .err()
            .expect("an IPv6 source cannot reach an IPv4 address");
        assert!(
            err.to_string().starts_with("binding SourceAddress ::1: "),
            "{err}"
        );
    }
}
