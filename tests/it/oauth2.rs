//! OAUTH2 tokens from a real OAuth2 server (Authlib, see support/oauth2.rs), through the
//! shared token cache as a check will ask for them: fetched once per set of client
//! credentials, and accepted by the server's protected resource. The check's own use of them
//! (the bearer header, re-authenticating after a 401) is tested with the check (issue 26).

use std::time::{Duration, Instant};

use skypunch::facade::authn::{oauth2_params, split_params};
use skypunch::facade::check::oauth2::{fetch, waited, TokenCache};

use crate::support::oauth2::OAuth2Server;

#[test]
fn a_token_from_a_real_server_is_fetched_once_and_opens_its_resource() {
    let dir = std::env::temp_dir().join(format!("skypunch-it-oauth2-{}", std::process::id()));
    let server = OAuth2Server::start(&dir, 3600, &[("monitor", "basic", "cs-7f3a9")]);
    let text = format!(
        "token_url={},client_id=monitor,client_secret=cs-7f3a9,scope=read",
        server.token_url()
    );
    let params = oauth2_params(split_params(&text).unwrap()).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let cache = TokenCache::new();
    let tokens: Vec<_> = (0..3)
        .map(|_| {
            let deadline = Instant::now() + Duration::from_secs(10);
            let fetched = || {
                fetch(
                    &agent,
                    &params,
                    Duration::from_secs(10),
                    Duration::from_secs(3600),
                )
            };
            cache
                .get(&params, deadline, || waited(&params), fetched)
                .unwrap()
                .0
        })
        .collect();
    assert_eq!(server.token_requests("monitor"), 1);
    assert_eq!(server.stats("monitor")["last_form"]["scope"], "read");
    let answer = agent
        .get(server.resource_url())
        .header("authorization", tokens[2].authorization())
        .call()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}
