//! The Keystone protocol, on the worker thread whose check needs a token: the token request
//! (v2 or v3 password authentication), its URL and body, and reading the token out of the
//! answer.

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Value};
use ureq::http::Request;

use super::{KeystoneError, Token};
use crate::base::authn::{IdentityVersion, KeystoneParams, Secret};
use crate::check::{describe, token_request};

/// Keystone bodies are small (v3 is asked for `nocatalog`); this bounds a wrong endpoint.
const MAX_ANSWER_BYTES: u64 = 1 << 20;

/// The URL the token request goes to, in its display form (user info and secret parameters
/// of the endpoint masked, see [`crate::base::urls`]): what a trace, a log line or a message shows.
/// The request itself goes to [`request_url`].
pub fn token_url(params: &KeystoneParams) -> String {
    with_token_path(params.endpoint.shown(), params.version)
}

/// The URL to POST to, as the endpoint was written: for the request only, never shown.
fn request_url(params: &KeystoneParams) -> String {
    with_token_path(params.endpoint.as_str(), params.version)
}

/// v2 `<endpoint>/tokens`, v3 `<endpoint>/auth/tokens?nocatalog` (the catalog can be hundreds
/// of kilobytes and a check does not need it). An endpoint without `/v3` gets it added, since
/// Keystone's root URL serves no tokens.
fn with_token_path(endpoint: &str, version: IdentityVersion) -> String {
    let base = endpoint.trim_end_matches('/');
    match version {
        IdentityVersion::V2 if base.ends_with("/tokens") => base.to_string(),
        IdentityVersion::V2 => format!("{base}/tokens"),
        IdentityVersion::V3 if base.ends_with("/auth/tokens") => format!("{base}?nocatalog"),
        IdentityVersion::V3 if base.ends_with("/v3") => format!("{base}/auth/tokens?nocatalog"),
        IdentityVersion::V3 => format!("{base}/v3/auth/tokens?nocatalog"),
    }
}

/// The JSON password-authentication request, as the Keystone API reference gives it.
pub fn request_body(params: &KeystoneParams) -> String {
    let password = params.password.expose();
    let body = match params.version {
        IdentityVersion::V2 => {
            let mut auth = json!({
                "passwordCredentials": {"username": params.user, "password": password}
            });
            match (&params.project_id, &params.project_name) {
                (Some(id), _) => auth["tenantId"] = json!(id),
                (None, Some(name)) => auth["tenantName"] = json!(name),
                (None, None) => {}
            }
            json!({ "auth": auth })
        }
        IdentityVersion::V3 => {
            let project = match (&params.project_id, &params.project_name) {
                (Some(id), _) => json!({"id": id}),
                (None, name) => json!({"name": name, "domain": {"name": params.project_domain}}),
            };
            json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": params.user,
                    "domain": {"name": params.user_domain},
                    "password": password,
                }}},
                "scope": {"project": project},
            }})
        }
    };
    body.to_string()
}

/// The token and its remaining lifetime from a 2xx answer: v2 in the body
/// (`access.token.id`, `access.token.expires`), v3 in `X-Subject-Token` with
/// `token.expires_at` in the body. `None` when there is no usable token.
pub fn parse_answer(
    version: IdentityVersion,
    subject_token: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    default_lifetime: Duration,
) -> Option<(Secret, Duration, String)> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let (value, expires) = match version {
        IdentityVersion::V2 => {
            let token = &json["access"]["token"];
            (token["id"].as_str()?, token["expires"].as_str())
        }
        IdentityVersion::V3 => (subject_token?, json["token"]["expires_at"].as_str()),
    };
    // The token goes into a header: refuse anything that is not visible ASCII.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let lifetime = expires
        .and_then(parse_time)
        .map(|at| (at - now).to_std().unwrap_or_default());
    let (lifetime, text) = match (lifetime, expires) {
        (Some(lifetime), Some(text)) => (lifetime, text.to_string()),
        _ => (
            default_lifetime,
            format!("in {}", describe::human(default_lifetime)),
        ),
    };
    Some((Secret::new(value), lifetime, text))
}

/// Keystone writes `2015-08-27T09:49:58.000000Z`; v2 sometimes omits the zone (UTC).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// Asks Keystone for a token through `agent`, giving up after `timeout`.
pub(crate) fn fetch(
    agent: &ureq::Agent,
    params: &KeystoneParams,
    timeout: Duration,
    default_lifetime: Duration,
) -> Result<Token, KeystoneError> {
    let endpoint = params.endpoint.shown().to_string();
    let unreachable = |err: ureq::Error| KeystoneError::Unreachable {
        endpoint: endpoint.clone(),
        reason: token_request::no_answer(&err, params.endpoint.host(), timeout),
    };
    let url = request_url(params);
    let request = Request::post(url.as_str()).header("content-type", "application/json");
    let mut response =
        token_request::post(agent, request, request_body(params), timeout).map_err(unreachable)?;
    let obtained = Instant::now();
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(KeystoneError::Rejected { endpoint, status });
    }
    let subject = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok());
    let subject = subject.map(str::to_string);
    let body = token_request::read_answer(&mut response, MAX_ANSWER_BYTES).map_err(unreachable)?;
    let parsed = parse_answer(
        params.version,
        subject.as_deref(),
        &body,
        Utc::now(),
        default_lifetime,
    );
    let (value, lifetime, expires) = parsed.ok_or(KeystoneError::NoToken { endpoint })?;
    Ok(Token::new(value, obtained, lifetime, expires))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::params;
    use super::*;

    #[test]
    fn token_urls_follow_the_api_version() {
        let v2 = |e| token_url(&params(IdentityVersion::V2, e));
        assert_eq!(v2("http://k:5000/v2.0"), "http://k:5000/v2.0/tokens");
        assert_eq!(
            v2("http://k:5000/v2.0/tokens/"),
            "http://k:5000/v2.0/tokens"
        );
        let v3 = |e| token_url(&params(IdentityVersion::V3, e));
        assert_eq!(v3("http://k/v3/"), "http://k/v3/auth/tokens?nocatalog");
        assert_eq!(
            v3("http://k:5000"),
            "http://k:5000/v3/auth/tokens?nocatalog"
        );
        assert_eq!(
            v3("http://k/v3/auth/tokens"),
            "http://k/v3/auth/tokens?nocatalog"
        );
    }

    #[test]
    fn the_token_url_is_shown_without_the_endpoints_user_info() {
        let p = params(IdentityVersion::V3, "https://u:pw@ks:5000/v3");
        assert_eq!(
            token_url(&p),
            "https://***@ks:5000/v3/auth/tokens?nocatalog"
        );
        assert_eq!(
            request_url(&p),
            "https://u:pw@ks:5000/v3/auth/tokens?nocatalog"
        );
        let p = params(IdentityVersion::V2, "http://k/v2.0?api_key=S3CRET");
        assert!(!token_url(&p).contains("S3CRET"), "{}", token_url(&p));
    }

    #[test]
    fn v2_body_is_the_originals() {
        let body: Value =
            serde_json::from_str(&request_body(&params(IdentityVersion::V2, "http://x/"))).unwrap();
        let want = json!({"auth":{"passwordCredentials":{"username":"ops","password":"pw"},"tenantId":"t1"}});
        assert_eq!(body, want);
    }

    #[test]
    fn v3_body_scopes_by_id_or_by_name() {
        let mut p = params(IdentityVersion::V3, "http://x/");
        let body: Value = serde_json::from_str(&request_body(&p)).unwrap();
        assert_eq!(
            body["auth"]["identity"]["password"]["user"]["domain"]["name"],
            "Default"
        );
        assert_eq!(body["auth"]["scope"]["project"], json!({"id": "t1"}));
        p.project_id = None;
        p.project_name = Some("web".into());
        let body: Value = serde_json::from_str(&request_body(&p)).unwrap();
        assert_eq!(
            body["auth"]["scope"]["project"],
            json!({"name": "web", "domain": {"name": "Default"}})
        );
    }

    #[test]
    fn answers_are_parsed_per_version() {
        let now = parse_time("2030-01-01T00:00:00Z").unwrap();
        let hour = Duration::from_secs(3600);
        let v2 = br#"{"access":{"token":{"id":"tok","expires":"2030-01-01T00:10:00Z"}}}"#;
        let (t, life, text) = parse_answer(IdentityVersion::V2, None, v2, now, hour).unwrap();
        assert_eq!(
            (t.expose(), life, text.as_str()),
            ("tok", Duration::from_secs(600), "2030-01-01T00:10:00Z")
        );
        let v3 = br#"{"token":{"expires_at":"2030-01-01T00:00:30.000000Z"}}"#;
        let (t, life, _) = parse_answer(IdentityVersion::V3, Some("tok3"), v3, now, hour).unwrap();
        assert_eq!((t.expose(), life), ("tok3", Duration::from_secs(30)));
        let (_, life, text) =
            parse_answer(IdentityVersion::V3, Some("t"), b"{}", now, hour).unwrap();
        assert_eq!((life, text.as_str()), (hour, "in 3600s"));
        assert!(parse_answer(IdentityVersion::V3, None, v3, now, hour).is_none());
        assert!(parse_answer(IdentityVersion::V2, None, b"<html>", now, hour).is_none());
        assert!(parse_answer(IdentityVersion::V3, Some("a b"), b"{}", now, hour).is_none());
    }

    #[test]
    fn errors_name_the_endpoint() {
        let e = KeystoneError::Rejected {
            endpoint: "http://k/v3".into(),
            status: 401,
        };
        assert_eq!(
            e.to_string(),
            "keystone authentication failed: 401 Unauthorized at http://k/v3"
        );
    }
}
