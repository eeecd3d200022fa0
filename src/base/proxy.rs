//! The HTTP proxies checks go through: a target's `proxy_url`, or `[settings] Proxy` for the
//! targets whose hosts `[settings] NoProxy` does not name (decided by the target's host when
//! the row is validated). Parsed once, by the config reader and the loader (a row's config
//! error); read by the workers' connector. Pure; no I/O.
//!
//! Only `http://` proxies: the connection to the proxy itself is plain TCP, as with most
//! corporate proxies; an https target is reached through it by CONNECT, an http one by
//! sending the request in absolute form. The user info of a proxy URL is a secret: it is
//! kept only as the `Proxy-Authorization` value it becomes, and every output shows the proxy
//! as `http://***@host:port`.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;

use crate::base::authn::Secret;
use crate::base::text;
use crate::base::urls::MASK;

/// An `http://[user:password@]host:port` proxy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    /// A name or an address (an IPv6 address without brackets).
    host: String,
    port: u16,
    /// `Basic base64(user:password)`, when the URL has user info.
    authorization: Option<Secret>,
    /// `http://***@host:port` or `http://host:port`.
    shown: String,
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({})", self.shown)
    }
}

impl ProxyUrl {
    /// Parses `text` (surrounding white space ignored); the error shows the URL without its
    /// user info, and says what a proxy URL must look like.
    pub fn parse(text: &str) -> Result<ProxyUrl, String> {
        let raw = text.trim();
        let quoted = || text::clip_marked(&crate::base::urls::shown(raw), 60);
        let bad = |why: &str| {
            format!(
                "proxy `{}` {why}: write http://host:port or http://user:password@host:port",
                quoted()
            )
        };
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains white space"));
        }
        let url = url::Url::parse(raw).map_err(|_| bad("is not a URL"))?;
        if url.scheme() != "http" {
            return Err(bad("is not an http:// proxy"));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("has a path or a query"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad("names no host")),
        };
        let port = url.port().ok_or_else(|| bad("names no port"))?;
        let authorization = (!url.username().is_empty() || url.password().is_some()).then(|| {
            let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
            let mut pair = decode(url.username());
            pair.push(b':');
            pair.extend(decode(url.password().unwrap_or("")));
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            Secret::new(format!("Basic {encoded}"))
        });
        let authority = authority(&host, port);
        let shown = match authorization {
            Some(_) => format!("http://{MASK}@{authority}"),
            None => format!("http://{authority}"),
        };
        Ok(ProxyUrl {
            host,
            port,
            authorization,
            shown,
        })
    }

    /// The host name or address, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`, an IPv6 address in brackets.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }

    /// The `Proxy-Authorization` header's value, when the URL has user info.
    pub fn authorization(&self) -> Option<&Secret> {
        self.authorization.as_ref()
    }

    /// What every output shows: `http://***@host:port` or `http://host:port`.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

/// `host:port`, an IPv6 address in brackets.
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `[settings] NoProxy`: the hosts checks reach directly although `[settings] Proxy` is set,
/// as curl's and most tools' `NO_PROXY`: comma- or space-separated `*` (every host), names
/// (`example.com` or `.example.com`: the name and every name under it), addresses
/// (`127.0.0.1`, `::1`) and networks (`10.0.0.0/8`, `fd00::/8`). Names are compared without
/// case and without a final dot; a name never matches an address (`localhost` is not
/// `127.0.0.1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    every: bool,
    /// Lowercase, without a leading or final dot.
    names: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    /// Parses the list; the error names the entry that is neither a name, an address nor a
    /// network.
    pub fn parse(text: &str) -> Result<NoProxy, String> {
        let mut list = NoProxy::default();
        let entries = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty());
        for entry in entries {
            let bad = || {
                format!(
                    "`{}` is not a host name, an address or a network (10.0.0.0/8)",
                    text::clip_marked(entry, 60)
                )
            };
            if entry == "*" {
                list.every = true;
            } else if let Some((ip, bits)) = entry.split_once('/') {
                let ip: IpAddr = ip.trim_matches(['[', ']']).parse().map_err(|_| bad())?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits = bits
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(bad)?;
                list.networks.push((ip, bits));
            } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                list.networks
                    .push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else {
                let name = entry.trim_matches('.').to_ascii_lowercase();
                let ok = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
                if !ok {
                    return Err(bad());
                }
                list.names.push(name);
            }
        }
        Ok(list)
    }

    /// Whether the list is empty: no host bypasses the proxy.
    pub fn is_empty(&self) -> bool {
        !self.every && self.names.is_empty() && self.networks.is_empty()
    }

    /// Whether `host` (a name, or an address with or without brackets) is reached directly.
    pub fn matches(&self, host: &str) -> bool {
        if self.every {
            return true;
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self
                .networks
                .iter()
                .any(|(net, bits)| within(ip, *net, *bits));
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|n| {
            name == *n
                || (name.len() > n.len()
                    && name.ends_with(n.as_str())
                    && name.as_bytes()[name.len() - n.len() - 1] == b'.')
        })
    }
}

/// Whether `ip` is in the network `net/bits` (an address of the other family never is).
fn within(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    fn prefix(a: &[u8], b: &[u8], bits: u8) -> bool {
        let (whole, rest) = ((bits / 8) as usize, bits % 8);
        if a[..whole] != b[..whole] {
            return false;
        }
        rest == 0 || {
            let mask = 0xffu8 << (8 - rest);
            a[whole] & mask == b[whole] & mask
        }
    }
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => prefix(&a.octets(), &b.octets(), bits),
        (IpAddr::V6(a), IpAddr::V6(b)) => prefix(&a.octets(), &b.octets(), bits),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_url_keeps_its_credentials_only_as_the_header_it_sends() {
        let p = ProxyUrl::parse(" http://ops:s%40cret@proxy.example:3128/ ").unwrap();
        assert_eq!(p.host(), "proxy.example");
        assert_eq!(p.port(), 3128);
        assert_eq!(p.shown(), "http://***@proxy.example:3128");
        // base64("ops:s@cret")
        assert_eq!(
            p.authorization().map(Secret::expose),
            Some("Basic b3BzOnNAY3JldA==")
        );
        assert!(!format!("{p:?}").contains("cret"));
        let plain = ProxyUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!(plain.host(), "::1");
        assert_eq!(plain.authority(), "[::1]:8080");
        assert_eq!(plain.shown(), "http://[::1]:8080");
        assert!(plain.authorization().is_none());
    }

    #[test]
    fn a_proxy_url_that_is_not_one_says_what_to_write_and_shows_no_password() {
        for (text, why) in [
            ("https://proxy:3128", "is not an http:// proxy"),
            ("socks5://proxy:1080", "is not an http:// proxy"),
            ("http://proxy", "names no port"),
            ("http://proxy:3128/path", "has a path or a query"),
            ("proxy:3128", "is not an http:// proxy"),
            ("http://a b:1", "contains white space"),
            ("", "is not a URL"),
            ("http://user:hunter2@proxy", "names no port"),
        ] {
            let err = ProxyUrl::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.ends_with("http://user:password@host:port"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn no_proxy_names_hosts_domains_addresses_and_networks() {
        let list =
            NoProxy::parse("localhost, .internal.example  10.0.0.0/8,192.168.1.7 ::1 fd00::/8")
                .unwrap();
        for direct in [
            "localhost",
            "LOCALHOST.",
            "internal.example",
            "api.internal.example",
            "10.1.2.3",
            "192.168.1.7",
            "[::1]",
            "fd12::1",
        ] {
            assert!(list.matches(direct), "{direct}");
        }
        for proxied in [
            "127.0.0.1",
            "example.com",
            "notinternal.example",
            "11.0.0.1",
            "192.168.1.8",
            "::2",
        ] {
            assert!(!list.matches(proxied), "{proxied}");
        }
        assert!(NoProxy::parse("*").unwrap().matches("anything"));
        assert!(NoProxy::parse(" , ").unwrap().is_empty());
        let err = NoProxy::parse("ok.example, 10.0.0.0/33").unwrap_err();
        assert!(err.starts_with("`10.0.0.0/33` is not"), "{err}");
        assert!(NoProxy::parse("bad/host").is_err());
        assert!(NoProxy::parse("user@host").is_err());
    }
}
