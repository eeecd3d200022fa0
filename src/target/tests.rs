//! The unit tests of [`super`]: each bad column its own config error, secrets filled in and never
//! quoted, the dependency graph's errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::request::PUSH_URL;
use super::*;
use crate::base::authn::Auth;
use crate::base::proxy::{NoProxy, ProxyUrl};

fn row() -> TargetRow {
    TargetRow {
        id: 7,
        name: "Example".into(),
        status: "NEW".into(),
        url: "http://127.0.0.1:8080/health".into(),
        method: "GET".into(),
        authn: "NONE".into(),
        pass_result: 200,
        frequency: 60,
        timeout: 10,
        enabled: true,
        verify_tls: true,
        fail_threshold: 1,
        success_threshold: 1,
        cert_warn_days: 14,
        ..TargetRow::default()
    }
}

#[test]
fn a_defaulted_row_is_a_valid_target() {
    let t = from_row(&row(), &mut Shared::default(), &Secrets::new()).unwrap();
    assert_eq!(
        (
            t.method,
            t.pass_result,
            t.frequency.as_secs(),
            t.timeout.as_secs()
        ),
        (Method::Get, 200, 60, 10)
    );
}

#[test]
fn each_bad_value_gets_its_own_config_error() {
    type Spoil = fn(&mut TargetRow);
    let cases: Vec<(Spoil, &str)> = vec![
        (|r| r.method = "FETCH".into(), "unknown method `FETCH`"),
        (
            |r| r.url = "ftp://x/".into(),
            "is not an absolute http:// or https:// URL",
        ),
        (|r| r.url = "http://a b/".into(), "contains white space"),
        (|r| r.url = String::new(), "url is empty"),
        (|r| r.frequency = 0, "frequency 0 is less than 1 second"),
        (|r| r.timeout = -5, "timeout -5 is less than 1 second"),
        (
            |r| r.pass_result = 42,
            "pass_result 42 is not an HTTP status",
        ),
        (|r| r.authn = "KERBEROS".into(), "unknown authn `KERBEROS`"),
        (
            |r| r.authn = "BASIC".into(),
            "BASIC needs user and password",
        ),
        (|r| r.fail_threshold = 0, "fail_threshold 0 is less than 1"),
        (
            |r| r.success_threshold = 0,
            "success_threshold 0 is less than 1",
        ),
    ];
    for (spoil, expected) in cases {
        let mut r = row();
        spoil(&mut r);
        let err = from_row(&r, &mut Shared::default(), &Secrets::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err} should contain {expected}");
    }
}

#[test]
fn a_timeout_longer_than_the_frequency_says_how_often_checks_really_come() {
    let secs = Duration::from_secs;
    assert_eq!(stretched_schedule(secs(60), secs(10)), None);
    assert_eq!(stretched_schedule(secs(5), secs(5)), None);
    let why = stretched_schedule(secs(2), secs(8)).unwrap();
    assert!(why.starts_with("every 2s to 8s, not every 2s: "), "{why}");
    assert!(
        why.contains("timeout 8s is longer than its frequency 2s"),
        "{why}"
    );
    assert!(
        why.ends_with("(never two at once; every 8s while checks time out)"),
        "{why}"
    );
}

#[test]
fn a_row_that_does_not_decode_is_its_own_config_error() {
    let read = crate::db::targets::Read::All;
    let bad = |f: &mut crate::db::decode::Fields| TargetRow::decode(f, read).unwrap_err();
    let values = vec![Some(mysql::Value::Int(7)), Some(mysql::Value::NULL)];
    let mut r = row();
    r.undecodable = Some(bad(&mut crate::db::decode::Fields::of("targets", values)));
    let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
    assert_eq!(err.to_string(), "name: NULL is not UTF-8 text");
}

fn secrets() -> Secrets {
    let mut s = Secrets::new();
    s.insert("API_KEY", "k-7f3a9c21");
    s.insert("CS", "client-secret-1");
    s
}

#[test]
fn secret_references_are_filled_in_and_an_unknown_one_is_a_config_error() {
    let mut r = row();
    r.url = "http://127.0.0.1:8080/h/${secret:API_KEY}".into();
    r.authn = "OAUTH2".into();
    r.authn_parms =
        Some("token_url=http://127.0.0.1:9/token,client_id=mon,client_secret=${secret:CS}".into());
    r.request_headers = Some("X-Api-Key: ${secret:API_KEY}\nAccept: application/json".into());
    r.request_body = Some(r#"{"key":"${secret:API_KEY}"}"#.into());
    let t = from_row(&r, &mut Shared::default(), &secrets()).unwrap();
    assert_eq!(t.url.as_str(), "http://127.0.0.1:8080/h/k-7f3a9c21");
    assert_eq!(t.url.shown(), "http://127.0.0.1:8080/h/${secret:API_KEY}");
    let Auth::OAuth2(p) = &t.auth else {
        panic!("{:?}", t.auth)
    };
    assert_eq!(p.client_secret.expose(), "client-secret-1");
    let sent: Vec<_> = t
        .request_headers
        .iter()
        .map(|(_, v)| v.to_str().unwrap())
        .collect();
    assert_eq!(sent, ["k-7f3a9c21", "application/json"]);
    assert_eq!(
        t.request_body.as_ref().map(|b| b.expose()),
        Some(r#"{"key":"k-7f3a9c21"}"#)
    );
    assert!(!format!("{t:?}").contains("client-secret-1"));
    type Spoil = fn(&mut TargetRow);
    let cases: Vec<(Spoil, &str)> = vec![
        (
            |r| r.url = "http://h/${secret:NOPE}".into(),
            "url: unknown secret `NOPE`",
        ),
        (
            |r| r.request_headers = Some("X-A: ${secret:NOPE}".into()),
            "request_headers: unknown secret `NOPE`",
        ),
        (
            |r| r.request_body = Some("${secret:NOPE}".into()),
            "request_body: unknown secret `NOPE`",
        ),
        (
            |r| {
                r.authn_parms =
                    Some("token_url=http://h/t,client_id=a,client_secret=${secret:NOPE}".into())
            },
            "authn_parms client_secret: unknown secret `NOPE`",
        ),
    ];
    for (spoil, expected) in cases {
        let mut bad = r.clone();
        spoil(&mut bad);
        let err = from_row(&bad, &mut Shared::default(), &secrets())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(expected),
            "{err} should start with {expected}"
        );
    }
}

#[test]
fn a_config_error_never_quotes_what_a_secret_expanded_to() {
    let mut r = row();
    r.request_headers = Some("Accept: */*\n${secret:API_KEY}".into());
    let err = from_row(&r, &mut Shared::default(), &secrets()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "request_headers line 2: `***` is not `Name: value`"
    );
}

#[test]
fn conditions_and_headers_are_validated_at_load() {
    let mut r = row();
    r.conditions = Some("# health\n[STATUS] == 200\n[BODY].status == ok\n".into());
    let t = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap();
    assert_eq!(t.conditions.as_ref().map(|c| c.len()), Some(2));
    r.conditions = Some("\n# nothing yet\n".into());
    let t = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap();
    assert!(t.conditions.is_none());
    r.conditions = Some("[STATUS] == 200\n[BODY].status ok".into());
    let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
    assert!(
        err.to_string().starts_with("conditions line 2, column "),
        "{err}"
    );
    let mut r = row();
    r.request_headers = Some("Accept: */*\nno colon".into());
    let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "request_headers line 2: `no colon` is not `Name: value`"
    );
    r.request_headers = Some("authorization: Bearer x".into());
    r.authn = "BEARER".into();
    r.authn_parms = Some("token=abc".into());
    let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "request_headers: Authorization is set by authn BEARER"
    );
    r.authn = "NONE".into();
    assert!(from_row(&r, &mut Shared::default(), &Secrets::new()).is_ok());
}

#[test]
fn a_push_target_needs_no_url_but_a_usable_token() {
    let mut r = row();
    r.method = "push".into();
    r.url = String::new();
    let t = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap();
    assert_eq!((t.method, t.url.as_str()), (Method::Push, PUSH_URL));
    r.push_token = Some("backup-job_2026-nightly".into());
    assert!(from_row(&r, &mut Shared::default(), &Secrets::new()).is_ok());
    r.push_token = Some("s3cret".into());
    let err = from_row(&r, &mut Shared::default(), &Secrets::new())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("push_token has 6 characters"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn ip_family_and_proxy_url_are_validated_and_the_password_never_shown() {
    let mut r = row();
    r.ip_family = " 6 ".into();
    r.proxy_url = Some("http://ops:hunter2@127.0.0.1:3128".into());
    let t = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap();
    assert_eq!(t.ip_family, IpFamily::V6);
    assert_eq!(t.proxy.unwrap().shown(), "http://***@127.0.0.1:3128");
    r.ip_family = "5".into();
    let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
    assert_eq!(err.to_string(), "ip_family `5` is none of any, 4, 6");
    r.ip_family = "any".into();
    r.proxy_url = Some("socks5://ops:hunter2@127.0.0.1:1080".into());
    let err = from_row(&r, &mut Shared::default(), &Secrets::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("proxy_url: proxy `socks5://***@127.0.0.1:1080` is not an http:// proxy"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn the_default_proxy_serves_the_rows_without_their_own_but_no_proxy_hosts() {
    let mut shared = Shared {
        proxy: Some(Arc::new(ProxyUrl::parse("http://10.0.0.1:3128").unwrap())),
        no_proxy: Arc::new(NoProxy::parse(".internal.example, 127.0.0.0/8").unwrap()),
        ..Shared::default()
    };
    let proxy_of = |url: &str, own: Option<&str>, shared: &mut Shared| {
        let mut r = row();
        r.url = url.into();
        r.proxy_url = own.map(String::from);
        from_row(&r, shared, &Secrets::new())
            .unwrap()
            .proxy
            .map(|p| p.shown().to_string())
    };
    let default = Some("http://10.0.0.1:3128".to_string());
    assert_eq!(proxy_of("https://api.example/", None, &mut shared), default);
    assert_eq!(proxy_of("http://127.0.0.1:8080/", None, &mut shared), None);
    assert_eq!(
        proxy_of("http://db.internal.example/", None, &mut shared),
        None
    );
    assert_eq!(
        proxy_of("https://api.example/", Some("none"), &mut shared),
        None
    );
    assert_eq!(
        proxy_of(
            "http://127.0.0.1/",
            Some("http://10.9.9.9:8080"),
            &mut shared
        ),
        Some("http://10.9.9.9:8080".to_string()),
        "a row's own proxy is used whatever NoProxy says"
    );
}

#[test]
fn a_missing_parent_and_every_row_of_a_cycle_are_errors_and_a_chain_is_not() {
    let edges: BTreeMap<TargetId, (i64, bool)> = [
        (1, (2, true)), // 1 -> 2 -> 3: a chain
        (2, (3, true)),
        (4, (99, false)), // no target 99
        (5, (6, true)),   // 5 -> 6 -> 7 -> 5: a cycle
        (6, (7, true)),
        (7, (5, true)),
        (8, (6, true)), // leads into the cycle
    ]
    .into_iter()
    .collect();
    let errors = dependency_errors(&edges);
    let ids: Vec<TargetId> = errors.keys().copied().collect();
    assert_eq!(ids, vec![4, 5, 6, 7]);
    assert_eq!(errors[&4].to_string(), "depends_on 99 names no target");
    for id in [5, 6, 7] {
        assert_eq!(
            errors[&id].to_string(),
            "depends_on makes a cycle (5 -> 6 -> 7 -> 5): set one of them to NULL"
        );
    }
    let two: BTreeMap<TargetId, (i64, bool)> =
        [(9, (3, true)), (3, (9, true))].into_iter().collect();
    let errors = dependency_errors(&two);
    assert_eq!(errors.len(), 2);
    assert!(errors[&9].to_string().contains("(3 -> 9 -> 3)"));
}

#[test]
fn a_row_depending_on_itself_or_on_no_id_is_its_own_config_error() {
    let mut r = row();
    r.depends_on = Some(7);
    let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "depends_on makes a cycle (7 -> 7): set one of them to NULL"
    );
    r.depends_on = Some(0);
    let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
    assert_eq!(err.to_string(), "depends_on 0 names no target");
    r.depends_on = Some(3);
    assert_eq!(
        from_row(&r, &mut Shared::default(), &Secrets::new())
            .unwrap()
            .depends_on,
        Some(3)
    );
}

#[test]
fn a_client_certificate_that_cannot_be_read_is_the_rows_config_error() {
    let mut r = row();
    r.client_cert = Some("/nonexistent/skypunch-client.pem".into());
    let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "client_cert /nonexistent/skypunch-client.pem: cannot read it: No such file or \
             directory (os error 2)"
    );
    r.client_cert = None;
    r.client_key = Some("/k.pem".into());
    let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("client_key is set but client_cert is not"));
}

#[test]
fn a_proxy_password_comes_from_secrets_and_no_error_quotes_it() {
    let mut secrets = Secrets::new();
    secrets.insert("PROXY_PW", "pr0xy-s3cret");
    secrets.insert("PROXY_HOST", "proxy.internal.example");
    let mut r = row();
    r.proxy_url = Some("http://ops:${secret:PROXY_PW}@127.0.0.1:3128".into());
    let t = from_row(&r, &mut Shared::default(), &secrets).unwrap();
    let proxy = t.proxy.unwrap();
    assert_eq!(proxy.shown(), "http://***@127.0.0.1:3128");
    // base64("ops:pr0xy-s3cret")
    assert_eq!(
        proxy.authorization().map(|a| a.expose()),
        Some("Basic b3BzOnByMHh5LXMzY3JldA==")
    );
    r.proxy_url = Some("http://ops:${secret:NOPE}@127.0.0.1:3128".into());
    let err = from_row(&r, &mut Shared::default(), &secrets).unwrap_err();
    assert_eq!(
        err.to_string(),
        "proxy_url: unknown secret `NOPE`: add it to [secrets] in the config file, then SIGHUP"
    );
    // A value in the host part is quoted by the parser's error: masked before it is stored.
    r.proxy_url = Some("http://${secret:PROXY_HOST}/".into());
    let err = from_row(&r, &mut Shared::default(), &secrets)
        .unwrap_err()
        .to_string();
    assert!(err.contains("names no port"), "{err}");
    assert!(!err.contains("proxy.internal.example"), "{err}");
}

#[test]
fn methods_are_case_insensitive() {
    let mut r = row();
    r.method = " post ".into();
    assert_eq!(
        from_row(&r, &mut Shared::default(), &Secrets::new())
            .unwrap()
            .method,
        Method::Post
    );
}
