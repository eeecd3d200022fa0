//! Per-phase timing of one check, on the worker thread running it: ureq's resolver, connector
//! and transport hooks write marks (resolved, connected, TLS done, request sent, first byte)
//! into a thread-local recorder that the check reads back into its trace.
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
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::buffers::PooledBuffers;
use super::sockets;
use crate::base::model::CertInfo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::time as ut;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, Transport, TransportAdapter,
};

pub use crate::base::model::Phase;

/// One timed step, turned into a trace line by the check.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
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
}

thread_local! {
    static RECORDER: RefCell<Recorder> = const {
        RefCell::new(Recorder { armed: false, phase: Phase::Start, marks: Vec::new(), cert: None })
    };
}

/// Starts recording for a check on this thread, forgetting anything left from the last one.
pub fn begin() {
    RECORDER.with_borrow_mut(|r| {
        r.armed = true;
        r.phase = Phase::Start;
        r.marks.clear();
        r.cert = None;
    });
}

/// The leaf certificate the check's first TLS handshake saw, if any; it stays recorded for
/// [`take_cert`].
pub fn cert() -> Option<Arc<CertInfo>> {
    RECORDER.with_borrow(|r| r.cert.clone())
}

/// Takes the leaf certificate recorded by this check.
pub fn take_cert() -> Option<Arc<CertInfo>> {
    RECORDER.with_borrow_mut(|r| r.cert.take())
}

fn record_cert(conn: &ClientConnection) {
    RECORDER.with_borrow_mut(|r| {
        if r.armed && r.cert.is_none() {
            r.cert = conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| super::cert::parse_cached(leaf.as_ref()));
        }
    });
}

/// Stops recording; hooks used outside a check (none today) then record nothing.
pub fn end() {
    RECORDER.with_borrow_mut(|r| r.armed = false);
}

pub fn phase() -> Phase {
    RECORDER.with_borrow(|r| r.phase)
}

pub fn set_phase(phase: Phase) {
    RECORDER.with_borrow_mut(|r| r.phase = phase);
}

/// Hands the marks recorded since the last call to `f`, in order.
pub fn drain(mut f: impl FnMut(Mark)) {
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

fn record(phase: Phase, mark: Option<Mark>) {
    RECORDER.with_borrow_mut(|r| {
        if r.armed {
            r.phase = phase;
            r.marks.extend(mark);
        }
    });
}

/// ureq's resolver, timed; IP literals skip it, because with a timeout it spawns a thread
/// per lookup and most monitored URLs in a data centre name an address.
#[derive(Debug, Default)]
pub struct TimedResolver(DefaultResolver);

impl Resolver for TimedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        record(Phase::Resolving, None);
        if reserved_invalid(uri) {
            return Err(ureq::Error::HostNotFound);
        }
        let t0 = Instant::now();
        let addrs = match literal(uri) {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                addrs
            }
            None => self.0.resolve(uri, config, timeout)?,
        };
        let first = addrs.first().map(SocketAddr::ip);
        if let Some(first) = first {
            let at = Instant::now();
            let took = at - t0;
            let count = addrs.len();
            record(
                Phase::Connecting,
                Some(Mark::Resolved {
                    at,
                    took,
                    first,
                    count,
                }),
            );
        }
        Ok(addrs)
    }
}

/// Names under `.invalid` never exist (RFC 6761, section 6.4): answered here as an unknown
/// host, the same on every machine, without asking a resolver that may be slow or absent.
fn reserved_invalid(uri: &Uri) -> bool {
    uri.host().is_some_and(|h| {
        let h = h.trim_end_matches('.').to_ascii_lowercase();
        h == "invalid" || h.ends_with(".invalid")
    })
}

fn literal(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let https = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Some(SocketAddr::new(ip, port))
}

/// Connects TCP (and TLS for https) itself rather than through ureq's connectors: it needs the
/// peer address for the trace, and ureq's `RustlsConnector` rebuilds the whole rustls
/// `ClientConfig` (root store included) for every request that carries request-level config,
/// which every check does because its timeout is per target. Ours are built once.
pub struct TimedConnector {
    verifying: Arc<ClientConfig>,
    trusting: Arc<ClientConfig>,
}

impl fmt::Debug for TimedConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TimedConnector")
    }
}

/// The crypto provider (aws-lc-rs's, or ring's with the bench-only `ring-checks` feature)
/// with the AES-128-GCM/SHA-256 suites offered first. Servers that honour
/// the client's order (nginx and OpenSSL do by default) otherwise pick AES-256-GCM/SHA-384,
/// whose SHA-384 key schedule ring computes without SHA extensions: 5 % of the daemon's CPU
/// per HTTPS check in a profile. Every suite stays offered, so no server is refused.
fn provider() -> CryptoProvider {
    let mut p = super::crypto::default_provider();
    // A stable sort: the 128-bit suites move up, the rest keep ring's order.
    p.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    p
}

impl TimedConnector {
    /// `extra_roots`: CA certificates trusted besides the public roots (a target's
    /// `ca_file`); `memory`: the verified chains and key-share hints all agents share.
    pub fn new(
        extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
        memory: &super::TlsMemory,
    ) -> TimedConnector {
        let provider = Arc::new(provider());
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // A certificate rustls cannot use as a root is left out; the check then fails with
        // the handshake's reason.
        roots.add_parsable_certificates(extra_roots);
        let builder = || {
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
        };
        let verifier = super::verify_cache::CachingVerifier::new(
            roots,
            provider.clone(),
            memory.chains.clone(),
        )
        .expect("the public roots are never empty");
        let mut verifying = builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let mut trusting = builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
            .with_no_client_auth();
        // Every check is a full handshake, as a new client's would be: a resumed session
        // shows no certificate, so its chain would go unverified and its expiry unseen. The
        // store keeps only each server's key-exchange group.
        let resumption =
            || Resumption::store(memory.hints.clone()).tls12_resumption(Tls12Resumption::Disabled);
        verifying.resumption = resumption();
        trusting.resumption = resumption();
        TimedConnector {
            verifying: Arc::new(verifying),
            trusting: Arc::new(trusting),
        }
    }
}

pub type Conn = Timed<Either<TcpTransport, TlsTransport>>;

impl Connector<()> for TimedConnector {
    type Out = Conn;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Conn>, ureq::Error> {
        let config = details.config;
        let t0 = Instant::now();
        let (tracked, peer) = connect_tcp(details)?;
        let at = Instant::now();
        record(
            Phase::Connecting,
            Some(Mark::Connected {
                at,
                took: at - t0,
                peer,
            }),
        );
        let buffers =
            || PooledBuffers::new(config.input_buffer_size(), config.output_buffer_size());
        let tcp = TcpTransport::new(tracked, buffers());
        let mut ready = at;
        let inner = if details.needs_tls() {
            record(Phase::Handshaking, None);
            let tls = if config.tls_config().disable_verification() {
                &self.trusting
            } else {
                &self.verifying
            };
            let stream = handshake(tls.clone(), tcp, details)?;
            let done = Instant::now();
            record(
                Phase::Sending,
                Some(Mark::Handshake {
                    at: done,
                    took: done - at,
                }),
            );
            ready = done;
            Either::B(TlsTransport {
                buffers: buffers(),
                stream,
            })
        } else {
            record(Phase::Sending, None);
            Either::A(tcp)
        };
        Ok(Some(Timed {
            inner,
            ready,
            last_write: ready,
            sent: false,
            answered: false,
        }))
    }
}

/// What is left of the connect timeout now (ureq computed it when the connect phase began).
fn remaining(details: &ConnectionDetails) -> NextTimeout {
    let mut timeout = details.timeout;
    if let (ut::Duration::Exact(total), ut::Instant::Exact(start)) = (timeout.after, details.now) {
        timeout.after = ut::Duration::Exact(total.saturating_sub(start.elapsed()));
    }
    timeout
}

/// Connects within `timeout` (`None`: the kernel's own bound) in three system calls (socket,
/// setsockopt, connect): Linux bounds a blocking `connect` by the socket's send timeout and
/// then fails it with EINPROGRESS. std's `connect_timeout` takes six (socket, ioctl to
/// non-blocking, connect, poll, ioctl back to blocking) — two of every twelve a plain check
/// made. A signal that interrupts the connect leaves it going on in the kernel: then we wait
/// for it as std does. The socket is registered before the connect, so that a stop can cut
/// a connect that hangs as well as a read.
fn connect_within(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<Tracked> {
    use std::os::fd::AsRawFd;
    let started = Instant::now();
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(*addr),
        socket2::Type::STREAM,
        None,
    )?;
    // Declared after `socket`, so dropped (deregistered) before it on every early return.
    let registration = sockets::register(socket.as_raw_fd())?;
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

/// A check's connection and its registration. Fields drop in declaration order: the
/// registration goes before the socket closes, as [`sockets`] needs.
struct Tracked {
    registration: sockets::Registration,
    stream: TcpStream,
}

/// Waits up to `left` (`None`: without a bound) for a connect still in progress; its outcome.
fn await_connected(stream: TcpStream, left: Option<Duration>) -> io::Result<TcpStream> {
    use std::os::fd::AsRawFd;
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

fn connect_tcp(details: &ConnectionDetails) -> Result<(Tracked, SocketAddr), ureq::Error> {
    let mut last = None;
    for &addr in details.addrs.iter() {
        let timeout = remaining(details);
        let result = match timeout.after {
            ut::Duration::Exact(d) if d.is_zero() => {
                return Err(ureq::Error::Timeout(timeout.reason))
            }
            ut::Duration::Exact(d) => connect_within(&addr, Some(d)),
            ut::Duration::NotHappening => connect_within(&addr, None),
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
    Err(last.unwrap_or(ureq::Error::HostNotFound))
}

fn handshake(
    config: Arc<ClientConfig>,
    tcp: TcpTransport,
    details: &ConnectionDetails,
) -> Result<StreamOwned<ClientConnection, TransportAdapter<TcpTransport>>, ureq::Error> {
    let host = details.uri.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| ureq::Error::Tls("invalid server name for TLS"))?;
    let mut conn = ClientConnection::new(config, name)?;
    let mut sock = TransportAdapter::new(tcp, details.current_time.clone());
    sock.set_timeout(remaining(details));
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(tls_io_error)?;
    }
    record_cert(&conn);
    Ok(StreamOwned::new(conn, sock))
}

/// rustls reports a bad certificate as an io error wrapping a `rustls::Error`; unwrap it so
/// the description can say what was wrong with the certificate.
fn tls_io_error(e: io::Error) -> ureq::Error {
    let is_rustls = e.get_ref().is_some_and(|i| i.is::<rustls::Error>());
    if is_rustls {
        if let Ok(inner) = e
            .into_inner()
            .expect("checked above")
            .downcast::<rustls::Error>()
        {
            return ureq::Error::Rustls(*inner);
        }
        return ureq::Error::Tls("TLS handshake failed");
    }
    ureq::Error::from(e)
}

/// A TCP connection as ureq's own (which it does not export), except that it is never
/// reused: `is_open` answers false, which tells ureq's pool to close it after the check
/// (and spares the probe's three system calls).
pub struct TcpTransport {
    /// First: fields drop in declaration order, and the socket must be deregistered before
    /// it closes.
    registration: sockets::Registration,
    stream: TcpStream,
    buffers: PooledBuffers,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Whether anything was written yet.
    wrote: bool,
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
    fn new(tracked: Tracked, buffers: PooledBuffers) -> TcpTransport {
        TcpTransport {
            registration: tracked.registration,
            stream: tracked.stream,
            buffers,
            read_timeout: None,
            write_timeout: None,
            wrote: false,
        }
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
        self.wrote = true;
        let output = &self.buffers.output()[..amount];
        (&self.stream)
            .write_all(output)
            .map_err(|e| timed_out(e, timeout))
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
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        false
    }
}

/// A TLS session over our TCP transport, as ureq's own, minus the per-request config rebuild.
pub struct TlsTransport {
    buffers: PooledBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter<TcpTransport>>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output).map_err(tls_io_error)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input).map_err(tls_io_error)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        false
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// The connection as ureq sees it, noting when the request left and the answer began.
#[derive(Debug)]
pub struct Timed<T> {
    inner: T,
    /// When the connection (and TLS) was ready for the request.
    ready: Instant,
    last_write: Instant,
    sent: bool,
    answered: bool,
}

impl<T: Transport> Transport for Timed<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.inner.transmit_output(amount, timeout)?;
        self.last_write = Instant::now();
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if !self.sent {
            self.sent = true;
            // All writes of the request (headers and body) happen before the first read.
            let (at, took) = (self.last_write, self.last_write - self.ready);
            record(Phase::Waiting, Some(Mark::Sent { at, took }));
        }
        let got = self.inner.await_input(timeout)?;
        if got && !self.answered {
            self.answered = true;
            let at = Instant::now();
            let took = at - self.last_write;
            record(Phase::Receiving, Some(Mark::FirstByte { at, took }));
        }
        Ok(got)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// `verify_tls = false`: any certificate is accepted, but the handshake signatures are still
/// checked, so the peer holds the key of the certificate it shows.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            match connect_within(&addr, Some(Duration::from_millis(300))) {
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
            let result = connect_within(&addr, Some(Duration::from_secs(60)));
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
    fn the_128_bit_suites_are_offered_first_and_none_is_dropped() {
        let ours = provider().cipher_suites;
        let base = crate::check::crypto::default_provider().cipher_suites;
        assert_eq!(ours.len(), base.len());
        assert_eq!(
            ours[0].suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        let tls13: Vec<_> = ours.iter().filter_map(|s| s.tls13()).collect();
        assert_eq!(
            tls13[0].common.suite,
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
    }
}
