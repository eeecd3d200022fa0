//! Name resolution of a check's host, on the worker thread running it: ureq's resolver,
//! timed into the check's recorder ([`super::phase`]), with IP literals and `.invalid` names
//! answered without asking it. Reads the request's URI; writes only the recorder.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use super::phase::{self, Mark};
use crate::base::model::Phase;

/// ureq's resolver, timed; IP literals skip it, because with a timeout it spawns a thread
/// per lookup and most monitored URLs in a data centre name an address.
#[derive(Debug, Default)]
pub(super) struct TimedResolver(DefaultResolver);

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
        let t0 = Instant::now();
        let addrs = match literal(uri) {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                addrs
            }
            None => self.0.resolve(uri, config, timeout)?,
        };
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
    fn names_under_invalid_are_unknown_everywhere() {
        assert!(reserved_invalid(&uri("http://down.invalid/")));
        assert!(reserved_invalid(&uri("http://INVALID./")));
        assert!(!reserved_invalid(&uri("http://invalid.example/")));
    }
}
