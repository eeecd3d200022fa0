//! The facts every HTTP notifier's body is made of, read once from the alert's snapshot and
//! its incident, and the one line a person reads (Slack's message, PagerDuty's summary); and
//! those of a grouped message ([`GroupFacts`]). Pure: no I/O.

use serde_json::Value;

use crate::base::model::{Alert, Incident};
use crate::notifier::group::Tally;
use crate::notifier::message;

pub(super) struct Facts {
    /// The alert's id in the outbox.
    pub alert_id: u64,
    pub kind: &'static str,
    pub id: u64,
    pub name: String,
    pub url: String,
    pub status: String,
    pub reason: String,
    pub http_status: Value,
    pub at: String,
    /// The incident's id (0: none) and start (`YYYY-MM-DD HH:MM:SS.mmm` UTC, empty: none).
    pub incident_id: u64,
    pub incident_started: String,
    pub trace: String,
    /// How long the target has been down (reminders).
    pub down: String,
    /// The certificate's expiry (`YYYY-MM-DD HH:MM:SS` UTC) and issuer, when known.
    pub cert: Option<(String, String)>,
    /// How long the certificate had left at the check (`in 5 days`).
    pub cert_left: String,
    /// The target's status page, when the HTTP server is on.
    pub page: Option<String>,
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
    pub fn of(alert: &Alert, incident: Option<&Incident>) -> Facts {
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
            // A notice of the node itself (`notifier::notice`), not of a target.
            "BLIND" => "BLIND",
            "SIGHTED" => "SIGHTED",
            _ => "FAILURE",
        };
        let down = snap
            .as_object()
            .and_then(message::down_for)
            .unwrap_or_default();
        Facts {
            alert_id: alert.id,
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
                .and_then(message::cert_left)
                .unwrap_or_default(),
            page: None,
        }
    }

    /// The alert's time as ISO 8601 UTC (`2024-05-01T12:00:00Z`).
    pub fn time(&self) -> String {
        format!("{}Z", self.at.replace(' ', "T"))
    }

    /// One line: the state, the name, the reason.
    pub fn line(&self) -> String {
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
            "BLIND" => format!(
                "skypunch on {} cannot reach its network: {}",
                self.name, self.reason
            ),
            "SIGHTED" => format!(
                "skypunch on {} sees its network again: {}",
                self.name, self.reason
            ),
            _ => format!("DOWN: {} ({}): {}", self.name, self.url, self.reason),
        }
    }
}

/// What a grouped message (two or more alerts to one notifier) is made of; for PagerDuty,
/// also the pages it closes besides.
pub(super) struct GroupFacts {
    /// The group's id: its smallest alert id.
    pub id: u64,
    pub notifier: u64,
    pub tally: Tally,
    /// Oldest first.
    pub entries: Vec<Facts>,
    /// The status pages' front page, when the HTTP server is on.
    pub front: Option<String>,
    /// When the message is sent, ISO 8601 UTC.
    pub at: String,
    /// PagerDuty: the recoveries (of `entries`) whose target's page was a message of its own,
    /// each resolved by its own event, as when sent alone.
    pub closes_alone: Vec<u64>,
    /// PagerDuty: the grouped messages whose every target has now recovered.
    pub closes_groups: Vec<u64>,
}

impl GroupFacts {
    /// `Skypunch: 2000 targets FAILED`.
    pub fn title(&self) -> String {
        format!("Skypunch: {}", self.tally.headline())
    }
}
