//! Replaces the values of the `[secrets]` wherever they appear in a text, whatever field they
//! reached: a header the target echoes, a body quoted in a condition's failure, a URL in a
//! trace, an error message. The other redactions (URLs' user info and secret parameters,
//! secret-named headers and parameters) know the places; this one knows the values. Pure;
//! built by whoever reads the config (start, SIGHUP), shared as `Arc<Redactor>` by every thread
//! that writes an output.

use std::borrow::Cow;
use std::fmt;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::base::secrets::Secrets;
use crate::base::urls::MASK;

/// Values shorter than this are not searched for. A secret of one to three characters gives
/// no protection worth having, and replacing every `1`, `ok` or `GET` in every log line would
/// make the log unreadable; `check-config` warns about such secrets instead (see
/// [`too_short`]).
pub const MIN_LEN: usize = 4;

/// Finds every known secret value in a text at once. One Aho-Corasick automaton over all the
/// values (and the forms they take once percent-, form- or JSON-encoded), so the cost per text
/// is one pass whatever the number of secrets: it can run on every log line and trace. Read
/// only after it is built; share it as an `Arc<Redactor>`.
#[derive(Clone)]
pub struct Redactor {
    /// `None` when there is nothing to find: [`Redactor::redact`] returns its input at once.
    matcher: Option<AhoCorasick>,
    patterns: usize,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} patterns)", self.patterns)
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::none()
    }
}

impl Redactor {
    /// A redactor that finds nothing.
    pub fn none() -> Redactor {
        Redactor {
            matcher: None,
            patterns: 0,
        }
    }

    /// A redactor for these values; values shorter than [`MIN_LEN`] characters are left out.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut patterns: Vec<String> = Vec::new();
        for value in values {
            for form in encoded_forms(value) {
                if form.chars().count() >= MIN_LEN && !patterns.contains(&form) {
                    patterns.push(form);
                }
            }
        }
        if patterns.is_empty() {
            return Redactor::none();
        }
        // Leftmost-longest: where one secret contains another, the whole longer one goes.
        let matcher = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            // Only a pattern set beyond the automaton's size limits fails, which a config file
            // cannot hold (a few thousand secrets of a few hundred bytes are far below them).
            .expect("aho-corasick automaton over the secrets");
        Redactor {
            matcher: Some(matcher),
            patterns: patterns.len(),
        }
    }

    /// A redactor for every value of `[secrets]`.
    pub fn from_secrets(secrets: &Secrets) -> Redactor {
        Redactor::new(secrets.iter().map(|(_, v)| v.expose()))
    }

    /// Whether it finds nothing.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// `text` with every secret value replaced by `***`; borrowed when there is none.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let Some(matcher) = &self.matcher else {
            return Cow::Borrowed(text);
        };
        let mut found = matcher.find_iter(text).peekable();
        if found.peek().is_none() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for m in found {
            out.push_str(&text[copied..m.start()]);
            out.push_str(MASK);
            copied = m.end();
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }

    /// Whether `text` holds a secret value.
    pub fn finds(&self, text: &str) -> bool {
        self.matcher.as_ref().is_some_and(|m| m.is_match(text))
    }
}

/// The forms a value takes in the outputs: as it is, percent-encoded (a URL's path or query
/// as the url crate writes it), form-encoded (`+` for space) and escaped in a JSON string (a
/// trace or an API answer holding a `"` or `\`).
fn encoded_forms(value: &str) -> Vec<String> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    // RFC 3986's unreserved characters stay as they are.
    const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(value);
    vec![
        value.to_string(),
        utf8_percent_encode(value, COMPONENT).to_string(),
        url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        json.to_string(),
    ]
}

/// The names of the secrets too short to be redacted, for a warning: their values may show.
pub fn too_short(secrets: &Secrets) -> Vec<&str> {
    secrets
        .iter()
        .filter(|(_, v)| v.expose().chars().count() < MIN_LEN)
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_occurrence_of_every_value_is_masked() {
        let r = Redactor::new(["hunter22", "s3cr3t-token"]);
        assert_eq!(
            r.redact("got hunter22, then s3cr3t-token and hunter22!"),
            "got ***, then *** and ***!"
        );
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        assert!(r.finds("xhunter22x") && !r.finds("hunter2"));
    }

    #[test]
    fn the_longest_secret_wins_where_one_holds_another() {
        let r = Redactor::new(["abcd", "abcdefgh"]);
        assert_eq!(r.redact("[abcdefgh] [abcd]"), "[***] [***]");
    }

    #[test]
    fn short_values_are_not_searched_for_but_are_named() {
        let r = Redactor::new(["ok", "abc", ""]);
        assert!(r.is_empty());
        assert_eq!(r.redact("ok abc"), "ok abc");
        let mut s = Secrets::new();
        s.insert("PIN", "123");
        s.insert("TOKEN", "long-enough");
        assert_eq!(too_short(&s), ["PIN"]);
        assert_eq!(
            Redactor::from_secrets(&s).redact("123 long-enough"),
            "123 ***"
        );
    }

    #[test]
    fn encoded_forms_are_masked_too() {
        let r = Redactor::new(["p a/ss\"w"]);
        for shown in [
            "https://h/x?k=p%20a%2Fss%22w",
            "k=p+a%2Fss%22w",
            r#"{"v":"p a/ss\"w"}"#,
        ] {
            assert!(
                !r.redact(shown).contains("ss"),
                "{shown}: {}",
                r.redact(shown)
            );
        }
    }

    #[test]
    fn debug_does_not_show_the_values() {
        let r = Redactor::new(["hunter22"]);
        assert_eq!(format!("{r:?}"), "Redactor(1 patterns)");
    }

    proptest! {
        #[test]
        fn no_secret_survives_in_any_text(
            // No `*`: a secret made of the mask's own characters can be re-formed around it.
            secret in "[ -)+-~]{4,24}",
            before in "[ -~\u{e9}\u{4e2d}\n]{0,40}",
            after in "[ -~\u{e9}\u{4e2d}\n]{0,40}",
        ) {
            let r = Redactor::new([secret.as_str()]);
            let text = format!("{before}{secret}{after}");
            let out = r.redact(&text);
            prop_assert!(!out.contains(&secret), "{out}");
            prop_assert!(out.contains(MASK));
        }
    }
}
