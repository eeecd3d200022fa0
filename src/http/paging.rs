//! `?limit=N&after=ID` of the API's lists (handler threads): read from the request's query,
//! bounded, and turned into the `next` link of a page. Pure: no I/O.

use std::fmt;

/// Items on a page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 500;
/// The most items a page may ask for.
pub const MAX_LIMIT: u32 = 5_000;

/// Which page of a list: at most `limit` items, those after the item `after` (in the
/// list's order), from the first without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub limit: u32,
    pub after: Option<i64>,
}

impl Default for Paging {
    fn default() -> Paging {
        Paging {
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// Why a query was refused (400); the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `limit` is not a whole number within bounds.
    Limit(String),
    /// `after` is not an id.
    After(String),
    /// A parameter given twice.
    Twice(&'static str),
    /// A parameter lists do not take.
    Unknown(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Limit(v) => write!(
                f,
                "limit: `{v}` is not a whole number from 1 to {MAX_LIMIT} (items per page; \
                 {DEFAULT_LIMIT} when not given)"
            ),
            Error::After(v) => write!(
                f,
                "after: `{v}` is not an id (the last id of the previous page, as in its `next` \
                 link)"
            ),
            Error::Twice(name) => write!(f, "{name}: given twice"),
            Error::Unknown(name) => write!(
                f,
                "unknown parameter `{name}`: lists take limit and after (see skypunch(8), HTTP \
                 SERVER)"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl Paging {
    /// Reads `limit` and `after` from a query string (still percent-encoded).
    pub fn parse(query: &str) -> Result<Paging, Error> {
        let mut paging = Paging::default();
        let (mut limit, mut after) = (false, false);
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "limit" if limit => return Err(Error::Twice("limit")),
                "after" if after => return Err(Error::Twice("after")),
                "limit" => {
                    limit = true;
                    paging.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| Error::Limit(shown(&value)))?;
                }
                "after" => {
                    after = true;
                    let id = value.parse().map_err(|_| Error::After(shown(&value)))?;
                    paging.after = Some(id);
                }
                other => return Err(Error::Unknown(shown(other))),
            }
        }
        Ok(paging)
    }

    /// The link to the page after this one, whose last item is `last`: a reference relative
    /// to the list's own URL (only its query), so that it resolves behind a proxy too.
    pub fn next(&self, last: i64) -> String {
        format!("?limit={}&after={last}", self.limit)
    }
}

/// A value as an error message may quote it: short, and without control characters.
fn shown(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(40)
        .collect();
    if value.chars().count() > 40 {
        format!("{clean}...")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_and_after_are_read_with_defaults() {
        assert_eq!(Paging::parse(""), Ok(Paging::default()));
        let p = Paging::parse("limit=20&after=1234").unwrap();
        assert_eq!((p.limit, p.after), (20, Some(1234)));
        let p = Paging::parse("after=%2D5&limit=%35000").unwrap();
        assert_eq!(
            (p.limit, p.after),
            (5000, Some(-5)),
            "ids below 1 exist too"
        );
        assert_eq!(p.next(-1), "?limit=5000&after=-1");
    }

    #[test]
    fn bad_values_are_refused_with_what_is_accepted() {
        for bad in ["limit=0", "limit=5001", "limit=-1", "limit=abc", "limit="] {
            let e = Paging::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("limit: `"), "{bad}: {e}");
            assert!(e.contains("from 1 to 5000"), "{bad}: {e}");
        }
        let e = Paging::parse("after=x1").unwrap_err().to_string();
        assert!(e.starts_with("after: `x1` is not an id"), "{e}");
        assert_eq!(Paging::parse("limit=1&limit=2"), Err(Error::Twice("limit")));
        let e = Paging::parse("limt=10").unwrap_err().to_string();
        assert!(e.starts_with("unknown parameter `limt`"), "{e}");
        let e = Paging::parse(&format!("limit={}%0A", "9".repeat(60)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("...") && !e.contains('\n'), "{e}");
    }
}
