//! The OAuth2 step against a real OAuth2 server (Authlib, see `test_server`): the token is
//! fetched once and reused, a refused token is replaced once, a wrong secret, a slow or absent
//! endpoint are described precisely. Each test has a server of its own on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::test_server::AuthServer;
use super::*;
use crate::base::authn::{oauth2_params, split_params};
use crate::check::phase;
use crate::check::resolve::TimedResolver;
use crate::check::tls::TlsMemory;
use crate::check::tokens::Source;
use crate::check::transport::TimedConnector;

const HOUR: Duration = Duration::from_secs(3600);

/// An agent built as the Checker builds its own (fresh connection, timed connector).
fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .proxy(None)
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .http_status_as_error(false)
        .max_redirects(0)
        .build();
    ureq::Agent::with_parts(
        config,
        TimedConnector::new(Vec::new(), None, None, &TlsMemory::new()),
        TimedResolver::default(),
    )
}

fn params(server: &AuthServer, rest: &str) -> OAuth2Params {
    let text = format!("token_url={},{rest}", server.url("/token"));
    oauth2_params(split_params(&text).unwrap()).unwrap()
}

/// A token for `params` as a check gets one: from the cache, or fetched within `timeout`.
fn token(
    cache: &TokenCache,
    params: &OAuth2Params,
    timeout: Duration,
) -> Result<(Arc<Token>, Source), OAuth2Error> {
    let deadline = Instant::now() + timeout;
    cache.get(
        params,
        deadline,
        || waited(params),
        || {
            phase::begin();
            let fetched = fetch(&agent(), params, timeout, HOUR);
            phase::end();
            fetched
        },
    )
}

fn get(cache: &TokenCache, params: &OAuth2Params) -> Result<(Arc<Token>, Source), OAuth2Error> {
    token(cache, params, Duration::from_secs(10))
}

#[test]
fn a_token_is_fetched_once_and_reused_by_every_target_until_it_expires() {
    let server = AuthServer::start(3600, &[("mon", "basic", "s:e/c r+t%")]);
    let p = params(&server, "client_id=mon,client_secret=s:e/c r+t%");
    let cache = TokenCache::new();
    let (first, source) = get(&cache, &p).unwrap();
    assert_eq!(source, Source::New);
    for _ in 0..3 {
        let (again, source) = get(&cache, &p.clone()).unwrap();
        assert!(Arc::ptr_eq(&first, &again) && source == Source::Cached);
    }
    assert_eq!(server.token_requests("mon"), 1);
    assert_eq!(server.stats("mon")["auth"], "basic");
    assert_eq!(server.resource(&first.authorization()), 200);
    assert_eq!(first.expires(), "expires in 3600s");
}

#[test]
fn post_auth_sends_scope_audience_and_credentials_in_the_body() {
    let server = AuthServer::start(3600, &[("postie", "post", "pw-9999")]);
    let rest = "client_id=postie,client_secret=pw-9999,auth=post,scope=read,\
                audience=https://api.example";
    let p = params(&server, rest);
    let (token, _) = get(&TokenCache::new(), &p).unwrap();
    assert_eq!(server.resource(&token.authorization()), 200);
    let stats = server.stats("postie");
    assert_eq!(stats["auth"], "post");
    assert_eq!(
        stats["last_form"],
        serde_json::json!({
            "grant_type": "client_credentials", "scope": "read",
            "audience": "https://api.example", "client_id": "postie", "client_secret": "***"
        })
    );
}

#[test]
fn a_wrong_secret_is_a_precise_failure_held_for_a_few_seconds() {
    let server = AuthServer::start(3600, &[("mon", "basic", "right-secret")]);
    let cache = TokenCache::new();
    let wrong = params(&server, "client_id=mon,client_secret=wrong-secret");
    let err = get(&cache, &wrong).unwrap_err().to_string();
    let want = format!(
        "oauth2 token request failed: 401 invalid_client at http://127.0.0.1:{}/token (",
        server.port
    );
    assert!(err.starts_with(&want), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
    assert_eq!(get(&cache, &wrong).unwrap_err().to_string(), err);
    assert_eq!(server.token_requests("mon"), 1, "held, not asked again");

    let in_body = params(
        &server,
        "client_id=mon,client_secret=right-secret,auth=post",
    );
    let err = get(&cache, &in_body).unwrap_err().to_string();
    assert!(
        err.contains("401 invalid_client"),
        "a basic-only client: {err}"
    );
    let scope = params(
        &server,
        "client_id=mon,client_secret=right-secret,scope=admin",
    );
    let err = get(&cache, &scope).unwrap_err().to_string();
    assert!(
        err.starts_with("oauth2 token request failed: 400 invalid_scope at"),
        "{err}"
    );
}

#[test]
fn a_refused_token_is_replaced_once_however_many_checks_were_refused() {
    let server = AuthServer::start(3600, &[("mon", "basic", "secret-1")]);
    let p = params(&server, "client_id=mon,client_secret=secret-1");
    let cache = Arc::new(TokenCache::new());
    let (old, _) = get(&cache, &p).unwrap();
    server.revoke_all();
    assert_eq!(server.resource(&old.authorization()), 401);
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (cache, p, old) = (cache.clone(), p.clone(), old.clone());
            std::thread::spawn(move || {
                cache.invalidate(&p, &old);
                get(&cache, &p).unwrap().0
            })
        })
        .collect();
    let new: Vec<Arc<Token>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(new
        .iter()
        .all(|t| Arc::ptr_eq(t, &new[0]) && !Arc::ptr_eq(t, &old)));
    assert_eq!(server.token_requests("mon"), 2);
    assert_eq!(server.resource(&new[0].authorization()), 200);
}

#[test]
fn concurrent_checks_share_one_token_request() {
    let server = AuthServer::start(3600, &[("mon", "basic", "secret-1")]);
    server.delay(300);
    let p = params(&server, "client_id=mon,client_secret=secret-1");
    let cache = Arc::new(TokenCache::new());
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cache, p) = (cache.clone(), p.clone());
            std::thread::spawn(move || get(&cache, &p).unwrap().0)
        })
        .collect();
    let tokens: Vec<Arc<Token>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(tokens.iter().all(|t| Arc::ptr_eq(t, &tokens[0])));
    assert_eq!(server.token_requests("mon"), 1);
}

#[test]
fn a_short_lived_token_is_fetched_again_before_it_expires() {
    let server = AuthServer::start(1, &[("mon", "basic", "secret-1")]);
    let p = params(&server, "client_id=mon,client_secret=secret-1");
    let cache = TokenCache::new();
    let (first, _) = get(&cache, &p).unwrap();
    // Reused until a tenth of its second is left.
    let until = Instant::now() + Duration::from_secs(5);
    while first.is_fresh(Instant::now()) {
        assert!(Instant::now() < until, "a 1 s token still fresh after 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (second, source) = get(&cache, &p).unwrap();
    assert!(source == Source::New && !Arc::ptr_eq(&first, &second));
    assert_eq!(server.token_requests("mon"), 2);
}

#[test]
fn an_endpoint_that_does_not_answer_in_time_or_at_all_is_named() {
    let server = AuthServer::start(3600, &[("mon", "basic", "secret-1")]);
    server.delay(3000);
    let p = params(&server, "client_id=mon,client_secret=secret-1");
    let started = Instant::now();
    let err = token(&TokenCache::new(), &p, Duration::from_millis(500)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        format!(
            "oauth2 token endpoint unreachable at http://127.0.0.1:{}/token: timed out after \
             500ms waiting for the response",
            server.port
        )
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let text = format!("token_url=http://127.0.0.1:{port}/token,client_id=a,client_secret=b");
    let p = oauth2_params(split_params(&text).unwrap()).unwrap();
    assert_eq!(
        get(&TokenCache::new(), &p).unwrap_err().to_string(),
        format!("oauth2 token endpoint unreachable at http://127.0.0.1:{port}/token: connection refused")
    );
}
