//! PUSH (heartbeat) targets' tokens and reports: a new token from the operating system's
//! random source (the loader fills a PUSH row's NULL `push_token`), what a usable token is,
//! a token masked for every output but `targets ID`, and what a push reports (`status=`,
//! `msg=` of its query), made printable and bounded before it reaches a row. Pure but for the
//! random source; any thread.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;

/// Characters of a token the daemon makes: 24 random bytes, base64url (192 bits).
pub const TOKEN_CHARS: usize = 32;
/// The shortest and longest token a row may hold (`push_token` is VARCHAR(64)): shorter
/// ones are too easy to guess, and are a config error on the row.
pub const MIN_TOKEN: usize = 16;
pub const MAX_TOKEN: usize = 64;
/// The longest `msg=` kept, in characters (`last_push_msg` is VARCHAR(128)).
pub const MAX_MESSAGE: usize = 120;
/// The longest query a push reads: a longer one is refused (400) before it is decoded.
pub const MAX_QUERY: usize = 2048;
/// Characters of a token shown by [`masked`].
const SHOWN: usize = 4;

/// A new token: [`TOKEN_CHARS`] URL-safe characters from the kernel's random source.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_CHARS / 4 * 3];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`, which it owns here.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        filled += n as usize;
    }
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Why a row's `push_token` cannot be used (the row's config error), `None` when it can:
/// [`MIN_TOKEN`] to [`MAX_TOKEN`] letters, digits, `-` or `_`, which a URL path carries as
/// they are.
pub fn token_problem(token: &str) -> Option<String> {
    let n = token.chars().count();
    if !(MIN_TOKEN..=MAX_TOKEN).contains(&n) {
        return Some(format!(
            "push_token has {n} characters: use {MIN_TOKEN} to {MAX_TOKEN}, or set it to NULL \
             for the daemon to make one"
        ));
    }
    let odd = |c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_');
    token.chars().any(odd).then(|| {
        "push_token holds a character other than a letter, a digit, `-` or `_`".to_string()
    })
}

/// A token as every output but `targets ID` shows it: its first four characters and `…`.
pub fn masked(token: &str) -> String {
    let head: String = token.chars().take(SHOWN).collect();
    format!("{head}…")
}

/// What one push says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `status=fail` (or `down`, `error`).
    pub failed: bool,
    /// `msg=`, decoded, its hidden characters replaced by spaces, cut to [`MAX_MESSAGE`]
    /// characters; `None` when absent or blank.
    pub message: Option<String>,
}

impl Report {
    /// The row's `last_push_status`.
    pub fn status(&self) -> &'static str {
        if self.failed {
            "FAIL"
        } else {
            "PASS"
        }
    }
}

/// Why a push's query is refused (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadReport {
    /// The query is longer than [`MAX_QUERY`] bytes.
    TooLong,
    /// `status=` is none of the words known; the value, cut and made printable.
    Status(String),
}

impl fmt::Display for BadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadReport::TooLong => write!(f, "the query is longer than {MAX_QUERY} bytes"),
            BadReport::Status(s) => write!(
                f,
                "status={s} is not known: use status=ok (the default) or status=fail"
            ),
        }
    }
}

/// Reads a push's query (`status=ok|fail&msg=...`, as a form encodes it); other
/// parameters are ignored (a cache buster, say).
pub fn report(query: &str) -> Result<Report, BadReport> {
    if query.len() > MAX_QUERY {
        return Err(BadReport::TooLong);
    }
    let mut report = Report {
        failed: false,
        message: None,
    };
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "status" => report.failed = failed(&value)?,
            "msg" => report.message = message(&value),
            _ => {}
        }
    }
    Ok(report)
}

fn failed(value: &str) -> Result<bool, BadReport> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "ok" | "pass" | "up" | "success" => Ok(false),
        "fail" | "failure" | "down" | "error" => Ok(true),
        _ => Err(BadReport::Status(message(value).unwrap_or_default())),
    }
}

/// A message made fit for a row and every sink after it: one line of printable text.
fn message(value: &str) -> Option<String> {
    let printable: Cow<str> = if value.chars().any(crate::base::text::is_hidden) {
        let spaced: String = value
            .chars()
            .map(|c| {
                if crate::base::text::is_hidden(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        Cow::Owned(spaced)
    } else {
        Cow::Borrowed(value)
    };
    let text = crate::base::text::clip(printable.trim(), MAX_MESSAGE).trim_end();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_usable_and_never_the_same() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), TOKEN_CHARS);
        assert_ne!(a, b);
        assert_eq!(token_problem(&a), None);
        assert_eq!(masked(&a).chars().count(), 5);
        assert!(a.starts_with(masked(&a).trim_end_matches('…')));
    }

    #[test]
    fn a_token_a_person_wrote_must_be_long_and_plain() {
        assert_eq!(token_problem("backup-job_2026-nightly"), None);
        assert!(token_problem("short").unwrap().contains("has 5 characters"));
        assert!(token_problem(&"x".repeat(65)).is_some());
        let odd = token_problem("backup job 2026 nightly").unwrap();
        assert!(odd.contains("other than a letter"), "{odd}");
        assert!(token_problem("backup/../../2026-nightly").is_some());
    }

    #[test]
    fn a_push_reports_a_pass_or_a_failure_with_a_printable_message() {
        let ok = report("").unwrap();
        assert_eq!((ok.failed, ok.message.as_deref()), (false, None));
        let failed = report("status=fail&msg=disk+full%3A+%2Fvar%0A%1b[31m").unwrap();
        assert_eq!(failed.status(), "FAIL");
        assert_eq!(failed.message.as_deref(), Some("disk full: /var  [31m"));
        let long = report(&format!("msg={}", "é".repeat(300))).unwrap();
        assert_eq!(long.message.unwrap().chars().count(), MAX_MESSAGE);
        assert!(!report("status=UP&x=1").unwrap().failed);
        assert_eq!(report("msg=%20%20").unwrap().message, None);
        let bad = report("status=maybe").unwrap_err().to_string();
        assert_eq!(
            bad,
            "status=maybe is not known: use status=ok (the default) or status=fail"
        );
        let huge = format!("msg={}", "a".repeat(MAX_QUERY));
        assert_eq!(report(&huge), Err(BadReport::TooLong));
    }
}
