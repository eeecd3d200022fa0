//! A target's definition as the checks use it: the validated row, its method and the
//! address family it connects to.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::TargetId;
use crate::base::authn::{Auth, Secret};
use crate::base::conditions::Conditions;
use crate::base::headers::RequestHeaders;
use crate::base::urls::WebUrl;

/// HTTP methods a target may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
    Head,
    Patch,
    Options,
    /// Not a request: a heartbeat target, passing while `/push/TOKEN` is called (see
    /// `check::push`).
    Push,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Head,
        Method::Patch,
        Method::Options,
        Method::Push,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Push => "PUSH",
        }
    }

    /// Parses a `targets.method` value; surrounding spaces and case are forgiven.
    pub fn parse(s: &str) -> Option<Method> {
        let s = s.trim();
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated target definition: everything a worker needs to run one check. Built by the
/// loader from a row; shared read-only as `Arc<Target>` by the wheel and the workers, and
/// replaced (never changed in place) when the row is edited. It holds no result state: that
/// belongs to the writer alone ([`TargetState`](super::TargetState)).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub id: TargetId,
    pub name: String,
    pub url: WebUrl,
    pub method: Method,
    pub auth: Auth,
    pub pass_result: u16,
    pub frequency: Duration,
    pub timeout: Duration,
    /// The body as sent, its `${secret:NAME}` references expanded: never shown.
    pub request_body: Option<Secret>,
    pub content_type: Option<String>,
    pub expect_body: Option<String>,
    pub max_response_ms: Option<u64>,
    pub follow_redirects: bool,
    pub verify_tls: bool,
    pub fail_threshold: u64,
    /// Passes in a row before a SUCCESS alert (flap control); 1: the first pass.
    pub success_threshold: u64,
    /// A REMINDER alert this often while the target stays failed.
    pub realert: Option<Duration>,
    /// CA certificates trusted besides the public roots.
    pub ca: Option<Arc<crate::base::ca::CaBundle>>,
    /// A CERTIFICATE alert once the certificate expires within this many days; 0: never.
    pub cert_warn_days: u32,
    /// The client certificate presented when a server asks for one (`client_cert`).
    pub client_identity: Option<Arc<crate::base::client_cert::ClientIdentity>>,
    /// The proxy the checks go through (`proxy_url`, or `[settings] Proxy`).
    pub proxy: Option<Arc<crate::base::proxy::ProxyUrl>>,
    /// The addresses a check connects to (`ip_family`).
    pub ip_family: IpFamily,
    /// The target this one depends on (`depends_on`): while that one is in FAIL, this one's
    /// FAILURE alert is held.
    pub depends_on: Option<TargetId>,
    /// What the answer must show besides (or, naming `[STATUS]`, instead of) `pass_result`.
    pub conditions: Option<Arc<Conditions>>,
    /// Sent with every request of the check (not with a token request), references expanded.
    pub request_headers: RequestHeaders,
}

impl Target {
    /// The target a new row gets when only its id and URL are given: GET, no authentication,
    /// expect 200, every 60 s, a 10 s timeout (the schema's defaults), state NEW. For URLs
    /// known to be valid (tests, benchmarks); rows go through `target::from_row`.
    pub fn new(id: TargetId, url: &str) -> Target {
        Target {
            id,
            name: String::new(),
            url: WebUrl::parse(url).expect("a valid http(s) URL"),
            method: Method::Get,
            auth: Auth::None,
            pass_result: 200,
            frequency: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            request_body: None,
            content_type: None,
            expect_body: None,
            max_response_ms: None,
            follow_redirects: false,
            verify_tls: true,
            fail_threshold: 1,
            success_threshold: 1,
            realert: None,
            ca: None,
            cert_warn_days: 14,
            client_identity: None,
            proxy: None,
            ip_family: IpFamily::Any,
            depends_on: None,
            conditions: None,
            request_headers: RequestHeaders::default(),
        }
    }
}

/// Which addresses of a target's host a check connects to (`ip_family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpFamily {
    /// Every address, in the resolver's order.
    #[default]
    Any,
    /// IPv4 addresses only.
    V4,
    /// IPv6 addresses only.
    V6,
}

impl IpFamily {
    /// `any` (any case; empty as well), `4` or `6`, around white space.
    pub fn parse(s: &str) -> Option<IpFamily> {
        match s.trim().to_ascii_lowercase().as_str() {
            "any" | "" => Some(IpFamily::Any),
            "4" => Some(IpFamily::V4),
            "6" => Some(IpFamily::V6),
            _ => None,
        }
    }

    /// Whether `ip` is of this family.
    pub fn admits(self, ip: std::net::IpAddr) -> bool {
        match self {
            IpFamily::Any => true,
            IpFamily::V4 => ip.is_ipv4(),
            IpFamily::V6 => ip.is_ipv6(),
        }
    }
}
