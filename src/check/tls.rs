//! TLS for a check's connection, on the worker thread running it: the client configurations
//! (verifying with the public roots and a target's CA bundle, or trusting any certificate;
//! presenting a target's client certificate when a server asks), built once per agent, the handshake over the check's TCP transport, and the TLS transport
//! ureq reads and writes through. Writes the leaf certificate into the check's recorder;
//! reads and fills the [`TlsMemory`] every agent shares.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, Tls12Resumption};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, NextTimeout, Transport, TransportAdapter,
};

use super::buffers::PooledBuffers;
use super::client_cert::ClientCert;
use super::connect::{self, TcpTransport};
use super::kx_hints::{KxHints, KX_HINTS};
use super::phase;
use super::verify_cache::{CachingVerifier, VerifiedChains, VERIFIED_CHAINS};
use crate::base::client_cert::ClientIdentity;

/// What every agent's TLS handshakes remember between checks: the chains verified lately
/// and the key-exchange group each server chose (never a session: see
/// [`super::kx_hints`]). Each field is shared by all agents and worker threads.
#[derive(Debug, Clone)]
pub(super) struct TlsMemory {
    pub(super) chains: Arc<VerifiedChains>,
    pub(super) hints: Arc<KxHints>,
}

impl TlsMemory {
    pub(super) fn new() -> TlsMemory {
        TlsMemory {
            chains: Arc::new(VerifiedChains::new(VERIFIED_CHAINS)),
            hints: Arc::new(KxHints::new(KX_HINTS)),
        }
    }
}

/// An agent's two TLS client configurations, built once: ureq's own `RustlsConnector`
/// rebuilds the whole rustls `ClientConfig` (root store included) for every request that
/// carries request-level config, which every check does because its timeout is per target.
pub(super) struct TlsConfigs {
    verifying: Arc<ClientConfig>,
    trusting: Arc<ClientConfig>,
}

impl fmt::Debug for TlsConfigs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConfigs")
    }
}

impl TlsConfigs {
    /// `extra_roots`: CA certificates trusted besides the public roots (a target's
    /// `ca_file`); `identity`: the client certificate presented when a server asks for one;
    /// `memory`: the verified chains and key-share hints all agents share.
    pub(super) fn new(
        extra_roots: Vec<CertificateDer<'static>>,
        identity: Option<Arc<ClientIdentity>>,
        memory: &TlsMemory,
    ) -> TlsConfigs {
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
        let verifier = CachingVerifier::new(roots, provider.clone(), memory.chains.clone())
            .expect("the public roots are never empty");
        // Asked only when a server asks for a client certificate: no cost to other handshakes.
        let client_cert: Arc<ClientCert> = Arc::new(ClientCert(identity));
        let mut verifying = builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(client_cert.clone());
        let mut trusting = builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
            .with_client_cert_resolver(client_cert);
        // Every check is a full handshake, as a new client's would be: a resumed session
        // shows no certificate, so its chain would go unverified and its expiry unseen. The
        // store keeps only each server's key-exchange group.
        let resumption =
            || Resumption::store(memory.hints.clone()).tls12_resumption(Tls12Resumption::Disabled);
        verifying.resumption = resumption();
        trusting.resumption = resumption();
        TlsConfigs {
            verifying: Arc::new(verifying),
            trusting: Arc::new(trusting),
        }
    }

    /// The configuration that verifies the server's certificate, or the one that accepts any
    /// (`verify_tls = false`).
    pub(super) fn get(&self, trust_any_certificate: bool) -> &Arc<ClientConfig> {
        if trust_any_certificate {
            &self.trusting
        } else {
            &self.verifying
        }
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

type TlsStream = StreamOwned<ClientConnection, TransportAdapter<TcpTransport>>;

/// Makes the TLS handshake over `tcp` within what is left of the connect timeout, and keeps
/// the leaf certificate if this is the check's first handshake.
pub(super) fn handshake(
    config: Arc<ClientConfig>,
    tcp: TcpTransport,
    details: &ConnectionDetails,
) -> Result<TlsStream, ureq::Error> {
    let host = details.uri.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| ureq::Error::Tls("invalid server name for TLS"))?;
    let mut conn = ClientConnection::new(config, name)?;
    let mut sock = TransportAdapter::new(tcp, details.current_time.clone());
    sock.set_timeout(connect::remaining(details));
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(tls_io_error)?;
    }
    phase::record_cert(|| {
        conn.peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| super::cert::parse_cached(leaf.as_ref()))
    });
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

/// A TLS session over our TCP transport, as ureq's own, minus the per-request config rebuild.
pub(super) struct TlsTransport {
    buffers: PooledBuffers,
    stream: TlsStream,
}

impl TlsTransport {
    pub(super) fn new(stream: TlsStream, buffers: PooledBuffers) -> TlsTransport {
        TlsTransport { buffers, stream }
    }
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
