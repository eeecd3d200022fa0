//! A `host:port` address as the file writes it (`[database] Location`, `[http] Listen`,
//! `[settings] Connectivity`): `host`, `host:port`, `[v6]` or `[v6]:port`.

use std::fmt;

/// One database server of `[database] Location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when it is none of them.
pub fn parse_endpoint(entry: &str, default_port: u16) -> Option<Endpoint> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (host, port(p)?),
            None if after.is_empty() => (host, default_port),
            None => return None,
        }
    } else {
        match entry.split_once(':') {
            Some((host, p)) if !p.contains(':') => (host, port(p)?),
            // A bare IPv6 address: no port can follow it.
            Some(_) => (entry, default_port),
            None => (entry, default_port),
        }
    };
    let fine = !host.is_empty() && !host.contains(char::is_whitespace);
    fine.then(|| Endpoint {
        host: host.to_string(),
        port,
    })
}
