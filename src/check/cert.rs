//! The leaf certificate of a TLS check, read on the worker thread whose handshake saw it: its
//! expiry, subject and issuer, for the row (`cert_expires_at`, `cert_issuer`), the trace and
//! the CERTIFICATE alert. Each worker remembers the certificates it parsed lately.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::base::model::CertInfo;

/// Longest issuer kept, in characters (the column is 256 bytes of utf8mb4).
const MAX_NAME: usize = 200;

/// Certificates remembered per worker thread: a service presents the same certificate check
/// after check, and hashing it costs a fraction of parsing it.
const CACHED: usize = 1024;

thread_local! {
    static SEEN: RefCell<HashMap<u64, Option<Arc<CertInfo>>>> = RefCell::new(HashMap::new());
}

/// [`parse`], remembered by the certificate's hash on this thread.
pub fn parse_cached(der: &[u8]) -> Option<Arc<CertInfo>> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    der.hash(&mut hasher);
    let key = hasher.finish();
    SEEN.with_borrow_mut(|seen| {
        if let Some(info) = seen.get(&key) {
            return info.clone();
        }
        if seen.len() >= CACHED {
            seen.clear();
        }
        seen.entry(key)
            .or_insert_with(|| parse(der).map(Arc::new))
            .clone()
    })
}

/// Reads what skypunch keeps of a DER certificate; `None` when it is not one.
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok().map(str::to_string))
        .unwrap_or_else(|| cert.subject().to_string());
    Some(CertInfo {
        expires: cert.validity().not_after.timestamp(),
        subject: crate::base::text::clip(&subject, MAX_NAME).to_string(),
        issuer: crate::base::text::clip(&cert.issuer().to_string(), MAX_NAME).to_string(),
    })
}

/// The trace's words for a certificate seen at `now` (seconds since the epoch).
pub fn describe(cert: &CertInfo, now: i64) -> String {
    let expires = chrono::DateTime::from_timestamp(cert.expires, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| cert.expires.to_string());
    format!(
        "certificate of {} issued by {}, expires {expires} ({})",
        cert.subject,
        cert.issuer,
        crate::base::text::time_left(cert.expires - now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_gives_its_expiry_subject_and_issuer() {
        let mut params = rcgen::CertificateParams::new(vec!["svc.test".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 6);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "svc.test");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = parse(cert.der()).unwrap();
        assert_eq!(info.subject, "svc.test");
        assert_eq!(info.issuer, "CN=svc.test");
        assert_eq!(
            chrono::DateTime::from_timestamp(info.expires, 0)
                .unwrap()
                .format("%Y-%m-%d")
                .to_string(),
            "2031-05-06"
        );
        assert!(parse(b"not a certificate").is_none());
    }
}
