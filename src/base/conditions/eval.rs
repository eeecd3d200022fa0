//! Judging an answer by the conditions: each placeholder resolved from a [`ResponseView`],
//! compared (numbers as numbers when both sides read as one, else text), and the first
//! condition that fails described with what was seen, redacted and cut to fit
//! `status_description`.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::time::Duration;

use serde_json::Value as Json;
use ureq::http::HeaderMap;

use super::json;
use super::values::{human_ms, matches, Num};
use super::{Condition, Conditions, Literal, Op, Operand, Value, DESCRIPTION_MAX};
use crate::base::redactor::Redactor;
use crate::base::{headers, text, urls};

/// What the conditions read of an answer, filled by the check.
#[derive(Debug, Clone, Copy)]
pub struct ResponseView<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    /// The body as read, at most `max_body_bytes` (empty when no condition needs it).
    pub body: &'a [u8],
    /// From sending the request to the end of the body.
    pub response_time: Duration,
    /// Milliseconds until the leaf certificate expires, negative once it has; `None` over
    /// plain HTTP.
    pub cert_left_ms: Option<i64>,
}

/// The first condition that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// Its line in the column's text.
    pub line: usize,
    /// `[BODY].status == ok: got "degraded"`: redacted, at most [`DESCRIPTION_MAX`]
    /// characters.
    pub description: String,
}

impl Conditions {
    /// `Ok` when every condition holds, else the first that does not, described. `redactor`
    /// masks the `[secrets]` values in what is quoted from the answer.
    pub fn evaluate(&self, view: &ResponseView, redactor: &Redactor) -> Result<(), Failed> {
        let answer = Answer {
            view,
            json: OnceCell::new(),
        };
        for condition in &self.list {
            if let Err(seen) = answer.holds(condition) {
                return Err(Failed {
                    line: condition.line,
                    description: describe(condition, &seen, redactor),
                });
            }
        }
        Ok(())
    }
}

/// A resolved placeholder.
#[derive(Debug)]
struct Term {
    text: String,
    number: Option<Num>,
    show: Show,
}

/// How a failure shows a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Show {
    /// `503`, `true`.
    Bare,
    /// `412 ms`.
    Millis,
    /// `41h12m`.
    Duration,
    /// `"degraded"`; `secret`: `"***"`, the header's name says it is one.
    Quoted { secret: bool },
}

/// A placeholder that resolved to nothing, and why (`[BODY] has no key status`).
type Missing = String;

/// What one side of a comparison is, resolved.
enum Side<'c> {
    Term(Term),
    Literal(&'c Literal),
    Pattern(&'c str),
    Any(&'c [Literal]),
}

/// Text and number of a term or literal, for comparing.
#[derive(Clone, Copy)]
struct Cmp<'a> {
    text: &'a str,
    number: Option<Num>,
}

impl Side<'_> {
    fn cmp(&self) -> Cmp<'_> {
        match self {
            Side::Term(t) => Cmp {
                text: &t.text,
                number: t.number,
            },
            Side::Literal(l) => literal(l),
            // Only on the right, and handled there (see `compare`).
            Side::Pattern(p) => Cmp {
                text: p,
                number: None,
            },
            Side::Any(_) => Cmp {
                text: "",
                number: None,
            },
        }
    }
}

fn literal(l: &Literal) -> Cmp<'_> {
    Cmp {
        text: &l.text,
        number: l.number,
    }
}

/// The answer, and its body parsed as JSON the first time a condition needs it.
struct Answer<'v, 'a> {
    view: &'v ResponseView<'a>,
    json: OnceCell<Result<Json, Missing>>,
}

impl Answer<'_, '_> {
    /// `Ok` when the condition holds; otherwise what its placeholders resolved to.
    fn holds(&self, c: &Condition) -> Result<(), Vec<Result<Term, Missing>>> {
        let left = self.side(&c.left);
        let right = self.side(&c.right);
        let (left, right) = match (left, right) {
            (Ok(l), Ok(r)) => (l, r),
            (l, r) => return Err(seen(l, r)),
        };
        if compare(c.op, &left, &right) {
            Ok(())
        } else {
            Err(seen(Ok(left), Ok(right)))
        }
    }

    fn side<'c>(&self, operand: &'c Operand) -> Result<Side<'c>, Missing> {
        Ok(match operand {
            Operand::Value(v) => Side::Term(self.resolve(v)?),
            Operand::Literal(l) => Side::Literal(l),
            Operand::Pattern(p) => Side::Pattern(p),
            Operand::Any(items) => Side::Any(items),
        })
    }

    fn resolve(&self, value: &Value) -> Result<Term, Missing> {
        let view = self.view;
        let bare = |n: i64| Term {
            text: n.to_string(),
            number: Some(Num::int(n)),
            show: Show::Bare,
        };
        Ok(match value {
            Value::Status => bare(view.status.into()),
            Value::ResponseTime => Term {
                show: Show::Millis,
                ..bare(i64::try_from(view.response_time.as_millis()).unwrap_or(i64::MAX))
            },
            Value::CertExpiration => {
                let ms = view
                    .cert_left_ms
                    .ok_or("no certificate: the answer did not come over TLS")?;
                Term {
                    show: Show::Duration,
                    ..bare(ms)
                }
            }
            Value::Body => text_term(self.body_text().into_owned(), false),
            Value::BodyPath(steps) => {
                text_term(json::as_text(json::walk(self.json()?, steps)?), false)
            }
            Value::Header(name) => text_term(self.header(name)?, headers::is_secret(name)),
            Value::Len(inner) => bare(self.len(inner)?.try_into().unwrap_or(i64::MAX)),
            Value::Has(inner) => {
                let has = self.has(inner);
                Term {
                    text: has.to_string(),
                    number: None,
                    show: Show::Bare,
                }
            }
        })
    }

    fn body_text(&self) -> Cow<'_, str> {
        match String::from_utf8_lossy(self.view.body) {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
            Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
        }
    }

    fn json(&self) -> Result<&Json, Missing> {
        let parsed = self.json.get_or_init(|| {
            if self.body_text().is_empty() {
                return Err("the body is empty, not JSON".into());
            }
            serde_json::from_slice(self.view.body).map_err(|e| format!("the body is not JSON: {e}"))
        });
        parsed.as_ref().map_err(Clone::clone)
    }

    fn header(&self, name: &str) -> Result<String, Missing> {
        let value = self
            .view
            .headers
            .get(name)
            .ok_or_else(|| format!("no {name} header in the answer"))?;
        Ok(String::from_utf8_lossy(value.as_bytes()).into_owned())
    }

    /// `len()`: of the JSON value, of the body's JSON (else its characters), of a header's
    /// characters.
    fn len(&self, inner: &Value) -> Result<usize, Missing> {
        match inner {
            Value::Body => match self.json() {
                Ok(root) => Ok(json::len(root)),
                Err(_) => Ok(self.body_text().chars().count()),
            },
            Value::BodyPath(steps) => Ok(json::len(json::walk(self.json()?, steps)?)),
            Value::Header(name) => Ok(self.header(name)?.chars().count()),
            // The parser lets only the three above through.
            other => Ok(self.resolve(other)?.text.chars().count()),
        }
    }

    /// `has()`: a non-empty body, a JSON value that is there and not null, a header sent.
    fn has(&self, inner: &Value) -> bool {
        match inner {
            Value::Body => !self.body_text().is_empty(),
            Value::BodyPath(steps) => self
                .json()
                .ok()
                .and_then(|root| json::walk(root, steps).ok())
                .is_some_and(|v| !v.is_null()),
            Value::Header(name) => self.view.headers.contains_key(name.as_str()),
            other => self.resolve(other).is_ok(),
        }
    }
}

/// Text that counts as a number when it reads as one.
fn text_term(text: String, secret: bool) -> Term {
    Term {
        number: Num::parse(&text),
        text,
        show: Show::Quoted { secret },
    }
}

/// The placeholders' values, for the description: literals are in the condition already.
fn seen(left: Result<Side, Missing>, right: Result<Side, Missing>) -> Vec<Result<Term, Missing>> {
    [left, right]
        .into_iter()
        .filter_map(|side| match side {
            Ok(Side::Term(t)) => Some(Ok(t)),
            Ok(_) => None,
            Err(why) => Some(Err(why)),
        })
        .collect()
}

fn compare(op: Op, left: &Side, right: &Side) -> bool {
    let equal = match right {
        Side::Pattern(p) => matches(p, left.cmp().text),
        Side::Any(items) => items.iter().any(|l| equal(left.cmp(), literal(l))),
        _ => return ordered(op, order(left.cmp(), right.cmp())),
    };
    (op == Op::Eq) == equal
}

fn equal(a: Cmp, b: Cmp) -> bool {
    order(a, b) == Ordering::Equal
}

/// Numbers as numbers when both sides read as one, else the texts.
fn order(a: Cmp, b: Cmp) -> Ordering {
    match (a.number, b.number) {
        (Some(x), Some(y)) => x.compare(&y),
        _ => a.text.cmp(b.text),
    }
}

fn ordered(op: Op, ord: Ordering) -> bool {
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
    }
}

/// `CONDITION: got SEEN`, both redacted (the `[secrets]` values, URLs' secrets, secret-named
/// headers' values), hidden characters shown escaped, and cut to [`DESCRIPTION_MAX`]
/// characters: the condition keeps at least 60 of them, what was seen the rest.
fn describe(c: &Condition, seen: &[Result<Term, Missing>], redactor: &Redactor) -> String {
    let safe = |s: &str| -> String {
        let s = urls::redact_in(s);
        text::visible(&redactor.redact(&s)).into_owned()
    };
    let condition = safe(&c.text);
    let shown: Vec<String> = seen
        .iter()
        .map(|term| match term {
            Err(why) => format!("nothing ({})", safe(why)),
            Ok(t) => match t.show {
                Show::Bare => safe(&t.text),
                Show::Millis => format!("{} ms", t.text),
                Show::Duration => human_ms(t.text.parse().unwrap_or(0)),
                Show::Quoted { secret: true } => format!("\"{}\"", urls::MASK),
                Show::Quoted { secret: false } => format!("\"{}\"", safe(&t.text)),
            },
        })
        .collect();
    let got = shown.join(" and ");
    let room = DESCRIPTION_MAX - ": got ".len();
    let (c_len, g_len) = (condition.chars().count(), got.chars().count());
    if c_len + g_len <= room {
        return format!("{condition}: got {got}");
    }
    let c_keep = c_len.min(room.saturating_sub(g_len).max(60));
    let condition = fit(&condition, c_keep);
    let got = fit(&got, room - condition.chars().count());
    format!("{condition}: got {got}")
}

/// `s` in at most `max` characters, `...` marking a cut.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    text::clip_marked(s, max.saturating_sub(3))
}

#[cfg(test)]
mod tests;
