//! The connection a check's requests go over, on the worker thread running it: ureq's
//! connector opens TCP ([`super::connect`]; to the target, or through its proxy:
//! [`super::proxy`]) and, for https, TLS ([`super::tls`]), and wraps
//! the result so that the request's last write and the answer's first byte are timed. Every
//! step writes its mark into the check's recorder ([`super::phase`]).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::CertificateDer;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, Transport,
};

use super::buffers::PooledBuffers;
use super::connect::{self, TcpTransport};
use super::phase::{self, Mark};
use super::tls::{self, TlsConfigs, TlsMemory, TlsTransport};
use crate::base::client_cert::ClientIdentity;
use crate::base::model::Phase;
use crate::base::proxy::ProxyUrl;

/// Connects TCP (and TLS for https) itself rather than through ureq's connectors: it needs the
/// peer address for the trace, and ureq's `RustlsConnector` rebuilds the whole rustls
/// `ClientConfig` for every request of a check (see [`TlsConfigs`]). Ours are built once.
/// For the same reasons it goes through a target's proxy itself ([`super::proxy`]).
pub(super) struct TimedConnector {
    tls: TlsConfigs,
    proxy: Option<Arc<ProxyUrl>>,
    /// `[settings] SourceAddress`: the local address every connection is made from.
    source: Option<IpAddr>,
}

impl fmt::Debug for TimedConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TimedConnector")
    }
}

impl TimedConnector {
    /// `extra_roots`: CA certificates trusted besides the public roots (a target's
    /// `ca_file`); `identity`: the client certificate presented when asked for; `proxy`: the
    /// proxy every connection goes through; `memory`: the verified chains and key-share
    /// hints all agents share.
    pub(super) fn new(
        extra_roots: Vec<CertificateDer<'static>>,
        identity: Option<Arc<ClientIdentity>>,
        proxy: Option<Arc<ProxyUrl>>,
        memory: &TlsMemory,
    ) -> TimedConnector {
        TimedConnector {
            tls: TlsConfigs::new(extra_roots, identity, memory),
            proxy,
            source: None,
        }
    }

    /// Connects from `source` (`[settings] SourceAddress`) rather than the kernel's choice.
    pub(super) fn with_source(mut self, source: Option<IpAddr>) -> TimedConnector {
        self.source = source;
        self
    }
}

/// What a check's requests are sent over: plain TCP or TLS, timed.
pub(super) type CheckTransport = Timed<Either<TcpTransport, TlsTransport>>;

impl Connector<()> for TimedConnector {
    type Out = CheckTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<CheckTransport>, ureq::Error> {
        let config = details.config;
        let buffers =
            || PooledBuffers::new(config.input_buffer_size(), config.output_buffer_size());
        let (tcp, at) = match &self.proxy {
            None => {
                let t0 = Instant::now();
                let (tracked, peer) = connect::connect_tcp(details, self.source)?;
                let at = Instant::now();
                phase::record(
                    Phase::Connecting,
                    Some(Mark::Connected {
                        at,
                        took: at - t0,
                        peer,
                    }),
                );
                (TcpTransport::new(tracked, buffers()), at)
            }
            Some(proxy) => super::proxy::connect(proxy, details, buffers(), self.source)?,
        };
        let mut ready = at;
        let inner = if details.needs_tls() {
            phase::record(Phase::Handshaking, None);
            let trust_any = config.tls_config().disable_verification();
            let stream = tls::handshake(self.tls.get(trust_any).clone(), tcp, details)?;
            let done = Instant::now();
            phase::record(
                Phase::Sending,
                Some(Mark::Handshake {
                    at: done,
                    took: done - at,
                }),
            );
            ready = done;
            Either::B(TlsTransport::new(stream, buffers()))
        } else {
            phase::record(Phase::Sending, None);
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

/// The connection as ureq sees it, noting when the request left and the answer began.
#[derive(Debug)]
pub(super) struct Timed<T> {
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
            phase::record(Phase::Waiting, Some(Mark::Sent { at, took }));
        }
        let got = self.inner.await_input(timeout)?;
        if got && !self.answered {
            self.answered = true;
            let at = Instant::now();
            let took = at - self.last_write;
            phase::record(Phase::Receiving, Some(Mark::FirstByte { at, took }));
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
