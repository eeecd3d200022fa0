//! `PAGERDUTY`: Events API v2, a trigger on FAILURE (and reminders, certificate warnings), a
//! resolve on SUCCESS, one dedup key per target and incident, so that a trigger and its
//! resolve meet. A grouped message is one trigger for its failures (and reminders) under a
//! key of the group's own, `skypunch-group-NOTIFIER-GROUP`, resolved once every one of its
//! targets has recovered; one for its certificate warnings; and a resolve for each page its
//! recoveries close (see skypunch(8) NOTIFIERS). The params give `routing_key=` (required)
//! and `endpoint=` (PagerDuty's unless given). Pure.

use serde_json::{json, Value};

use super::facts::{Facts, GroupFacts};
use super::{Channel, Params};
use crate::base::authn::Secret;

/// PagerDuty's Events API v2 endpoint, unless the notifier's params name another.
pub(super) const PAGERDUTY_EVENTS: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug)]
pub(super) struct PagerDuty {
    routing_key: Secret,
}

impl PagerDuty {
    /// `None` without `routing_key=`.
    pub fn new(params: &Params) -> Option<PagerDuty> {
        Some(PagerDuty {
            routing_key: Secret::new(params.get("routing_key")?),
        })
    }
}

/// Where events go: `endpoint=`, else PagerDuty's.
pub(super) fn endpoint(params: &Params) -> String {
    params
        .get("endpoint")
        .unwrap_or_else(|| PAGERDUTY_EVENTS.into())
}

/// Targets a grouped trigger lists in its details (PagerDuty takes events up to 512 KB);
/// the rest are counted.
const LISTED: usize = 100;

impl Channel for PagerDuty {
    fn group_bodies(&self, g: &GroupFacts) -> Vec<Value> {
        let mut events = Vec::new();
        let down: Vec<&Facts> = g
            .entries
            .iter()
            .filter(|f| matches!(f.kind, "FAILURE" | "REMINDER"))
            .collect();
        if !down.is_empty() {
            let key = group_key(g.notifier, g.id);
            events.push(self.group_trigger(g, &down, &key, "critical"));
        }
        let certificates: Vec<&Facts> = g
            .entries
            .iter()
            .filter(|f| f.kind == "CERTIFICATE")
            .collect();
        if !certificates.is_empty() {
            let key = format!("{}-certificates", group_key(g.notifier, g.id));
            events.push(self.group_trigger(g, &certificates, &key, "warning"));
        }
        for f in g
            .entries
            .iter()
            .filter(|f| g.closes_alone.contains(&f.alert_id))
        {
            events.push(self.body(f));
        }
        for &group in &g.closes_groups {
            events.push(json!({
                "routing_key": self.routing_key.expose(),
                "event_action": "resolve",
                "dedup_key": group_key(g.notifier, group),
            }));
        }
        events
    }

    fn body(&self, f: &Facts) -> Value {
        let action = if matches!(f.kind, "SUCCESS" | "SIGHTED") {
            "resolve"
        } else {
            "trigger"
        };
        let links: Vec<Value> = f
            .page
            .iter()
            .map(|href| json!({ "href": href, "text": "status page" }))
            .collect();
        json!({
            "routing_key": self.routing_key.expose(),
            "event_action": action,
            "dedup_key": dedup_key(f),
            "links": links,
            "payload": {
                // Shown as one line in PagerDuty's lists: hidden characters shown escaped.
                "summary": crate::base::text::visible(&f.line()),
                "source": f.url,
                "severity": if f.kind == "CERTIFICATE" { "warning" } else { "critical" },
                "timestamp": f.time(),
                "custom_details": {
                    "target_id": f.id,
                    "reason": f.reason,
                    "http_status": f.http_status,
                    "incident_started": f.incident_started,
                    "trace": f.trace,
                },
            },
        })
    }

    fn secret(&self) -> Option<&Secret> {
        Some(&self.routing_key)
    }

    /// The test's incident is resolved at once, so that nobody is paged for it.
    fn resolves_tests(&self) -> bool {
        true
    }
}

impl PagerDuty {
    /// One trigger for `entries` of the group, listing the first [`LISTED`].
    fn group_trigger(
        &self,
        g: &GroupFacts,
        entries: &[&Facts],
        key: &str,
        severity: &str,
    ) -> Value {
        let tally = crate::notifier::group::Tally::of(entries.iter().map(|f| f.kind));
        let targets: Vec<Value> = entries
            .iter()
            .take(LISTED)
            .map(|f| {
                json!({
                    "target_id": f.id,
                    "name": f.name,
                    "url": f.url,
                    "state": f.kind,
                    "reason": f.reason,
                    "since": if f.incident_started.is_empty() { f.time() } else { f.incident_started.clone() },
                    "status_page": f.page,
                })
            })
            .collect();
        let links: Vec<Value> = g
            .front
            .iter()
            .map(|href| json!({ "href": href, "text": "status page" }))
            .collect();
        json!({
            "routing_key": self.routing_key.expose(),
            "event_action": "trigger",
            "dedup_key": key,
            "links": links,
            "payload": {
                "summary": format!("Skypunch: {}", tally.headline()),
                "source": "skypunch",
                "severity": severity,
                "timestamp": g.at,
                "custom_details": {
                    "group_id": g.id,
                    "count": entries.len(),
                    "targets": targets,
                    "more": entries.len().saturating_sub(LISTED),
                },
            },
        })
    }
}

/// The dedup key of a grouped message's page.
fn group_key(notifier: u64, group: u64) -> String {
    format!("skypunch-group-{notifier}-{group}")
}

/// One PagerDuty alert per target and incident; a certificate warning is one of its own per
/// certificate, never resolved by the target's recovery.
fn dedup_key(f: &Facts) -> String {
    match (f.id, f.kind, &f.cert) {
        // The node's blindness is one page, opened and resolved by its two notices.
        (0, "BLIND" | "SIGHTED", _) => format!("skypunch-node-{}-blind", f.name),
        (0, _, _) => format!("skypunch-test-notifier-{}", f.incident_id),
        (id, "CERTIFICATE", Some((expires, _))) => {
            format!(
                "skypunch-target-{id}-certificate-{}",
                expires.replace(' ', "T")
            )
        }
        (id, _, _) => format!("skypunch-target-{id}-incident-{}", f.incident_id),
    }
}
