//! Secrets never leave: a daemon run with Basic and Keystone targets (the Keystone endpoint
//! with a password in its URL), a database password and a password and a token in a target's
//! URL, then a grep over everything the run produced (log, stderr, CLI output, traces, status
//! descriptions, alert snapshots and traces). And a config file others can read that holds a
//! password draws a warning in the log.

use crate::support::{self as common, run, Daemon};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use base64::Engine;
use mysql::prelude::Queryable;
use serde_json::json;

use crate::support::servers::{serve, write_response};
use crate::support::{wait_for, TestDb};

const BASIC_PW: &str = "basic-S3CRET-pw";
const KEYSTONE_PW: &str = "ks-S3CRET-pw";
const TOKEN: &str = "tok-S3CRET-TOKEN-4242";
const DB_PW: &str = "db-S3CRET-pw";
const URL_PW: &str = "url-S3CRET-pw";
const URL_TOKEN: &str = "url-S3CRET-token";
const ENDPOINT_PW: &str = "endpoint-S3CRET-pw";

#[test]
fn no_secret_reaches_the_log_traces_alerts_or_cli_and_a_readable_config_is_warned_about() {
    let db = TestDb::new();
    let user = format!("u{}", &db.name[db.name.len() - 12..]);
    {
        let mut conn = db.conn();
        conn.query_drop(format!(
            "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{DB_PW}'"
        ))
        .unwrap();
        conn.query_drop(format!(
            "GRANT ALL ON {}.* TO '{user}'@'127.0.0.1'",
            db.name
        ))
        .unwrap();
    }
    db.write_config(&format!(
        "StatsInterval: 0\n[database]\nUser: {user}\nPassword: {DB_PW}"
    ));
    std::fs::set_permissions(db.config_path(), std::fs::Permissions::from_mode(0o644)).unwrap();

    let basic_header = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("ops:{BASIC_PW}"))
    );
    let expected = basic_header.clone();
    // Passes with the right credentials; the second path refuses them, to raise an alert.
    let basic = serve(move |req, w| {
        let ok = req.header("authorization") == Some(expected.as_str()) && req.path == "/ok";
        let status = if ok { "200 OK" } else { "401 Unauthorized" };
        write_response(w, status, &[("WWW-Authenticate", "Basic realm=\"x\"")], b"")
    });
    let keystone = serve(|req, w| {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        if body["auth"]["identity"]["password"]["user"]["password"] != KEYSTONE_PW {
            return write_response(w, "401 Unauthorized", &[], b"{}");
        }
        let expires = (chrono::Utc::now() + chrono::Duration::seconds(3600))
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let answer = json!({"token": {"expires_at": expires}}).to_string();
        write_response(
            w,
            "201 Created",
            &[("X-Subject-Token", TOKEN)],
            answer.as_bytes(),
        )
    });
    // Accepts the token on /ok, answers 500 (echoing nothing) on /broken.
    let protected = serve(
        |req, w| match (req.header("x-auth-token"), req.path.as_str()) {
            (Some(TOKEN), "/ok") => write_response(w, "200 OK", &[], b"ok"),
            (Some(TOKEN), _) => write_response(w, "500 Internal Server Error", &[], b"oops"),
            _ => write_response(w, "401 Unauthorized", &[], b""),
        },
    );

    let basic_parms = format!("user=ops,password={BASIC_PW}");
    let ks_parms = format!(
        "user=ops,password={KEYSTONE_PW},osauthendpoint={},tenantid=t1",
        keystone
            .url("/v3")
            .replace("http://", &format!("http://ks:{ENDPOINT_PW}@"))
    );
    let url_with_password = basic
        .url("/ok")
        .replace("http://", &format!("http://ops:{URL_PW}@"));
    // Refused, so its alert's snapshot holds the URL.
    let refused_url_with_secrets = format!(
        "{}?a=1&token={URL_TOKEN}",
        basic
            .url("/no")
            .replace("http://", &format!("http://ops:{URL_PW}@"))
    );
    let rows = [
        ("basic ok", basic.url("/ok"), "BASIC", basic_parms.clone()),
        (
            "basic refused",
            basic.url("/no"),
            "BASIC",
            basic_parms.clone(),
        ),
        (
            "keystone ok",
            protected.url("/ok"),
            "OPENSTACK",
            ks_parms.clone(),
        ),
        (
            "keystone broken",
            protected.url("/broken"),
            "OPENSTACK",
            ks_parms.clone(),
        ),
        (
            "password in url",
            url_with_password,
            "BASIC",
            basic_parms.clone(),
        ),
        (
            "secrets in a refused url",
            refused_url_with_secrets,
            "BASIC",
            basic_parms,
        ),
    ];
    let mut ids = Vec::new();
    for (name, url, authn, parms) in &rows {
        let mut conn = db.conn();
        conn.exec_drop(
            "INSERT INTO targets (name, url, authn, authn_parms, frequency, timeout) \
             VALUES (?, ?, ?, ?, 1, 2)",
            (name, url, authn, parms),
        )
        .unwrap();
        ids.push(conn.last_insert_id());
    }

    let daemon = Daemon::start(&db);
    wait_for(
        Duration::from_secs(20),
        "three checks of every target",
        || {
            ids.iter()
                .all(|id| run::counted_checks(&db, *id) >= 3)
                .then_some(())
        },
    );
    let (code, _) = daemon.terminate(Duration::from_secs(15));
    assert_eq!(code, Some(0));

    // The outcomes are what the credentials make them, so the secrets were really used.
    let statuses: Vec<String> = db.query("SELECT status FROM targets ORDER BY id");
    assert_eq!(statuses, ["PASS", "FAIL", "PASS", "FAIL", "PASS", "FAIL"]);
    let alerts: i64 = db.one("SELECT COUNT(*) FROM alerts");
    assert_eq!(alerts, 3, "the three failing targets raised their alerts");
    let snapshot: String = db.one(&format!(
        "SELECT snapshot FROM alerts WHERE target_id = {}",
        ids[5]
    ));
    let snapshot: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
    let url = snapshot["url"].as_str().unwrap();
    assert!(url.starts_with("http://***@127.0.0.1:") && url.ends_with("/no?a=1&token=***"));

    let mut produced = vec![("log", db.log()), ("stderr", run::stderr(&db))];
    let mut cli = vec![vec!["targets".to_string()]];
    for id in &ids {
        cli.push(vec!["targets".into(), id.to_string()]);
    }
    cli.push(vec!["targets".into(), ids[0].to_string(), "test".into()]);
    cli.push(vec!["targets".into(), ids[3].to_string(), "test".into()]);
    for args in &cli {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = db.cli(&args);
        produced.push(("cli stdout", common::stdout(&out)));
        produced.push(("cli stderr", common::stderr(&out)));
    }
    let detail = common::stdout(&db.cli(&["targets", &ids[0].to_string()]));
    assert!(detail.contains("password=***"), "{detail}");
    let test_run = common::stdout(&db.cli(&["targets", &ids[2].to_string(), "test"]));
    assert!(test_run.contains("PASS"), "{test_run}");
    produced.push(("cli stdout", test_run));
    let traces: Vec<(Option<String>, Option<String>)> =
        db.query("SELECT last_trace, status_description FROM targets");
    for (trace, description) in traces {
        produced.push(("targets.last_trace", trace.unwrap_or_default()));
        produced.push((
            "targets.status_description",
            description.unwrap_or_default(),
        ));
    }
    let alert_rows: Vec<(String, String)> = db.query("SELECT snapshot, trace FROM alerts");
    for (snapshot, trace) in alert_rows {
        produced.push(("alerts.snapshot", snapshot));
        produced.push(("alerts.trace", trace));
    }
    let secrets = [
        BASIC_PW,
        KEYSTONE_PW,
        TOKEN,
        DB_PW,
        URL_PW,
        URL_TOKEN,
        ENDPOINT_PW,
        &basic_header["Basic ".len()..],
    ];
    let mut bytes = 0;
    for (what, text) in &produced {
        bytes += text.len();
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {what}:\n{text}"
            );
        }
        assert!(
            !text.to_ascii_lowercase().contains("authorization: basic"),
            "an Authorization value in {what}:\n{text}"
        );
        assert!(!text.contains("panicked"), "{what}:\n{text}");
    }
    // The traces say what was done, without the values.
    let trace: String = db.one(&format!(
        "SELECT last_trace FROM targets WHERE id = {}",
        ids[0]
    ));
    assert!(trace.contains("BASIC as user ops"), "{trace}");

    let warned = run::lines_with(
        &db,
        "holds a database password and is readable by every user",
    );
    assert_eq!(warned.len(), 1, "the daemon logs the readable config once");
    assert!(warned[0].contains(" WARN "), "{}", warned[0]);
    assert!(warned[0].contains("chmod 640"), "{}", warned[0]);

    let mut conn = db.conn();
    conn.query_drop(format!("DROP USER '{user}'@'127.0.0.1'"))
        .unwrap();
    run::figures(
        "secrets",
        json!({
            "fault": "BASIC, Keystone v3 and URL passwords, a URL token, a Keystone endpoint \
                      password and a database password in a 0644 config",
            "places_searched": produced.len(),
            "bytes_searched": bytes,
            "secrets_searched_for": secrets.len(),
            "leaks": 0,
            "readable_config_warning_in_log": true,
        }),
    );
}
