//! A target's `request_headers`: `Name: value` per line, sent with every request of its check
//! (not with a Keystone or OAuth2 token request, which carry their own). Parsed on the loader
//! thread into validated headers, so that a bad name or value is a config error on the row
//! rather than a failure at every check; shown everywhere (CLI, trace, API) in a display form
//! where the values of secret-named headers are `***`. Pure.
//!
//! Blank lines and lines starting with `#` are skipped. A value may hold `${secret:NAME}`
//! references ([`crate::base::secrets`]); they are expanded before parsing, so the expanded
//! value is what is validated.

use std::fmt;

use ureq::http::header::{HeaderName, HeaderValue, HOST};

use crate::base::text;
use crate::base::urls::MASK;

/// Headers per target at most: a bound on what one row makes every check send.
pub const MAX_HEADERS: usize = 64;

/// Bytes of one header line at most (a long JWT is a few kilobytes).
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// Headers skypunch sets itself from the row or the connection: one given here would
/// contradict them. (`Host` may be given, once: a virtual host behind an address.)
const MANAGED: [(&str, &str); 4] = [
    ("content-length", "it is set from request_body"),
    ("transfer-encoding", "it is set from request_body"),
    ("connection", "every check closes its connection"),
    ("content-type", "use the content_type column"),
];

/// Validated request headers, in the order written. Part of the target definition: read only,
/// shared with it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RequestHeaders {
    list: Vec<(HeaderName, HeaderValue)>,
}

// Values may be secrets: `{:?}` shows them as the display form does.
impl fmt::Debug for RequestHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.shown_lines()).finish()
    }
}

/// A line of `request_headers` that is not a valid header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    /// 1-based line of the column's text.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request_headers line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for HeaderError {}

impl RequestHeaders {
    /// Parses the column's text, its secret references already expanded.
    pub fn parse(text: &str) -> Result<RequestHeaders, HeaderError> {
        let mut list = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let err = |message: String| HeaderError { line, message };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if trimmed.len() > MAX_LINE_BYTES {
                return Err(err(format!("longer than {MAX_LINE_BYTES} bytes")));
            }
            if list.len() == MAX_HEADERS {
                return Err(err(format!("more than {MAX_HEADERS} headers")));
            }
            let (name, value) = parse_line(trimmed).map_err(err)?;
            if name == HOST && list.iter().any(|(n, _)| *n == HOST) {
                return Err(err("Host is given twice".into()));
            }
            list.push((name, value));
        }
        Ok(RequestHeaders { list })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The headers to send, in order. The values may be secrets: for the request only.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.list.iter().map(|(n, v)| (n, v))
    }

    /// Whether a header of this name (any case) is given: the loader refuses an
    /// `Authorization` beside an `authn` that sets one.
    pub fn contains(&self, name: &str) -> bool {
        self.list
            .iter()
            .any(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
    }

    /// `Name: value` per header, secret-named values as `***`, for a trace or `targets ID`.
    /// Other values can still hold a `[secrets]` value: outputs also go through the redactor.
    pub fn shown_lines(&self) -> Vec<String> {
        self.list
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes());
                shown_line(name.as_str(), &value)
            })
            .collect()
    }
}

fn parse_line(line: &str) -> Result<(HeaderName, HeaderValue), String> {
    let Some((name, value)) = line.split_once(':') else {
        let quoted = text::clip_marked(&text::visible(line), 40);
        return Err(format!("`{quoted}` is not `Name: value`"));
    };
    let (name, value) = (name.trim(), value.trim());
    let quoted = text::clip_marked(&text::visible(name), 40);
    let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!("`{quoted}` is not a header name (letters, digits and !#$%&'*+-.^_`|~)")
    })?;
    if let Some((_, why)) = MANAGED.iter().find(|(n, _)| *n == header.as_str()) {
        return Err(format!("{quoted} cannot be set here: {why}"));
    }
    let value = HeaderValue::from_str(value).map_err(|_| {
        format!("the value of {quoted} holds a control character (only tab is allowed)")
    })?;
    Ok((header, value))
}

/// Whether a header's value is a secret by its name: it holds auth, token, key, secret,
/// cookie, session, pass, credential or signature, in any case (`Authorization`,
/// `X-Api-Key`, `Cookie`, `X-Auth-Token`, `Proxy-Authorization`...).
pub fn is_secret(name: &str) -> bool {
    const PARTS: [&str; 9] = [
        "auth",
        "token",
        "key",
        "secret",
        "cookie",
        "session",
        "pass",
        "credential",
        "signature",
    ];
    let name = name.to_ascii_lowercase();
    PARTS.iter().any(|p| name.contains(p))
}

/// One header as an output shows it: the value as `***` when the name says it is a secret.
pub fn shown_line(name: &str, value: &str) -> String {
    if is_secret(name) {
        format!("{name}: {MASK}")
    } else {
        format!("{name}: {value}")
    }
}

/// The display form of a `request_headers` column as stored, valid or not (`targets ID` shows
/// a bad row too): each secret-named header's value is `***`, other lines are kept as written,
/// hidden characters shown escaped.
pub fn shown(column: &str) -> String {
    column
        .split('\n')
        .map(|raw| {
            let line = raw.trim();
            match line.split_once(':') {
                Some((name, _)) if is_secret(name.trim()) => format!("{}: {MASK}", name.trim()),
                _ => line.to_string(),
            }
        })
        .map(|line| text::visible(&line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_header_per_line_comments_and_blank_lines_skipped() {
        let text = "# the API gateway's key\r\nX-Api-Key: abc123\n\n  Accept :application/json \n\
                    X-Trace: a:b:c\nX-Empty:\n";
        let h = RequestHeaders::parse(text).unwrap();
        let sent: Vec<(String, String)> = h
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            sent,
            [
                ("x-api-key", "abc123"),
                ("accept", "application/json"),
                ("x-trace", "a:b:c"),
                ("x-empty", ""),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert!(h.contains("X-API-KEY") && !h.contains("authorization"));
    }

    #[test]
    fn a_bad_line_is_an_error_naming_it() {
        let e = |text: &str| RequestHeaders::parse(text).unwrap_err().to_string();
        assert_eq!(
            e("Accept: */*\nno colon here"),
            "request_headers line 2: `no colon here` is not `Name: value`"
        );
        assert_eq!(
            e("Bad Name: x"),
            "request_headers line 1: `Bad Name` is not a header name (letters, digits and \
             !#$%&'*+-.^_`|~)"
        );
        assert_eq!(
            e("X-A: 1\n\nX-B: a\u{1}b"),
            "request_headers line 3: the value of X-B holds a control character (only tab is \
             allowed)"
        );
        assert_eq!(
            e("Content-Length: 5"),
            "request_headers line 1: Content-Length cannot be set here: it is set from \
             request_body"
        );
        assert_eq!(
            e("Host: a\nhost: b"),
            "request_headers line 2: Host is given twice"
        );
        assert!(RequestHeaders::parse("Host: www.example.com").is_ok());
        let many = "X-A: 1\n".repeat(MAX_HEADERS + 1);
        assert_eq!(e(&many), "request_headers line 65: more than 64 headers");
    }

    #[test]
    fn secret_named_headers_are_masked_in_every_display() {
        for name in [
            "Authorization",
            "X-Api-Key",
            "Cookie",
            "x-auth-token",
            "X-Session-Id",
            "X-Client-Secret",
            "Proxy-Authorization",
            "X-Password",
        ] {
            assert!(is_secret(name), "{name}");
        }
        for name in ["Accept", "X-Request-Id", "User-Agent", "X-Tenant"] {
            assert!(!is_secret(name), "{name}");
        }
        let text = "Authorization: Bearer abc\nAccept: */*\nX-Api-Key: ${secret:K}";
        let h = RequestHeaders::parse(text).unwrap();
        assert_eq!(
            h.shown_lines(),
            ["authorization: ***", "accept: */*", "x-api-key: ***"]
        );
        assert!(!format!("{h:?}").contains("abc"));
        assert_eq!(
            shown("Authorization: Bearer abc\nbroken\u{1b} line\n Cookie:a=b"),
            "Authorization: ***\nbroken\\x1b line\nCookie: ***"
        );
    }
}
