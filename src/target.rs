//! Validation of a target row into a [`Target`] the workers can run. Pure; used by the
//! loader thread and the CLI. A row that does not validate is never scheduled: its error
//! becomes the row's `config error: ...` description.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::base::authn::{self, Auth};
use crate::base::ca::CaFiles;
use crate::base::client_cert::ClientIdentities;
use crate::base::conditions::Conditions;
use crate::base::headers::RequestHeaders;
use crate::base::model::{IpFamily, Method, Target, TargetId};
use crate::base::proxy::{NoProxy, ProxyUrl};
use crate::base::push;
use crate::base::redactor::Redactor;
use crate::base::secrets::Secrets;
use crate::base::text;
use crate::base::urls::WebUrl;
use crate::db::targets::TargetRow;

/// Longest frequency accepted: a week.
const MAX_FREQUENCY: i64 = 7 * 86400;
/// Longest timeout accepted: an hour.
const MAX_TIMEOUT: i64 = 3600;
/// Ten years: longer than any certificate a public CA issues.
const MAX_CERT_WARN_DAYS: u32 = 3650;

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

/// What validating a row reads besides the row: the files rows name, each read once and
/// shared by the rows naming it, and the config's defaults. Owned by the loader thread (or a
/// CLI command).
#[derive(Debug, Default)]
pub struct Shared {
    /// CA bundles (`ca_file`, `[settings] CaFile`), read again at each loader pass.
    pub cas: CaFiles,
    /// Client certificates (`client_cert`, `client_key`), read again when they change.
    pub identities: ClientIdentities,
    /// `[settings] Proxy`, for rows without a `proxy_url`.
    pub proxy: Option<Arc<ProxyUrl>>,
    /// `[settings] NoProxy`: the hosts reached without the default proxy.
    pub no_proxy: Arc<NoProxy>,
}

impl Shared {
    /// What the rows of a daemon (or CLI command) reading `config` share.
    pub fn new(config: &crate::config::Config) -> Shared {
        Shared {
            cas: CaFiles::new(config.ca_file.clone()),
            identities: ClientIdentities::default(),
            proxy: config.proxy.clone().map(Arc::new),
            no_proxy: config.no_proxy.clone(),
        }
    }

    /// The proxy of a row whose `proxy_url` is `own` and whose host is `host`: its own (none
    /// when it says `none`), its `${secret:NAME}` references filled in from `secrets`; else
    /// the default unless `NoProxy` names the host.
    fn proxy(
        &self,
        own: Option<&str>,
        host: &str,
        secrets: &Secrets,
    ) -> Result<Option<Arc<ProxyUrl>>, Error> {
        match own.map(str::trim).filter(|p| !p.is_empty()) {
            Some(none) if none.eq_ignore_ascii_case("none") => Ok(None),
            Some(own) => {
                let expanded = secrets
                    .expand(own)
                    .map_err(|e| Error::Proxy(e.to_string()))?;
                ProxyUrl::parse(&expanded)
                    .map(|p| Some(Arc::new(p)))
                    .map_err(Error::Proxy)
            }
            None if self.no_proxy.matches(host) => Ok(None),
            None => Ok(self.proxy.clone()),
        }
    }
}

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

/// The dependency errors of the enabled rows, as the loader checks the whole graph (at every
/// change and every minute): `edges` maps each enabled row with a `depends_on` to that value
/// and whether a row of that id exists. A missing parent is an error of its child; a cycle
/// (`a -> b -> a`) is an error of every row on it, naming them all. A row that only leads
/// into a cycle is not in error: its parent is, and is not checked. Pure; linear in the
/// number of edges.
pub fn dependency_errors(edges: &BTreeMap<TargetId, (i64, bool)>) -> BTreeMap<TargetId, Error> {
    let mut errors = BTreeMap::new();
    // 1: on the path being walked, 2: done.
    let mut seen: HashMap<TargetId, u8> = HashMap::with_capacity(edges.len());
    for (&start, &(parent, exists)) in edges {
        if !exists || parent < 1 {
            errors.insert(start, Error::NoParent(parent));
        }
        let mut path = Vec::new();
        let mut at = start;
        let back_at = loop {
            match seen.get(&at) {
                Some(1) => break Some(at),
                Some(_) => break None,
                None => {}
            }
            seen.insert(at, 1);
            path.push(at);
            match edges.get(&at) {
                Some(&(next, true)) if next > 0 => at = next as TargetId,
                _ => break None,
            }
        };
        if let Some(from) = back_at.and_then(|at| path.iter().position(|id| *id == at)) {
            let cycle = smallest_first(&path[from..]);
            for id in &cycle {
                errors.insert(*id, Error::Cycle(cycle.clone()));
            }
        }
        for id in path {
            seen.insert(id, 2);
        }
    }
    errors
}

/// A cycle's ids turned to start at the smallest, so each of its rows names it alike.
fn smallest_first(cycle: &[TargetId]) -> Vec<TargetId> {
    let low = (0..cycle.len()).min_by_key(|i| cycle[*i]).unwrap_or(0);
    cycle[low..].iter().chain(&cycle[..low]).copied().collect()
}

/// The `conditions` column parsed; `None` when it holds none (NULL, blank lines, comments).
fn conditions(text: Option<&str>) -> Result<Option<Arc<Conditions>>, Error> {
    let Some(text) = text else {
        return Ok(None);
    };
    let parsed = Conditions::parse(text).map_err(|e| Error::Conditions(e.to_string()))?;
    Ok((!parsed.is_empty()).then(|| Arc::new(parsed)))
}

/// The `request_headers` column with its secrets filled in, parsed. A header the `authn` sets
/// itself is refused: which of the two would the target see?
fn request_headers(
    text: Option<&str>,
    auth: &Auth,
    secrets: &Secrets,
) -> Result<RequestHeaders, Error> {
    let Some(text) = text else {
        return Ok(RequestHeaders::default());
    };
    let bad = |why: String| Error::RequestHeaders(why);
    let expanded = secrets
        .expand(text)
        .map_err(|e| bad(format!("request_headers: {e}")))?;
    let headers = RequestHeaders::parse(&expanded).map_err(|e| bad(e.to_string()))?;
    let set_by_authn = match auth {
        Auth::None => None,
        Auth::Basic { .. } | Auth::Bearer { .. } | Auth::OAuth2(_) => Some("Authorization"),
        Auth::OpenStack(_) => Some("X-Auth-Token"),
    };
    if let Some(name) = set_by_authn.filter(|name| headers.contains(name)) {
        return Err(bad(format!(
            "request_headers: {name} is set by authn {}",
            auth.kind()
        )));
    }
    Ok(headers)
}

/// What a PUSH target's `url` becomes: nothing is requested, so its `url` is not read (an
/// operator may note the job's address there); a reserved name that resolves nowhere stands
/// in. Its `push_token` must be usable, when set (the loader fills a NULL one).
fn push_url(row: &TargetRow) -> Result<WebUrl, Error> {
    if let Some(problem) = row.push_token.as_deref().and_then(push::token_problem) {
        return Err(Error::PushToken(problem));
    }
    Ok(WebUrl::parse(PUSH_URL).expect("a valid URL"))
}

/// The URL a PUSH target holds in place of one (RFC 2606 keeps `.invalid` unresolvable).
pub const PUSH_URL: &str = "http://push.invalid/";

/// Why a target is checked less often than its frequency says, when its timeout is longer:
/// a target is never checked twice at once, so a check that takes longer than the frequency
/// delays the next one, which starts as soon as it ends. Checks then come every `frequency`
/// to `timeout` seconds: the effective interval is the time the checks take. `None` when the
/// timeout fits in the frequency. Pure; the loader logs it, `targets ID` shows it.
pub fn stretched_schedule(frequency: Duration, timeout: Duration) -> Option<String> {
    let (f, t) = (frequency.as_secs(), timeout.as_secs());
    (timeout > frequency).then(|| {
        format!(
            "every {f}s to {t}s, not every {f}s: its timeout {t}s is longer than its frequency \
             {f}s, and a check that takes longer than {f}s delays the next (never two at once; \
             every {t}s while checks time out)"
        )
    })
}

fn seconds(column: &'static str, value: i64, max: i64) -> Result<Duration, Error> {
    if value < 1 {
        return Err(Error::TooShort { column, value });
    }
    if value > max {
        return Err(Error::TooLong { column, value, max });
    }
    Ok(Duration::from_secs(value as u64))
}

fn at_least_one(column: &'static str, value: i64) -> Result<(), Error> {
    if value < 1 {
        return Err(Error::BelowOne { column, value });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TargetRow {
        TargetRow {
            id: 7,
            name: "Example".into(),
            status: "NEW".into(),
            url: "http://127.0.0.1:8080/health".into(),
            method: "GET".into(),
            authn: "NONE".into(),
            pass_result: 200,
            frequency: 60,
            timeout: 10,
            enabled: true,
            verify_tls: true,
            fail_threshold: 1,
            success_threshold: 1,
            cert_warn_days: 14,
            ..TargetRow::default()
        }
    }

    #[test]
    fn a_defaulted_row_is_a_valid_target() {
        let t = from_row(&row(), &mut Shared::default(), &Secrets::new()).unwrap();
        assert_eq!(
            (
                t.method,
                t.pass_result,
                t.frequency.as_secs(),
                t.timeout.as_secs()
            ),
            (Method::Get, 200, 60, 10)
        );
    }

    #[test]
    fn each_bad_value_gets_its_own_config_error() {
        type Spoil = fn(&mut TargetRow);
        let cases: Vec<(Spoil, &str)> = vec![
            (|r| r.method = "FETCH".into(), "unknown method `FETCH`"),
            (
                |r| r.url = "ftp://x/".into(),
                "is not an absolute http:// or https:// URL",
            ),
            (|r| r.url = "http://a b/".into(), "contains white space"),
            (|r| r.url = String::new(), "url is empty"),
            (|r| r.frequency = 0, "frequency 0 is less than 1 second"),
            (|r| r.timeout = -5, "timeout -5 is less than 1 second"),
            (
                |r| r.pass_result = 42,
                "pass_result 42 is not an HTTP status",
            ),
            (|r| r.authn = "KERBEROS".into(), "unknown authn `KERBEROS`"),
            (
                |r| r.authn = "BASIC".into(),
                "BASIC needs user and password",
            ),
            (|r| r.fail_threshold = 0, "fail_threshold 0 is less than 1"),
            (
                |r| r.success_threshold = 0,
                "success_threshold 0 is less than 1",
            ),
        ];
        for (spoil, expected) in cases {
            let mut r = row();
            spoil(&mut r);
            let err = from_row(&r, &mut Shared::default(), &Secrets::new())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }

    #[test]
    fn a_timeout_longer_than_the_frequency_says_how_often_checks_really_come() {
        let secs = Duration::from_secs;
        assert_eq!(stretched_schedule(secs(60), secs(10)), None);
        assert_eq!(stretched_schedule(secs(5), secs(5)), None);
        let why = stretched_schedule(secs(2), secs(8)).unwrap();
        assert!(why.starts_with("every 2s to 8s, not every 2s: "), "{why}");
        assert!(
            why.contains("timeout 8s is longer than its frequency 2s"),
            "{why}"
        );
        assert!(
            why.ends_with("(never two at once; every 8s while checks time out)"),
            "{why}"
        );
    }

    #[test]
    fn a_row_that_does_not_decode_is_its_own_config_error() {
        let read = crate::db::targets::Read::All;
        let bad = |f: &mut crate::db::decode::Fields| TargetRow::decode(f, read).unwrap_err();
        let values = vec![Some(mysql::Value::Int(7)), Some(mysql::Value::NULL)];
        let mut r = row();
        r.undecodable = Some(bad(&mut crate::db::decode::Fields::of("targets", values)));
        let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
        assert_eq!(err.to_string(), "name: NULL is not UTF-8 text");
    }

    fn secrets() -> Secrets {
        let mut s = Secrets::new();
        s.insert("API_KEY", "k-7f3a9c21");
        s.insert("CS", "client-secret-1");
        s
    }

    #[test]
    fn secret_references_are_filled_in_and_an_unknown_one_is_a_config_error() {
        let mut r = row();
        r.url = "http://127.0.0.1:8080/h/${secret:API_KEY}".into();
        r.authn = "OAUTH2".into();
        r.authn_parms = Some(
            "token_url=http://127.0.0.1:9/token,client_id=mon,client_secret=${secret:CS}".into(),
        );
        r.request_headers = Some("X-Api-Key: ${secret:API_KEY}\nAccept: application/json".into());
        r.request_body = Some(r#"{"key":"${secret:API_KEY}"}"#.into());
        let t = from_row(&r, &mut Shared::default(), &secrets()).unwrap();
        assert_eq!(t.url.as_str(), "http://127.0.0.1:8080/h/k-7f3a9c21");
        assert_eq!(t.url.shown(), "http://127.0.0.1:8080/h/${secret:API_KEY}");
        let Auth::OAuth2(p) = &t.auth else {
            panic!("{:?}", t.auth)
        };
        assert_eq!(p.client_secret.expose(), "client-secret-1");
        let sent: Vec<_> = t
            .request_headers
            .iter()
            .map(|(_, v)| v.to_str().unwrap())
            .collect();
        assert_eq!(sent, ["k-7f3a9c21", "application/json"]);
        assert_eq!(
            t.request_body.as_ref().map(|b| b.expose()),
            Some(r#"{"key":"k-7f3a9c21"}"#)
        );
        assert!(!format!("{t:?}").contains("client-secret-1"));
        type Spoil = fn(&mut TargetRow);
        let cases: Vec<(Spoil, &str)> = vec![
            (
                |r| r.url = "http://h/${secret:NOPE}".into(),
                "url: unknown secret `NOPE`",
            ),
            (
                |r| r.request_headers = Some("X-A: ${secret:NOPE}".into()),
                "request_headers: unknown secret `NOPE`",
            ),
            (
                |r| r.request_body = Some("${secret:NOPE}".into()),
                "request_body: unknown secret `NOPE`",
            ),
            (
                |r| {
                    r.authn_parms =
                        Some("token_url=http://h/t,client_id=a,client_secret=${secret:NOPE}".into())
                },
                "authn_parms client_secret: unknown secret `NOPE`",
            ),
        ];
        for (spoil, expected) in cases {
            let mut bad = r.clone();
            spoil(&mut bad);
            let err = from_row(&bad, &mut Shared::default(), &secrets())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(expected),
                "{err} should start with {expected}"
            );
        }
    }

    #[test]
    fn a_config_error_never_quotes_what_a_secret_expanded_to() {
        let mut r = row();
        r.request_headers = Some("Accept: */*\n${secret:API_KEY}".into());
        let err = from_row(&r, &mut Shared::default(), &secrets()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "request_headers line 2: `***` is not `Name: value`"
        );
    }

    #[test]
    fn conditions_and_headers_are_validated_at_load() {
        let mut r = row();
        r.conditions = Some("# health\n[STATUS] == 200\n[BODY].status == ok\n".into());
        let t = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap();
        assert_eq!(t.conditions.as_ref().map(|c| c.len()), Some(2));
        r.conditions = Some("\n# nothing yet\n".into());
        let t = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap();
        assert!(t.conditions.is_none());
        r.conditions = Some("[STATUS] == 200\n[BODY].status ok".into());
        let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
        assert!(
            err.to_string().starts_with("conditions line 2, column "),
            "{err}"
        );
        let mut r = row();
        r.request_headers = Some("Accept: */*\nno colon".into());
        let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "request_headers line 2: `no colon` is not `Name: value`"
        );
        r.request_headers = Some("authorization: Bearer x".into());
        r.authn = "BEARER".into();
        r.authn_parms = Some("token=abc".into());
        let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "request_headers: Authorization is set by authn BEARER"
        );
        r.authn = "NONE".into();
        assert!(from_row(&r, &mut Shared::default(), &Secrets::new()).is_ok());
    }

    #[test]
    fn a_push_target_needs_no_url_but_a_usable_token() {
        let mut r = row();
        r.method = "push".into();
        r.url = String::new();
        let t = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap();
        assert_eq!((t.method, t.url.as_str()), (Method::Push, PUSH_URL));
        r.push_token = Some("backup-job_2026-nightly".into());
        assert!(from_row(&r, &mut Shared::default(), &Secrets::new()).is_ok());
        r.push_token = Some("s3cret".into());
        let err = from_row(&r, &mut Shared::default(), &Secrets::new())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("push_token has 6 characters"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn ip_family_and_proxy_url_are_validated_and_the_password_never_shown() {
        let mut r = row();
        r.ip_family = " 6 ".into();
        r.proxy_url = Some("http://ops:hunter2@127.0.0.1:3128".into());
        let t = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap();
        assert_eq!(t.ip_family, IpFamily::V6);
        assert_eq!(t.proxy.unwrap().shown(), "http://***@127.0.0.1:3128");
        r.ip_family = "5".into();
        let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
        assert_eq!(err.to_string(), "ip_family `5` is none of any, 4, 6");
        r.ip_family = "any".into();
        r.proxy_url = Some("socks5://ops:hunter2@127.0.0.1:1080".into());
        let err = from_row(&r, &mut Shared::default(), &Secrets::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "proxy_url: proxy `socks5://***@127.0.0.1:1080` is not an http:// proxy"
            ),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_default_proxy_serves_the_rows_without_their_own_but_no_proxy_hosts() {
        let mut shared = Shared {
            proxy: Some(Arc::new(ProxyUrl::parse("http://10.0.0.1:3128").unwrap())),
            no_proxy: Arc::new(NoProxy::parse(".internal.example, 127.0.0.0/8").unwrap()),
            ..Shared::default()
        };
        let proxy_of = |url: &str, own: Option<&str>, shared: &mut Shared| {
            let mut r = row();
            r.url = url.into();
            r.proxy_url = own.map(String::from);
            from_row(&r, shared, &Secrets::new())
                .unwrap()
                .proxy
                .map(|p| p.shown().to_string())
        };
        let default = Some("http://10.0.0.1:3128".to_string());
        assert_eq!(proxy_of("https://api.example/", None, &mut shared), default);
        assert_eq!(proxy_of("http://127.0.0.1:8080/", None, &mut shared), None);
        assert_eq!(
            proxy_of("http://db.internal.example/", None, &mut shared),
            None
        );
        assert_eq!(
            proxy_of("https://api.example/", Some("none"), &mut shared),
            None
        );
        assert_eq!(
            proxy_of(
                "http://127.0.0.1/",
                Some("http://10.9.9.9:8080"),
                &mut shared
            ),
            Some("http://10.9.9.9:8080".to_string()),
            "a row's own proxy is used whatever NoProxy says"
        );
    }

    #[test]
    fn a_missing_parent_and_every_row_of_a_cycle_are_errors_and_a_chain_is_not() {
        let edges: BTreeMap<TargetId, (i64, bool)> = [
            (1, (2, true)), // 1 -> 2 -> 3: a chain
            (2, (3, true)),
            (4, (99, false)), // no target 99
            (5, (6, true)),   // 5 -> 6 -> 7 -> 5: a cycle
            (6, (7, true)),
            (7, (5, true)),
            (8, (6, true)), // leads into the cycle
        ]
        .into_iter()
        .collect();
        let errors = dependency_errors(&edges);
        let ids: Vec<TargetId> = errors.keys().copied().collect();
        assert_eq!(ids, vec![4, 5, 6, 7]);
        assert_eq!(errors[&4].to_string(), "depends_on 99 names no target");
        for id in [5, 6, 7] {
            assert_eq!(
                errors[&id].to_string(),
                "depends_on makes a cycle (5 -> 6 -> 7 -> 5): set one of them to NULL"
            );
        }
        let two: BTreeMap<TargetId, (i64, bool)> =
            [(9, (3, true)), (3, (9, true))].into_iter().collect();
        let errors = dependency_errors(&two);
        assert_eq!(errors.len(), 2);
        assert!(errors[&9].to_string().contains("(3 -> 9 -> 3)"));
    }

    #[test]
    fn a_row_depending_on_itself_or_on_no_id_is_its_own_config_error() {
        let mut r = row();
        r.depends_on = Some(7);
        let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "depends_on makes a cycle (7 -> 7): set one of them to NULL"
        );
        r.depends_on = Some(0);
        let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
        assert_eq!(err.to_string(), "depends_on 0 names no target");
        r.depends_on = Some(3);
        assert_eq!(
            from_row(&r, &mut Shared::default(), &Secrets::new())
                .unwrap()
                .depends_on,
            Some(3)
        );
    }

    #[test]
    fn a_client_certificate_that_cannot_be_read_is_the_rows_config_error() {
        let mut r = row();
        r.client_cert = Some("/nonexistent/skypunch-client.pem".into());
        let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "client_cert /nonexistent/skypunch-client.pem: cannot read it: No such file or \
             directory (os error 2)"
        );
        r.client_cert = None;
        r.client_key = Some("/k.pem".into());
        let err = from_row(&r, &mut Shared::default(), &Secrets::new()).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("client_key is set but client_cert is not"));
    }

    #[test]
    fn a_proxy_password_comes_from_secrets_and_no_error_quotes_it() {
        let mut secrets = Secrets::new();
        secrets.insert("PROXY_PW", "pr0xy-s3cret");
        secrets.insert("PROXY_HOST", "proxy.internal.example");
        let mut r = row();
        r.proxy_url = Some("http://ops:${secret:PROXY_PW}@127.0.0.1:3128".into());
        let t = from_row(&r, &mut Shared::default(), &secrets).unwrap();
        let proxy = t.proxy.unwrap();
        assert_eq!(proxy.shown(), "http://***@127.0.0.1:3128");
        // base64("ops:pr0xy-s3cret")
        assert_eq!(
            proxy.authorization().map(|a| a.expose()),
            Some("Basic b3BzOnByMHh5LXMzY3JldA==")
        );
        r.proxy_url = Some("http://ops:${secret:NOPE}@127.0.0.1:3128".into());
        let err = from_row(&r, &mut Shared::default(), &secrets).unwrap_err();
        assert_eq!(
            err.to_string(),
            "proxy_url: unknown secret `NOPE`: add it to [secrets] in the config file, then SIGHUP"
        );
        // A value in the host part is quoted by the parser's error: masked before it is stored.
        r.proxy_url = Some("http://${secret:PROXY_HOST}/".into());
        let err = from_row(&r, &mut Shared::default(), &secrets)
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no port"), "{err}");
        assert!(!err.contains("proxy.internal.example"), "{err}");
    }

    #[test]
    fn methods_are_case_insensitive() {
        let mut r = row();
        r.method = " post ".into();
        assert_eq!(
            from_row(&r, &mut Shared::default(), &Secrets::new())
                .unwrap()
                .method,
            Method::Post
        );
    }
}
