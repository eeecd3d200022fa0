//! The client certificate a check presents when a server asks for one, on the worker thread
//! whose TLS handshake asks: rustls calls [`ClientCert`] (every agent's TLS configuration has
//! one, with the target's identity or none), which hands over the identity's current key
//! (see [`crate::base::client_cert`]: swapped in place when its files change), notes the
//! request in the check's trace, and remembers it for the check's description.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::phase;
use crate::base::client_cert::ClientIdentity;

/// What the server of this thread's check asked for, and what it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    Not,
    /// The target has no client certificate: the handshake went on without one.
    Missing,
    /// The target's certificate was presented.
    Presented,
}

thread_local! {
    static ASKED: Cell<Asked> = const { Cell::new(Asked::Not) };
}

/// Forgets what the last check on this thread was asked.
pub(super) fn begin() {
    ASKED.set(Asked::Not);
}

/// Words to add to a failed status when the server asked for a client certificate: servers
/// that demand one (nginx's `ssl_verify_client on`) finish the handshake without it, or with
/// one they refuse, and answer 400 (or 401, 403, 495, 496). Short: the description is cut at
/// 128 characters; the trace names the file.
pub(super) fn status_hint(status: u16, target: &crate::base::model::Target) -> Option<String> {
    if !matches!(status, 400 | 401 | 403 | 495 | 496) {
        return None;
    }
    match (ASKED.get(), &target.client_identity) {
        (Asked::Missing, _) => Some(
            "the server asked for a client certificate and the target has none (client_cert)"
                .to_string(),
        ),
        (Asked::Presented, Some(identity)) => Some(format!(
            "the server may have refused client certificate {}",
            identity.current().subject
        )),
        _ => None,
    }
}

/// The client certificate of an agent's handshakes: the target's identity, or none.
#[derive(Debug)]
pub(super) struct ClientCert(pub(super) Option<Arc<ClientIdentity>>);

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let at = Instant::now();
        let Some(identity) = &self.0 else {
            ASKED.set(Asked::Missing);
            let text = "server asked for a client certificate: the target has none".to_string();
            phase::note(at, None, text);
            return None;
        };
        ASKED.set(Asked::Presented);
        let current = identity.current();
        let text = format!(
            "server asked for a client certificate: presenting {} ({})",
            current.subject,
            identity.files().cert.display()
        );
        phase::note(at, None, text);
        Some(current.key.clone())
    }

    fn has_certs(&self) -> bool {
        self.0.is_some()
    }
}
