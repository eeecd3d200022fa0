//! WEBHOOK, SLACK and PAGERDUTY notifiers against a real local receiver: each gets its
//! documented body, the webhook's signature verifies, a delivery answered 500 or refused is
//! retried until it gets through, PagerDuty's trigger and resolve share one dedup key, and no
//! secret reaches the log or the CLI.

use std::time::Duration;

use crate::support::http::HttpServer;
use crate::support::notify::add_notifier;
use crate::support::receiver::Receiver;
use crate::support::servers::ClosedPort;
use crate::support::{stdout, wait_for, Daemon, TestDb};

const WAIT: Duration = Duration::from_secs(30);

fn hmac_hex(key: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn webhook_slack_and_pagerduty_get_their_bodies_retried_until_delivered() {
    let db = TestDb::new();
    // The status pages are published behind a proxy: alerts link there.
    db.write_config(
        "StatsInterval: 0\n[notifications]\nRetryInitial: 1\nRetryMax: 2\n\
         [http]\nPublicUrl: https://status.example.com/",
    );
    let receiver = Receiver::start(500); // the first deliveries fail
    let closed = ClosedPort::new();
    let webhook = add_notifier(
        &db,
        "hook",
        "WEBHOOK",
        &receiver.url("/hook"),
        "secret=sh-hmac-key,header=X-Team: payments",
        true,
    );
    let slack_url = receiver.url("/services/T0/B0/slack-token-xyz");
    add_notifier(&db, "chat", "SLACK", &slack_url, "", true);
    // PagerDuty's endpoint refuses connections at first.
    let pd_params = format!(
        "routing_key=pd-routing-key-123,endpoint=http://127.0.0.1:{}/pd",
        closed.port
    );
    let pd = add_notifier(&db, "pager", "PAGERDUTY", "", &pd_params, true);
    let web = HttpServer::start(503);
    let id = db.add_watched("shop", &web.url("/"));
    let _daemon = Daemon::start(&db);

    wait_for(WAIT, "a failed webhook delivery", || {
        (!receiver.to("/hook").is_empty()).then_some(())
    });
    receiver.set_status(200);
    db.exec(&format!(
        "UPDATE notifiers SET params = 'routing_key=pd-routing-key-123,endpoint={}' WHERE id = {pd}",
        receiver.url("/pd")
    ));
    wait_for(WAIT, "the FAILURE delivered to all three", || {
        let sent = db.one::<u64>("SELECT COUNT(*) FROM alert_deliveries WHERE state = 'SENT'");
        (sent == 3).then_some(())
    });
    web.set_status(200);
    wait_for(WAIT, "the SUCCESS delivered to all three", || {
        let sent = db.one::<u64>("SELECT COUNT(*) FROM alert_deliveries WHERE state = 'SENT'");
        (sent == 6).then_some(())
    });

    // The webhook: retried after the 500, signed, with the documented body.
    let hooks = receiver.to("/hook");
    assert!(hooks.len() >= 3, "{hooks:?}");
    let last = hooks.last().unwrap();
    let body = last.json();
    assert_eq!(body["kind"], "SUCCESS");
    assert_eq!(body["target"]["id"], id);
    assert_eq!(body["target"]["name"], "shop");
    assert_eq!(body["status"], "PASS");
    let page = format!("https://status.example.com/target/{id}");
    assert_eq!(body["status_page"], page.as_str());
    assert!(body["time"].as_str().unwrap().ends_with('Z'));
    assert!(body["incident"]["id"].as_u64().unwrap() > 0);
    let failure = hooks
        .iter()
        .rev()
        .find(|r| r.json()["kind"] == "FAILURE")
        .unwrap();
    assert_eq!(failure.json()["http_status"], 503);
    assert!(failure.json()["reason"].as_str().unwrap().contains("503"));
    for r in &hooks {
        let expected = format!("sha256={}", hmac_hex("sh-hmac-key", &r.body));
        assert_eq!(r.header("x-skypunch-signature"), Some(expected.as_str()));
        assert_eq!(r.header("x-team"), Some("payments"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }

    // Slack: one line per state change.
    let slack = receiver.to("/services/T0/B0/slack-token-xyz");
    let texts: Vec<String> = slack
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("DOWN: shop (") && t.contains("503")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("RECOVERED: shop (")),
        "{texts:?}"
    );
    let link = format!(" <{page}|status page>");
    assert!(texts.iter().all(|t| t.ends_with(&link)), "{texts:?}");

    // PagerDuty: trigger then resolve, one dedup key, the routing key in the body.
    let events: Vec<serde_json::Value> = receiver.to("/pd").iter().map(|r| r.json()).collect();
    let triggers: Vec<_> = events
        .iter()
        .filter(|e| e["event_action"] == "trigger")
        .collect();
    let resolves: Vec<_> = events
        .iter()
        .filter(|e| e["event_action"] == "resolve")
        .collect();
    assert_eq!((triggers.len(), resolves.len()), (1, 1), "{events:?}");
    assert_eq!(triggers[0]["dedup_key"], resolves[0]["dedup_key"]);
    assert_eq!(triggers[0]["routing_key"], "pd-routing-key-123");
    assert_eq!(triggers[0]["payload"]["severity"], "critical");
    assert_eq!(triggers[0]["links"][0]["href"], page.as_str());

    // A refused connection and a 500 were logged and retried; no secret anywhere.
    let log = db.log();
    assert!(log.contains("not sent (attempt 1)"), "{log}");
    assert!(log.contains("answered HTTP 500"), "{log}");
    let listed = stdout(&db.cli(&["notifiers"]));
    let detail = stdout(&db.cli(&["notifiers", &webhook.to_string()]));
    let pd_detail = stdout(&db.cli(&["notifiers", &pd.to_string()]));
    for secret in ["sh-hmac-key", "slack-token-xyz", "pd-routing-key-123"] {
        for (what, text) in [
            ("log", &log),
            ("list", &listed),
            ("detail", &detail),
            ("pd", &pd_detail),
        ] {
            assert!(!text.contains(secret), "{secret} in the {what}:\n{text}");
        }
    }
    assert!(detail.contains("secret=***"), "{detail}");
    assert!(pd_detail.contains("routing_key=***"), "{pd_detail}");
    assert!(
        listed.contains(&format!("http://127.0.0.1:{}/***", receiver.port)),
        "{listed}"
    );
}

#[test]
fn notifiers_id_test_posts_a_test_message() {
    let db = TestDb::new();
    db.write_config("StatsInterval: 0");
    let receiver = Receiver::start(200);
    let hook = add_notifier(&db, "hook", "WEBHOOK", &receiver.url("/hook"), "", true);
    let pd_params = format!("routing_key=k1,endpoint={}", receiver.url("/pd"));
    let pd = add_notifier(&db, "pager", "PAGERDUTY", "", &pd_params, true);
    let out = db.cli(&["notifiers", &hook.to_string(), "test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("test message sent to http://127.0.0.1:"));
    assert_eq!(receiver.to("/hook")[0].json()["kind"], "TEST");
    let out = db.cli(&["notifiers", &pd.to_string(), "test"]);
    assert!(out.status.success());
    let actions: Vec<String> = receiver
        .to("/pd")
        .iter()
        .map(|r| r.json()["event_action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actions,
        ["trigger", "resolve"],
        "a test leaves no incident open"
    );
}
