//! One HTTP check of one target, run synchronously on a worker thread: reads the target's
//! definition and the shared token caches, talks to the target (and Keystone or the OAuth2
//! server), and returns a [`CheckOutcome`] with a trace. Touches no database.
//!
//! - [`http`]: the steps of a check (authenticate, send, read, judge) and its trace;
//! - [`agent`]: the ureq agents checks run on; [`resolve`], [`connect`], [`proxy`], [`tls`]
//!   (with [`client_cert`]) and [`transport`]: how they reach a target; [`phase`]: what
//!   those steps record on the way;
//! - [`verify_cache`], [`kx_hints`] (over [`clock`]): what TLS handshakes remember;
//!   [`buffers`]: the connections' buffers; [`crypto`]: the TLS provider;
//! - [`describe`], [`cert`]: words for what a check found;
//! - [`keystone`]: tokens for targets behind OpenStack Keystone, [`oauth2`]: OAuth2
//!   client-credentials tokens; both over [`tokens`] (the cache) and [`token_request`] (the
//!   HTTP exchange);
//! - [`sockets`]: the checks in flight, for a stop to abandon;
//! - [`push`]: PUSH (heartbeat) targets, judged from the pushes read, with no network.

pub(crate) mod sockets;

mod keystone;
mod oauth2;
mod token_request;
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
mod kx_hints;
mod phase;
mod proxy;
mod push;
mod resolve;
mod tls;
mod transport;
mod verify_cache;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::keyring::Keyring;
use crate::base::model::{CheckOutcome, Method, Target};
pub use push::{Heard, Heartbeats, POLL as PUSH_POLL};

/// Redirect hops followed when a target asks for it.
const MAX_REDIRECTS: u32 = 10;

/// Daemon-wide settings of checks, from the config file.
#[derive(Debug, Clone, Copy)]
pub struct CheckSettings {
    /// Bodies longer than this FAIL (and are not read further).
    pub max_body_bytes: u64,
    /// How long a Keystone or OAuth2 token is used when its answer does not say when it
    /// expires.
    pub token_lifetime: Duration,
    /// `[settings] SourceAddress`: the local address every connection of a check (to the
    /// target, its proxy, Keystone or the OAuth2 server) is made from; `None`: the kernel's
    /// choice.
    pub source_address: Option<std::net::IpAddr>,
}

impl Default for CheckSettings {
    fn default() -> Self {
        CheckSettings {
            max_body_bytes: 1 << 20,
            token_lifetime: Duration::from_secs(3600),
            source_address: None,
        }
    }
}

/// Runs checks. Built once and shared by all worker threads behind an `Arc`: it holds the
/// ureq agents (see [`agent`]; each an `Arc` inside, built once with its TLS configuration),
/// the Keystone and OAuth2 token caches, the `[secrets]` in force (whose values it masks
/// in every check's description and trace) and the pushes PUSH targets are judged by (an
/// `Arc` the heartbeat thread fills). Every check opens its own connection and closes it,
/// and makes a full TLS handshake; nothing else is shared between checks.
#[derive(Debug)]
pub struct Checker {
    agents: agent::Agents,
    keystone: keystone::TokenCache,
    oauth2: oauth2::TokenCache,
    settings: CheckSettings,
    keyring: Keyring,
    heartbeats: Arc<Heartbeats>,
}

impl Checker {
    /// A checker that knows no `[secrets]` (see [`Checker::with_keyring`]).
    pub fn new(settings: CheckSettings) -> Checker {
        Checker {
            agents: agent::Agents::new(settings.source_address),
            keystone: keystone::TokenCache::new(),
            oauth2: oauth2::TokenCache::new(),
            settings,
            keyring: Keyring::default(),
            heartbeats: Arc::new(Heartbeats::new()),
        }
    }

    /// Masks the values of `keyring`'s `[secrets]`, as they are when each check starts.
    pub(crate) fn with_keyring(mut self, keyring: Keyring) -> Checker {
        self.keyring = keyring;
        self
    }

    /// The pushes PUSH targets are judged by: the heartbeat thread fills them, the wheel
    /// reads when to look again.
    pub fn heartbeats(&self) -> &Arc<Heartbeats> {
        &self.heartbeats
    }

    /// The daemon's look at a PUSH target: its result, or `None` when there is nothing new
    /// to write (see [`push`]).
    pub fn heartbeat(&self, target: &Target) -> Option<CheckOutcome> {
        self.heartbeats.judge(target, Instant::now())
    }

    /// Handshakes that found their certificate chain already verified.
    pub fn chains_found_verified(&self) -> u64 {
        self.agents.tls().chains.hits()
    }

    /// How many distinct Keystone credentials have a token (or a refusal) kept.
    pub fn keystone_clients(&self) -> usize {
        self.keystone.keys()
    }

    /// How many distinct OAuth2 client credentials have a token (or a refusal) kept.
    pub fn oauth2_clients(&self) -> usize {
        self.oauth2.keys()
    }

    /// Runs one check of `target` now. Never panics, never returns an error: a failed check is
    /// an outcome with [`crate::base::model::Verdict::Fail`] and a description of what failed.
    /// A PUSH target gets what its pushes say now ([`Heartbeats::verdict`]).
    pub fn check(&self, target: &Target) -> CheckOutcome {
        if target.method == Method::Push {
            return self.heartbeats.verdict(target, Instant::now());
        }
        let agent = self.agents.for_target(target);
        let vault = self.keyring.now();
        let tools = http::Tools {
            agent: &agent,
            keystone: &self.keystone,
            oauth2: &self.oauth2,
            settings: &self.settings,
            redactor: &vault.redactor,
        };
        phase::begin();
        client_cert::begin();
        let outcome = http::run(tools, target);
        phase::end();
        outcome
    }
}
