//! `WEBHOOK`: the documented JSON body, signed with HMAC-SHA256 when the params give
//! `secret=` (the header [`SIGNATURE_HEADER`]); a grouped message is one body whose `alerts`
//! array holds each alert's body (see skypunch(8) NOTIFIERS). Pure: the POST is the common
//! one.

use serde_json::{json, Value};

use super::facts::{Facts, GroupFacts};
use super::{Channel, Params};
use crate::base::authn::Secret;

/// The header that carries a WEBHOOK body's signature: `sha256=<hex HMAC-SHA256>`.
pub(super) const SIGNATURE_HEADER: &str = "X-Skypunch-Signature";

#[derive(Debug)]
pub(super) struct Webhook {
    /// The HMAC key.
    secret: Option<Secret>,
}

impl Webhook {
    pub fn new(params: &Params) -> Webhook {
        Webhook {
            secret: params.get("secret").map(Secret::new),
        }
    }
}

impl Channel for Webhook {
    fn group_bodies(&self, g: &GroupFacts) -> Vec<Value> {
        let alerts: Vec<Value> = g
            .entries
            .iter()
            .map(|f| {
                let mut entry = self.body(f);
                entry["alert_id"] = json!(f.alert_id);
                entry
            })
            .collect();
        vec![json!({
            "kind": "GROUP",
            "summary": g.tally.headline(),
            "group": {
                "id": g.id,
                "count": g.entries.len(),
                "failed": g.tally.failed,
                "still_down": g.tally.still_down,
                "recovered": g.tally.recovered,
                "certificates": g.tally.certificates,
            },
            "time": g.at,
            "status_page": g.front,
            "alerts": alerts,
        })]
    }

    fn body(&self, f: &Facts) -> Value {
        json!({
            "kind": f.kind,
            "target": { "id": f.id, "name": f.name, "url": f.url },
            "status": f.status,
            "reason": f.reason,
            "http_status": f.http_status,
            "time": f.time(),
            "incident": { "id": f.incident_id, "started": f.incident_started },
            "down_for": f.down,
            "certificate": f.cert.as_ref().map(|(expires, issuer)| json!({
                "expires": format!("{}Z", expires.replace(' ', "T")),
                "issuer": issuer,
            })),
            "trace": f.trace,
            "status_page": f.page,
        })
    }

    fn signed(&self, body: &str) -> Option<(&'static str, String)> {
        let key = self.secret.as_ref()?;
        Some((SIGNATURE_HEADER, signature(key.expose(), body)))
    }

    fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `key`.
pub(super) fn signature(key: &str, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let tag = ring::hmac::sign(&key, body.as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
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
}
