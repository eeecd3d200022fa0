//! Validation of a target row into a [`Target`] the workers can run. Pure; used by the
//! loader thread and the CLI. A row that does not validate is never scheduled: its error
//! becomes the row's `config error: ...` description. Here: the error and the row taken
//! column by column; the columns that need more than a line are [`limits`] (numbers and the
//! schedule), [`request`] (what is sent and how the answer is judged), the files and
//! defaults rows share are [`shared`], and the graph of `depends_on` is [`dependencies`].

mod dependencies;
mod limits;
mod request;
mod shared;

use std::fmt;
use std::time::Duration;

use crate::base::authn;
use crate::base::model::{IpFamily, Method, Target, TargetId};
use crate::base::redactor::Redactor;
use crate::base::secrets::Secrets;
use crate::base::text;
use crate::base::urls::WebUrl;
use crate::db::targets::TargetRow;

pub use dependencies::dependency_errors;
pub use limits::stretched_schedule;
use limits::{at_least_one, seconds, MAX_CERT_WARN_DAYS, MAX_FREQUENCY, MAX_TIMEOUT};
use request::{conditions, push_url, request_headers};

pub use shared::Shared;

/// Why a row is not a target the workers can run. `Display` is the text after `config
/// error: `, which the row's description, the log and `targets ID test` show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The row does not decode: the column, and why.
    Undecodable { column: &'static str, why: String },
    /// `method` is none of the HTTP methods a check makes; the value as written.
    Method(String),
    /// `url` is empty or not an absolute http(s) URL; the reason names it in its display form.
    Url(String),
    /// `authn` is unknown, or `authn_parms` do not fit it; the reason never shows a secret.
    Authn(String),
    /// `pass_result` is not an HTTP status.
    PassResult(i64),
    /// A number of seconds (`frequency`, `timeout`) below 1.
    TooShort { column: &'static str, value: i64 },
    /// A number of seconds (`frequency`, `timeout`) above its longest.
    TooLong {
        column: &'static str,
        value: i64,
        max: i64,
    },
    /// A value that must be at least 1 (`fail_threshold`, `success_threshold`,
    /// `max_response_ms`).
    BelowOne { column: &'static str, value: i64 },
    /// `cert_warn_days` is out of its range.
    CertWarnDays(i64),
    /// The CA bundle (`ca_file`, or `[settings] CaFile`) cannot be used; the reason names it.
    CaFile(String),
    /// `depends_on` names no target (the id as stored).
    NoParent(i64),
    /// `depends_on` leads back to the row: the ids around the loop, from the smallest, which
    /// every row on it gets as its error.
    Cycle(Vec<TargetId>),
    /// A line of `conditions` does not parse: its line, column and what was expected.
    Conditions(String),
    /// `request_headers` has a bad line, names an unknown secret, or sets the header `authn`
    /// sets.
    RequestHeaders(String),
    /// `request_body` names an unknown secret, or a malformed reference.
    RequestBody(String),
    /// A PUSH target's `push_token` is not one a push can use; the reason (never the token).
    PushToken(String),
    /// `client_cert` or `client_key` cannot be used; the reason names the file.
    ClientCert(String),
    /// `proxy_url` is not an http proxy URL, or names an unknown secret; the reason shows it
    /// without its user info.
    Proxy(String),
    /// `ip_family` is none of `any`, `4`, `6`; the value as written.
    IpFamily(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Undecodable { column, why } => write!(f, "{column}: {why}"),
            Error::Method(method) => write!(
                f,
                "unknown method `{}`: use GET, POST, PUT, DELETE, HEAD, PATCH, OPTIONS or PUSH",
                text::clip_marked(method, 60)
            ),
            Error::Url(reason)
            | Error::Authn(reason)
            | Error::CaFile(reason)
            | Error::Conditions(reason)
            | Error::RequestHeaders(reason)
            | Error::RequestBody(reason)
            | Error::PushToken(reason)
            | Error::ClientCert(reason) => f.write_str(reason),
            Error::Proxy(reason) => write!(f, "proxy_url: {reason}"),
            Error::IpFamily(value) => write!(
                f,
                "ip_family `{}` is none of any, 4, 6",
                text::clip_marked(value, 20)
            ),
            Error::PassResult(value) => {
                write!(f, "pass_result {value} is not an HTTP status (100-599)")
            }
            Error::TooShort { column, value } => {
                write!(f, "{column} {value} is less than 1 second")
            }
            Error::TooLong { column, value, max } => {
                write!(f, "{column} {value} is more than {max} seconds")
            }
            Error::BelowOne { column, value } => write!(f, "{column} {value} is less than 1"),
            Error::CertWarnDays(value) => write!(
                f,
                "cert_warn_days {value} is not between 0 and {MAX_CERT_WARN_DAYS}"
            ),
            Error::NoParent(value) => write!(f, "depends_on {value} names no target"),
            Error::Cycle(ids) => {
                let mut around: Vec<String> = ids.iter().map(TargetId::to_string).collect();
                around.extend(ids.first().map(TargetId::to_string));
                write!(
                    f,
                    "depends_on makes a cycle ({}): set one of them to NULL",
                    around.join(" -> ")
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// Validates a row. `shared` reads the files the row names (`ca_file` or the configured
/// default, `client_cert`, `client_key`): a file that cannot be used is the row's config
/// error. `secrets` fill in the `${secret:NAME}` references of `url`, `authn_parms`,
/// `request_headers`, `request_body` and `proxy_url`: a name it does not hold is the row's
/// config error.
pub fn from_row(row: &TargetRow, shared: &mut Shared, secrets: &Secrets) -> Result<Target, Error> {
    validate(row, shared, secrets).map_err(|e| masked(e, secrets))
}

/// The error with the values of `secrets` masked: a reason may quote what a reference
/// expanded to (a header line with no name, a URL), and it is stored in the row.
fn masked(e: Error, secrets: &Secrets) -> Error {
    if secrets.is_empty() {
        return e;
    }
    let redactor = Redactor::from_secrets(secrets);
    let mask = |reason: String| redactor.redact(&reason).into_owned();
    match e {
        Error::Url(r) => Error::Url(mask(r)),
        Error::Authn(r) => Error::Authn(mask(r)),
        Error::CaFile(r) => Error::CaFile(mask(r)),
        Error::Conditions(r) => Error::Conditions(mask(r)),
        Error::RequestHeaders(r) => Error::RequestHeaders(mask(r)),
        Error::RequestBody(r) => Error::RequestBody(mask(r)),
        Error::Proxy(r) => Error::Proxy(mask(r)),
        other => other,
    }
}

fn validate(row: &TargetRow, shared: &mut Shared, secrets: &Secrets) -> Result<Target, Error> {
    if let Some(bad) = &row.undecodable {
        return Err(Error::Undecodable {
            column: bad.column,
            why: bad.why.clone(),
        });
    }
    let method = Method::parse(&row.method).ok_or_else(|| Error::Method(row.method.clone()))?;
    let url = match method {
        Method::Push => push_url(row)?,
        _ => WebUrl::parse_expanded(&row.url, secrets).map_err(Error::Url)?,
    };
    let auth = authn::parse_with_secrets(&row.authn, row.authn_parms.as_deref(), secrets)
        .map_err(Error::Authn)?;
    let conditions = conditions(row.conditions.as_deref())?;
    let request_headers = request_headers(row.request_headers.as_deref(), &auth, secrets)?;
    let request_body = match row.request_body.as_deref() {
        Some(body) => Some(
            secrets
                .expand(body)
                .map_err(|e| Error::RequestBody(format!("request_body: {e}")))?
                .into_owned()
                .into(),
        ),
        None => None,
    };
    let pass_result = u16::try_from(row.pass_result)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or(Error::PassResult(row.pass_result))?;
    let frequency = seconds("frequency", row.frequency, MAX_FREQUENCY)?;
    let timeout = seconds("timeout", row.timeout, MAX_TIMEOUT)?;
    at_least_one("fail_threshold", row.fail_threshold)?;
    at_least_one("success_threshold", row.success_threshold)?;
    let cert_warn_days = u32::try_from(row.cert_warn_days)
        .ok()
        .filter(|d| *d <= MAX_CERT_WARN_DAYS)
        .ok_or(Error::CertWarnDays(row.cert_warn_days))?;
    if let Some(ms) = row.max_response_ms {
        at_least_one("max_response_ms", ms)?;
    }
    let ip_family =
        IpFamily::parse(&row.ip_family).ok_or_else(|| Error::IpFamily(row.ip_family.clone()))?;
    let proxy = shared.proxy(row.proxy_url.as_deref(), url.host(), secrets)?;
    let ca = shared
        .cas
        .get(row.ca_file.as_deref())
        .map_err(|e| Error::CaFile(e.to_string()))?;
    let client_identity = shared
        .identities
        .get(
            row.id,
            row.client_cert.as_deref(),
            row.client_key.as_deref(),
        )
        .map_err(|e| Error::ClientCert(e.to_string()))?;
    let depends_on = match row.depends_on {
        None => None,
        Some(parent) if parent == row.id as i64 => return Err(Error::Cycle(vec![row.id])),
        Some(parent) if parent < 1 => return Err(Error::NoParent(parent)),
        Some(parent) => Some(parent as TargetId),
    };
    Ok(Target {
        id: row.id,
        name: row.name.clone(),
        url,
        method,
        auth,
        pass_result,
        frequency,
        timeout,
        request_body,
        content_type: row.content_type.clone().filter(|c| !c.trim().is_empty()),
        expect_body: row.expect_body.clone().filter(|e| !e.is_empty()),
        max_response_ms: row.max_response_ms.map(|ms| ms as u64),
        follow_redirects: row.follow_redirects,
        verify_tls: row.verify_tls,
        fail_threshold: row.fail_threshold as u64,
        success_threshold: row.success_threshold as u64,
        realert: (row.realert_minutes > 0)
            .then(|| Duration::from_secs(row.realert_minutes as u64 * 60)),
        ca,
        cert_warn_days,
        client_identity,
        proxy,
        ip_family,
        depends_on,
        conditions,
        request_headers,
    })
}

#[cfg(test)]
mod tests;
