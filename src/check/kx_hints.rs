//! The key-exchange group each HTTPS server chose, remembered for the next handshake with it
//! on any worker thread, and nothing else of a TLS session: rustls asks its session store
//! both for the group to send a key share for and for tickets to resume with, and this store
//! answers only the first. Shared (behind an `Arc`) by every agent of a `Checker`.
//!
//! Why: without a hint rustls sends an X25519 key share first, and a server that prefers
//! another group (P-256, say) answers with a HelloRetryRequest: one more round trip and one
//! more key generation on every check. Why no resumption: a resumed session shows no
//! certificate, so its chain would go unverified and its expiry unseen.

use std::sync::Mutex;

use rustls::client::ClientSessionStore;
use rustls::client::{Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use rustls::NamedGroup;

use super::clock::ClockMap;

/// Server names whose group is remembered at most (the man page's bound); a few dozen bytes
/// each.
pub const KX_HINTS: usize = 10_000;

/// The groups servers chose, by server name; never a session or a ticket.
#[derive(Debug)]
pub struct KxHints {
    groups: Mutex<ClockMap<ServerName<'static>, NamedGroup>>,
}

impl KxHints {
    pub fn new(bound: usize) -> KxHints {
        KxHints {
            groups: Mutex::new(ClockMap::new(bound)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockMap<ServerName<'static>, NamedGroup>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ClientSessionStore for KxHints {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.lock().insert(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.lock().get(&server_name.to_owned()).copied()
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, _: Tls13ClientSessionValue) {}

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_kept_per_server_name_within_the_bound() {
        let hints = KxHints::new(2);
        let name = |n: &str| ServerName::try_from(n.to_string()).unwrap();
        hints.set_kx_hint(name("a.test"), NamedGroup::secp256r1);
        assert_eq!(hints.kx_hint(&name("a.test")), Some(NamedGroup::secp256r1));
        assert_eq!(hints.kx_hint(&name("b.test")), None);
        hints.set_kx_hint(name("b.test"), NamedGroup::X25519);
        hints.set_kx_hint(name("c.test"), NamedGroup::X25519);
        assert_eq!(hints.lock().len(), 2);
        assert_eq!(hints.kx_hint(&name("c.test")), Some(NamedGroup::X25519));
    }
}
