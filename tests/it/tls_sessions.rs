//! What an HTTPS check keeps from one handshake to the next: the group the server chose for
//! its key exchange (so a server preferring P-256 asks for a HelloRetryRequest once, not on
//! every check) and the fact that its chain verified; never a session to resume, whatever
//! the server offers (session IDs, tickets), so every check sees and verifies the
//! certificate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustls::HandshakeKind;
use skypunch::{CaFiles, CheckSettings, Checker, Verdict};

use crate::support::servers::target;

/// An HTTPS server that offers every kind of resumption it can and records how each
/// connection's handshake went.
struct Recording {
    addr: SocketAddr,
    kinds: Arc<Mutex<Vec<Option<HandshakeKind>>>>,
}

/// A CA and a certificate for 127.0.0.1 signed by it; the CA's PEM.
fn pki() -> (
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
    String,
) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "sessions test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    (leaf.der().clone(), der, ca.pem())
}

impl Recording {
    /// Serves `versions` with only the P-256 group, a session cache and ticket-issuing on.
    fn start(versions: &[&'static rustls::SupportedProtocolVersion]) -> (Recording, String) {
        let (cert, key, ca_pem) = pki();
        let mut provider = rustls::crypto::ring::default_provider();
        provider.kx_groups = vec![rustls::crypto::ring::kx_group::SECP256R1];
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        config.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
        config.send_tls13_tickets = 2;
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let kinds = Arc::new(Mutex::new(Vec::new()));
        let seen = kinds.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let mut head = [0u8; 4096];
                let _ = tls.read(&mut head);
                seen.lock().unwrap().push(tls.conn.handshake_kind());
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        (Recording { addr, kinds }, ca_pem)
    }

    fn kinds(&self) -> Vec<Option<HandshakeKind>> {
        self.kinds.lock().unwrap().clone()
    }
}

/// Three checks of `server` through its CA with one checker (as one daemon makes them).
fn check_three_times(server: &Recording, ca_pem: &str, name: &str) -> Checker {
    let dir = std::env::temp_dir().join(format!("sp-sessions-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let mut t = target(&format!("https://127.0.0.1:{}/", server.addr.port()));
    t.ca = CaFiles::new(None)
        .get(Some(ca_path.to_str().unwrap()))
        .unwrap();
    let checker = Checker::new(CheckSettings::default());
    for n in 0..3 {
        let outcome = checker.check(&t);
        assert_eq!(
            outcome.verdict,
            Verdict::Pass,
            "check {n}: {}",
            outcome.trace
        );
        let cert = outcome
            .cert
            .as_ref()
            .expect("every check reads the certificate");
        assert_eq!(cert.issuer, "CN=sessions test CA");
        assert!(
            outcome
                .trace
                .to_string()
                .contains("TLS handshake done; certificate of"),
            "{}",
            outcome.trace
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
    checker
}

#[test]
fn a_server_preferring_p256_asks_for_a_retry_once_and_no_check_resumes() {
    let (server, ca) = Recording::start(&[&rustls::version::TLS13]);
    let checker = check_three_times(&server, &ca, "tls13");
    assert_eq!(
        server.kinds(),
        vec![
            Some(HandshakeKind::FullWithHelloRetryRequest),
            Some(HandshakeKind::Full),
            Some(HandshakeKind::Full),
        ],
        "the first check learns the group; none resumes a ticket"
    );
    assert_eq!(
        checker.chains_found_verified(),
        2,
        "the chain verified in full once"
    );
}

#[test]
fn a_tls12_server_with_a_session_cache_never_sees_a_resumption() {
    let (server, ca) = Recording::start(&[&rustls::version::TLS12]);
    check_three_times(&server, &ca, "tls12");
    assert_eq!(server.kinds(), vec![Some(HandshakeKind::Full); 3]);
}
