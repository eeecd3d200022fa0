//! The ureq agents checks run on, built with the [`super::Checker`] (on the thread that makes
//! it) and shared by every worker thread: one that verifies certificates, one that trusts any
//! (`verify_tls = false`), and one per other way of connecting a target asks for (a CA
//! bundle, a client certificate, a proxy, an address family), built on the worker whose
//! check first needs it and kept, [`MAX_AGENTS`] at most. Each agent is an `Arc` inside, with
//! our resolver and connector and the [`TlsMemory`] they all share.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rustls::pki_types::CertificateDer;
use ureq::tls::TlsConfig;
use ureq::Agent;

use super::resolve::TimedResolver;
use super::tls::TlsMemory;
use super::transport::TimedConnector;
use crate::base::client_cert::ClientIdentity;
use crate::base::model::{IpFamily, Target};
use crate::base::proxy::ProxyUrl;

/// Agents kept for the targets off the common path. Past this many ways of connecting, the
/// oldest agent is let go (the checks using it keep it until they end) and built again when
/// a check needs it: an agent is two rustls configurations, a few tens of KiB.
pub(super) const MAX_AGENTS: usize = 256;

/// What tells agents apart: targets that agree on all of it share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    trust_any_certificate: bool,
    /// The CA bundle's content key; `None` when it does not matter (trusting any).
    ca: Option<u64>,
    /// The client identity's id (not its content: what it holds changes in place).
    identity: Option<u64>,
    proxy: Option<Arc<ProxyUrl>>,
    family: IpFamily,
}

#[derive(Debug, Default)]
struct Kept {
    agents: HashMap<Key, Agent>,
    /// Keys in the order their agents were built, the oldest first.
    order: VecDeque<Key>,
}

#[derive(Debug)]
pub(super) struct Agents {
    /// `[settings] SourceAddress`, which every agent connects from.
    source: Option<IpAddr>,
    verifying: Agent,
    trusting: Agent,
    /// The agents of targets with a CA bundle, a client certificate, a proxy or an address
    /// family.
    kept: Mutex<Kept>,
    tls: TlsMemory,
}

/// How an agent connects, besides the configuration every agent shares.
struct Parts {
    trust_any_certificate: bool,
    extra_roots: Vec<CertificateDer<'static>>,
    identity: Option<Arc<ClientIdentity>>,
    proxy: Option<Arc<ProxyUrl>>,
    family: IpFamily,
    source: Option<IpAddr>,
}

impl Parts {
    fn plain(trust_any_certificate: bool, source: Option<IpAddr>) -> Parts {
        Parts {
            trust_any_certificate,
            extra_roots: Vec::new(),
            identity: None,
            proxy: None,
            family: IpFamily::Any,
            source,
        }
    }
}

impl Agents {
    /// Agents whose connections are made from `source` (`None`: the kernel's choice).
    pub(super) fn new(source: Option<IpAddr>) -> Agents {
        let tls = TlsMemory::new();
        Agents {
            source,
            verifying: agent(Parts::plain(false, source), &tls),
            trusting: agent(Parts::plain(true, source), &tls),
            kept: Mutex::new(Kept::default()),
            tls,
        }
    }

    /// The agent a check of `target` runs on: borrowed on the common path; a target that
    /// connects its own way takes a clone (of an `Arc`).
    pub(super) fn for_target(&self, target: &Target) -> Cow<'_, Agent> {
        let plain = target.client_identity.is_none()
            && target.proxy.is_none()
            && target.ip_family == IpFamily::Any;
        match (plain, target.verify_tls, &target.ca) {
            (true, false, _) => Cow::Borrowed(&self.trusting),
            (true, true, None) => Cow::Borrowed(&self.verifying),
            _ => Cow::Owned(self.kept(target)),
        }
    }

    /// What the agents' handshakes remember.
    pub(super) fn tls(&self) -> &TlsMemory {
        &self.tls
    }

    /// The agent for `target`'s way of connecting, built the first time it is needed.
    fn kept(&self, target: &Target) -> Agent {
        let trust_any = !target.verify_tls;
        let ca = target.ca.as_ref().filter(|_| !trust_any);
        let key = Key {
            trust_any_certificate: trust_any,
            ca: ca.map(|ca| ca.key()),
            identity: target.client_identity.as_ref().map(|i| i.id()),
            proxy: target.proxy.clone(),
            family: target.ip_family,
        };
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(agent) = kept.agents.get(&key) {
            return agent.clone();
        }
        let parts = Parts {
            trust_any_certificate: trust_any,
            extra_roots: ca.map(|ca| ca.certs().to_vec()).unwrap_or_default(),
            identity: target.client_identity.clone(),
            proxy: target.proxy.clone(),
            family: target.ip_family,
            source: self.source,
        };
        let built = agent(parts, &self.tls);
        if kept.order.len() >= MAX_AGENTS {
            if let Some(oldest) = kept.order.pop_front() {
                kept.agents.remove(&oldest);
            }
        }
        kept.order.push_back(key.clone());
        kept.agents.insert(key, built.clone());
        built
    }

    /// How many agents are kept besides the two of the common path.
    #[cfg(test)]
    fn kept_count(&self) -> usize {
        self.kept.lock().unwrap().agents.len()
    }
}

/// The agent-wide part of the configuration; timeouts and redirects are set per request.
fn agent(parts: Parts, memory: &TlsMemory) -> Agent {
    let tls = TlsConfig::builder()
        .disable_verification(parts.trust_any_certificate)
        .build();
    let config = Agent::config_builder()
        .tls_config(tls)
        // Never ureq's proxy (from the environment or else): the connector goes through the
        // target's own, if any (see super::proxy).
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
        // Filters ureq's lookups before it keeps 16 addresses (the resolver filters again).
        .ip_family(match parts.family {
            IpFamily::Any => ureq::config::IpFamily::Any,
            IpFamily::V4 => ureq::config::IpFamily::Ipv4Only,
            IpFamily::V6 => ureq::config::IpFamily::Ipv6Only,
        })
        .build();
    let resolver = TimedResolver::new(parts.family, parts.proxy.is_some());
    let connector = TimedConnector::new(parts.extra_roots, parts.identity, parts.proxy, memory)
        .with_source(parts.source);
    Agent::with_parts(config, connector, resolver)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(f: impl FnOnce(&mut Target)) -> Target {
        let mut t = Target::new(1, "https://127.0.0.1/");
        f(&mut t);
        t
    }

    #[test]
    fn targets_that_connect_alike_share_an_agent_and_the_kept_ones_are_bounded() {
        let agents = Agents::new(None);
        assert!(matches!(
            agents.for_target(&target(|_| {})),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            agents.for_target(&target(|t| t.verify_tls = false)),
            Cow::Borrowed(_)
        ));
        let proxy = Arc::new(ProxyUrl::parse("http://127.0.0.1:3128").unwrap());
        let a = target(|t| t.proxy = Some(proxy.clone()));
        let same =
            target(|t| t.proxy = Some(Arc::new(ProxyUrl::parse("http://127.0.0.1:3128").unwrap())));
        let v6 = target(|t| t.ip_family = IpFamily::V6);
        assert!(matches!(agents.for_target(&a), Cow::Owned(_)));
        agents.for_target(&same);
        agents.for_target(&v6);
        assert_eq!(agents.kept_count(), 2, "one per way of connecting");
        for port in 0..MAX_AGENTS as u16 + 10 {
            let url = format!("http://127.0.0.1:{}", 1000 + port);
            let p = Arc::new(ProxyUrl::parse(&url).unwrap());
            agents.for_target(&target(|t| t.proxy = Some(p)));
        }
        assert_eq!(agents.kept_count(), MAX_AGENTS);
    }
}
