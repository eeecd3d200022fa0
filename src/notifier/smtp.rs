//! SMTP delivery through lettre: parses a notifier's `params` into validated settings (pure),
//! builds one blocking [`SmtpTransport`] per notifier and keeps it in a cache keyed by notifier
//! id and params. Runs on the notifier thread, and once on the main thread for
//! `skypunch notifiers ID test`.
//!
//! `params` is the original's `user=U,password=P,server=HOST` (port 587, STARTTLS, login),
//! plus optional keys:
//! - `port=N`: the server's port (default 587 for `starttls`, 465 for `tls`, 25 for `none`);
//!   `server=HOST:PORT` is accepted too;
//! - `tls=starttls | tls | none`: STARTTLS required (default), TLS from the first byte
//!   (SMTPS), or plain text;
//! - `from=ADDRESS`: the sender, instead of `[notifications] From`;
//! - `tlsverify=no`: accept any certificate and host name (test servers with self-signed
//!   certificates only; the default `yes` verifies against the webpki roots);
//! - `ca_file=PATH`: a PEM bundle of CA certificates trusted besides those roots (a server
//!   with a private CA), read when the notifier is built.
//!
//! No `user` and no `password` means no authentication. Lettre has no pool feature here, so
//! every message is one connection; each blocking read, write and connect is bounded by
//! `[notifications] SmtpTimeout`.

use std::collections::HashMap;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::base::authn::{split_params, Secret};
use crate::db::notifiers::NotifierRow;

/// How the connection to the server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Wrapper,
    /// No encryption at all.
    None,
}

/// A notifier's validated SMTP settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpParams {
    pub server: String,
    pub port: u16,
    pub tls: TlsMode,
    pub verify: bool,
    pub login: Option<(String, Secret)>,
    pub from: Option<Mailbox>,
    /// CA certificates trusted besides the public roots.
    pub ca_file: Option<std::path::PathBuf>,
}

const KNOWN: &str = "user, password, server, port, tls, from, tlsverify, ca_file";

/// The parameters as given, before the defaults and the checks across them.
#[derive(Default)]
struct Given {
    user: Option<String>,
    password: Option<String>,
    server: Option<String>,
    port: Option<u16>,
    tls: Option<TlsMode>,
    verify: Option<bool>,
    from: Option<Mailbox>,
    ca_file: Option<std::path::PathBuf>,
}

/// Parses `params` of notifier `id`. Errors name the notifier and never show the password.
pub fn parse_params(id: u64, params: &str) -> Result<SmtpParams, String> {
    let fail = |why: String| format!("notifier {id}: {why}");
    let pairs = split_params(params).map_err(|e| fail(format!("bad params: {e}")))?;
    let mut given = Given::default();
    for (key, value) in pairs {
        given.set(&key, value).map_err(fail)?;
    }
    given.finish().map_err(fail)
}

impl Given {
    fn set(&mut self, key: &str, value: String) -> Result<(), String> {
        let non_empty = Some(value.clone()).filter(|v| !v.is_empty());
        match key {
            "user" => self.user = non_empty,
            "password" => self.password = non_empty,
            "server" => self.server = non_empty,
            "port" => self.port = Some(parse_port(&value)?),
            "tls" => self.tls = Some(parse_tls(&value)?),
            "tlsverify" => self.verify = Some(parse_yes_no(&value)?),
            "ca_file" => self.ca_file = non_empty.map(std::path::PathBuf::from),
            "from" => {
                let from = value
                    .parse::<Mailbox>()
                    .map_err(|_| format!("from `{value}` is not an e-mail address"))?;
                self.from = Some(from);
            }
            other => return Err(format!("unknown parameter `{other}` (known: {KNOWN})")),
        }
        Ok(())
    }

    fn finish(self) -> Result<SmtpParams, String> {
        let Some(mut server) = self.server else {
            return Err("params need server=HOST".into());
        };
        let mut port = self.port;
        if port.is_none() {
            // `server=mail.example.com:2525`, as the original's users wrote it.
            if let Some((host, p)) = server.rsplit_once(':') {
                if let Ok(p) = p.parse::<u16>() {
                    port = Some(p);
                    server = host.to_string();
                }
            }
        }
        let login = match (self.user, self.password) {
            (Some(u), Some(p)) => Some((u, Secret::new(p))),
            (None, None) => None,
            _ => return Err("params need both user and password, or neither".into()),
        };
        let tls = self.tls.unwrap_or(TlsMode::StartTls);
        let port = port.unwrap_or(match tls {
            TlsMode::StartTls => 587,
            TlsMode::Wrapper => 465,
            TlsMode::None => 25,
        });
        Ok(SmtpParams {
            server,
            port,
            tls,
            verify: self.verify.unwrap_or(true),
            login,
            from: self.from,
            ca_file: self.ca_file,
        })
    }
}

fn parse_port(value: &str) -> Result<u16, String> {
    value
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("port `{value}` is not a port number"))
}

fn parse_tls(value: &str) -> Result<TlsMode, String> {
    match value.to_ascii_lowercase().as_str() {
        "starttls" => Ok(TlsMode::StartTls),
        "tls" | "ssl" | "smtps" => Ok(TlsMode::Wrapper),
        "none" | "no" | "off" => Ok(TlsMode::None),
        _ => Err(format!("tls `{value}` is not starttls, tls or none")),
    }
}

fn parse_yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Ok(true),
        "no" | "false" | "0" | "off" => Ok(false),
        _ => Err(format!("tlsverify `{value}` is not yes or no")),
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
    ) -> Result<Mailer, String> {
        if !row.kind.trim().eq_ignore_ascii_case("SMTP") {
            return Err(format!(
                "notifier {}: unknown type `{}` (SMTP, WEBHOOK, SLACK or PAGERDUTY)",
                row.id, row.kind
            ));
        }
        let params = parse_params(row.id, &row.params)?;
        let to = row.address.trim().parse::<Mailbox>().map_err(|_| {
            format!(
                "notifier {}: address `{}` is not an e-mail address",
                row.id, row.address
            )
        })?;
        let from = match &params.from {
            Some(f) => f.clone(),
            None => default_from.parse::<Mailbox>().map_err(|_| {
                format!("configured From `{default_from}` is not an e-mail address")
            })?,
        };
        let transport =
            transport(&params, timeout).map_err(|e| format!("notifier {}: {e}", row.id))?;
        Ok(Mailer {
            transport,
            params,
            from,
            to,
        })
    }

    /// Sends one message; the error is a reason fit for logs and `last_error` (no secrets).
    pub fn send(&self, message: &Message) -> Result<(), String> {
        self.transport
            .send(message)
            .map(drop)
            .map_err(|e| smtp_reason(&e, &self.params))
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.params.server, self.params.port)
    }
}

fn transport(p: &SmtpParams, timeout: Duration) -> Result<SmtpTransport, String> {
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
        builder.build().map_err(|e| smtp_reason(&e, p))
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
fn private_roots(path: &std::path::Path) -> Result<Certificate, String> {
    crate::base::ca::CaBundle::load(path).map_err(|e| e.to_string())?;
    let pem = std::fs::read(path)
        .map_err(|e| format!("ca_file {}: cannot read it: {e}", path.display()))?;
    Certificate::from_pem(&pem).map_err(|e| format!("ca_file {}: {e}", path.display()))
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
    entries: HashMap<u64, (String, Result<Mailer, String>)>,
}

impl Cache {
    /// The mailer for this notifier row, or why it cannot send.
    pub fn get(
        &mut self,
        row: &NotifierRow,
        default_from: &str,
        timeout: Duration,
    ) -> &Result<Mailer, String> {
        let key = format!("{}\n{}\n{}", row.kind, row.params, row.address);
        let entry = self
            .entries
            .entry(row.id)
            .or_insert_with(|| (String::new(), Err(String::new())));
        if entry.0 != key || entry.0.is_empty() {
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
    fn the_original_params_mean_starttls_on_587_with_login() {
        let p = parse_params(1, "user=ops, password=s=cret ,server=smtp.example").unwrap();
        assert_eq!(
            (p.server.as_str(), p.port, p.tls, p.verify),
            ("smtp.example", 587, TlsMode::StartTls, true)
        );
        let (user, pw) = p.login.unwrap();
        assert_eq!((user.as_str(), pw.expose()), ("ops", "s=cret"));
        assert!(p.from.is_none());
    }

    #[test]
    fn optional_params_are_read() {
        let p = parse_params(
            2,
            "server=mx:2525,tls=none,from=Ops <ops@example.com>,tlsverify=no",
        )
        .unwrap();
        assert_eq!(
            (p.server.as_str(), p.port, p.tls, p.verify),
            ("mx", 2525, TlsMode::None, false)
        );
        assert!(p.login.is_none());
        assert_eq!(p.from.unwrap().email.to_string(), "ops@example.com");
        assert_eq!(parse_params(2, "server=mx,tls=tls").unwrap().port, 465);
        assert_eq!(
            parse_params(2, "server=mx,tls=none,port=26").unwrap().port,
            26
        );
    }

    #[test]
    fn bad_params_say_what_is_wrong_without_the_password() {
        assert_eq!(
            parse_params(3, "user=a,password=b").unwrap_err(),
            "notifier 3: params need server=HOST"
        );
        assert_eq!(
            parse_params(3, "server=x,password=hunter2").unwrap_err(),
            "notifier 3: params need both user and password, or neither"
        );
        assert_eq!(
            parse_params(3, "server=x,port=0").unwrap_err(),
            "notifier 3: port `0` is not a port number"
        );
        assert!(parse_params(3, "server=x,tls=maybe")
            .unwrap_err()
            .contains("tls `maybe`"));
        assert!(parse_params(3, "server=x,colour=red")
            .unwrap_err()
            .contains("unknown parameter `colour`"));
        assert!(parse_params(3, "server=x,password")
            .unwrap_err()
            .starts_with("notifier 3: bad params"));
        let e = parse_params(3, "server=x,from=nobody,password=hunter2,user=u").unwrap_err();
        assert!(e.contains("from `nobody`") && !e.contains("hunter2"), "{e}");
    }

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
            e,
            "notifier 4: unknown type `SLACK` (SMTP, WEBHOOK, SLACK or PAGERDUTY)"
        );
        let row = NotifierRow {
            kind: "smtp".into(),
            address: "not mail".into(),
            ..row
        };
        let e = Mailer::build(&row, "SkyPunch <s@localhost>", t)
            .err()
            .unwrap();
        assert_eq!(e, "notifier 4: address `not mail` is not an e-mail address");
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
