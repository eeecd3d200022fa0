//! The ureq agents checks run on, built with the [`super::Checker`] (on the thread that makes
//! it) and shared by every worker thread: one that verifies certificates, one that trusts any
//! (`verify_tls = false`), and one per CA bundle a target names, built on the worker whose
//! check first needs it. Each agent
//! is an `Arc` inside, with our resolver and connector and the [`TlsMemory`] they all share.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use rustls::pki_types::CertificateDer;
use ureq::tls::TlsConfig;
use ureq::Agent;

use super::resolve::TimedResolver;
use super::tls::TlsMemory;
use super::transport::TimedConnector;
use crate::base::ca::CaBundle;
use crate::base::model::Target;

#[derive(Debug)]
pub(super) struct Agents {
    verifying: Agent,
    trusting: Agent,
    /// Verifying agents that also trust a target's CA bundle, by the bundle's key.
    with_ca: Mutex<HashMap<u64, Agent>>,
    tls: TlsMemory,
}

impl Agents {
    pub(super) fn new() -> Agents {
        let tls = TlsMemory::new();
        Agents {
            verifying: agent(false, Vec::new(), &tls),
            trusting: agent(true, Vec::new(), &tls),
            with_ca: Mutex::new(HashMap::new()),
            tls,
        }
    }

    /// The agent a check of `target` runs on: borrowed on the common path; only a target
    /// with its own CA takes a clone (of an `Arc`).
    pub(super) fn for_target(&self, target: &Target) -> Cow<'_, Agent> {
        match (target.verify_tls, &target.ca) {
            (false, _) => Cow::Borrowed(&self.trusting),
            (true, None) => Cow::Borrowed(&self.verifying),
            (true, Some(ca)) => Cow::Owned(self.trusting_ca(ca)),
        }
    }

    /// What the agents' handshakes remember.
    pub(super) fn tls(&self) -> &TlsMemory {
        &self.tls
    }

    /// The verifying agent that also trusts `ca`, built the first time it is needed.
    fn trusting_ca(&self, ca: &CaBundle) -> Agent {
        let mut agents = self.with_ca.lock().unwrap_or_else(|e| e.into_inner());
        agents
            .entry(ca.key())
            .or_insert_with(|| agent(false, ca.certs().to_vec(), &self.tls))
            .clone()
    }
}

/// The agent-wide part of the configuration; timeouts and redirects are set per request.
fn agent(
    trust_any_certificate: bool,
    extra_roots: Vec<CertificateDer<'static>>,
    memory: &TlsMemory,
) -> Agent {
    let tls = TlsConfig::builder()
        .disable_verification(trust_any_certificate)
        .build();
    let config = Agent::config_builder()
        .tls_config(tls)
        // A check must see the target as it is: no proxy from the environment.
        .proxy(None)
        // A fresh connection per check: a pooled one would hide connect and TLS problems.
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(crate::base::version::USER_AGENT)
        // Header size limit 64 KiB (ureq's default); the input buffer must hold a whole head.
        .input_buffer_size(80 * 1024)
        .output_buffer_size(16 * 1024)
        .build();
    Agent::with_parts(
        config,
        TimedConnector::new(extra_roots, memory),
        TimedResolver::default(),
    )
}
