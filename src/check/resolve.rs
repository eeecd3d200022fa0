//! Name resolution of a check's host, on the worker thread running it: ureq's resolver,
//! timed into the check's recorder ([`super::phase`]), with IP literals and `.invalid` names
//! answered without asking it, only the addresses of the target's `ip_family` kept, and no
//! lookup at all when a proxy resolves the name. Reads the request's URI; writes only the
//! recorder.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use super::phase::{self, Mark};
use crate::base::model::{IpFamily, Phase};

/// ureq's resolver, timed; IP literals skip it, because with a timeout it spawns a thread
/// per lookup and most monitored URLs in a data centre name an address.
#[derive(Debug, Default)]
pub(super) struct TimedResolver {
    inner: DefaultResolver,
    /// The addresses kept (ureq's resolver filters by the agent's `ip_family` as well, before
    /// it keeps the first 16).
    family: IpFamily,
    /// The agent goes through a proxy, which resolves the name itself: nothing is looked up
    /// here unless a family is asked for (then the proxy is given an address of it).
    proxied: bool,
}

impl TimedResolver {
    pub(super) fn new(family: IpFamily, proxied: bool) -> TimedResolver {
        TimedResolver {
            inner: DefaultResolver::default(),
            family,
            proxied,
        }
    }

    /// The error of a host with no address of the target's family.
    fn no_address(&self, uri: &Uri) -> ureq::Error {
        let host = uri.host().unwrap_or_default().to_string();
        let family = self.family;
        ureq::Error::Io(io::Error::new(
            io::ErrorKind::NotFound,
            NoAddress { host, family },
        ))
    }
}

/// A host has addresses, but none of the family `ip_family` asks for.
#[derive(Debug)]
pub(super) struct NoAddress {
    host: String,
    family: IpFamily,
}

impl fmt::Display for NoAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, column) = match self.family {
            IpFamily::V6 => ("IPv6", "6"),
            _ => ("IPv4", "4"),
        };
        write!(
            f,
            "no {name} address for {} (ip_family {column})",
            self.host
        )
    }
}

impl std::error::Error for NoAddress {}

impl Resolver for TimedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        phase::record(Phase::Resolving, None);
        if reserved_invalid(uri) {
            return Err(ureq::Error::HostNotFound);
        }
        if self.proxied && self.family == IpFamily::Any {
            return Ok(self.empty());
        }
        let t0 = Instant::now();
        let mut addrs = match literal(uri) {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                addrs
            }
            None => match self.inner.resolve(uri, config, timeout) {
                // ureq's resolver found addresses, none of the family.
                Err(ureq::Error::HostNotFound) if self.family != IpFamily::Any => {
                    return Err(self.no_address(uri))
                }
                other => other?,
            },
        };
        if self.family != IpFamily::Any {
            let family = self.family;
            let kept: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| family.admits(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(self.no_address(uri));
            }
            addrs = self.empty();
            kept.into_iter().for_each(|a| addrs.push(a));
        }
        let first = addrs.first().map(SocketAddr::ip);
        if let Some(first) = first {
            let at = Instant::now();
            let took = at - t0;
            let count = addrs.len();
            phase::record(
                Phase::Connecting,
                Some(Mark::Resolved {
                    at,
                    took,
                    first,
                    count,
                }),
            );
        }
        Ok(addrs)
    }
}

/// Names under `.invalid` never exist (RFC 6761, section 6.4): answered here as an unknown
/// host, the same on every machine, without asking a resolver that may be slow or absent.
fn reserved_invalid(uri: &Uri) -> bool {
    uri.host().is_some_and(|h| {
        let h = h.trim_end_matches('.').to_ascii_lowercase();
        h == "invalid" || h.ends_with(".invalid")
    })
}

/// The address an IP-literal URI names (its port, or the scheme's), without a lookup.
fn literal(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let https = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"));
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_in_the_url_is_used_as_written() {
        assert_eq!(
            literal(&uri("http://127.0.0.1/health")),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            literal(&uri("HTTPS://[::1]:8443/")),
            Some("[::1]:8443".parse().unwrap())
        );
        assert_eq!(literal(&uri("http://localhost/")), None);
    }

    #[test]
    fn only_addresses_of_the_family_asked_for_are_kept() {
        let config = ureq::config::Config::default();
        let timeout = NextTimeout::default();
        let v4 = TimedResolver::new(IpFamily::V4, false);
        let err = v4
            .resolve(&uri("http://[::1]:8080/"), &config, timeout)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "io: no IPv4 address for [::1] (ip_family 4)"
        );
        let v6 = TimedResolver::new(IpFamily::V6, false);
        let addrs = v6
            .resolve(&uri("http://[::1]:8080/"), &config, timeout)
            .unwrap();
        assert_eq!(addrs[..], ["[::1]:8080".parse().unwrap()]);
        let proxied = TimedResolver::new(IpFamily::Any, true);
        let none = proxied
            .resolve(&uri("http://name.example/"), &config, timeout)
            .unwrap();
        assert!(none.is_empty(), "the proxy resolves the name");
    }

    #[test]
    fn names_under_invalid_are_unknown_everywhere() {
        assert!(reserved_invalid(&uri("http://down.invalid/")));
        assert!(reserved_invalid(&uri("http://INVALID./")));
        assert!(!reserved_invalid(&uri("http://invalid.example/")));
    }
}
