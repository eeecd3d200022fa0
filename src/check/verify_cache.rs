//! Certificate chains already verified, on the worker threads' TLS handshakes: a verifier
//! wrapping rustls's webpki one that skips the path building and the chain's signatures for
//! a chain it verified before. One [`VerifiedChains`] is shared (behind an `Arc`) by every
//! agent of a `Checker`; it holds no certificate, only hashes and times.
//!
//! What makes a hit safe: the key is a SHA-256 of the trust anchors in use, the server name
//! and every certificate the server presented (DER), so any change to one of them is
//! another key; an entry lasts until the earliest `notAfter` in the presented chain or one
//! hour after it was verified, whichever is first; a failed verification is never
//! remembered. The handshake's own `CertificateVerify` signature, which proves the server
//! holds the certificate's key, is checked on every handshake, hit or not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ring::digest::{Context, SHA256};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{VerifierBuilderError, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::clock::ClockMap;

/// Chains remembered at most (the man page's bound): about 100 bytes each, so about 1 MB at
/// most. A fleet with more distinct HTTPS certificates than this verifies the least used
/// ones in full, as without the cache.
pub const VERIFIED_CHAINS: usize = 10_000;

/// How long a verified chain is trusted without verifying it again, at most.
const LIFETIME_S: u64 = 3600;

type Key = [u8; 32];

/// When a chain verified, and until when that holds (seconds since the epoch).
#[derive(Debug, Clone, Copy)]
struct Verified {
    at: u64,
    until: u64,
}

/// The chains verified lately, shared by all worker threads (a mutex held for one hash-map
/// look-up).
#[derive(Debug)]
pub struct VerifiedChains {
    entries: Mutex<ClockMap<Key, Verified>>,
    hits: AtomicU64,
}

impl VerifiedChains {
    pub fn new(bound: usize) -> VerifiedChains {
        VerifiedChains {
            entries: Mutex::new(ClockMap::new(bound)),
            hits: AtomicU64::new(0),
        }
    }

    /// Handshakes that found their chain here.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockMap<Key, Verified>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `key` verified and still holds at `now`; an entry that no longer holds goes.
    fn holds(&self, key: &Key, now: u64) -> bool {
        let mut entries = self.lock();
        let Some(v) = entries.get(key).copied() else {
            return false;
        };
        // A clock set back before the verification proves nothing about now.
        if v.at <= now && now < v.until {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        entries.remove(key);
        false
    }

    fn remember(&self, key: Key, at: u64, not_after: u64) {
        let until = not_after.min(at + LIFETIME_S);
        if at < until {
            self.lock().insert(key, Verified { at, until });
        }
    }
}

/// rustls's webpki verifier with [`VerifiedChains`] in front of its chain verification.
#[derive(Debug)]
pub struct CachingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    /// SHA-256 of the trust anchors `inner` verifies against.
    anchors: Key,
    chains: Arc<VerifiedChains>,
}

impl CachingVerifier {
    /// A verifier trusting `roots`, remembering into `chains`. Fails only on an empty `roots`.
    pub fn new(
        roots: RootCertStore,
        provider: Arc<CryptoProvider>,
        chains: Arc<VerifiedChains>,
    ) -> Result<CachingVerifier, VerifierBuilderError> {
        let anchors = anchors_id(&roots);
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
        Ok(CachingVerifier {
            inner,
            anchors,
            chains,
        })
    }

    fn key(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
    ) -> Key {
        let mut h = Context::new(&SHA256);
        h.update(&self.anchors);
        let tag: &[u8] = match server_name {
            ServerName::DnsName(_) => b"d",
            ServerName::IpAddress(_) => b"i",
            _ => b"?",
        };
        h.update(tag);
        field(&mut h, server_name.to_str().as_bytes());
        field(&mut h, end_entity);
        h.update(&(intermediates.len() as u64).to_le_bytes());
        for c in intermediates {
            field(&mut h, c);
        }
        digest(h)
    }
}

/// Length first, so that no two different lists of fields hash the same bytes.
fn field(h: &mut Context, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn digest(h: Context) -> Key {
    let mut key = [0; 32];
    key.copy_from_slice(h.finish().as_ref());
    key
}

/// Names a set of trust anchors: two agents with different CA bundles never share an entry.
fn anchors_id(roots: &RootCertStore) -> Key {
    let mut h = Context::new(&SHA256);
    h.update(&(roots.roots.len() as u64).to_le_bytes());
    for a in &roots.roots {
        field(&mut h, &a.subject);
        field(&mut h, &a.subject_public_key_info);
        field(&mut h, a.name_constraints.as_deref().unwrap_or(b"-"));
    }
    digest(h)
}

/// The earliest `notAfter` of the presented certificates, seconds since the epoch; None if
/// one does not parse (webpki may have left an unused one aside): then nothing is remembered.
fn earliest_not_after(end_entity: &[u8], intermediates: &[CertificateDer<'_>]) -> Option<u64> {
    std::iter::once(end_entity)
        .chain(intermediates.iter().map(|c| c.as_ref()))
        .map(|der| {
            let (_, cert) = X509Certificate::from_der(der).ok()?;
            u64::try_from(cert.validity().not_after.timestamp()).ok()
        })
        .try_fold(u64::MAX, |earliest, t| Some(earliest.min(t?)))
}

impl ServerCertVerifier for CachingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let key = self.key(end_entity, intermediates, server_name);
        let now_s = now.as_secs();
        if self.chains.holds(&key, now_s) {
            return Ok(ServerCertVerified::assertion());
        }
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if let Some(not_after) = earliest_not_after(end_entity, intermediates) {
            self.chains.remember(key, now_s, not_after);
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[cfg(test)]
mod tests {
    //! The cache must never accept what the plain verifier rejects: every case asks both.

    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use std::time::Duration;

    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        Ca {
            cert: p.self_signed(&key).unwrap(),
            key,
        }
    }

    /// An intermediate CA under `parent`, expiring at `not_after` (y, m, d) if given.
    fn intermediate(parent: &Ca, not_after: Option<(i32, u8, u8)>) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "intermediate");
        if let Some((y, m, d)) = not_after {
            p.not_after = rcgen::date_time_ymd(y, m, d);
        }
        Ca {
            cert: p.signed_by(&key, &parent.cert, &parent.key).unwrap(),
            key,
        }
    }

    fn leaf(issuer: &Ca, name: &str, not_after: Option<(i32, u8, u8)>) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        if let Some((y, m, d)) = not_after {
            p.not_after = rcgen::date_time_ymd(y, m, d);
        }
        p.signed_by(&key, &issuer.cert, &issuer.key)
            .unwrap()
            .der()
            .clone()
    }

    fn roots(cas: &[&Ca]) -> RootCertStore {
        let mut r = RootCertStore::empty();
        for ca in cas {
            r.add(ca.cert.der().clone()).unwrap();
        }
        r
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// The cached verifier and the plain one over the same roots.
    struct Pair {
        cached: CachingVerifier,
        plain: Arc<WebPkiServerVerifier>,
    }

    fn pair(cas: &[&Ca], chains: &Arc<VerifiedChains>) -> Pair {
        Pair {
            cached: CachingVerifier::new(roots(cas), provider(), chains.clone()).unwrap(),
            plain: WebPkiServerVerifier::builder_with_provider(Arc::new(roots(cas)), provider())
                .build()
                .unwrap(),
        }
    }

    impl Pair {
        /// Verifies with both; they must agree; the cached verifier's answer.
        #[track_caller]
        fn verify(&self, chain: &[CertificateDer<'static>], name: &str, now: u64) -> bool {
            let name = ServerName::try_from(name.to_string()).unwrap();
            let now = UnixTime::since_unix_epoch(Duration::from_secs(now));
            let ask = |v: &dyn ServerCertVerifier| {
                v.verify_server_cert(&chain[0], &chain[1..], &name, &[], now)
                    .is_ok()
            };
            let (cached, plain) = (ask(&self.cached), ask(&*self.plain));
            assert_eq!(cached, plain, "the cache answered otherwise than webpki");
            cached
        }
    }

    fn now() -> u64 {
        UnixTime::now().as_secs()
    }

    /// Midnight UTC `days` from today, as rcgen's date and as seconds since the epoch.
    fn day(days: u64) -> ((i32, u8, u8), u64) {
        use chrono::Datelike;
        let d = chrono::Utc::now().date_naive() + chrono::Days::new(days);
        let at = d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp() as u64;
        ((d.year(), d.month() as u8, d.day() as u8), at)
    }

    #[test]
    fn a_chain_verified_once_is_found_again_for_the_same_name_and_anchors() {
        let chains = Arc::new(VerifiedChains::new(VERIFIED_CHAINS));
        let root = ca("root");
        let v = pair(&[&root], &chains);
        let chain = [leaf(&root, "svc.test", None)];
        assert!(v.verify(&chain, "svc.test", now()));
        assert!(v.verify(&chain, "svc.test", now()));
        assert_eq!((chains.hits(), chains.len()), (1, 1));
    }

    #[test]
    fn a_changed_certificate_is_verified_again() {
        let chains = Arc::new(VerifiedChains::new(VERIFIED_CHAINS));
        let root = ca("root");
        let v = pair(&[&root], &chains);
        assert!(v.verify(&[leaf(&root, "svc.test", None)], "svc.test", now()));
        // Same name, another key, signed by a CA nobody trusts: the cache must not vouch.
        let stranger = ca("root");
        assert!(!v.verify(&[leaf(&stranger, "svc.test", None)], "svc.test", now()));
        // A renewal from the trusted CA verifies in full, as a new key.
        assert!(v.verify(&[leaf(&root, "svc.test", None)], "svc.test", now()));
        assert_eq!((chains.hits(), chains.len()), (0, 2));
    }

    #[test]
    fn another_server_name_is_not_vouched_for() {
        let chains = Arc::new(VerifiedChains::new(VERIFIED_CHAINS));
        let root = ca("root");
        let v = pair(&[&root], &chains);
        let chain = [leaf(&root, "svc.test", None)];
        assert!(v.verify(&chain, "svc.test", now()));
        assert!(!v.verify(&chain, "other.test", now()));
        assert_eq!(chains.hits(), 0);
    }

    #[test]
    fn a_removed_ca_is_not_vouched_for_by_what_it_verified() {
        let chains = Arc::new(VerifiedChains::new(VERIFIED_CHAINS));
        let (root, other) = (ca("root"), ca("other"));
        let with = pair(&[&root, &other], &chains);
        let without = pair(&[&other], &chains);
        let chain = [leaf(&root, "svc.test", None)];
        assert!(with.verify(&chain, "svc.test", now()));
        assert!(!without.verify(&chain, "svc.test", now()));
        assert!(
            with.verify(&chain, "svc.test", now()),
            "the first set still has it"
        );
        assert_eq!(chains.hits(), 1);
    }

    #[test]
    fn an_expired_certificate_is_refused_even_right_after_it_verified() {
        let chains = Arc::new(VerifiedChains::new(VERIFIED_CHAINS));
        let root = ca("root");
        let v = pair(&[&root], &chains);
        let (date, expiry) = day(2);
        let chain = [leaf(&root, "svc.test", Some(date))];
        assert!(v.verify(&chain, "svc.test", expiry - 600));
        assert!(v.verify(&chain, "svc.test", expiry - 60));
        assert!(
            !v.verify(&chain, "svc.test", expiry + 60),
            "expired within the hour"
        );
        assert!(
            !v.verify(&chain, "svc.test", expiry + 60),
            "and nothing cached after"
        );
        assert_eq!(chains.hits(), 1);
    }

    #[test]
    fn an_expired_intermediate_ends_the_entry_too() {
        let chains = Arc::new(VerifiedChains::new(VERIFIED_CHAINS));
        let root = ca("root");
        let v = pair(&[&root], &chains);
        let (date, expiry) = day(2);
        let inter = intermediate(&root, Some(date));
        let chain = [leaf(&inter, "svc.test", None), inter.cert.der().clone()];
        assert!(v.verify(&chain, "svc.test", expiry - 600));
        assert!(!v.verify(&chain, "svc.test", expiry + 60));
    }

    #[test]
    fn an_entry_lasts_an_hour_at_most() {
        let chains = Arc::new(VerifiedChains::new(VERIFIED_CHAINS));
        let root = ca("root");
        let v = pair(&[&root], &chains);
        let chain = [leaf(&root, "svc.test", None)];
        let t = now();
        assert!(v.verify(&chain, "svc.test", t));
        assert!(v.verify(&chain, "svc.test", t + LIFETIME_S - 1));
        assert!(v.verify(&chain, "svc.test", t + LIFETIME_S));
        assert_eq!(chains.hits(), 1, "verified in full again after the hour");
        assert!(v.verify(&chain, "svc.test", t - 10));
        assert_eq!(chains.hits(), 1, "a clock set back verifies in full");
    }

    #[test]
    fn a_failed_verification_is_never_remembered_and_the_bound_holds() {
        let chains = Arc::new(VerifiedChains::new(2));
        let (root, stranger) = (ca("root"), ca("stranger"));
        let v = pair(&[&root], &chains);
        let bad = [leaf(&stranger, "svc.test", None)];
        assert!(!v.verify(&bad, "svc.test", now()));
        assert!(!v.verify(&bad, "svc.test", now()));
        assert_eq!(chains.len(), 0);
        for name in ["a.test", "b.test", "c.test"] {
            assert!(v.verify(&[leaf(&root, name, None)], name, now()));
            assert!(chains.len() <= 2);
        }
    }
}
