//! One HTTP check of one target, run synchronously on a worker thread: reads the target's
//! definition and the shared Keystone token cache, talks to the target (and Keystone), and
//! returns a [`CheckOutcome`] with a trace. Touches no database.
//!
//! - [`http`]: the steps of a check (authenticate, send, read, judge) and its trace;
//! - [`agent`]: the ureq agents checks run on; [`resolve`], [`connect`], [`proxy`], [`tls`]
//!   (with [`client_cert`]) and [`transport`]: how they reach a target; [`phase`]: what
//!   those steps record on the way;
//! - [`verify_cache`], [`kx_hints`] (over [`clock`]): what TLS handshakes remember;
//!   [`buffers`]: the connections' buffers; [`crypto`]: the TLS provider;
//! - [`describe`], [`cert`]: words for what a check found;
//! - [`keystone`]: tokens for targets behind OpenStack Keystone; [`oauth2`] (over
//!   [`tokens`]): OAuth2 client-credentials tokens;
//! - [`conditions`]: what the answer must show, as the target's `conditions` say;
//! - [`sockets`]: the checks in flight, for a stop to abandon.

pub(crate) mod sockets;

// Issue 26's parts, built and tested, wired into the check in its next step.
#[allow(dead_code, unused_imports)]
mod conditions;
#[allow(dead_code, unused_imports)]
mod oauth2;
#[allow(dead_code)]
mod tokens;

mod agent;
mod buffers;
mod cert;
mod client_cert;
mod clock;
mod connect;
mod crypto;
mod describe;
mod http;
mod keystone;
mod kx_hints;
mod phase;
mod proxy;
mod resolve;
mod tls;
mod transport;
mod verify_cache;

use std::time::Duration;

use crate::base::model::{CheckOutcome, Target};
use crate::check::keystone::TokenCache;

/// Redirect hops followed when a target asks for it.
const MAX_REDIRECTS: u32 = 10;

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

/// Runs checks. Built once and shared by all worker threads behind an `Arc`: it holds the
/// ureq agents (see [`agent`]; each an `Arc` inside, built once with its TLS configuration)
/// and the Keystone token cache. Every check opens its own connection and closes it, and
/// makes a full TLS handshake; nothing else is shared between checks.
#[derive(Debug)]
pub struct Checker {
    agents: agent::Agents,
    tokens: TokenCache,
    settings: CheckSettings,
}

impl Checker {
    pub fn new(settings: CheckSettings) -> Checker {
        Checker {
            agents: agent::Agents::new(),
            tokens: TokenCache::new(),
            settings,
        }
    }

    /// Handshakes that found their certificate chain already verified.
    pub fn chains_found_verified(&self) -> u64 {
        self.agents.tls().chains.hits()
    }

    /// The Keystone tokens shared by all checks.
    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    /// Runs one check of `target` now. Never panics, never returns an error: a failed check is
    /// an outcome with [`crate::base::model::Verdict::Fail`] and a description of what failed.
    pub fn check(&self, target: &Target) -> CheckOutcome {
        let agent = self.agents.for_target(target);
        phase::begin();
        client_cert::begin();
        let outcome = http::run(&agent, &self.tokens, &self.settings, target);
        phase::end();
        outcome
    }
}
