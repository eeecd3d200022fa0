//! The HTTP notifier types, one file each behind the common [`Channel`] shape: `WEBHOOK`
//! ([`webhook`]), `SLACK` ([`slack`]) and `PAGERDUTY` ([`pagerduty`]). Here: the row
//! validated into a [`Hook`] and the one POST per delivery, bounded by `SmtpTimeout`; a 2xx
//! answer is delivered, anything else is a failure retried with the outbox's backoff. Runs on
//! the notifier thread, and on the main thread for `skypunch notifiers ID test`.
//!
//! The JSON fields carry the row's text as it is (serde escapes it for JSON); the texts a
//! person reads as one line, Slack's message and PagerDuty's summary, go through
//! [`crate::base::text`]'s sanitizers.

mod facts;
mod pagerduty;
mod slack;
mod webhook;

use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};

use crate::base::authn::Secret;
use crate::base::model::{Alert, Incident};
use crate::base::urls::WebUrl;
use crate::db::notifiers::NotifierRow;
use facts::Facts;

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
        if let Some((name, value)) = self.channel.signed(&body) {
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
        let mut facts = Facts::of(alert, incident);
        if facts.id != 0 {
            facts.page = self
                .pages
                .as_ref()
                .map(|base| format!("{base}/target/{}", facts.id));
        }
        self.channel.body(&facts)
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
mod tests {
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
}
