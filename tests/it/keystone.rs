//! Keystone-authenticated checks against a fake Keystone and a target on 127.0.0.1: tokens are
//! fetched once and shared, refreshed on expiry and on a 401, and never shown.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread;

use skypunch::authn::{self, Auth};
use skypunch::{CheckOutcome, CheckSettings, Checker, Target, Verdict};

use crate::support::servers::{serve, target, write_response, ClosedPort, Server};

const PASSWORD: &str = "s3cr3t-pw";

/// What the fake Keystone does and has done.
#[derive(Default)]
struct Keystone {
    issued: Vec<String>,
    /// Seconds until expiry written into answers.
    expires_in: i64,
    malformed: bool,
}

fn keystone(expires_in: i64) -> (Server, Arc<Mutex<Keystone>>) {
    let state = Arc::new(Mutex::new(Keystone {
        expires_in,
        ..Keystone::default()
    }));
    let ks = state.clone();
    let server = serve(move |req, w| {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let v3 = req.path.starts_with("/v3/auth/tokens");
        let password = match v3 {
            true => &body["auth"]["identity"]["password"]["user"]["password"],
            false => &body["auth"]["passwordCredentials"]["password"],
        };
        if password != PASSWORD {
            return write_response(w, "401 Unauthorized", &[], b"{}");
        }
        let mut ks = ks.lock().unwrap();
        if ks.malformed {
            return write_response(w, "200 OK", &[], b"<html>maintenance</html>");
        }
        let token = format!("tok-{}-SECRETTOKEN", ks.issued.len());
        ks.issued.push(token.clone());
        let expires = chrono::Utc::now() + chrono::Duration::seconds(ks.expires_in);
        let expires = expires.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        if v3 {
            let answer = serde_json::json!({"token": {"expires_at": expires}}).to_string();
            write_response(
                w,
                "201 Created",
                &[("X-Subject-Token", &token)],
                answer.as_bytes(),
            )
        } else {
            let answer =
                serde_json::json!({"access": {"token": {"id": token, "expires": expires}}});
            write_response(w, "200 OK", &[], answer.to_string().as_bytes())
        }
    });
    (server, state)
}

/// A target accepting any token Keystone issued, except revoked ones.
fn protected(revoked: Arc<Mutex<HashSet<String>>>) -> Server {
    serve(move |req, w| match req.header("x-auth-token") {
        Some(t) if t.starts_with("tok-") && !revoked.lock().unwrap().contains(t) => {
            write_response(w, "200 OK", &[], b"ok")
        }
        _ => write_response(w, "401 Unauthorized", &[], b""),
    })
}

fn keystone_target(url: &str, endpoint: &str, password: &str) -> Target {
    let parms = format!("user=ops,password={password},osauthendpoint={endpoint},tenantid=t1");
    let mut t = target(url);
    t.auth = authn::parse("OPENSTACK", Some(&parms)).unwrap();
    t
}

#[track_caller]
fn assert_secret_free(outcome: &CheckOutcome) {
    let text = format!("{}\n{}", outcome.trace, outcome.description);
    for secret in [PASSWORD, "SECRETTOKEN"] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
}

#[test]
fn v3_tokens_are_fetched_once_for_many_checks_and_targets() {
    let (ks, state) = keystone(3600);
    let target_server = protected(Default::default());
    let checker = Checker::new(CheckSettings::default());
    let endpoint = ks.url("/v3");
    let a = keystone_target(&target_server.url("/a"), &endpoint, PASSWORD);
    let b = keystone_target(&target_server.url("/b"), &endpoint, PASSWORD);
    let first = checker.check(&a);
    assert_eq!(first.verdict, Verdict::Pass, "{}", first.trace);
    let text = first.trace.to_string();
    assert!(
        text.contains(&format!(
            "keystone v3 token obtained from {endpoint} (new), expires 20"
        )),
        "{text}"
    );
    assert!(text.contains("keystone: POST "), "{text}");
    for t in [&a, &b, &a, &b] {
        let outcome = checker.check(t);
        assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.trace);
        assert!(outcome.trace.to_string().contains("(cached)"));
        assert_secret_free(&outcome);
    }
    assert_eq!(state.lock().unwrap().issued.len(), 1);
    assert_eq!(checker.keystone_clients(), 1);
    assert_eq!(
        target_server.last().header("x-auth-token"),
        Some("tok-0-SECRETTOKEN")
    );
}

#[test]
fn v2_speaks_the_originals_protocol() {
    let (ks, state) = keystone(3600);
    let target_server = protected(Default::default());
    let checker = Checker::new(CheckSettings::default());
    let t = keystone_target(&target_server.url("/"), &ks.url("/v2.0"), PASSWORD);
    for _ in 0..3 {
        let outcome = checker.check(&t);
        assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.trace);
        assert_secret_free(&outcome);
    }
    let request = ks.last();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/v2.0/tokens")
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["auth"]["tenantId"], "t1");
    assert_eq!(state.lock().unwrap().issued.len(), 1);
}

#[test]
fn eight_concurrent_workers_fetch_one_token() {
    let (ks, state) = keystone(3600);
    let target_server = protected(Default::default());
    let checker = Arc::new(Checker::new(CheckSettings::default()));
    let t = Arc::new(keystone_target(
        &target_server.url("/"),
        &ks.url("/v3"),
        PASSWORD,
    ));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (checker, t) = (checker.clone(), t.clone());
            thread::spawn(move || checker.check(&t))
        })
        .collect();
    for w in workers {
        let outcome = w.join().unwrap();
        assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.trace);
    }
    assert_eq!(state.lock().unwrap().issued.len(), 1);
}

#[test]
fn an_expiring_token_is_fetched_again() {
    // Expires in 2 s: reused until a tenth of its life is left, then refreshed.
    let (ks, state) = keystone(2);
    let target_server = protected(Default::default());
    let checker = Checker::new(CheckSettings::default());
    let t = keystone_target(&target_server.url("/"), &ks.url("/v3"), PASSWORD);
    assert_eq!(checker.check(&t).verdict, Verdict::Pass);
    assert_eq!(checker.check(&t).verdict, Verdict::Pass);
    assert_eq!(state.lock().unwrap().issued.len(), 1);
    thread::sleep(std::time::Duration::from_millis(2100));
    let outcome = checker.check(&t);
    assert_eq!(outcome.verdict, Verdict::Pass);
    assert!(outcome.trace.to_string().contains("(new)"));
    assert_eq!(state.lock().unwrap().issued.len(), 2);
}

#[test]
fn a_refused_cached_token_is_replaced_exactly_once() {
    let (ks, state) = keystone(3600);
    let revoked = Arc::new(Mutex::new(HashSet::new()));
    let target_server = protected(revoked.clone());
    let checker = Checker::new(CheckSettings::default());
    let t = keystone_target(&target_server.url("/"), &ks.url("/v3"), PASSWORD);
    assert_eq!(checker.check(&t).verdict, Verdict::Pass);
    revoked
        .lock()
        .unwrap()
        .insert("tok-0-SECRETTOKEN".to_string());
    let outcome = checker.check(&t);
    assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.trace);
    assert!(outcome.trace.to_string().contains("authenticating again"));
    assert_secret_free(&outcome);
    assert_eq!(state.lock().unwrap().issued.len(), 2);
    // A target that refuses every token: one re-authentication, then the 401 stands.
    revoked
        .lock()
        .unwrap()
        .insert("tok-1-SECRETTOKEN".to_string());
    revoked
        .lock()
        .unwrap()
        .insert("tok-2-SECRETTOKEN".to_string());
    let outcome = checker.check(&t);
    assert_eq!(outcome.description, "target status:401 != 200");
    assert_eq!(state.lock().unwrap().issued.len(), 3);
}

#[test]
fn keystone_failures_fail_the_check_with_their_reason() {
    let (ks, state) = keystone(3600);
    let target_server = protected(Default::default());
    let checker = Checker::new(CheckSettings::default());
    let endpoint = ks.url("/v3");

    let wrong = checker.check(&keystone_target(
        &target_server.url("/"),
        &endpoint,
        "wrong-pw",
    ));
    assert_eq!(
        wrong.description,
        format!("keystone authentication failed: 401 Unauthorized at {endpoint}")
    );
    assert_eq!((wrong.verdict, wrong.http_status), (Verdict::Fail, None));
    assert!(!wrong.trace.to_string().contains("wrong-pw"));

    state.lock().unwrap().malformed = true;
    let malformed = checker.check(&keystone_target(
        &target_server.url("/"),
        &endpoint,
        PASSWORD,
    ));
    assert_eq!(
        malformed.description,
        format!("keystone answered without a token at {endpoint}")
    );
    assert_secret_free(&malformed);

    let closed = ClosedPort::new();
    let down = format!("http://127.0.0.1:{}/v3", closed.port);
    let outcome = checker.check(&keystone_target(&target_server.url("/"), &down, PASSWORD));
    assert_eq!(
        outcome.description,
        format!("keystone unreachable at {down}: connection refused")
    );
    assert!(outcome
        .trace
        .to_string()
        .contains("[Fail] reason: keystone unreachable"));
    assert_secret_free(&outcome);
    assert_eq!(target_server.hits(), 0);
}

#[test]
fn targets_behind_one_wrong_password_make_one_request_until_it_is_fixed() {
    let (ks, state) = keystone(3600);
    let target_server = protected(Default::default());
    let checker = Checker::new(CheckSettings::default());
    let endpoint = ks.url("/v3");
    let wrong: Vec<Target> = (0..5)
        .map(|i| keystone_target(&target_server.url(&format!("/{i}")), &endpoint, "wrong-pw"))
        .collect();
    // Ten checks well within the 5 s a refusal is held: Keystone is asked once, not ten
    // times (one that locks out a user after failed attempts is not pushed there).
    let want = format!("keystone authentication failed: 401 Unauthorized at {endpoint}");
    for t in wrong.iter().chain(&wrong) {
        let outcome = checker.check(t);
        assert_eq!(
            (outcome.verdict, outcome.description.as_str()),
            (Verdict::Fail, want.as_str())
        );
    }
    assert_eq!(ks.hits(), 1);
    // The operator corrects the password: other credentials, asked at once.
    let right = keystone_target(&target_server.url("/0"), &endpoint, PASSWORD);
    let outcome = checker.check(&right);
    assert_eq!(outcome.verdict, Verdict::Pass, "{}", outcome.trace);
    assert_eq!((ks.hits(), state.lock().unwrap().issued.len()), (2, 1));
    assert_eq!(target_server.hits(), 1);
}

#[test]
fn basic_and_keystone_secrets_never_reach_a_trace() {
    let (ks, _) = keystone(3600);
    let target_server = protected(Default::default());
    let checker = Checker::new(CheckSettings::default());
    let mut t = keystone_target(&target_server.url("/"), &ks.url("/v3"), PASSWORD);
    for _ in 0..2 {
        assert_secret_free(&checker.check(&t));
    }
    t.auth = Auth::Basic {
        user: "ops".into(),
        password: authn::Secret::new(PASSWORD),
    };
    let outcome = checker.check(&t);
    assert_eq!(outcome.description, "target status:401 != 200");
    assert_secret_free(&outcome);
}
