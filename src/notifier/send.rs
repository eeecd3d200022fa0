//! One message through a notifier row of any type: an e-mail ([`smtp`], [`message`]) or a
//! POST ([`hooks`]), for one alert or a group of them. [`Outlets`] sends the notifier
//! thread's messages, keeping the SMTP transports between passes; [`send_test`] sends
//! `skypunch notifiers ID test`'s message on the main thread. Reads the incidents a webhook
//! names and, for PagerDuty, the pages a recovery closes ([`pages`]); writes only the
//! renewal of a group's claim between PagerDuty's events, and of a mail's claim while it is
//! sent ([`keep`]).

use std::collections::BTreeMap;
use std::fmt;

use log::info;

use super::{claim_lease, hooks, keep, message, outbox, pages, smtp};
use crate::base::model::{Alert, Incident};
use crate::config::Config;
use crate::db::{self, notifiers::NotifierRow, Pool};

/// Why `skypunch notifiers ID test` sent nothing. The text names the notifier or the masked
/// URL, never a secret.
#[derive(Debug)]
pub enum Error {
    /// An HTTP notifier's row is wrong, or its POST failed.
    Hook(hooks::Error),
    /// An SMTP notifier's row is wrong, or `[notifications] From`.
    Smtp(smtp::Error),
    /// The e-mail could not be put together.
    Message(message::Error),
    /// The server or the network refused the e-mail.
    Send {
        notifier: u64,
        address: String,
        server: String,
        source: smtp::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Hook(e) => e.fmt(f),
            Error::Smtp(e) => e.fmt(f),
            Error::Message(e) => e.fmt(f),
            Error::Send {
                notifier,
                address,
                server,
                source,
            } => write!(
                f,
                "notifier {notifier}: sending to {address} via {server} failed: {source}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The wrapped errors' text is this one's: their causes come next.
        match self {
            Error::Hook(e) => e.source(),
            Error::Smtp(e) => e.source(),
            Error::Message(e) => e.source(),
            Error::Send { source, .. } => Some(source),
        }
    }
}

/// `skypunch notifiers ID test`: sends a test message now (enabled or not; it is not counted
/// in the notifier's pass or fail count); says where it went.
pub fn send_test(config: &Config, row: &NotifierRow) -> Result<String, Error> {
    if let Some(kind) = hooks::Kind::of(row) {
        let hook = hooks::Hook::build(row, kind)
            .map_err(Error::Hook)?
            .with_pages(config.http.page_base());
        let status = hook
            .send_test(row, config.notify.smtp_timeout)
            .map_err(Error::Hook)?;
        return Ok(format!(
            "Notifier: {} test message sent to {} (HTTP {status})",
            row.name,
            hook.shown()
        ));
    }
    let mailer = smtp::Mailer::build(row, &config.notify.from, config.notify.smtp_timeout)
        .map_err(Error::Smtp)?;
    let rendered = message::render_test(&row.name, &mailer.server());
    let msg = message::build(&rendered, &mailer.from, &mailer.to).map_err(Error::Message)?;
    mailer.send(&msg).map_err(|source| Error::Send {
        notifier: row.id,
        address: row.address.clone(),
        server: mailer.server(),
        source,
    })?;
    Ok(format!(
        "Notifier: {} test message sent to {} via {}",
        row.name,
        row.address,
        mailer.server()
    ))
}

/// Why a delivery was not sent, as the outbox records it (`last_error`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Failure {
    /// The notifier row cannot send at all (unknown type, bad params or address): logged once.
    Config(String),
    /// The message or the conversation with the server failed: logged every time.
    Send(String),
}

impl Failure {
    pub fn reason(&self) -> &str {
        match self {
            Failure::Config(r) | Failure::Send(r) => r,
        }
    }

    fn of(config: bool, e: &dyn fmt::Display) -> Failure {
        if config {
            Failure::Config(e.to_string())
        } else {
            Failure::Send(e.to_string())
        }
    }
}

/// Sends the notifier thread's alerts: the SMTP transports are built once per notifier and
/// kept while its row does not change.
pub(super) struct Outlets<'a> {
    config: &'a Config,
    pool: &'a Pool,
    mailers: smtp::Cache,
}

impl<'a> Outlets<'a> {
    pub fn new(config: &'a Config, pool: &'a Pool) -> Self {
        Outlets {
            config,
            pool,
            mailers: smtp::Cache::default(),
        }
    }

    /// Forgets the transports of notifiers that no longer exist.
    pub fn retain(&mut self, ids: &[u64]) {
        self.mailers.retain(ids);
    }

    /// Renders and sends one delivery as a message of its own; the error is the reason,
    /// without secrets. `node`: this node, which holds the delivery's claim.
    pub fn deliver(
        &mut self,
        row: &NotifierRow,
        d: &outbox::Due,
        node: &str,
    ) -> Result<(), Failure> {
        log::debug!(
            "notifier {} ({}): sending alert {} (attempt {})",
            row.id,
            row.name,
            d.alert.id,
            d.attempts + 1
        );
        if let Some(kind) = hooks::Kind::of(row) {
            return self.deliver_hook(row, kind, d, node);
        }
        let notify = &self.config.notify;
        let mailer = match self.mailers.get(row, &notify.from, notify.smtp_timeout) {
            Ok(m) => m,
            Err(e) => return Err(Failure::of(e.is_config(), e)),
        };
        let rendered = message::render(&d.alert);
        let msg = message::build(&rendered, &mailer.from, &mailer.to)
            .map_err(|e| Failure::Send(e.to_string()))?;
        let claim = keep::Claim::One {
            alert: d.alert.id,
            notifier: row.id,
        };
        keep::while_sending(self.pool, claim, node, notify.smtp_timeout, || {
            mailer.send(&msg)
        })
        .map_err(|e| Failure::of(e.is_config(), &e))?;
        info!(
            "notifier {} ({}) <{}>: sent alert {} `{}` via {}",
            row.id,
            row.name,
            row.address,
            d.alert.id,
            rendered.subject,
            mailer.server()
        );
        Ok(())
    }

    /// Renders and sends a grouped message (two or more deliveries, oldest first) whose id is
    /// `id`, claimed by `node`.
    pub fn deliver_group(
        &mut self,
        row: &NotifierRow,
        id: u64,
        due: &[outbox::Due],
        node: &str,
    ) -> Result<(), Failure> {
        let alerts: Vec<Alert> = due.iter().map(|d| d.alert.clone()).collect();
        log::debug!(
            "notifier {} ({}): sending a group of {} alerts (alert {id} first)",
            row.id,
            row.name,
            alerts.len()
        );
        if let Some(kind) = hooks::Kind::of(row) {
            return self.deliver_hook_group(row, kind, id, &alerts, node);
        }
        let notify = &self.config.notify;
        let mailer = match self.mailers.get(row, &notify.from, notify.smtp_timeout) {
            Ok(m) => m,
            Err(e) => return Err(Failure::of(e.is_config(), e)),
        };
        let pages = self.config.http.page_base();
        let rendered = message::group::render(&alerts, pages.as_deref());
        let msg = message::build(&rendered, &mailer.from, &mailer.to)
            .map_err(|e| Failure::Send(e.to_string()))?;
        let claim = keep::Claim::Group {
            notifier: row.id,
            group: id,
        };
        keep::while_sending(self.pool, claim, node, notify.smtp_timeout, || {
            mailer.send(&msg)
        })
        .map_err(|e| Failure::of(e.is_config(), &e))?;
        info!(
            "notifier {} ({}) <{}>: sent {} alerts (group {id}) `{}` via {}",
            row.id,
            row.name,
            row.address,
            alerts.len(),
            rendered.subject,
            mailer.server()
        );
        Ok(())
    }

    /// A WEBHOOK, SLACK or PAGERDUTY delivery: one POST, bounded by `SmtpTimeout`; a
    /// PagerDuty recovery whose failure went out in a group is followed by the resolve of
    /// that group's page once all of its targets have recovered.
    fn deliver_hook(
        &mut self,
        row: &NotifierRow,
        kind: hooks::Kind,
        d: &outbox::Due,
        node: &str,
    ) -> Result<(), Failure> {
        let hook = hooks::Hook::build(row, kind)
            .map_err(|e| Failure::of(e.is_config(), &e))?
            .with_pages(self.config.http.page_base());
        let incident = db::with_conn(self.pool, |conn| {
            db::history::incident_of(conn, d.alert.target_id)
        })
        .map_err(|e| Failure::Send(e.to_string()))?;
        let alerts = [d.alert.clone()];
        let closes = pages::closes(self.pool, kind, row.id, &alerts, None, node)
            .map_err(|e| Failure::Send(e.to_string()))?;
        let status = match closes.filter(|c| !c.groups.is_empty()) {
            None => hook
                .send(&d.alert, incident.as_ref(), self.config.notify.smtp_timeout)
                .map_err(|e| Failure::of(e.is_config(), &e))?,
            Some(closes) => {
                // The recovery's own message as always, then the groups it closes.
                let incidents: BTreeMap<u64, Incident> =
                    incident.map(|i| (i.target_id, i)).into_iter().collect();
                let batch = hooks::Batch {
                    id: d.alert.id,
                    notifier: row.id,
                    alerts: &alerts,
                    incidents: &incidents,
                    closes_alone: &[d.alert.id],
                    closes_groups: &closes.groups,
                };
                self.post_all(&hook, &hook.group_bodies(&batch), None)?
            }
        };
        info!(
            "notifier {} ({}): sent alert {} ({} of target {}) to {} (HTTP {status})",
            row.id,
            row.name,
            d.alert.id,
            d.alert.kind,
            d.alert.target_id,
            hook.shown()
        );
        Ok(())
    }

    /// A grouped message to a WEBHOOK, SLACK or PAGERDUTY notifier: its POSTs in order, each
    /// bounded by `SmtpTimeout`, the group's claim renewed before each after the first.
    fn deliver_hook_group(
        &mut self,
        row: &NotifierRow,
        kind: hooks::Kind,
        id: u64,
        alerts: &[Alert],
        node: &str,
    ) -> Result<(), Failure> {
        let hook = hooks::Hook::build(row, kind)
            .map_err(|e| Failure::of(e.is_config(), &e))?
            .with_pages(self.config.http.page_base());
        let targets: Vec<u64> = alerts.iter().map(|a| a.target_id).collect();
        let incidents = db::with_conn(self.pool, |conn| db::history::incidents_of(conn, &targets))
            .map_err(|e| Failure::Send(e.to_string()))?;
        let closes = pages::closes(self.pool, kind, row.id, alerts, Some(id), node)
            .map_err(|e| Failure::Send(e.to_string()))?
            .unwrap_or_default();
        let batch = hooks::Batch {
            id,
            notifier: row.id,
            alerts,
            incidents: &incidents,
            closes_alone: &closes.alone,
            closes_groups: &closes.groups,
        };
        let bodies = hook.group_bodies(&batch);
        let status = self.post_all(&hook, &bodies, Some((row.id, id, node)))?;
        let tally = super::group::Tally::of(alerts.iter().map(|a| a.kind.as_str()));
        info!(
            "notifier {} ({}): sent {} alerts (group {id}: {}) to {} in {} POST{} (HTTP {status})",
            row.id,
            row.name,
            alerts.len(),
            tally.headline(),
            hook.shown(),
            bodies.len(),
            if bodies.len() == 1 { "" } else { "s" }
        );
        Ok(())
    }

    /// POSTs the bodies in order; the last answer's status (0: nothing to POST). `claim`:
    /// the notifier, group and node whose claim is renewed before each POST after the first.
    fn post_all(
        &self,
        hook: &hooks::Hook,
        bodies: &[String],
        claim: Option<(u64, u64, &str)>,
    ) -> Result<u16, Failure> {
        let timeout = self.config.notify.smtp_timeout;
        let mut status = 0;
        for (i, body) in bodies.iter().enumerate() {
            if let (true, Some((notifier, group, node))) = (i > 0, claim) {
                db::with_conn(self.pool, |conn| {
                    outbox::renew(conn, notifier, group, node, claim_lease(timeout))
                })
                .map_err(|e| Failure::Send(e.to_string()))?;
            }
            status = hook
                .post(body, timeout)
                .map_err(|e| Failure::of(e.is_config(), &e))?;
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, address: &str, params: &str) -> NotifierRow {
        NotifierRow {
            id: 4,
            name: "ops".into(),
            kind: kind.into(),
            address: address.into(),
            params: params.into(),
            ..NotifierRow::default()
        }
    }

    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[test]
    fn a_test_that_cannot_go_says_why_as_before() {
        let mut config = Config::default();
        config.notify.smtp_timeout = std::time::Duration::from_secs(2);
        let e = send_test(&config, &row("FAX", "a@b.c", "")).unwrap_err();
        assert!(matches!(e, Error::Smtp(smtp::Error::UnknownType { .. })));
        assert_eq!(
            e.to_string(),
            "notifier 4: unknown type `FAX` (SMTP, WEBHOOK, SLACK or PAGERDUTY)"
        );
        let e = send_test(&config, &row("PAGERDUTY", "", "")).unwrap_err();
        assert_eq!(e.to_string(), "notifier 4: PAGERDUTY needs routing_key=");

        let port = closed_port();
        let params = format!("server=127.0.0.1,port={port},tls=none,user=u,password=hunter2");
        let e = send_test(&config, &row("SMTP", "a@b.c", &params)).unwrap_err();
        let text = e.to_string();
        let start = format!("notifier 4: sending to a@b.c via 127.0.0.1:{port} failed: ");
        assert!(text.starts_with(&start), "{text}");
        assert!(!format!("{text} {e:?}").contains("hunter2"));
        assert!(
            std::error::Error::source(&e).is_some(),
            "the SMTP error is kept"
        );
    }
}
