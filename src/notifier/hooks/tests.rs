//! The unit tests of [`super`]: notifier rows validated into hooks, and the requests each kind
//! sends.

use super::*;

fn row(kind: &str, address: &str, params: &str) -> NotifierRow {
    NotifierRow {
        id: 3,
        name: "n".into(),
        kind: kind.into(),
        address: address.into(),
        params: params.into(),
        pass_count: 0,
        fail_count: 0,
        enabled: true,
    }
}

#[test]
fn params_are_checked_and_pagerduty_needs_a_routing_key() {
    let pd = row("PAGERDUTY", "", "");
    let e = Hook::build(&pd, Kind::PagerDuty).unwrap_err();
    assert_eq!(e.to_string(), "notifier 3: PAGERDUTY needs routing_key=");
    assert!(e.is_config());
    let w = row("WEBHOOK", "not a url", "");
    assert!(Hook::build(&w, Kind::Webhook)
        .unwrap_err()
        .to_string()
        .contains("is not an http(s) URL"));
    let w = row("WEBHOOK", "http://127.0.0.1/x", "header=X Bad: 1");
    assert!(Hook::build(&w, Kind::Webhook)
        .unwrap_err()
        .to_string()
        .contains("header= takes"));
    let w = row("WEBHOOK", "http://127.0.0.1/x", "secret");
    assert_eq!(
        Hook::build(&w, Kind::Webhook).unwrap_err().to_string(),
        "notifier 3: parameter `secret` has no `=value`"
    );
    let ok = row(
        "PAGERDUTY",
        "",
        "routing_key=abc,endpoint=http://127.0.0.1:9/e",
    );
    assert_eq!(
        Hook::build(&ok, Kind::PagerDuty).unwrap().shown(),
        "http://127.0.0.1:9/e"
    );
}

#[test]
fn a_failed_post_says_where_to_without_the_token() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/services/T0/B0/tok-123");
    let hook = Hook::build(&row("SLACK", &url, ""), Kind::Slack).unwrap();
    let alert = Alert {
        id: 1,
        target_id: 7,
        kind: "FAILURE".into(),
        snapshot: "{}".into(),
        trace: String::new(),
    };
    let e = hook.send(&alert, None, Duration::from_secs(2)).unwrap_err();
    assert!(!e.is_config());
    let text = e.to_string();
    let to = format!("POST to http://127.0.0.1:{port}/*** failed: ");
    assert!(text.starts_with(&to), "{text}");
    assert!(!text.contains("tok-123") && !format!("{e:?}").contains("tok-123"));
    assert!(
        std::error::Error::source(&e).is_some(),
        "the transport's error is kept"
    );
}

#[test]
fn slack_escapes_its_markup_and_links_the_status_page() {
    let alert = Alert {
        id: 1,
        target_id: 7,
        kind: "FAILURE".into(),
        snapshot: json!({
            "name": "<b>shop</b> & co",
            "url": "http://127.0.0.1/",
            "status_description": "target status:500 != 200",
        })
        .to_string(),
        trace: String::new(),
    };
    let slack = row("SLACK", "http://127.0.0.1:9/s", "");
    let hook = Hook::build(&slack, Kind::Slack)
        .unwrap()
        .with_pages(Some("https://status.example.com".into()));
    let body = hook.body(&alert, None);
    assert_eq!(
        body["text"],
        "DOWN: &lt;b&gt;shop&lt;/b&gt; &amp; co (http://127.0.0.1/): target status:500 != 200 \
             <https://status.example.com/target/7|status page>"
    );
    let without = hook.with_pages(None);
    assert!(!without.body(&alert, None)["text"]
        .as_str()
        .unwrap()
        .contains("status page"));
}

fn storm(n: u64, kind: &str) -> Vec<Alert> {
    (1..=n)
        .map(|i| Alert {
            id: 1000 + i,
            target_id: i,
            kind: kind.into(),
            snapshot: json!({
                "name": format!("api-{i}"),
                "url": "http://127.0.0.1/",
                "status_description": "connect: connection refused",
                "last_updated": "2026-11-24 10:05:00",
            })
            .to_string(),
            trace: "step\n[Fail] connect: connection refused".into(),
        })
        .collect()
}

fn batch<'a>(
    alerts: &'a [Alert],
    incidents: &'a BTreeMap<u64, Incident>,
    closes: (&'a [u64], &'a [u64]),
) -> Batch<'a> {
    Batch {
        id: alerts[0].id,
        notifier: 3,
        alerts,
        incidents,
        closes_alone: closes.0,
        closes_groups: closes.1,
    }
}

#[test]
fn a_grouped_webhook_is_one_body_with_every_alerts_own_body() {
    let alerts = storm(2000, "FAILURE");
    let incidents = BTreeMap::new();
    let hook = Hook::build(&row("WEBHOOK", "http://127.0.0.1:9/w", ""), Kind::Webhook)
        .unwrap()
        .with_pages(Some("https://status.example.com".into()));
    let bodies = hook.group_bodies(&batch(&alerts, &incidents, (&[], &[])));
    assert_eq!(bodies.len(), 1);
    let body: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body["kind"], "GROUP");
    assert_eq!(body["summary"], "2000 targets FAILED");
    assert_eq!(body["group"]["id"], 1001);
    assert_eq!(body["group"]["count"], 2000);
    assert_eq!(body["group"]["failed"], 2000);
    assert_eq!(body["status_page"], "https://status.example.com/");
    let entries = body["alerts"].as_array().unwrap();
    assert_eq!(entries.len(), 2000);
    // Each entry is the body a single alert gets, with its alert id.
    let mut single = hook.body(&alerts[6], None);
    single["alert_id"] = json!(1007);
    assert_eq!(entries[6], single);
    assert_eq!(
        entries[6]["status_page"],
        "https://status.example.com/target/7"
    );
}

#[test]
fn a_grouped_slack_message_lists_twenty_then_counts() {
    let alerts = storm(50, "SUCCESS");
    let incidents = BTreeMap::new();
    let hook = Hook::build(&row("SLACK", "http://127.0.0.1:9/s", ""), Kind::Slack).unwrap();
    let bodies = hook.group_bodies(&batch(&alerts, &incidents, (&[], &[])));
    let text = serde_json::from_str::<Value>(&bodies[0]).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Skypunch: 50 targets recovered");
    assert_eq!(lines[1], "RECOVERED: api-1 (http://127.0.0.1/)");
    assert_eq!(lines.len(), 22);
    assert_eq!(lines[21], "…and 30 more");
}

#[test]
fn pagerduty_pages_once_per_group_and_resolves_what_recovered() {
    let mut alerts = storm(3, "FAILURE");
    alerts[2].kind = "SUCCESS".into();
    alerts.push(Alert {
        kind: "CERTIFICATE".into(),
        ..alerts[0].clone()
    });
    let incidents = BTreeMap::new();
    let pd = row(
        "PAGERDUTY",
        "",
        "routing_key=rk,endpoint=http://127.0.0.1:9/e",
    );
    let hook = Hook::build(&pd, Kind::PagerDuty).unwrap();
    let closes_alone = [1003];
    let closes_groups = [77, 90];
    let b = batch(&alerts, &incidents, (&closes_alone, &closes_groups));
    let events: Vec<Value> = hook
        .group_bodies(&b)
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let keys: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["event_action"].as_str().unwrap(),
                e["dedup_key"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("trigger", "skypunch-group-3-1001"),
            ("trigger", "skypunch-group-3-1001-certificates"),
            ("resolve", "skypunch-target-3-incident-0"),
            ("resolve", "skypunch-group-3-77"),
            ("resolve", "skypunch-group-3-90"),
        ]
    );
    let trigger = &events[0]["payload"];
    assert_eq!(trigger["summary"], "Skypunch: 2 targets FAILED");
    assert_eq!(trigger["severity"], "critical");
    assert_eq!(trigger["custom_details"]["count"], 2);
    assert_eq!(trigger["custom_details"]["targets"][1]["name"], "api-2");
    assert_eq!(events[1]["payload"]["severity"], "warning");
    // Only recoveries of pages that stay open: nothing to post.
    let calm = storm(2, "SUCCESS");
    assert!(hook
        .group_bodies(&batch(&calm, &incidents, (&[], &[])))
        .is_empty());
}
