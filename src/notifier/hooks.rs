//! The HTTP notifier types: `WEBHOOK` (a documented JSON body, optionally signed with
//! HMAC-SHA256), `SLACK` (an incoming-webhook message, also taken by Mattermost and
//! Rocket.Chat) and `PAGERDUTY` (Events API v2: trigger on FAILURE, resolve on SUCCESS, one
//! dedup key per target and incident). One POST per delivery, bounded by `SmtpTimeout`; a 2xx
//! answer is delivered, anything else is a failure retried with the outbox's backoff.
//!
//! The JSON fields carry the row's text as it is (serde escapes it for JSON); the texts a
//! person reads as one line, Slack's message and PagerDuty's summary, go through
//! [`crate::base::text`]'s sanitizers.

use std::time::Duration;

use serde_json::{json, Value};

use crate::base::authn::Secret;
use crate::base::model::{Alert, Incident};
use crate::db::notifiers::NotifierRow;

/// PagerDuty's Events API v2 endpoint, unless the notifier's params name another.
pub const PAGERDUTY_EVENTS: &str = "https://events.pagerduty.com/v2/enqueue";
/// The header that carries a WEBHOOK body's signature: `sha256=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Skypunch-Signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Webhook,
    Slack,
    PagerDuty,
}

impl Kind {
    /// The notifier type of a row, when it is one of these.
    pub fn of(row: &NotifierRow) -> Option<Kind> {
        match row.kind.trim().to_ascii_uppercase().as_str() {
            "WEBHOOK" => Some(Kind::Webhook),
            "SLACK" => Some(Kind::Slack),
            "PAGERDUTY" => Some(Kind::PagerDuty),
            _ => None,
        }
    }
}

/// A validated HTTP notifier.
#[derive(Debug)]
pub struct Hook {
    kind: Kind,
    url: crate::base::urls::WebUrl,
    /// WEBHOOK: the HMAC key; PAGERDUTY: the routing key.
    secret: Option<Secret>,
    header: Option<(String, String)>,
    /// The status pages' base URL (`[http] PublicUrl` or the listen address), for a link to
    /// the target's page; `None` with the HTTP server off.
    pages: Option<String>,
}

impl Hook {
    /// Validates the row: the URL (the address, or PAGERDUTY's `endpoint=`), and the params.
    pub fn build(row: &NotifierRow, kind: Kind) -> Result<Hook, String> {
        let bad = |what: String| format!("notifier {}: {what}", row.id);
        let params = crate::base::authn::split_params(&row.params).map_err(bad)?;
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let address = match kind {
            Kind::PagerDuty => get("endpoint").unwrap_or_else(|| PAGERDUTY_EVENTS.into()),
            _ => row.address.trim().to_string(),
        };
        let url = crate::base::urls::WebUrl::parse(&address).map_err(|e| {
            bad(format!(
                "`{}` is not an http(s) URL: {e}",
                crate::base::urls::shown(&address)
            ))
        })?;
        let secret = match kind {
            Kind::Webhook => get("secret").map(Secret::new),
            Kind::PagerDuty => Some(Secret::new(
                get("routing_key").ok_or_else(|| bad("PAGERDUTY needs routing_key=".into()))?,
            )),
            Kind::Slack => None,
        };
        let header = match get("header") {
            Some(h) => {
                Some(parse_header(&h).ok_or_else(|| bad("header= takes `Name: value`".into()))?)
            }
            None => None,
        };
        Ok(Hook {
            kind,
            url,
            secret,
            header,
            pages: None,
        })
    }

    /// Links each message to the target's status page under `base` (see
    /// [`crate::config::HttpConfig::page_base`]).
    pub fn with_pages(mut self, base: Option<String>) -> Hook {
        self.pages = base;
        self
    }

    /// Where deliveries go, with any secret in it masked: a Slack URL's path is its token.
    pub fn shown(&self) -> String {
        masked(self.kind, self.url.shown())
    }

    /// POSTs the alert; the answer's status, or why it failed (never a secret).
    pub fn send(
        &self,
        alert: &Alert,
        incident: Option<&Incident>,
        timeout: Duration,
    ) -> Result<u16, String> {
        let body = self.body(alert, incident).to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        let mut request = agent
            .post(self.url.as_str())
            .header("content-type", "application/json")
            .header("user-agent", crate::base::version::USER_AGENT);
        if let (Kind::Webhook, Some(key)) = (self.kind, &self.secret) {
            request = request.header(SIGNATURE_HEADER, signature(key.expose(), &body));
        }
        if let Some((name, value)) = &self.header {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send(body.as_bytes()).map_err(|e| {
            format!(
                "POST to {} failed: {}",
                self.shown(),
                hide(&e.to_string(), self)
            )
        })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(format!("POST to {} answered HTTP {status}", self.shown()))
        }
    }

    /// `skypunch notifiers ID test`: a message of kind TEST (PagerDuty: an event triggered and
    /// resolved at once, under a key of its own); the answer's status.
    pub fn send_test(&self, row: &NotifierRow, timeout: Duration) -> Result<u16, String> {
        let test = Alert {
            id: 0,
            target_id: 0,
            kind: "TEST".into(),
            snapshot: json!({
                "name": format!("skypunch notifier {} ({})", row.id, row.name),
                "status": "TEST",
                "status_description": "a test message from `skypunch notifiers ID test`",
            })
            .to_string(),
            trace: String::new(),
        };
        // The notifier's own id keys PagerDuty's test incident, so its resolve finds it.
        let incident = Incident {
            id: row.id,
            ..Incident::default()
        };
        let status = self.send(&test, Some(&incident), timeout)?;
        if self.kind == Kind::PagerDuty {
            let resolve = Alert {
                kind: "SUCCESS".into(),
                ..test
            };
            self.send(&resolve, Some(&incident), timeout)?;
        }
        Ok(status)
    }

    /// The JSON body of one delivery.
    pub(crate) fn body(&self, alert: &Alert, incident: Option<&Incident>) -> Value {
        let mut facts = Facts::of(alert, incident);
        if facts.id != 0 {
            facts.page = self
                .pages
                .as_ref()
                .map(|base| format!("{base}/target/{}", facts.id));
        }
        match self.kind {
            Kind::Webhook => facts.webhook(),
            Kind::Slack => json!({ "text": facts.slack() }),
            Kind::PagerDuty => facts.pagerduty(self.secret.as_ref().map_or("", Secret::expose)),
        }
    }
}

/// The facts every body is made of, from the alert's snapshot.
struct Facts {
    kind: &'static str,
    id: u64,
    name: String,
    url: String,
    status: String,
    reason: String,
    http_status: Value,
    at: String,
    /// The incident's id (0: none) and start (`YYYY-MM-DD HH:MM:SS.mmm` UTC, empty: none).
    incident_id: u64,
    incident_started: String,
    trace: String,
    /// How long the target has been down (reminders).
    down: String,
    /// The certificate's expiry (`YYYY-MM-DD HH:MM:SS` UTC) and issuer, when known.
    cert: Option<(String, String)>,
    /// How long the certificate had left at the check (`in 5 days`).
    cert_left: String,
    /// The target's status page, when the HTTP server is on.
    page: Option<String>,
}

/// When an incident started, as the bodies give it: UTC to the millisecond; empty for the
/// test message's stand-in, which has no start.
fn started_text(incident: &Incident) -> String {
    if incident.started == 0 {
        return String::new();
    }
    chrono::DateTime::from_timestamp_millis(incident.started)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

impl Facts {
    fn of(alert: &Alert, incident: Option<&Incident>) -> Facts {
        let snap: Value = serde_json::from_str(&alert.snapshot).unwrap_or(Value::Null);
        let text = |key: &str| {
            snap.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let kind = match alert.kind.to_ascii_uppercase().as_str() {
            "SUCCESS" => "SUCCESS",
            "TEST" => "TEST",
            "REMINDER" => "REMINDER",
            "CERTIFICATE" => "CERTIFICATE",
            _ => "FAILURE",
        };
        let down = snap
            .as_object()
            .and_then(super::message::down_for)
            .unwrap_or_default();
        Facts {
            kind,
            id: alert.target_id,
            name: text("name"),
            url: crate::base::urls::shown(&text("url")),
            status: text("status"),
            reason: text("status_description"),
            http_status: snap.get("last_http_status").cloned().unwrap_or(Value::Null),
            at: Some(text("last_updated"))
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()),
            incident_id: incident.map_or(0, |i| i.id),
            incident_started: incident.map(started_text).unwrap_or_default(),
            trace: alert.trace.clone(),
            down,
            cert: Some((text("cert_expires_at"), text("cert_issuer")))
                .filter(|(expires, _)| !expires.is_empty()),
            cert_left: snap
                .as_object()
                .and_then(super::message::cert_left)
                .unwrap_or_default(),
            page: None,
        }
    }

    fn webhook(&self) -> Value {
        json!({
            "kind": self.kind,
            "target": { "id": self.id, "name": self.name, "url": self.url },
            "status": self.status,
            "reason": self.reason,
            "http_status": self.http_status,
            "time": format!("{}Z", self.at.replace(' ', "T")),
            "incident": { "id": self.incident_id, "started": self.incident_started },
            "down_for": self.down,
            "certificate": self.cert.as_ref().map(|(expires, issuer)| json!({
                "expires": format!("{}Z", expires.replace(' ', "T")),
                "issuer": issuer,
            })),
            "trace": self.trace,
            "status_page": self.page,
        })
    }

    /// The line for Slack (and Mattermost, Rocket.Chat): escaped by [`crate::base::text::slack`],
    /// then a link to the target's status page.
    fn slack(&self) -> String {
        let line = crate::base::text::slack(&self.line());
        match &self.page {
            Some(page) => format!("{line} <{page}|status page>"),
            None => line,
        }
    }

    /// One line: the state, the name, the reason.
    fn line(&self) -> String {
        match self.kind {
            "SUCCESS" => format!("RECOVERED: {} ({})", self.name, self.url),
            "TEST" => format!("TEST: {}: {}", self.name, self.reason),
            "REMINDER" => format!(
                "STILL DOWN ({}): {} ({}): {}",
                self.down, self.name, self.url, self.reason
            ),
            "CERTIFICATE" => format!(
                "CERTIFICATE EXPIRES {}: {} ({}), issued by {}",
                self.cert_left,
                self.name,
                self.url,
                self.cert.as_ref().map_or("", |(_, issuer)| issuer.as_str())
            ),
            _ => format!("DOWN: {} ({}): {}", self.name, self.url, self.reason),
        }
    }

    /// One PagerDuty alert per target and incident; a certificate warning is one of its own
    /// per certificate, never resolved by the target's recovery.
    fn dedup_key(&self) -> String {
        match (self.id, self.kind, &self.cert) {
            (0, _, _) => format!("skypunch-test-notifier-{}", self.incident_id),
            (id, "CERTIFICATE", Some((expires, _))) => {
                format!(
                    "skypunch-target-{id}-certificate-{}",
                    expires.replace(' ', "T")
                )
            }
            (id, _, _) => format!("skypunch-target-{id}-incident-{}", self.incident_id),
        }
    }

    fn pagerduty(&self, routing_key: &str) -> Value {
        let action = if self.kind == "SUCCESS" {
            "resolve"
        } else {
            "trigger"
        };
        let links: Vec<Value> = self
            .page
            .iter()
            .map(|href| json!({ "href": href, "text": "status page" }))
            .collect();
        json!({
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": self.dedup_key(),
            "links": links,
            "payload": {
                // Shown as one line in PagerDuty's lists: hidden characters shown escaped.
                "summary": crate::base::text::visible(&self.line()),
                "source": self.url,
                "severity": if self.kind == "CERTIFICATE" { "warning" } else { "critical" },
                "timestamp": format!("{}Z", self.at.replace(' ', "T")),
                "custom_details": {
                    "target_id": self.id,
                    "reason": self.reason,
                    "http_status": self.http_status,
                    "incident_started": self.incident_started,
                    "trace": self.trace,
                },
            },
        })
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A notifier's address as every output shows it: a Slack URL without its token, a webhook
/// URL with its secrets masked, an e-mail address as it is.
pub fn shown_address(row: &NotifierRow) -> String {
    match Kind::of(row) {
        Some(kind) => masked(kind, &crate::base::urls::shown(row.address.trim())),
        None => row.address.clone(),
    }
}

/// A URL (already in its display form) as a notifier of `kind` shows it.
fn masked(kind: Kind, shown: &str) -> String {
    match kind {
        Kind::Slack => format!("{}/***", origin(shown)),
        _ => shown.to_string(),
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

fn parse_header(h: &str) -> Option<(String, String)> {
    let (name, value) = h.split_once(':')?;
    let name = name.trim();
    let fine = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    fine.then(|| (name.to_string(), value.trim().to_string()))
}

/// An error's text without the notifier's secrets (a URL with a token in its path).
fn hide(text: &str, hook: &Hook) -> String {
    let mut out = text.replace(hook.url.as_str(), &hook.shown());
    if let Some(s) = &hook.secret {
        if !s.expose().is_empty() {
            out = out.replace(s.expose(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn params_are_checked_and_pagerduty_needs_a_routing_key() {
        let row = |kind: &str, address: &str, params: &str| NotifierRow {
            id: 3,
            name: "n".into(),
            kind: kind.into(),
            address: address.into(),
            params: params.into(),
            pass_count: 0,
            fail_count: 0,
            enabled: true,
        };
        let pd = row("PAGERDUTY", "", "");
        let e = Hook::build(&pd, Kind::PagerDuty).unwrap_err();
        assert_eq!(e, "notifier 3: PAGERDUTY needs routing_key=");
        let w = row("WEBHOOK", "not a url", "");
        assert!(Hook::build(&w, Kind::Webhook)
            .unwrap_err()
            .contains("is not an http(s) URL"));
        let w = row("WEBHOOK", "http://127.0.0.1/x", "header=X Bad: 1");
        assert!(Hook::build(&w, Kind::Webhook)
            .unwrap_err()
            .contains("header= takes"));
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
        let hook = Hook {
            kind: Kind::Slack,
            url: crate::base::urls::WebUrl::parse("http://127.0.0.1:9/s").unwrap(),
            secret: None,
            header: None,
            pages: Some("https://status.example.com".into()),
        };
        let body = hook.body(&alert, None);
        assert_eq!(
            body["text"],
            "DOWN: &lt;b&gt;shop&lt;/b&gt; &amp; co (http://127.0.0.1/): target status:500 != 200 \
             <https://status.example.com/target/7|status page>"
        );
        let without = Hook {
            pages: None,
            ..hook
        };
        assert!(!without.body(&alert, None)["text"]
            .as_str()
            .unwrap()
            .contains("status page"));
    }
}
