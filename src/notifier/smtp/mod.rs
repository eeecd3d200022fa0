//! SMTP delivery through lettre: builds one blocking [`SmtpTransport`] per notifier from its
//! validated settings ([`params`]) and keeps it in a cache keyed by notifier id and params.
//! Runs on the notifier thread, and once on the main thread for `skypunch notifiers ID test`.
//!
//! Lettre has no pool feature here, so every message is one connection; each blocking read,
//! write and connect is bounded by `[notifications] SmtpTimeout`.

mod params;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::db::notifiers::NotifierRow;
pub use params::{parse_params, SmtpParams, TlsMode};

/// Why an SMTP notifier cannot send (its row or the configuration: logged once per
/// notifier), or why one message did not go (logged every time). The text names the
/// notifier, never the password.
pub enum Error {
    /// A parameter of `params` is unknown, missing or does not read; `reason` says which.
    Params { notifier: u64, reason: String },
    /// The row's type is none this program sends to.
    UnknownType { notifier: u64, kind: String },
    /// The row's address is not an e-mail address.
    Address { notifier: u64, address: String },
    /// `[notifications] From` is not an e-mail address.
    From { from: String },
    /// The transport could not be set up: `ca_file=` unreadable or not PEM, TLS settings.
    Transport {
        notifier: u64,
        reason: String,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The server or the network refused the message. `reason` is the SMTP reply or the
    /// network cause with the password scrubbed; `source` is lettre's error as it came, which
    /// may echo the password: only this error's `Display` may go to a log or `last_error`.
    Send {
        reason: String,
        source: lettre::transport::smtp::Error,
    },
}

impl Error {
    /// Whether the row or the configuration is wrong (nothing was sent): retrying will not
    /// help until an operator changes it.
    pub fn is_config(&self) -> bool {
        !matches!(self, Error::Send { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Params { notifier, reason }
            | Error::Transport {
                notifier, reason, ..
            } => {
                write!(f, "notifier {notifier}: {reason}")
            }
            Error::UnknownType { notifier, kind } => write!(
                f,
                "notifier {notifier}: unknown type `{kind}` (SMTP, WEBHOOK, SLACK or PAGERDUTY)"
            ),
            Error::Address { notifier, address } => write!(
                f,
                "notifier {notifier}: address `{address}` is not an e-mail address"
            ),
            Error::From { from } => {
                write!(f, "configured From `{from}` is not an e-mail address")
            }
            Error::Send { reason, .. } => f.write_str(reason),
        }
    }
}

/// The text only: lettre's error may echo the password.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "smtp::Error({self})")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Transport { source, .. } => source.as_deref().map(|e| e as _),
            Error::Send { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A ready transport for one notifier, with what messages through it need.
pub struct Mailer {
    transport: SmtpTransport,
    pub params: SmtpParams,
    /// The sender: the notifier's `from`, else the configured one.
    pub from: Mailbox,
    /// The recipient (the notifier's address).
    pub to: Mailbox,
}

impl Mailer {
    /// Validates the notifier's type, params, sender and address and builds its transport.
    pub fn build(
        row: &NotifierRow,
        default_from: &str,
        timeout: Duration,
    ) -> Result<Mailer, Error> {
        let notifier = row.id;
        if !row.kind.trim().eq_ignore_ascii_case("SMTP") {
            return Err(Error::UnknownType {
                notifier,
                kind: row.kind.clone(),
            });
        }
        let params = parse_params(notifier, &row.params)?;
        let to = row
            .address
            .trim()
            .parse::<Mailbox>()
            .map_err(|_| Error::Address {
                notifier,
                address: row.address.clone(),
            })?;
        let from = match &params.from {
            Some(f) => f.clone(),
            None => default_from.parse::<Mailbox>().map_err(|_| Error::From {
                from: default_from.to_string(),
            })?,
        };
        let transport =
            transport(&params, timeout).map_err(|(reason, source)| Error::Transport {
                notifier,
                reason,
                source,
            })?;
        Ok(Mailer {
            transport,
            params,
            from,
            to,
        })
    }

    /// Sends one message; the error's text is a reason fit for logs and `last_error` (no
    /// secrets).
    pub fn send(&self, message: &Message) -> Result<(), Error> {
        self.transport
            .send(message)
            .map(drop)
            .map_err(|source| Error::Send {
                reason: smtp_reason(&source, &self.params),
                source,
            })
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.params.server, self.params.port)
    }
}

/// Why a transport could not be set up: the reason, and the error behind it when there is
/// one.
type SetupError = (String, Option<Box<dyn std::error::Error + Send + Sync>>);

fn transport(p: &SmtpParams, timeout: Duration) -> Result<SmtpTransport, SetupError> {
    let roots = match &p.ca_file {
        Some(path) => Some(private_roots(path)?),
        None => None,
    };
    let tls = || {
        let mut builder = TlsParameters::builder(p.server.clone())
            .dangerous_accept_invalid_certs(!p.verify)
            .dangerous_accept_invalid_hostnames(!p.verify);
        if let Some(roots) = &roots {
            builder = builder.add_root_certificate(roots.clone());
        }
        builder
            .build()
            .map_err(|e| (smtp_reason(&e, p), Some(Box::new(e) as _)))
    };
    let mode = match p.tls {
        TlsMode::StartTls => Tls::Required(tls()?),
        TlsMode::Wrapper => Tls::Wrapper(tls()?),
        TlsMode::None => Tls::None,
    };
    let mut builder = SmtpTransport::builder_dangerous(p.server.clone())
        .port(p.port)
        .tls(mode)
        .timeout(Some(timeout));
    if let Some((user, password)) = &p.login {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

/// The CA certificates of `ca_file=`; the error names the file and what is wrong with it.
fn private_roots(path: &std::path::Path) -> Result<Certificate, SetupError> {
    crate::base::ca::CaBundle::load(path).map_err(|e| (e.to_string(), None))?;
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| {
        (
            format!("ca_file {shown}: cannot read it: {e}"),
            Some(e.into()),
        )
    })?;
    Certificate::from_pem(&pem)
        .map_err(|e| (format!("ca_file {shown}: {e}"), Some(Box::new(e) as _)))
}

/// A lettre error as one line: the SMTP reply or the network cause, with the password (should
/// a server echo it) scrubbed.
fn smtp_reason(e: &lettre::transport::smtp::Error, p: &SmtpParams) -> String {
    let mut reason = if is_timeout(e) {
        format!("timed out waiting for {}:{} ({e})", p.server, p.port)
    } else {
        e.to_string()
    };
    reason = reason.replace(['\r', '\n'], " ");
    if let Some((_, password)) = &p.login {
        reason = reason.replace(password.expose(), "(redacted)");
    }
    reason
}

/// A blocking socket read or write that ran into its timeout reports `WouldBlock` on Unix
/// (`EAGAIN`), which lettre's own `is_timeout` does not recognize.
fn is_timeout(e: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                return true;
            }
        }
        source = err.source();
    }
    e.is_timeout()
}

/// Transports by notifier id, rebuilt only when the row's type, params or address change.
#[derive(Default)]
pub struct Cache {
    entries: HashMap<u64, (String, Result<Mailer, Error>)>,
}

impl Cache {
    /// The mailer for this notifier row, or why it cannot send.
    pub fn get(
        &mut self,
        row: &NotifierRow,
        default_from: &str,
        timeout: Duration,
    ) -> &Result<Mailer, Error> {
        let key = format!("{}\n{}\n{}", row.kind, row.params, row.address);
        let entry = match self.entries.entry(row.id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((key.clone(), Mailer::build(row, default_from, timeout)))
            }
        };
        if entry.0 != key {
            *entry = (key, Mailer::build(row, default_from, timeout));
        }
        &entry.1
    }

    /// Forgets notifiers that no longer exist.
    pub fn retain(&mut self, ids: &[u64]) {
        self.entries.retain(|id, _| ids.contains(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_type_or_address_is_a_clear_failure() {
        let row = NotifierRow {
            id: 4,
            kind: "SLACK".into(),
            address: "a@b.c".into(),
            params: "server=x".into(),
            ..NotifierRow::default()
        };
        let t = Duration::from_secs(1);
        let e = Mailer::build(&row, "SkyPunch <s@localhost>", t)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "notifier 4: unknown type `SLACK` (SMTP, WEBHOOK, SLACK or PAGERDUTY)"
        );
        assert!(e.is_config());
        let row = NotifierRow {
            kind: "smtp".into(),
            address: "not mail".into(),
            ..row
        };
        let e = Mailer::build(&row, "SkyPunch <s@localhost>", t)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "notifier 4: address `not mail` is not an e-mail address"
        );
    }

    #[test]
    fn the_cache_rebuilds_only_when_the_row_changes() {
        let mut cache = Cache::default();
        let t = Duration::from_secs(1);
        let mut row = NotifierRow {
            id: 5,
            kind: "SMTP".into(),
            address: "a@b.c".into(),
            params: "server=one".into(),
            ..NotifierRow::default()
        };
        assert_eq!(
            cache.get(&row, "s@localhost", t).as_ref().unwrap().server(),
            "one:587"
        );
        row.params = "server=two,port=25,tls=none".into();
        assert_eq!(
            cache.get(&row, "s@localhost", t).as_ref().unwrap().server(),
            "two:25"
        );
        cache.retain(&[]);
        assert!(cache.entries.is_empty());
    }
}
