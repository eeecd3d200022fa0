//! Words for what a check found: reason phrases, failure descriptions from `ureq::Error`
//! naming the phase and the peer, and durations. Pure functions, called on the worker thread
//! running a check.

use std::fmt::Write as _;
use std::io;
use std::time::Duration;

use super::proxy::ProxyError;
use super::resolve::NoAddress;
use crate::base::model::Phase;

/// The canonical reason phrase of a status code (RFC 9110 and friends). HTTP/1.1 servers may
/// send an empty or odd reason, and HTTP/2 has none, so the description never trusts the wire.
pub fn reason_phrase(status: u16) -> &'static str {
    ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// `503 Service Unavailable`, or just `599` for a code without a canonical phrase.
pub fn status_text(status: u16) -> String {
    match reason_phrase(status) {
        "" => status.to_string(),
        reason => format!("{status} {reason}"),
    }
}

/// `2s`, `1.5s` or `250ms`: timeouts are whole seconds in the database, tests use less.
pub fn human(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Where a failure happened, to name it: the phase the recorder saw last, the host and port
/// being talked to, and the check's timeout.
pub struct Context<'a> {
    pub phase: Phase,
    /// `host:port`, appended to connection failures; `None` when the caller names the peer
    /// itself (Keystone errors name the endpoint).
    pub addr: Option<&'a str>,
    pub host: &'a str,
    pub timeout: Duration,
}

/// Describes a failed request: lowercase, naming what failed and where. Never includes a
/// header value, so no secret can leak through here.
pub fn failure(err: &ureq::Error, cx: &Context) -> String {
    use ureq::Error as E;
    let mut text = match err {
        E::Timeout(_) => return timeout(cx),
        E::Io(e) if e.kind() == io::ErrorKind::TimedOut => return timeout(cx),
        E::Io(e) => return io_error(e, cx),
        E::HostNotFound => return format!("unknown host {}", cx.host),
        E::ConnectionFailed => "connection failed".to_string(),
        E::Protocol(_) => "invalid HTTP response from server".to_string(),
        E::LargeResponseHeader(_, max) => {
            format!("response header too large (more than {max} bytes)")
        }
        E::TooManyRedirects => return "too many redirects (10)".to_string(),
        E::RedirectFailed => return "redirect failed: missing or invalid Location".to_string(),
        E::BodyExceedsLimit(n) => return format!("response body larger than {n} bytes"),
        E::BadUri(u) => return format!("invalid url: {u}"),
        E::Http(e) => return format!("invalid request: {e}"),
        E::Rustls(e) => format!("TLS error: {e}"),
        E::Tls(e) => format!("TLS error: {e}"),
        E::TlsRequired => "TLS error: the connection is not encrypted".to_string(),
        other => format!("request failed: {other}"),
    };
    append_addr(&mut text, cx);
    text
}

/// Whether nothing answered before the request could be sent (see
/// `CheckError::is_network`): the name did not resolve, or the connect or the TLS handshake
/// timed out or found no route. A refusal or a reset came from the host: the network works.
pub fn unanswered(err: &ureq::Error, phase: Phase) -> bool {
    let early = matches!(
        phase,
        Phase::Start | Phase::Resolving | Phase::Connecting | Phase::Handshaking
    );
    let silent = match err {
        ureq::Error::Timeout(_) | ureq::Error::HostNotFound => true,
        ureq::Error::Io(e) => {
            e.kind() == io::ErrorKind::TimedOut
                || matches!(
                    e.raw_os_error(),
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN)
                )
        }
        _ => false,
    };
    early && silent
}

fn timeout(cx: &Context) -> String {
    let t = human(cx.timeout);
    let mut text = match cx.phase {
        Phase::Start | Phase::Resolving => {
            return format!("dns lookup of {} timed out after {t}", cx.host)
        }
        Phase::Connecting => format!("connect timed out after {t}"),
        Phase::Handshaking => format!("TLS handshake timed out after {t}"),
        Phase::Sending => return format!("timed out after {t} while sending the request"),
        Phase::Waiting | Phase::Receiving => {
            return format!("timed out after {t} waiting for the response")
        }
        Phase::Body => return format!("timed out after {t} while reading the response body"),
    };
    append_addr(&mut text, cx);
    text
}

fn io_error(e: &io::Error, cx: &Context) -> String {
    use io::ErrorKind as K;
    // The proxy's and the address family's own words name what failed and where.
    if let Some(proxy) = e.get_ref().and_then(|i| i.downcast_ref::<ProxyError>()) {
        return proxy.describe(cx.timeout);
    }
    if let Some(family) = e.get_ref().and_then(|i| i.downcast_ref::<NoAddress>()) {
        return family.to_string();
    }
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        let mut text = format!("TLS error: {inner}");
        append_addr(&mut text, cx);
        return text;
    }
    if matches!(cx.phase, Phase::Start | Phase::Resolving) {
        let msg = e.to_string();
        if msg.contains("not known") || msg.contains("No address") || msg.contains("nodename") {
            return format!("unknown host {}", cx.host);
        }
        return format!("dns lookup of {} failed: {msg}", cx.host);
    }
    let mut text = match (e.kind(), cx.phase) {
        (K::ConnectionRefused, _) => "connection refused".to_string(),
        (K::HostUnreachable, _) => "host unreachable".to_string(),
        (K::NetworkUnreachable, _) => "network unreachable".to_string(),
        (K::ConnectionReset | K::UnexpectedEof | K::BrokenPipe | K::ConnectionAborted, p) => {
            match p {
                Phase::Body => "connection closed while reading the response body".to_string(),
                Phase::Handshaking => "connection closed during the TLS handshake".to_string(),
                _ => "connection closed before a response arrived".to_string(),
            }
        }
        (K::InvalidData, _) => "invalid HTTP response from server".to_string(),
        _ => format!("network error: {e}"),
    };
    append_addr(&mut text, cx);
    text
}

fn append_addr(text: &mut String, cx: &Context) {
    if let Some(addr) = cx.addr {
        let _ = write!(text, " ({addr})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(phase: Phase) -> Context<'static> {
        Context {
            phase,
            addr: Some("127.0.0.1:1"),
            host: "nosuch.invalid",
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn only_silence_before_the_request_is_a_network_error() {
        let io = |code| ureq::Error::Io(io::Error::from_raw_os_error(code));
        let timeout = || ureq::Error::Timeout(ureq::Timeout::Connect);
        assert!(unanswered(&io(libc::ENETUNREACH), Phase::Connecting));
        assert!(unanswered(&timeout(), Phase::Handshaking));
        assert!(unanswered(&ureq::Error::HostNotFound, Phase::Resolving));
        assert!(
            !unanswered(&io(libc::ECONNREFUSED), Phase::Connecting),
            "the host refused: the network reached it"
        );
        assert!(!unanswered(&io(libc::ECONNRESET), Phase::Handshaking));
        assert!(
            !unanswered(&timeout(), Phase::Waiting),
            "the server is slow"
        );
    }

    #[test]
    fn reason_phrases_are_canonical() {
        assert_eq!(reason_phrase(200), "OK");
        assert_eq!(status_text(503), "503 Service Unavailable");
        assert_eq!(status_text(599), "599");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_secs(2)), "2s");
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn errors_name_the_phase_and_the_peer() {
        let refused = ureq::Error::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            failure(&refused, &cx(Phase::Connecting)),
            "connection refused (127.0.0.1:1)"
        );
        let t = ureq::Error::Timeout(ureq::Timeout::Global);
        assert_eq!(
            failure(&t, &cx(Phase::Connecting)),
            "connect timed out after 2s (127.0.0.1:1)"
        );
        assert_eq!(
            failure(&t, &cx(Phase::Waiting)),
            "timed out after 2s waiting for the response"
        );
        assert_eq!(
            failure(&t, &cx(Phase::Body)),
            "timed out after 2s while reading the response body"
        );
        assert_eq!(
            failure(&ureq::Error::HostNotFound, &cx(Phase::Resolving)),
            "unknown host nosuch.invalid"
        );
        assert_eq!(
            failure(&ureq::Error::TooManyRedirects, &cx(Phase::Receiving)),
            "too many redirects (10)"
        );
    }
}
