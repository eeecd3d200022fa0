//! OpenStack Keystone tokens. A worker thread whose check needs a token fetches it over HTTP
//! (v2 or v3 password authentication); the [`TokenCache`], shared by every worker through the
//! `Arc<Checker>`, keeps one token per distinct [`KeystoneParams`] until shortly before it
//! expires. Reads target auth parameters; writes only the cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Value};

use crate::authn::{IdentityVersion, KeystoneParams, Secret};
use crate::check::describe::{self, redact_url};
use crate::check::timing;

/// Keystone bodies are small (v3 is asked for `nocatalog`); this bounds a wrong endpoint.
const MAX_ANSWER_BYTES: u64 = 1 << 20;
/// Refresh a token this long before it expires (less for short-lived tokens, see `refresh_at`).
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// A token and when to stop using it. The value is a [`Secret`]: it never prints.
#[derive(Debug)]
pub struct Token {
    value: Secret,
    refresh_at: Instant,
    /// When it expires, for the trace: Keystone's own timestamp, or `in 3600s` when the answer
    /// had none and `token_lifetime` applies.
    expires: String,
}

impl Token {
    /// A token obtained at `obtained` that Keystone says is valid for `lifetime`.
    pub fn new(value: Secret, obtained: Instant, lifetime: Duration, expires: String) -> Token {
        Token {
            value,
            refresh_at: refresh_at(obtained, lifetime),
            expires,
        }
    }

    pub fn value(&self) -> &Secret {
        &self.value
    }

    pub fn expires(&self) -> &str {
        &self.expires
    }

    /// Still good to send at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

/// `REFRESH_MARGIN` before expiry, or a tenth of the lifetime for tokens shorter than ten
/// minutes, so that a short-lived token is still reused a little.
fn refresh_at(obtained: Instant, lifetime: Duration) -> Instant {
    obtained + lifetime - REFRESH_MARGIN.min(lifetime / 10)
}

/// Why no token could be had. Each names the endpoint as configured (password redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeystoneError {
    /// No HTTP answer: refused, unknown host, timeout, TLS.
    Unreachable { endpoint: String, reason: String },
    /// Keystone answered with a non-2xx status (wrong password, unknown project...).
    Rejected { endpoint: String, status: u16 },
    /// A 2xx answer without a usable token (or not JSON).
    NoToken { endpoint: String },
    /// Another worker was fetching the same token and did not finish before our deadline.
    Waited { endpoint: String },
}

impl fmt::Display for KeystoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeystoneError::Unreachable { endpoint, reason } => {
                write!(f, "keystone unreachable at {endpoint}: {reason}")
            }
            KeystoneError::Rejected { endpoint, status } => write!(
                f,
                "keystone authentication failed: {} at {endpoint}",
                describe::status_text(*status)
            ),
            KeystoneError::NoToken { endpoint } => {
                write!(f, "keystone answered without a token at {endpoint}")
            }
            KeystoneError::Waited { endpoint } => write!(
                f,
                "timed out waiting for another check to obtain a keystone token from {endpoint}"
            ),
        }
    }
}

/// The URL to POST to: v2 `<endpoint>/tokens`, v3 `<endpoint>/auth/tokens?nocatalog` (the
/// catalog can be hundreds of kilobytes and a check does not need it). An endpoint without
/// `/v3` gets it added, since Keystone's root URL serves no tokens.
pub fn token_url(params: &KeystoneParams) -> String {
    let base = params.endpoint.trim_end_matches('/');
    match params.version {
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
    let endpoint = redact_url(&params.endpoint);
    let url = token_url(params);
    let unreachable = |err: &ureq::Error| KeystoneError::Unreachable {
        endpoint: endpoint.clone(),
        reason: describe::failure(
            err,
            &describe::Context {
                phase: timing::phase(),
                addr: None,
                host: host_of(&params.endpoint),
                timeout,
            },
        ),
    };
    let request = ureq::http::Request::post(url.as_str())
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("connection", "close")
        .body(request_body(params))
        .map_err(|e| unreachable(&ureq::Error::Http(e)))?;
    let request = agent
        .configure_request(request)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .http_status_as_error(false)
        .build();
    let mut response = agent.run(request).map_err(|e| unreachable(&e))?;
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
    timing::set_phase(timing::Phase::Body);
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|e| unreachable(&e))?;
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

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    match host_port.rfind(':') {
        Some(i) if !host_port[i..].contains(']') => &host_port[..i],
        _ => host_port,
    }
}

/// Whether a token came from the cache or was fetched for this check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cached,
    New,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cached => "cached",
            Source::New => "new",
        }
    }
}

/// One token per distinct [`KeystoneParams`], shared by all targets and worker threads (it
/// lives in the `Arc<Checker>`). The map's lock is held only to find an entry; each entry has
/// its own lock and condition variable, so workers needing the same token fetch it once while
/// the others wait, and no lock is held across the HTTP call.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<KeystoneParams, Arc<Entry>>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenCache({} entries)", lock(&self.entries).len())
    }
}

#[derive(Default)]
struct Entry {
    slot: Mutex<Slot>,
    done: Condvar,
}

#[derive(Default)]
struct Slot {
    token: Option<Arc<Token>>,
    fetching: bool,
    /// Bumped when a fetch ends, so waiters know theirs has.
    generation: u64,
    /// How the last fetch failed, handed to the workers that waited for it.
    error: Option<KeystoneError>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves consistent data here: keep going.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenCache {
    pub fn new() -> TokenCache {
        TokenCache::default()
    }

    /// Distinct credentials seen so far.
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh token for `params`: the cached one, the one another worker is fetching (waiting
    /// until `deadline` at most), or one from `fetch`, run on this thread without any lock held.
    pub fn get(
        &self,
        params: &KeystoneParams,
        deadline: Instant,
        fetch: impl FnOnce() -> Result<Token, KeystoneError>,
    ) -> Result<(Arc<Token>, Source), KeystoneError> {
        self.get_at(params, Instant::now, deadline, fetch)
    }

    /// [`TokenCache::get`] with the clock passed in, for tests of expiry.
    pub fn get_at(
        &self,
        params: &KeystoneParams,
        now: impl Fn() -> Instant,
        deadline: Instant,
        fetch: impl FnOnce() -> Result<Token, KeystoneError>,
    ) -> Result<(Arc<Token>, Source), KeystoneError> {
        let entry = self.entry(params);
        let mut slot = lock(&entry.slot);
        loop {
            if let Some(token) = slot.token.as_ref().filter(|t| t.is_fresh(now())) {
                return Ok((token.clone(), Source::Cached));
            }
            if !slot.fetching {
                break;
            }
            let generation = slot.generation;
            while slot.fetching && slot.generation == generation {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let endpoint = redact_url(&params.endpoint);
                    return Err(KeystoneError::Waited { endpoint });
                }
                slot = entry
                    .done
                    .wait_timeout(slot, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            let fresh = slot.token.as_ref().is_some_and(|t| t.is_fresh(now()));
            if let (false, Some(err)) = (fresh, &slot.error) {
                return Err(err.clone());
            }
        }
        slot.fetching = true;
        drop(slot);
        let guard = Fetching(&entry);
        let result = fetch().map(Arc::new);
        let mut slot = lock(&entry.slot);
        match &result {
            Ok(token) => (slot.token, slot.error) = (Some(token.clone()), None),
            Err(err) => (slot.token, slot.error) = (None, Some(err.clone())),
        }
        drop(slot);
        drop(guard);
        result.map(|t| (t, Source::New))
    }

    /// Forgets `token` for `params` after a target refused it, unless another worker has
    /// already replaced it.
    pub fn invalidate(&self, params: &KeystoneParams, token: &Arc<Token>) {
        let entry = self.entry(params);
        let mut slot = lock(&entry.slot);
        if slot.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, token)) {
            slot.token = None;
        }
    }

    fn entry(&self, params: &KeystoneParams) -> Arc<Entry> {
        let mut entries = lock(&self.entries);
        if let Some(entry) = entries.get(params) {
            return entry.clone();
        }
        entries.entry(params.clone()).or_default().clone()
    }
}

/// Ends a fetch and wakes its waiters, also when the fetch panicked.
struct Fetching<'a>(&'a Entry);

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        let mut slot = lock(&self.0.slot);
        slot.fetching = false;
        slot.generation += 1;
        drop(slot);
        self.0.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn params(version: IdentityVersion, endpoint: &str) -> KeystoneParams {
        KeystoneParams {
            endpoint: endpoint.into(),
            version,
            user: "ops".into(),
            password: Secret::new("pw"),
            user_domain: "Default".into(),
            project_id: Some("t1".into()),
            project_name: None,
            project_domain: "Default".into(),
        }
    }

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
    fn v2_body_is_the_originals() {
        let body: Value =
            serde_json::from_str(&request_body(&params(IdentityVersion::V2, "x"))).unwrap();
        let want = json!({"auth":{"passwordCredentials":{"username":"ops","password":"pw"},"tenantId":"t1"}});
        assert_eq!(body, want);
    }

    #[test]
    fn v3_body_scopes_by_id_or_by_name() {
        let mut p = params(IdentityVersion::V3, "x");
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
        assert_eq!(host_of("http://u:p@keystone:5000/v3"), "keystone");
    }

    fn token(obtained: Instant, secs: u64) -> Token {
        Token::new(
            Secret::new("t"),
            obtained,
            Duration::from_secs(secs),
            String::new(),
        )
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let t0 = Instant::now();
        let hour = token(t0, 3600);
        assert!(hour.is_fresh(t0 + Duration::from_secs(3539)));
        assert!(!hour.is_fresh(t0 + Duration::from_secs(3540)));
        let short = token(t0, 10);
        assert!(short.is_fresh(t0 + Duration::from_secs(8)));
        assert!(!short.is_fresh(t0 + Duration::from_secs(9)));
    }

    #[test]
    fn the_cache_fetches_again_only_after_expiry() {
        let cache = TokenCache::new();
        let p = params(IdentityVersion::V3, "http://k/v3");
        let t0 = Instant::now();
        let clock = std::cell::Cell::new(t0);
        let fetches = AtomicUsize::new(0);
        let get = || {
            cache.get_at(
                &p,
                || clock.get(),
                t0 + Duration::from_secs(9999),
                || {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Ok(token(clock.get(), 3600))
                },
            )
        };
        assert_eq!(get().unwrap().1, Source::New);
        clock.set(t0 + Duration::from_secs(3000));
        assert_eq!(get().unwrap().1, Source::Cached);
        clock.set(t0 + Duration::from_secs(3550));
        assert_eq!(get().unwrap().1, Source::New);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn concurrent_workers_share_one_fetch_and_its_failure() {
        let cache = Arc::new(TokenCache::new());
        let p = params(IdentityVersion::V3, "http://k/v3");
        let fetches = Arc::new(AtomicUsize::new(0));
        let run = |ok: bool| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (cache, p, fetches) = (cache.clone(), p.clone(), fetches.clone());
                    std::thread::spawn(move || {
                        let deadline = Instant::now() + Duration::from_secs(10);
                        cache.get(&p, deadline, || {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(200));
                            match ok {
                                true => Ok(token(Instant::now(), 3600)),
                                false => Err(KeystoneError::NoToken {
                                    endpoint: "e".into(),
                                }),
                            }
                        })
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect::<Vec<_>>()
        };
        let failed = run(false);
        assert!(failed.iter().all(|r| r.is_err()));
        assert_eq!(fetches.swap(0, Ordering::SeqCst), 1);
        let ok = run(true);
        assert!(ok.iter().all(|r| r.is_ok()));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn invalidate_drops_only_the_refused_token() {
        let cache = TokenCache::new();
        let p = params(IdentityVersion::V2, "http://k/v2.0");
        let far = Instant::now() + Duration::from_secs(10);
        let (first, _) = cache
            .get(&p, far, || Ok(token(Instant::now(), 3600)))
            .unwrap();
        cache.invalidate(&p, &first);
        let (second, source) = cache
            .get(&p, far, || Ok(token(Instant::now(), 3600)))
            .unwrap();
        assert_eq!(source, Source::New);
        cache.invalidate(&p, &first);
        let (third, source) = cache.get(&p, far, || unreachable!()).unwrap();
        assert!(Arc::ptr_eq(&second, &third) && source == Source::Cached);
    }
}
