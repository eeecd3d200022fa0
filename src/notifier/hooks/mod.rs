//! The HTTP notifier types, one file each behind the common [`Channel`] shape: `WEBHOOK`
//! ([`webhook`]), `SLACK` ([`slack`]) and `PAGERDUTY` ([`pagerduty`]). Here: the row
//! validated into a [`Hook`] and the one POST per delivery (or per grouped message; PagerDuty:
//! one per page a group opens or closes), each bounded by `SmtpTimeout`; a 2xx answer is
//! delivered, anything else is a failure retried with the outbox's backoff. Runs on the
//! notifier thread, and on the main thread for `skypunch notifiers ID test`.
//!
//! The JSON fields carry the row's text as it is (serde escapes it for JSON); the texts a
//! person reads as one line, Slack's message and PagerDuty's summary, go through
//! [`crate::base::text`]'s sanitizers.

mod facts;
mod pagerduty;
mod slack;
mod webhook;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};

use crate::base::authn::Secret;
use crate::base::model::{Alert, Incident};
use crate::base::urls::WebUrl;
use crate::db::notifiers::NotifierRow;
use facts::{Facts, GroupFacts};

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

    /// A URL (already in its display form) as a notifier of this kind shows it.
    fn masked(self, shown: &str) -> String {
        match self {
            Kind::Slack => slack::masked(shown),
            _ => shown.to_string(),
        }
    }
}

/// What each notifier type's file supplies; the POST, its timeout, its headers and its
/// errors are the same for all.
trait Channel: fmt::Debug + Send + Sync {
    /// The JSON body of one delivery.
    fn body(&self, facts: &Facts) -> Value;

    /// The JSON bodies of one grouped message, POSTed in order.
    fn group_bodies(&self, group: &GroupFacts) -> Vec<Value>;

    /// A header that depends on the body (the WEBHOOK's signature).
    fn signed(&self, _body: &str) -> Option<(&'static str, String)> {
        None
    }

    /// The secret of the params, masked in every error text.
    fn secret(&self) -> Option<&Secret> {
        None
    }

    /// Whether the test message is followed at once by its resolution (PagerDuty).
    fn resolves_tests(&self) -> bool {
        false
    }
}

/// A row's `params`, split into `key=value` pairs.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// Why an HTTP notifier cannot send (the row's configuration: logged once per notifier), or
/// why one POST failed (logged every time). The text names the notifier or the masked URL,
/// never a secret.
pub enum Error {
    /// `params` is not a list of `key=value` pairs.
    Params { notifier: u64, reason: String },
    /// The address (PAGERDUTY: `endpoint=`) is not an http(s) URL; `shown` is masked.
    Url {
        notifier: u64,
        shown: String,
        reason: String,
    },
    /// A PAGERDUTY notifier without `routing_key=`.
    NoRoutingKey { notifier: u64 },
    /// `header=` is not `Name: value`.
    Header { notifier: u64 },
    /// The POST did not get an answer (refused, reset, timed out, TLS). `reason` is the
    /// transport's error with the URL masked and the secret hidden; `source` is that error as
    /// it came, whose text may hold the URL unmasked (a Slack token): only this error's
    /// `Display` may go to a log or `last_error`.
    Post {
        to: String,
        reason: String,
        source: ureq::Error,
    },
    /// The receiver answered with a status outside 2xx.
    Status { to: String, status: u16 },
}

impl Error {
    /// Whether the row itself is wrong (no POST was tried): retrying will not help until an
    /// operator changes it.
    pub fn is_config(&self) -> bool {
        !matches!(self, Error::Post { .. } | Error::Status { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Params { notifier, reason } => write!(f, "notifier {notifier}: {reason}"),
            Error::Url {
                notifier,
                shown,
                reason,
            } => write!(
                f,
                "notifier {notifier}: `{shown}` is not an http(s) URL: {reason}"
            ),
            Error::NoRoutingKey { notifier } => {
                write!(f, "notifier {notifier}: PAGERDUTY needs routing_key=")
            }
            Error::Header { notifier } => {
                write!(f, "notifier {notifier}: header= takes `Name: value`")
            }
            Error::Post { to, reason, .. } => write!(f, "POST to {to} failed: {reason}"),
            Error::Status { to, status } => write!(f, "POST to {to} answered HTTP {status}"),
        }
    }
}

/// The text only: the source of a failed POST may hold a secret.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hooks::Error({self})")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Post { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A validated HTTP notifier.
#[derive(Debug)]
pub struct Hook {
    kind: Kind,
    url: WebUrl,
    channel: Box<dyn Channel>,
    header: Option<(String, String)>,
    /// The status pages' base URL (`[http] PublicUrl` or the listen address), for a link to
    /// the target's page; `None` with the HTTP server off.
    pages: Option<String>,
}

impl Hook {
    /// Validates the row: the URL (the address, or PAGERDUTY's `endpoint=`), and the params.
    pub fn build(row: &NotifierRow, kind: Kind) -> Result<Hook, Error> {
        let notifier = row.id;
        let params = crate::base::authn::split_params(&row.params)
            .map(Params)
            .map_err(|reason| Error::Params { notifier, reason })?;
        let address = match kind {
            Kind::PagerDuty => pagerduty::endpoint(&params),
            _ => row.address.trim().to_string(),
        };
        let url = WebUrl::parse(&address).map_err(|reason| Error::Url {
            notifier,
            shown: crate::base::urls::shown(&address),
            reason,
        })?;
        let channel: Box<dyn Channel> = match kind {
            Kind::Webhook => Box::new(webhook::Webhook::new(&params)),
            Kind::Slack => Box::new(slack::Slack),
            Kind::PagerDuty => Box::new(
                pagerduty::PagerDuty::new(&params).ok_or(Error::NoRoutingKey { notifier })?,
            ),
        };
        let header = match params.get("header") {
            Some(h) => Some(parse_header(&h).ok_or(Error::Header { notifier })?),
            None => None,
        };
        Ok(Hook {
            kind,
            url,
            channel,
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
        self.kind.masked(self.url.shown())
    }

    /// POSTs the alert; the answer's status, or why it failed (never a secret).
    pub fn send(
        &self,
        alert: &Alert,
        incident: Option<&Incident>,
        timeout: Duration,
    ) -> Result<u16, Error> {
        self.post(&self.body(alert, incident).to_string(), timeout)
    }

    /// POSTs one body (signed, with the row's header); the answer's status, or why it failed
    /// (never a secret).
    pub fn post(&self, body: &str, timeout: Duration) -> Result<u16, Error> {
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
        if let Some((name, value)) = self.channel.signed(body) {
            request = request.header(name, value);
        }
        if let Some((name, value)) = &self.header {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .send(body.as_bytes())
            .map_err(|source| Error::Post {
                to: self.shown(),
                reason: self.hide(&source.to_string()),
                source,
            })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(Error::Status {
                to: self.shown(),
                status,
            })
        }
    }

    /// A notice about this node itself: kind `BLIND` when it cannot reach its network
    /// (PagerDuty: an event triggered under the node's own key), `SIGHTED` when it sees again
    /// (that event resolved); `reason` says why. The answer's status.
    pub fn send_notice(
        &self,
        node: &str,
        blind: bool,
        reason: &str,
        timeout: Duration,
    ) -> Result<u16, Error> {
        let notice = Alert {
            id: 0,
            target_id: 0,
            kind: if blind { "BLIND" } else { "SIGHTED" }.into(),
            snapshot: json!({
                "name": node,
                "status": if blind { "BLIND" } else { "SIGHTED" },
                "status_description": reason,
            })
            .to_string(),
            trace: String::new(),
        };
        self.send(&notice, None, timeout)
    }

    /// `skypunch notifiers ID test`: a message of kind TEST (PagerDuty: an event triggered and
    /// resolved at once, under a key of its own); the answer's status.
    pub fn send_test(&self, row: &NotifierRow, timeout: Duration) -> Result<u16, Error> {
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
        if self.channel.resolves_tests() {
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
        self.channel.body(&self.facts(alert, incident))
    }

    /// The bodies of a grouped message, in the order they are POSTed: one for WEBHOOK and
    /// SLACK; for PAGERDUTY, an event for each page the group opens or closes (none when it
    /// only holds recoveries of pages that stay open).
    pub fn group_bodies(&self, batch: &Batch) -> Vec<String> {
        let group = GroupFacts {
            id: batch.id,
            notifier: batch.notifier,
            tally: crate::notifier::group::Tally::of(batch.alerts.iter().map(|a| a.kind.as_str())),
            entries: batch
                .alerts
                .iter()
                .map(|a| self.facts(a, batch.incidents.get(&a.target_id)))
                .collect(),
            front: self.pages.as_ref().map(|base| format!("{base}/")),
            at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            closes_alone: batch.closes_alone.to_vec(),
            closes_groups: batch.closes_groups.to_vec(),
        };
        self.channel
            .group_bodies(&group)
            .iter()
            .map(Value::to_string)
            .collect()
    }

    /// The facts of one alert, with the link to its target's status page.
    fn facts(&self, alert: &Alert, incident: Option<&Incident>) -> Facts {
        let mut facts = Facts::of(alert, incident);
        if facts.id != 0 {
            facts.page = self
                .pages
                .as_ref()
                .map(|base| format!("{base}/target/{}", facts.id));
        }
        facts
    }

    /// An error's text without the notifier's secrets (a URL with a token in its path).
    fn hide(&self, text: &str) -> String {
        let mut out = text.replace(self.url.as_str(), &self.shown());
        if let Some(s) = self.channel.secret() {
            if !s.expose().is_empty() {
                out = out.replace(s.expose(), "***");
            }
        }
        out
    }
}

/// One grouped message to an HTTP notifier, as the notifier thread read it.
pub struct Batch<'a> {
    /// Its id: the smallest alert id in it.
    pub id: u64,
    pub notifier: u64,
    /// Oldest first.
    pub alerts: &'a [Alert],
    /// The latest incident of each of their targets.
    pub incidents: &'a BTreeMap<u64, Incident>,
    /// PagerDuty: the recoveries (of `alerts`) whose target's page was a message of its own.
    pub closes_alone: &'a [u64],
    /// PagerDuty: the grouped messages whose every target has now recovered.
    pub closes_groups: &'a [u64],
}

/// A notifier's address as every output shows it: a Slack URL without its token, a webhook
/// URL with its secrets masked, an e-mail address as it is.
pub fn shown_address(row: &NotifierRow) -> String {
    match Kind::of(row) {
        Some(kind) => kind.masked(&crate::base::urls::shown(row.address.trim())),
        None => row.address.clone(),
    }
}

fn parse_header(h: &str) -> Option<(String, String)> {
    let (name, value) = h.split_once(':')?;
    let name = name.trim();
    let fine = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    fine.then(|| (name.to_string(), value.trim().to_string()))
}

#[cfg(test)]
mod tests;
