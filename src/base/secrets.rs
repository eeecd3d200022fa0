//! The config file's `[secrets]` and the `${secret:NAME}` references to them in a target's
//! `url`, `request_headers`, `request_body` and `authn_parms`, so that a credential lives in a
//! file only root and skypunch read rather than in a table every monitoring user reads. Pure;
//! the config reader builds [`Secrets`], the loader checks a row's references, the worker
//! expands them at check time. What keeps the values out of every output is
//! [`crate::base::redactor`].
//!
//! The syntax is exactly `${secret:NAME}`, NAME being letters, digits, `_`, `.` and `-`, case
//! sensitive. Any other `$` or `${` is text: only the `${secret:` prefix is taken, so a
//! `${HOME}` in a body goes out as written.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::base::authn::Secret;
use crate::base::text;

/// What opens a reference.
const OPEN: &str = "${secret:";

/// The named values of `[secrets]`. Cheap to share behind the `Arc<Config>`; its `Debug` lists
/// the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    values: BTreeMap<String, Secret>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Secrets")
            .field(&self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a text's references could not be expanded. The caller adds the column it was in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// A name that `[secrets]` does not hold.
    Unknown { name: String },
    /// A `${secret:` with no `}` after it; `at` counts characters from 1.
    Unclosed { at: usize },
    /// A name with characters other than letters, digits, `_`, `.` and `-`, or none.
    BadName { name: String },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Short: with `config error: <column>: ` before it, it fits status_description.
            SecretError::Unknown { name } => write!(
                f,
                "unknown secret `{name}`: add it to [secrets] in the config file, then SIGHUP"
            ),
            SecretError::Unclosed { at } => {
                write!(f, "`${{secret:` at character {at} has no closing `}}`")
            }
            SecretError::BadName { name } => write!(
                f,
                "bad secret name `{}`: use letters, digits, `_`, `.` and `-`",
                text::clip_marked(&text::visible(name), 40)
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// Whether `name` may name a secret: `[A-Za-z0-9_.-]+`, at most 64 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Secrets {
    pub fn new() -> Secrets {
        Secrets::default()
    }

    /// Adds or replaces one; `false` when the name is not valid (see [`valid_name`]).
    pub fn insert(&mut self, name: &str, value: impl Into<String>) -> bool {
        if !valid_name(name) {
            return false;
        }
        self.values.insert(name.to_string(), Secret::new(value));
        true
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.values.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every name and value, for building the [`crate::base::redactor::Redactor`].
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// `text` with every `${secret:NAME}` replaced by its value; borrowed when there is none.
    /// The result holds secrets: it goes into the request only, never into an output.
    pub fn expand<'t>(&self, text: &'t str) -> Result<Cow<'t, str>, SecretError> {
        let refs = references(text)?;
        if refs.is_empty() {
            return Ok(Cow::Borrowed(text));
        }
        let mut out = String::with_capacity(text.len() + 32);
        let mut copied = 0;
        for r in refs {
            let value = self.get(r.name).ok_or_else(|| SecretError::Unknown {
                name: r.name.to_string(),
            })?;
            out.push_str(&text[copied..r.start]);
            out.push_str(value.expose());
            copied = r.end;
        }
        out.push_str(&text[copied..]);
        Ok(Cow::Owned(out))
    }

    /// Checks that every reference in `text` is well formed and names a known secret, for the
    /// loader's validation of a row.
    pub fn check(&self, text: &str) -> Result<(), SecretError> {
        self.expand(text).map(drop)
    }
}

/// One `${secret:NAME}` in a text: its byte range and the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference<'t> {
    pub start: usize,
    pub end: usize,
    pub name: &'t str,
}

/// Every reference in `text`, in order; an error for the first malformed one.
pub fn references(text: &str) -> Result<Vec<Reference<'_>>, SecretError> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(OPEN) {
        let start = from + at;
        let name_from = start + OPEN.len();
        let Some(close) = text[name_from..].find('}') else {
            let at = text[..start].chars().count() + 1;
            return Err(SecretError::Unclosed { at });
        };
        let name = &text[name_from..name_from + close];
        if !valid_name(name) {
            return Err(SecretError::BadName {
                name: name.to_string(),
            });
        }
        let end = name_from + close + 1;
        found.push(Reference { start, end, name });
        from = end;
    }
    Ok(found)
}

/// Whether `text` refers to any secret (well formed or not): such a text is expanded at
/// check time.
pub fn has_references(text: &str) -> bool {
    text.contains(OPEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        let mut s = Secrets::new();
        assert!(s.insert("API_KEY", "k-123456"));
        assert!(s.insert("db.pass-2", "p@ss:w=rd"));
        s
    }

    #[test]
    fn references_are_replaced_by_their_values() {
        let s = secrets();
        assert_eq!(
            s.expand("Authorization: Bearer ${secret:API_KEY}").unwrap(),
            "Authorization: Bearer k-123456"
        );
        assert_eq!(
            s.expand("${secret:API_KEY}${secret:db.pass-2}/x").unwrap(),
            "k-123456p@ss:w=rd/x"
        );
        assert!(matches!(s.expand("plain").unwrap(), Cow::Borrowed("plain")));
    }

    #[test]
    fn other_dollar_text_is_left_as_written() {
        let s = secrets();
        for text in [
            "$HOME ${HOME} ${secret} $secret:x {secret:API_KEY}",
            "${SECRET:API_KEY}",
        ] {
            assert_eq!(s.expand(text).unwrap(), text);
        }
    }

    #[test]
    fn an_unknown_or_malformed_reference_names_what_is_wrong() {
        let s = secrets();
        let e = s.expand("a ${secret:api_key}").unwrap_err();
        assert_eq!(
            e,
            SecretError::Unknown {
                name: "api_key".into()
            }
        );
        assert!(
            e.to_string().starts_with("unknown secret `api_key`: add"),
            "{e}"
        );
        assert_eq!(
            s.expand("éé ${secret:API_KEY").unwrap_err().to_string(),
            "`${secret:` at character 4 has no closing `}`"
        );
        assert!(matches!(
            s.check("${secret:a b}"),
            Err(SecretError::BadName { .. })
        ));
        assert!(matches!(
            s.check("${secret:}"),
            Err(SecretError::BadName { .. })
        ));
    }

    #[test]
    fn names_are_letters_digits_and_three_marks() {
        for good in ["A", "a_b", "x.y-z", "9"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "a b", "a:b", "é", "a}", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(!Secrets::new().insert("a b", "v"));
    }

    #[test]
    fn debug_shows_names_only() {
        let shown = format!("{:?}", secrets());
        assert_eq!(shown, r#"Secrets(["API_KEY", "db.pass-2"])"#);
    }
}
