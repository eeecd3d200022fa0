//! A check's way through an HTTP proxy (`proxy_url`, `[settings] Proxy`), on the worker
//! thread running it: the proxy's address (looked up when it is a name), the TCP connection
//! to it (registered for the stop like any check's socket), then for an https target a
//! tunnel (`CONNECT host:port`), and for an http one the request sent in absolute form
//! (`GET http://host:port/path`), as curl, Go and browsers do: proxies in their default
//! configuration (squid's) refuse CONNECT to ports other than 443. Both carry
//! `Proxy-Authorization` when the proxy URL has credentials. Every step is bounded by what is
//! left of the check's timeout and writes its trace line; the proxy's credentials never reach
//! one. In the check's phases (`last_phases`) the proxy's lookup counts as `dns` and the
//! connection to the proxy, with its CONNECT tunnel, as `connect`.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ureq::unversioned::resolver::{DefaultResolver, Resolver};
use ureq::unversioned::transport::{ConnectionDetails, Transport};

use super::buffers::PooledBuffers;
use super::connect::{self, TcpTransport};
use super::describe;
use super::phase;
use super::sockets;
use crate::base::model::Phase;
use crate::base::phases::Step;
use crate::base::proxy::{self as urls, ProxyUrl};

/// Longest answer head a proxy may send to CONNECT.
const MAX_ANSWER_HEAD: usize = 8 * 1024;

/// Why a check did not get through its proxy. `Display` says it without the timeout's
/// length; [`ProxyError::describe`] with it, for the check's description.
#[derive(Debug)]
pub(super) enum ProxyError {
    /// The proxy's name was not found.
    Lookup { proxy: String, why: String },
    /// No TCP connection to the proxy.
    Unreachable { proxy: String, why: String },
    /// The proxy answered with a status that is not 2xx (`what`: `CONNECT to host:port`, or
    /// `the request to http://host:port`).
    Refused { what: String, status: u16 },
    /// The proxy's answer to CONNECT was not one.
    BadAnswer { what: String, why: &'static str },
    /// The proxy closed the connection before it answered CONNECT.
    Closed { what: String },
    /// A step (`what`: `connect to proxy ...`) did not end within the check's timeout.
    TimedOut { what: String },
}

impl ProxyError {
    /// The check's description of it, naming the timeout when it ran out.
    pub(super) fn describe(&self, timeout: Duration) -> String {
        match self {
            ProxyError::TimedOut { what } => {
                format!("{what} timed out after {}", describe::human(timeout))
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Lookup { proxy, why } => {
                write!(f, "cannot look up proxy {proxy}: {why}")
            }
            ProxyError::Unreachable { proxy, why } => {
                write!(f, "cannot connect to proxy {proxy}: {why}")
            }
            ProxyError::Refused { what, status } => write!(
                f,
                "proxy refused {what}: {}",
                describe::status_text(*status)
            ),
            ProxyError::BadAnswer { what, why } => {
                write!(f, "proxy answered {what} with {why}")
            }
            ProxyError::Closed { what } => {
                write!(f, "proxy closed the connection before answering {what}")
            }
            ProxyError::TimedOut { what } => write!(f, "{what} timed out"),
        }
    }
}

impl std::error::Error for ProxyError {}

fn failed(e: ProxyError) -> ureq::Error {
    ureq::Error::Io(io::Error::other(e))
}

/// Connects to the target through `proxy`: the transport (the tunnel for https, the proxy
/// connection set to send the request in absolute form for http), and when it was ready.
/// Kept out of line: the connector's common path has no proxy.
#[cold]
#[inline(never)]
pub(super) fn connect(
    proxy: &ProxyUrl,
    details: &ConnectionDetails,
    buffers: PooledBuffers,
    source: Option<std::net::IpAddr>,
) -> Result<(TcpTransport, Instant), ureq::Error> {
    let addrs = lookup(proxy, details)?;
    let t0 = Instant::now();
    let (tracked, peer) = connect::connect_to(&addrs, details, source).map_err(|e| match e {
        _ if sockets::this_check_cut() => e,
        ureq::Error::Timeout(_) => failed(ProxyError::TimedOut {
            what: format!("connect to proxy {}", proxy.shown()),
        }),
        other => failed(ProxyError::Unreachable {
            proxy: proxy.shown().to_string(),
            why: connect_failure(&other),
        }),
    })?;
    let at = Instant::now();
    let took = Some((Step::Connect, at - t0));
    phase::note(at, took, format!("connected to proxy {peer}"));
    let mut tcp = TcpTransport::new(tracked, buffers);
    let target = target_authority(details);
    if !details.needs_tls() {
        tcp.set_absolute_form(AbsoluteForm {
            prefix: format!("http://{target}"),
            authorization: proxy.authorization().map(|a| a.expose().to_string()),
        });
        return Ok((tcp, at));
    }
    let status = tunnel(&mut tcp, &target, proxy, details)?;
    let done = Instant::now();
    // The tunnel is the connection to the target: its time counts in `connect` too.
    let took = Some((Step::Connect, done - at));
    phase::note(done, took, format!("CONNECT {target}: {status}"));
    Ok((tcp, done))
}

/// The proxy's addresses: its address as written, or the name looked up (within what is left
/// of the check's timeout).
fn lookup(proxy: &ProxyUrl, details: &ConnectionDetails) -> Result<Vec<SocketAddr>, ureq::Error> {
    phase::record(Phase::Resolving, None);
    let t0 = Instant::now();
    if let Ok(ip) = proxy.host().parse::<IpAddr>() {
        phase::note(t0, None, format!("proxy {}", proxy.shown()));
        phase::record(Phase::Connecting, None);
        return Ok(vec![SocketAddr::new(ip, proxy.port())]);
    }
    // ureq's own configuration: not the agent's, whose ip_family is the target's.
    static ANY_FAMILY: OnceLock<ureq::config::Config> = OnceLock::new();
    let config = ANY_FAMILY.get_or_init(ureq::config::Config::default);
    let uri: ureq::http::Uri = format!("http://{}", proxy.authority())
        .parse()
        .map_err(|_| ureq::Error::BadUri(proxy.shown().to_string()))?;
    let found = DefaultResolver::default()
        .resolve(&uri, config, connect::remaining(details))
        .map_err(|e| match e {
            ureq::Error::Timeout(_) => failed(ProxyError::TimedOut {
                what: format!("lookup of proxy {}", proxy.shown()),
            }),
            ureq::Error::HostNotFound => failed(ProxyError::Lookup {
                proxy: proxy.shown().to_string(),
                why: "unknown host".to_string(),
            }),
            other => failed(ProxyError::Lookup {
                proxy: proxy.shown().to_string(),
                why: other.to_string(),
            }),
        })?;
    let at = Instant::now();
    let first = found.first().map(SocketAddr::ip);
    if let Some(first) = first {
        let text = format!("proxy {} resolved to {first}", proxy.shown());
        phase::note(at, Some((Step::Dns, at - t0)), text);
    }
    phase::record(Phase::Connecting, None);
    Ok(found.to_vec())
}

/// Words for a failed connection to the proxy.
fn connect_failure(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(e) => match e.kind() {
            io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            io::ErrorKind::HostUnreachable => "host unreachable".to_string(),
            io::ErrorKind::NetworkUnreachable => "network unreachable".to_string(),
            _ => e.to_string(),
        },
        other => other.to_string(),
    }
}

/// `host:port` the proxy is asked for: the address the resolver kept when the target asks
/// for an address family (the proxy then reaches the target over it), else the URL's host.
fn target_authority(details: &ConnectionDetails) -> String {
    if let Some(addr) = details.addrs.first() {
        return addr.to_string();
    }
    let uri = details.uri;
    let host = uri.host().unwrap_or_default();
    let https = details.needs_tls();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    urls::authority(host, port)
}

/// Asks the proxy for a tunnel to `target`; its status (2xx) once it is open.
fn tunnel(
    tcp: &mut TcpTransport,
    target: &str,
    proxy: &ProxyUrl,
    details: &ConnectionDetails,
) -> Result<u16, ureq::Error> {
    let what = format!("CONNECT to {target}");
    let timed_out = || {
        failed(ProxyError::TimedOut {
            what: format!("CONNECT to {target} through proxy {}", proxy.shown()),
        })
    };
    let cut_or = |e: ureq::Error, other: &dyn Fn(ureq::Error) -> ureq::Error| match e {
        _ if sockets::this_check_cut() => e,
        ureq::Error::Timeout(_) => timed_out(),
        e => other(e),
    };
    let mut request = format!(
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: {}\r\n",
        crate::base::version::USER_AGENT
    );
    if let Some(auth) = proxy.authorization() {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth.expose());
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let out = tcp.buffers().output();
    let n = request.len().min(out.len());
    out[..n].copy_from_slice(&request.as_bytes()[..n]);
    let unreachable = |e: ureq::Error| {
        failed(ProxyError::Unreachable {
            proxy: proxy.shown().to_string(),
            why: connect_failure(&e),
        })
    };
    tcp.transmit_output(n, connect::remaining(details))
        .map_err(|e| cut_or(e, &unreachable))?;
    let bad = |why| {
        failed(ProxyError::BadAnswer {
            what: what.clone(),
            why,
        })
    };
    let head = loop {
        if let Some(end) = find_head_end(tcp.buffers().input()) {
            break end;
        }
        if tcp.buffers().input().len() >= MAX_ANSWER_HEAD {
            return Err(bad("an answer head longer than 8 KiB"));
        }
        let closed = || failed(ProxyError::Closed { what: what.clone() });
        let more = tcp
            .await_input(connect::remaining(details))
            .map_err(|e| cut_or(e, &|_| closed()))?;
        if !more {
            return Err(closed());
        }
    };
    let status =
        status_code(&tcp.buffers().input()[..head]).ok_or_else(|| bad("no HTTP status line"))?;
    let rest = tcp.buffers().input().len() - head;
    tcp.buffers().input_consume(head);
    if !(200..300).contains(&status) {
        return Err(failed(ProxyError::Refused { what, status }));
    }
    // The server speaks after the ClientHello: anything here came from the proxy.
    if rest > 0 {
        return Err(bad("data after its answer, before the tunnel was used"));
    }
    Ok(status)
}

/// Where an answer head ends (after its blank line), if it has.
fn find_head_end(input: &[u8]) -> Option<usize> {
    input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The status of an `HTTP/1.x NNN ...` status line at the start of `head`.
fn status_code(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    let ends = rest.get(5).is_none_or(|b| matches!(b, b' ' | b'\r'));
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) || !ends {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// An http request through a proxy: the request line ureq writes (`GET /path HTTP/1.1`)
/// goes out as `GET http://host:port/path HTTP/1.1`, followed by `Proxy-Authorization` when
/// the proxy URL has credentials; a 407 answer is the proxy's refusal, not the target's.
pub(super) struct AbsoluteForm {
    /// `http://host:port`.
    prefix: String,
    /// The `Proxy-Authorization` value.
    authorization: Option<String>,
}

impl AbsoluteForm {
    /// The first write of the request, its request line in absolute form. Written as it is
    /// if it does not start with a request line in origin form (ureq always writes one).
    pub(super) fn rewrite(&self, first: &[u8]) -> Vec<u8> {
        let space = first.iter().position(|&b| b == b' ');
        let line_end = first.windows(2).position(|w| w == b"\r\n");
        let (Some(space), Some(line_end)) = (space, line_end) else {
            return first.to_vec();
        };
        if first.get(space + 1) != Some(&b'/') || line_end < space {
            return first.to_vec();
        }
        let mut out = Vec::with_capacity(first.len() + self.prefix.len() + 64);
        out.extend_from_slice(&first[..=space]);
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(&first[space + 1..line_end + 2]);
        if let Some(auth) = &self.authorization {
            out.extend_from_slice(b"Proxy-Authorization: ");
            out.extend_from_slice(auth.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&first[line_end + 2..]);
        out
    }

    /// The proxy's refusal, when the answer's first bytes are a 407.
    pub(super) fn refusal(&self, answer: &[u8]) -> Option<ProxyError> {
        (status_code(answer) == Some(407)).then(|| ProxyError::Refused {
            what: format!("the request to {}", self.prefix),
            status: 407,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_request_goes_to_the_proxy_in_absolute_form_with_its_credentials() {
        let form = AbsoluteForm {
            prefix: "http://127.0.0.1:8080".into(),
            authorization: Some("Basic dTpw".into()),
        };
        let sent = form.rewrite(b"GET /health?x=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n");
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            "GET http://127.0.0.1:8080/health?x=1 HTTP/1.1\r\nProxy-Authorization: Basic dTpw\r\n\
             host: 127.0.0.1:8080\r\n\r\n"
        );
        let plain = AbsoluteForm {
            prefix: "http://h:80".into(),
            authorization: None,
        };
        assert_eq!(
            plain.rewrite(b"POST / HTTP/1.1\r\n\r\nbody"),
            b"POST http://h:80/ HTTP/1.1\r\n\r\nbody"
        );
        assert_eq!(plain.rewrite(b"garbage"), b"garbage");
        let refused = plain.refusal(b"HTTP/1.0 407 Proxy Authentication Required\r\n");
        assert_eq!(
            refused.unwrap().to_string(),
            "proxy refused the request to http://h:80: 407 Proxy Authentication Required"
        );
        assert!(plain.refusal(b"HTTP/1.1 200 OK\r\n").is_none());
    }

    #[test]
    fn a_proxy_answer_is_read_by_its_status_line() {
        assert_eq!(
            status_code(b"HTTP/1.0 200 Connection established\r\n\r\n"),
            Some(200)
        );
        assert_eq!(status_code(b"HTTP/1.1 407 x"), Some(407));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(b"HTTP/1.1 2000"), None);
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n\r\nrest"), Some(19));
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n"), None);
        let e = ProxyError::TimedOut {
            what: "CONNECT to a:443 through proxy http://p:3128".into(),
        };
        assert_eq!(
            e.describe(Duration::from_secs(2)),
            "CONNECT to a:443 through proxy http://p:3128 timed out after 2s"
        );
    }
}
