//! OAUTH2 and BEARER targets against a real OAuth2 server (Authlib, see support/oauth2.rs),
//! as the operator sets them up in the row: the running daemon fetches one token for every
//! target with the same client credentials and reuses it (counted at the server), fetches one
//! new token once the server revoked the old one, and `targets ID test` describes a wrong
//! secret precisely, speaks `auth=post`, and sends a BEARER token. No secret shows.

use std::time::Duration;

use mysql::prelude::Queryable;

use crate::support::oauth2::OAuth2Server;
use crate::support::{stdout, wait_for, Daemon, TestDb};

const SECRET: &str = "cs-7f3a9c21d0e4";

/// Inserts a target of `resource` with these `authn` and `authn_parms`, checked every second;
/// its id.
fn add(db: &TestDb, name: &str, url: &str, authn: &str, parms: &str) -> u64 {
    let mut conn = db.conn();
    conn.exec_drop(
        "INSERT INTO targets (name, url, frequency, timeout, authn, authn_parms) \
         VALUES (?, ?, 1, 5, ?, ?)",
        (name, url, authn, parms),
    )
    .unwrap();
    conn.last_insert_id()
}

/// Passes counted for target `id`.
fn passes(db: &TestDb, id: u64) -> u64 {
    db.one(&format!("SELECT pass_count FROM targets WHERE id = {id}"))
}

/// Checks target `id` with `targets ID test`: its exit status and output.
fn test(db: &TestDb, id: u64) -> (Option<i32>, String) {
    let out = db.cli(&["targets", &id.to_string(), "test"]);
    (out.status.code(), stdout(&out))
}

#[test]
fn targets_sharing_client_credentials_share_one_token_and_fetch_one_more_after_a_revocation() {
    let db = TestDb::new();
    let server = OAuth2Server::start(&db.dir, 3600, &[("monitor", "basic", SECRET)]);
    let parms = format!(
        "token_url={},client_id=monitor,client_secret=${{secret:OAUTH_CS}},scope=read",
        server.token_url()
    );
    let ids: Vec<u64> = (0..3)
        .map(|i| {
            add(
                &db,
                &format!("api-{i}"),
                &server.resource_url(),
                "OAUTH2",
                &parms,
            )
        })
        .collect();
    db.write_config(&format!(
        "StatsInterval: 0\n[secrets]\nOAUTH_CS: {SECRET}\n"
    ));
    let daemon = Daemon::start(&db);
    wait_for(
        Duration::from_secs(20),
        "two passes of every target",
        || ids.iter().all(|id| passes(&db, *id) >= 2).then_some(()),
    );
    assert_eq!(
        server.token_requests("monitor"),
        1,
        "one token for three targets"
    );
    assert_eq!(server.stats("monitor")["auth"], "basic");
    assert_eq!(server.stats("monitor")["last_form"]["scope"], "read");

    server.revoke_all();
    let before: Vec<u64> = ids.iter().map(|id| passes(&db, *id)).collect();
    wait_for(
        Duration::from_secs(20),
        "two more passes of every target",
        || {
            let now = ids.iter().map(|id| passes(&db, *id));
            now.zip(&before).all(|(n, b)| n >= b + 2).then_some(())
        },
    );
    assert_eq!(
        server.token_requests("monitor"),
        2,
        "one new token however many targets were refused the old one"
    );
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    let fails: u64 = db.one("SELECT SUM(fail_count) FROM targets");
    assert_eq!(fails, 0, "a revoked token costs no failed check");
    let traces: Vec<String> = db.query("SELECT COALESCE(last_trace, '') FROM targets");
    assert!(
        traces.iter().any(|t| t.contains("(cached), expires in")),
        "{traces:?}"
    );
    let log = db.log();
    assert!(!log.contains(SECRET), "{log}");
    for trace in &traces {
        assert!(!trace.contains(SECRET), "{trace}");
        assert!(
            trace.contains(&format!(
                "oauth2 token obtained from {}",
                server.token_url()
            )),
            "{trace}"
        );
    }
}

#[test]
fn a_target_refused_its_cached_token_fetches_a_new_one_once_and_says_so() {
    let db = TestDb::new();
    let server = OAuth2Server::start(&db.dir, 3600, &[("monitor", "basic", SECRET)]);
    let parms = format!(
        "token_url={},client_id=monitor,client_secret={SECRET}",
        server.token_url()
    );
    let id = add(&db, "api", &server.resource_url(), "OAUTH2", &parms);
    db.write_config("StatsInterval: 0");
    let daemon = Daemon::start(&db);
    wait_for(Duration::from_secs(20), "a pass", || {
        (passes(&db, id) >= 1).then_some(())
    });
    server.revoke_all();
    let trace: String = wait_for(Duration::from_secs(20), "the renewal in a trace", || {
        let trace: String = db.one(&format!(
            "SELECT COALESCE(last_trace, '') FROM targets WHERE id = {id}"
        ));
        trace.contains("target refused").then_some(trace)
    });
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = trace
        .lines()
        .map(|l| l.split_once(") ").map_or(l, |p| p.1))
        .collect();
    let at = lines
        .iter()
        .position(|l| l.contains("target refused the cached oauth2 token: fetching a new one"))
        .unwrap();
    assert!(
        lines[at - 1].ends_with("response 401 Unauthorized"),
        "{trace}"
    );
    assert!(
        lines[at + 1..]
            .iter()
            .any(|l| l.contains("(new), expires in 3600s")),
        "{trace}"
    );
    assert!(trace.trim_end().ends_with("[Pass] OK"), "{trace}");
    assert_eq!(server.token_requests("monitor"), 2);
}

#[test]
fn a_wrong_secret_is_described_and_auth_post_and_bearer_work() {
    let db = TestDb::new();
    let server = OAuth2Server::start(
        &db.dir,
        3600,
        &[("monitor", "basic", SECRET), ("poster", "post", SECRET)],
    );
    let token_url = server.token_url();
    let wrong = add(
        &db,
        "wrong",
        &server.resource_url(),
        "OAUTH2",
        &format!("token_url={token_url},client_id=monitor,client_secret=not-{SECRET}"),
    );
    let (code, out) = test(&db, wrong);
    assert_eq!(code, Some(1), "{out}");
    let line = out.lines().next().unwrap();
    assert!(
        line.contains(&format!(
            " FAIL (oauth2 token request failed: 401 invalid_client at {token_url}"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("oauth2: POST {token_url} sent")),
        "{out}"
    );
    assert!(!out.contains(SECRET), "{out}");

    let post = add(
        &db,
        "post",
        &server.resource_url(),
        "OAUTH2",
        &format!("token_url={token_url},client_id=poster,client_secret={SECRET},auth=post"),
    );
    let (code, out) = test(&db, post);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(server.stats("poster")["auth"], "post");
    assert_eq!(server.stats("poster")["last_form"]["client_secret"], "***");

    // A token the operator got once, given to a BEARER target.
    let mut answer = ureq::post(&token_url)
        .header("authorization", basic("monitor", SECRET))
        .send_form([("grant_type", "client_credentials")])
        .unwrap();
    let json: serde_json::Value = answer.body_mut().read_json().unwrap();
    let token = json["access_token"].as_str().unwrap().to_string();
    let bearer = add(
        &db,
        "bearer",
        &server.resource_url(),
        "BEARER",
        &format!("token={token}"),
    );
    let (code, out) = test(&db, bearer);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("auth: BEARER token from authn_parms"), "{out}");
    assert!(!out.contains(&token), "{out}");
    let shown = stdout(&db.cli(&["targets", &bearer.to_string()]));
    assert!(shown.contains("token=***"), "{shown}");
    assert!(!shown.contains(&token), "{shown}");

    server.revoke_all();
    let (code, out) = test(&db, bearer);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL (target status:401 != 200)"), "{out}");
}

/// `Basic base64(id:secret)`.
fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    let pair = format!("{id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}
