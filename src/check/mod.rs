//! One HTTP check of one target, run synchronously on a worker thread: reads the target's
//! definition and the shared Keystone token cache, talks to the target (and Keystone), and
//! returns a [`CheckOutcome`] with a trace. Touches no database.

pub(crate) mod cert;
pub mod conditions;
pub(crate) mod describe;
pub mod keystone;
pub mod oauth2;
pub mod sockets;
pub(crate) mod timing;
pub mod tokens;

mod http;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use ureq::tls::TlsConfig;
use ureq::Agent;

use crate::base::ca::CaBundle;
use crate::base::model::{CheckOutcome, Target};
use crate::check::keystone::TokenCache;

/// Redirect hops followed when a target asks for it.
pub const MAX_REDIRECTS: u32 = 10;

/// Daemon-wide settings of checks, from the config file.
#[derive(Debug, Clone, Copy)]
pub struct CheckSettings {
    /// Bodies longer than this FAIL (and are not read further).
    pub max_body_bytes: u64,
    /// How long a Keystone token is used when Keystone does not say when it expires.
    pub token_lifetime: Duration,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            max_body_bytes: 1 << 20,
            token_lifetime: Duration::from_secs(3600),
        }
    }
}

/// Runs checks. Built once and shared by all worker threads behind an `Arc`: it holds two ureq
/// agents (certificates verified or not; each an `Arc` inside, built once with its TLS
/// configuration) and the Keystone token cache. Every check opens its own connection and
/// closes it, so nothing else is shared between checks.
#[derive(Debug)]
pub struct Checker {
    verifying: Agent,
    trusting: Agent,
    /// Verifying agents that also trust a target's CA bundle, by the bundle's key.
    with_ca: Mutex<HashMap<u64, Agent>>,
    tokens: TokenCache,
    settings: CheckSettings,
}

impl Checker {
    pub fn new(settings: CheckSettings) -> Checker {
        Checker {
            verifying: agent(false, Vec::new()),
            trusting: agent(true, Vec::new()),
            with_ca: Mutex::new(HashMap::new()),
            tokens: TokenCache::new(),
            settings,
        }
    }

    /// The Keystone tokens shared by all checks.
    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    /// Runs one check of `target` now. Never panics, never returns an error: a failed check is
    /// an outcome with [`crate::base::model::Verdict::Fail`] and a description of what failed.
    pub fn check(&self, target: &Target) -> CheckOutcome {
        // Borrowed on the common path; only a target with its own CA takes a clone.
        let with_ca;
        let agent = match (target.verify_tls, &target.ca) {
            (false, _) => &self.trusting,
            (true, None) => &self.verifying,
            (true, Some(ca)) => {
                with_ca = self.agent_trusting(ca);
                &with_ca
            }
        };
        timing::begin();
        let outcome = http::run(agent, &self.tokens, &self.settings, target);
        timing::end();
        outcome
    }
}

impl Checker {
    /// The verifying agent that also trusts `ca`, built the first time it is needed.
    fn agent_trusting(&self, ca: &CaBundle) -> Agent {
        let mut agents = self.with_ca.lock().unwrap_or_else(|e| e.into_inner());
        agents
            .entry(ca.key())
            .or_insert_with(|| agent(false, ca.certs().to_vec()))
            .clone()
    }
}

/// The agent-wide part of the configuration; timeouts and redirects are set per request.
fn agent(trust_any_certificate: bool, extra_roots: Vec<CertificateDer<'static>>) -> Agent {
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
        timing::TimedConnector::new(extra_roots),
        timing::TimedResolver::default(),
    )
}
