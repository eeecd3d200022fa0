//! URLs, parsed once and shown safely. A target's URL is parsed when its row becomes a
//! `Target` ([`WebUrl::parse`]); its display form, host and port are kept beside it, and every
//! output (the log line, the trace, the CLI, the alert e-mail) shows the display form. Other
//! URLs that reach an output (a Keystone endpoint, a notifier's parameters, a database URL in
//! a config error) go through [`shown`].
//!
//! The display form replaces the user info (`user:password@`) and the values of query and
//! fragment parameters whose names look secret (`token`, `api_key`, `signature`, ...) by
//! `***`. A URL with nothing to hide is shown exactly as written, so log lines stay as
//! operators and their scripts know them.

use std::borrow::Cow;

use url::Url;

use crate::base::secrets::Secrets;

/// What replaces a secret.
pub const MASK: &str = "***";

/// An absolute http(s) URL with a host, as a target or endpoint has it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebUrl {
    /// As written in the row: what the request goes to.
    raw: String,
    shown: String,
    host: String,
    port: u16,
    path: String,
}

impl WebUrl {
    /// Parses `text` (surrounding white space ignored). The error shows the display form, cut
    /// short, never a secret.
    pub fn parse(text: &str) -> Result<WebUrl, String> {
        let raw = text.trim();
        if raw.is_empty() {
            return Err("url is empty".into());
        }
        let quoted = || crate::base::text::clip_marked(&shown(raw), 60);
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("url `{}` contains white space", quoted()));
        }
        let bad = || {
            format!(
                "url `{}` is not an absolute http:// or https:// URL",
                quoted()
            )
        };
        let url = Url::parse(raw).map_err(|_| bad())?;
        // The request goes out through the http crate's parser: refuse what it would refuse
        // (a non-ASCII host, say) now, as a config error, rather than at every check.
        let requestable = raw.parse::<ureq::http::Uri>().is_ok();
        if !requestable || !matches!(url.scheme(), "http" | "https") {
            return Err(bad());
        }
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        Ok(WebUrl {
            raw: raw.to_string(),
            shown: display(raw, &url),
            host: host.to_string(),
            port: url.port_or_known_default().unwrap_or(80),
            path: url.path().to_string(),
        })
    }

    /// A URL that may hold `${secret:NAME}` references: the request goes to it with the
    /// values filled in, and every output shows it as written, references and all (its own
    /// user info and secret parameters masked as usual), so no value is shown. An error never
    /// shows a value either.
    pub fn parse_expanded(template: &str, secrets: &Secrets) -> Result<WebUrl, String> {
        if !crate::base::secrets::has_references(template) {
            return WebUrl::parse(template);
        }
        let expanded = secrets
            .expand(template.trim())
            .map_err(|e| format!("url: {e}"))?;
        let mut url = WebUrl::parse(&expanded).map_err(|_| {
            format!(
                "url `{}` is not an absolute http:// or https:// URL once its secrets are \
                 filled in",
                crate::base::text::clip_marked(&shown(template), 60)
            )
        })?;
        url.shown = shown(template);
        Ok(url)
    }

    /// The URL as written, for the request itself.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The display form: what every output shows.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether the check talks TLS (an `https://` URL).
    pub fn is_https(&self) -> bool {
        self.raw
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }

    /// The host name or address (an IPv6 address in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path, `/` at least.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `host:port`, the port the scheme's default when none is written.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The display form of any URL text. Text that does not parse as a URL keeps only what
/// cannot hold a secret: the part before any user info or query.
pub fn shown(text: &str) -> String {
    match Url::parse(text.trim()) {
        Ok(url) => display(text.trim(), &url),
        Err(_) => unparsed(text),
    }
}

/// `text` with every URL in it in its display form: for free text stored before the URLs in
/// it were shown redacted (a trace, a snapshot that is not JSON). A URL runs from its
/// `scheme://` to the next white space, control character, quote, backquote, `<` or `>`.
pub fn redact_in(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let (mut copied, mut from) = (0, 0);
    while let Some(found) = text[from..].find("://") {
        let sep = from + found;
        let start = text[..sep]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let end = text[sep..]
            .find(|c: char| {
                c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '`' | '<' | '>')
            })
            .map_or(text.len(), |i| sep + i);
        let url = &text[start..end];
        let safe = shown(url);
        if start < sep && safe != url {
            out.push_str(&text[copied..start]);
            out.push_str(&safe);
            copied = end;
        }
        from = end.max(sep + 3);
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Whether a query or fragment parameter's name says its value is a secret.
pub fn is_secret_param(name: &str) -> bool {
    // `header`: a webhook notifier's extra header, often `Authorization: Bearer ...`.
    const EXACT: [&str; 8] = [
        "key",
        "sig",
        "auth",
        "pwd",
        "pass",
        "jwt",
        "sessionid",
        "header",
    ];
    const PARTS: [&str; 10] = [
        "token",
        "routing_key",
        "secret",
        "password",
        "passwd",
        "signature",
        "apikey",
        "api_key",
        "api-key",
        "credential",
    ];
    let name = name.trim().to_ascii_lowercase();
    EXACT.contains(&name.as_str())
        || PARTS.iter().any(|p| name.contains(p))
        || name.ends_with("_key")
        || name.ends_with("-key")
        || name.ends_with("_auth")
}

fn display(raw: &str, url: &Url) -> String {
    let query = url.query().map(mask_params);
    let fragment = url.fragment().map(mask_params);
    let has_userinfo = !url.username().is_empty() || url.password().is_some();
    let query_changed = query.as_deref() != url.query();
    let fragment_changed = fragment.as_deref() != url.fragment();
    if !has_userinfo && !query_changed && !fragment_changed {
        return raw.to_string();
    }
    let mut safe = url.clone();
    if has_userinfo {
        // Cannot fail: http(s) URLs have a host, so they take user info.
        let _ = safe.set_password(None);
        let _ = safe.set_username(MASK);
    }
    safe.set_query(query.as_deref());
    safe.set_fragment(fragment.as_deref());
    safe.to_string()
}

/// `a=1&token=x` → `a=1&token=***`; pieces without `=` are kept as they are.
fn mask_params(params: &str) -> String {
    params
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_secret_param(&decoded(name)) => {
                format!("{name}={MASK}")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn decoded(name: &str) -> String {
    url::form_urlencoded::parse(format!("{name}=").as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

fn unparsed(text: &str) -> String {
    let (mut out, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), text),
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before, tail) = rest.split_at(end);
    match before.rsplit_once('@') {
        Some((_, after)) => out.push_str(&format!("{MASK}@{after}")),
        None => out.push_str(before),
    }
    if let Some(mark) = tail.chars().next() {
        out.push(mark);
        out.push_str(MASK);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_url_naming_secrets_goes_to_their_values_and_shows_their_names() {
        let mut secrets = Secrets::new();
        secrets.insert("HOOK", "a1b2c3d4");
        secrets.insert("HOST", "api.example");
        let url = WebUrl::parse_expanded("https://h/hook/${secret:HOOK}?x=1", &secrets).unwrap();
        assert_eq!(url.as_str(), "https://h/hook/a1b2c3d4?x=1");
        assert_eq!(url.shown(), "https://h/hook/${secret:HOOK}?x=1");
        // A template that is no URL by itself keeps only what cannot hold a value.
        let url =
            WebUrl::parse_expanded("https://${secret:HOST}/x?k=${secret:HOOK}", &secrets).unwrap();
        assert_eq!(
            (url.host(), url.addr().as_str()),
            ("api.example", "api.example:443")
        );
        assert_eq!(url.shown(), "https://${secret:HOST}/x?***");
        let e = WebUrl::parse_expanded("https://h/${secret:NOPE}", &secrets).unwrap_err();
        assert!(e.starts_with("url: unknown secret `NOPE`"), "{e}");
        secrets.insert("BAD", "not a host");
        let e = WebUrl::parse_expanded("https://${secret:BAD}/", &secrets).unwrap_err();
        assert!(
            e.contains("once its secrets are filled in") && !e.contains("not a host"),
            "{e}"
        );
        let plain = WebUrl::parse_expanded("http://h/x", &secrets).unwrap();
        assert_eq!(plain, WebUrl::parse("http://h/x").unwrap());
    }

    #[test]
    fn nothing_to_hide_is_shown_as_written() {
        for url in [
            "http://127.0.0.1:18080",
            "https://api.example.com/health?verbose=1&format=json#top",
            "HTTP://Example.COM/a@b",
        ] {
            assert_eq!(WebUrl::parse(url).unwrap().shown(), url);
        }
    }

    #[test]
    fn user_info_and_secret_parameters_are_masked() {
        let u =
            WebUrl::parse("https://ops:s3cret@api.example.com:8443/x?a=1&token=SEKRET#k").unwrap();
        assert_eq!(
            u.shown(),
            "https://***@api.example.com:8443/x?a=1&token=***#k"
        );
        assert_eq!(
            u.as_str(),
            "https://ops:s3cret@api.example.com:8443/x?a=1&token=SEKRET#k"
        );
        assert_eq!(u.addr(), "api.example.com:8443");
        assert_eq!(
            shown("http://h/cb#access_token=abc&state=1"),
            "http://h/cb#access_token=***&state=1"
        );
        assert_eq!(
            shown("http://h/?X-Amz-Signature=f00&api%5Fkey=k&Key=v&monkey=1"),
            "http://h/?X-Amz-Signature=***&api%5Fkey=***&Key=***&monkey=1"
        );
    }

    #[test]
    fn host_and_port_come_from_the_parser() {
        assert_eq!(WebUrl::parse("http://[::1]/").unwrap().addr(), "[::1]:80");
        assert_eq!(
            WebUrl::parse("https://example.com").unwrap().addr(),
            "example.com:443"
        );
        assert_eq!(WebUrl::parse(" http://u:p@h:1/ ").unwrap().host(), "h");
    }

    #[test]
    fn bad_urls_are_named_without_their_secrets() {
        let e = WebUrl::parse("ftp://u:hunter2@h/").unwrap_err();
        assert_eq!(
            e,
            "url `ftp://***@h/` is not an absolute http:// or https:// URL"
        );
        let e = WebUrl::parse("http://u:hunter2@h/a b").unwrap_err();
        assert!(e.contains("white space") && !e.contains("hunter2"), "{e}");
        assert!(WebUrl::parse("javascript:alert(1)").is_err());
        assert!(WebUrl::parse("http:///path").is_err());
        assert_eq!(shown("not a url?token=x"), "not a url?***");
        assert_eq!(
            shown("mysql://root:hunter2@127.0.0.1:notaport/db?x=1"),
            "mysql://***@127.0.0.1:notaport/db?***"
        );
        assert_eq!(
            shown("mysql://root:pw@db:3306/skypunch"),
            "mysql://***@db:3306/skypunch"
        );
    }

    #[test]
    fn urls_in_free_text_are_redacted_where_they_stand() {
        let trace = "10:00:00 keystone: POST https://u:pw@ks:5000/v3/auth/tokens?nocatalog sent\n\
                     10:00:01 GET http://h/x?a=1&token=abc sent\n10:00:02 response 200 OK\n";
        assert_eq!(
            redact_in(trace),
            "10:00:00 keystone: POST https://***@ks:5000/v3/auth/tokens?nocatalog sent\n\
             10:00:01 GET http://h/x?a=1&token=*** sent\n10:00:02 response 200 OK\n"
        );
        let json = r#"{"url":"https://user:PW@h/?token=abc","name":"n"}"#;
        assert_eq!(
            redact_in(json),
            r#"{"url":"https://***@h/?token=***","name":"n"}"#
        );
        for clean in [
            "GET http://127.0.0.1:9/ sent",
            "no url here ://",
            "a://",
            "é://x",
        ] {
            assert!(matches!(redact_in(clean), Cow::Borrowed(_)), "{clean}");
        }
        assert_eq!(redact_in("(mysql://root:pw@db/x)"), "(mysql://***@db/x)");
    }

    fn secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]{12,20}".prop_map(|s| format!("S3{s}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Whatever the shape of the URL, no secret in its user info or secret-named
        /// parameters survives in the display form.
        #[test]
        fn no_secret_survives(
            user in "[a-z]{1,8}",
            password in secret(),
            token in secret(),
            name in prop::sample::select(vec!["token", "api_key", "apikey", "access_token",
                "password", "secret", "signature", "sig", "auth", "key", "X-Auth-Token"]),
            path in "(/[a-z0-9]{0,6}){0,3}",
            port in prop::option::of(1u16..65535),
            other in "[a-z]{1,6}=[a-z0-9]{0,6}",
            in_fragment in any::<bool>(),
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let params = format!("{other}&{name}={token}");
            let tail = if in_fragment { format!("#{params}") } else { format!("?{params}") };
            let raw = format!("https://{user}:{password}@host.example{port}{path}{tail}");
            let url = WebUrl::parse(&raw).unwrap();
            prop_assert!(!url.shown().contains(&password), "{}", url.shown());
            prop_assert!(!url.shown().contains(&token), "{}", url.shown());
            prop_assert!(!shown(&raw).contains(&token));
            let unparsable = format!("mysql://{user}:{password}@host:port{path}{tail}");
            prop_assert!(!shown(&unparsable).contains(&password), "{}", shown(&unparsable));
            prop_assert!(!shown(&unparsable).contains(&token), "{}", shown(&unparsable));
            prop_assert_eq!(url.as_str(), raw.as_str());
        }
    }
}
