//! `PAGERDUTY`: Events API v2, a trigger on FAILURE (and reminders, certificate warnings), a
//! resolve on SUCCESS, one dedup key per target and incident, so that a trigger and its
//! resolve meet. The params give `routing_key=` (required) and `endpoint=` (PagerDuty's
//! unless given). Pure.

use serde_json::{json, Value};

use super::facts::Facts;
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

impl Channel for PagerDuty {
    fn body(&self, f: &Facts) -> Value {
        let action = if f.kind == "SUCCESS" {
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

/// One PagerDuty alert per target and incident; a certificate warning is one of its own per
/// certificate, never resolved by the target's recovery.
fn dedup_key(f: &Facts) -> String {
    match (f.id, f.kind, &f.cert) {
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
