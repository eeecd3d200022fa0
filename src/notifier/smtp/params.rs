//! An SMTP notifier's `params` read into validated settings, [`SmtpParams`]. Pure.
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
//! No `user` and no `password` means no authentication.

use lettre::message::Mailbox;

use super::Error;
use crate::base::authn::{split_params, Secret};

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
pub fn parse_params(id: u64, params: &str) -> Result<SmtpParams, Error> {
    let fail = |reason: String| Error::Params {
        notifier: id,
        reason,
    };
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
            parse_params(3, "user=a,password=b")
                .unwrap_err()
                .to_string(),
            "notifier 3: params need server=HOST"
        );
        assert_eq!(
            parse_params(3, "server=x,password=hunter2")
                .unwrap_err()
                .to_string(),
            "notifier 3: params need both user and password, or neither"
        );
        assert_eq!(
            parse_params(3, "server=x,port=0").unwrap_err().to_string(),
            "notifier 3: port `0` is not a port number"
        );
        assert!(parse_params(3, "server=x,tls=maybe")
            .unwrap_err()
            .to_string()
            .contains("tls `maybe`"));
        assert!(parse_params(3, "server=x,colour=red")
            .unwrap_err()
            .to_string()
            .contains("unknown parameter `colour`"));
        assert!(parse_params(3, "server=x,password")
            .unwrap_err()
            .to_string()
            .starts_with("notifier 3: bad params"));
        let e = parse_params(3, "server=x,from=nobody,password=hunter2,user=u")
            .unwrap_err()
            .to_string();
        assert!(e.contains("from `nobody`") && !e.contains("hunter2"), "{e}");
    }
}
