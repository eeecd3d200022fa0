//! Which answer a request gets (on a handler thread; `/healthz` on the poller): the method
//! check, Basic authentication (everything but `/healthz`, and `/push/` unless `[http]
//! PushAuth`), then the path.

use base64::Engine;

use super::answer::Answer;
use super::conn::Request;
use super::Shared;
use crate::config::HttpConfig;

/// The answer to one request. Never fails: errors become 4xx/5xx answers.
pub fn answer(request: &Request, shared: &Shared) -> Answer {
    // Its own methods and authentication: the token is the secret.
    if let Some(token) = request.path.strip_prefix("/push/") {
        return super::push::answer(request, token, shared);
    }
    if request.method != "GET" && request.method != "HEAD" {
        return Answer::text(405, "only GET and HEAD are served\n")
            .with_header("Allow", "GET, HEAD");
    }
    let path = request.path.as_str();
    if path == "/healthz" {
        return super::health::answer(shared);
    }
    if !authorized(&shared.config.http, request.authorization.as_deref()) {
        return unauthorized();
    }
    let id = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|s| s.parse::<i64>().ok())
    };
    match path {
        "/" | "/index.html" => super::page::front(shared),
        "/metrics" => super::metrics::answer(shared),
        "/api/v1/targets" => super::api::targets(shared, &request.query),
        "/api/v1/incidents" => super::api::incidents(shared, &request.query),
        _ => {
            if let Some(id) = id("/api/v1/targets/") {
                super::api::target(shared, id)
            } else if let Some(id) = id("/target/") {
                super::page::target(shared, id)
            } else {
                Answer::text(404, "not found\n")
            }
        }
    }
}

/// The answer to a request that needs Basic authentication and lacks it.
pub fn unauthorized() -> Answer {
    Answer::text(401, "authentication required\n").with_header(
        "WWW-Authenticate",
        "Basic realm=\"skypunch\", charset=\"UTF-8\"",
    )
}

/// Whether the request may be answered: no user configured, or the right `Basic` pair.
pub fn authorized(config: &HttpConfig, header: Option<&str>) -> bool {
    if config.user.is_empty() {
        return true;
    }
    let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", config.user, config.password);
    same(&decoded, expected.as_bytes())
}

/// Compares without stopping at the first difference, so that the time taken does not tell
/// how much of a guessed password was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authentication() {
        let mut c = crate::config::Config::default().http;
        assert!(authorized(&c, None), "no user: open");
        c.user = "mon".into();
        c.password = "pa:ss".into();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(authorized(&c, Some(&format!("Basic {}", b64("mon:pa:ss")))));
        assert!(!authorized(
            &c,
            Some(&format!("Basic {}", b64("mon:pa:sx")))
        ));
        assert!(!authorized(&c, Some(&format!("Basic {}", b64("mon:pa")))));
        assert!(!authorized(&c, Some("Bearer x")));
        assert!(!authorized(&c, None));
    }
}
