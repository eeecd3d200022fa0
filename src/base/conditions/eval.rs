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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ureq::http::HeaderValue;

    struct Fixture {
        status: u16,
        headers: HeaderMap,
        body: Vec<u8>,
        ms: u64,
        cert_left_ms: Option<i64>,
    }

    fn answer(status: u16, body: &str) -> Fixture {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        Fixture {
            status,
            headers,
            body: body.as_bytes().to_vec(),
            ms: 120,
            cert_left_ms: None,
        }
    }

    impl Fixture {
        fn judge(&self, conditions: &str) -> Result<(), String> {
            self.judge_with(conditions, &Redactor::none())
        }

        fn judge_with(&self, conditions: &str, redactor: &Redactor) -> Result<(), String> {
            let view = ResponseView {
                status: self.status,
                headers: &self.headers,
                body: &self.body,
                response_time: Duration::from_millis(self.ms),
                cert_left_ms: self.cert_left_ms,
            };
            Conditions::parse(conditions)
                .unwrap()
                .evaluate(&view, redactor)
                .map_err(|f| f.description)
        }
    }

    const HEALTH: &str = r#"{"status": "degraded", "items": [{"id": 7}, {"id": 8}], "error": null,
                            "version": "2.10", "count": 12}"#;

    #[test]
    fn a_healthy_answer_passes_every_condition_of_the_issue() {
        let mut a = answer(
            200,
            r#"{"status":"ok","items":[{"id":7},{"id":9}],"error":null}"#,
        );
        a.cert_left_ms = Some(100 * 3_600_000);
        let all = "[STATUS] == 200\n[STATUS] == any(200, 204)\n[STATUS] < 300\n\
                   [BODY].status == ok\n[BODY].items[0].id == 7\nlen([BODY].items) > 1\n\
                   has([BODY].error) == false\n[BODY] == pat(*\"ok\"*)\n\
                   [HEADER].Content-Type == pat(application/json*)\n[RESPONSE_TIME] < 300\n\
                   [CERTIFICATE_EXPIRATION] > 72h";
        assert_eq!(a.judge(all), Ok(()));
    }

    #[test]
    fn the_first_failing_condition_is_named_with_what_was_seen() {
        let a = answer(503, HEALTH);
        assert_eq!(
            a.judge("[BODY].count > 1\n[BODY].status == ok\n[STATUS] == 200"),
            Err(r#"[BODY].status == ok: got "degraded""#.into())
        );
        assert_eq!(
            a.judge("[STATUS] == any(200, 204)"),
            Err("[STATUS] == any(200, 204): got 503".into())
        );
        assert_eq!(
            a.judge("[STATUS] < 300"),
            Err("[STATUS] < 300: got 503".into())
        );
        assert_eq!(
            a.judge("len([BODY].items) > 2"),
            Err("len([BODY].items) > 2: got 2".into())
        );
        assert_eq!(
            a.judge("[RESPONSE_TIME] < 100"),
            Err("[RESPONSE_TIME] < 100: got 120 ms".into())
        );
        assert_eq!(
            a.judge("[HEADER].Content-Type == pat(text/*)"),
            Err(
                r#"[HEADER].Content-Type == pat(text/*): got "application/json; charset=utf-8""#
                    .into()
            )
        );
    }

    #[test]
    fn what_is_not_there_fails_whatever_the_operator() {
        let a = answer(200, HEALTH);
        assert_eq!(
            a.judge("[BODY].items[5].id != 1"),
            Err(
                "[BODY].items[5].id != 1: got nothing ([BODY].items has no element [5] (it has 2))"
                    .into()
            )
        );
        assert_eq!(
            a.judge("[HEADER].Retry-After > 5"),
            Err(
                "[HEADER].Retry-After > 5: got nothing (no retry-after header in the answer)"
                    .into()
            )
        );
        assert_eq!(
            a.judge("[CERTIFICATE_EXPIRATION] > 72h"),
            Err("[CERTIFICATE_EXPIRATION] > 72h: got nothing (no certificate: the answer did not come over TLS)".into())
        );
        let html = answer(200, "<html>down</html>");
        let e = html.judge("[BODY].status == ok").unwrap_err();
        assert!(
            e.starts_with("[BODY].status == ok: got nothing (the body is not JSON: expected value"),
            "{e}"
        );
        assert_eq!(
            answer(200, "").judge("[BODY].a == 1"),
            Err("[BODY].a == 1: got nothing (the body is empty, not JSON)".into())
        );
    }

    #[test]
    fn has_tells_presence_and_null_counts_as_absent() {
        let a = answer(200, HEALTH);
        assert_eq!(
            a.judge("has([BODY].error) == false\nhas([BODY].items) == true"),
            Ok(())
        );
        assert_eq!(
            a.judge("has([BODY].nothing) != true\nhas([HEADER].content-type) == true"),
            Ok(())
        );
        assert_eq!(
            a.judge("has([BODY].status) == false"),
            Err("has([BODY].status) == false: got true".into())
        );
        assert_eq!(answer(200, "  ").judge("has([BODY]) == false"), Ok(()));
        assert_eq!(answer(200, "<p>").judge("has([BODY].x) == false"), Ok(()));
    }

    #[test]
    fn numbers_compare_as_numbers_and_other_text_as_text() {
        let a = answer(200, HEALTH);
        // "2.10" as a number is 2.1: below 2.9 (as text it would be above).
        assert_eq!(
            a.judge("[BODY].version < 2.9\n[BODY].version == 2.1\n[BODY].count >= 12"),
            Ok(())
        );
        assert_eq!(a.judge("[BODY].status > cat\n[BODY].status < dog"), Ok(()));
        assert_eq!(a.judge("[BODY].items[1] == {\"id\":8}"), Ok(()));
        assert_eq!(a.judge("len([BODY]) == 5\nlen([BODY].status) == 8"), Ok(()));
        assert_eq!(answer(200, "not json").judge("len([BODY]) == 8"), Ok(()));
        assert_eq!(
            a.judge("12 == [BODY].count\n[BODY].count == [BODY].count"),
            Ok(())
        );
        assert_eq!(
            a.judge("[BODY].count < [STATUS]\n[BODY].count > [STATUS]"),
            Err("[BODY].count > [STATUS]: got \"12\" and 200".into())
        );
    }

    #[test]
    fn the_certificate_and_the_time_compare_in_milliseconds() {
        let mut a = answer(200, "");
        a.cert_left_ms = Some(48 * 3_600_000);
        assert_eq!(
            a.judge("[CERTIFICATE_EXPIRATION] > 47h59m\n[CERTIFICATE_EXPIRATION] < 2d1s"),
            Ok(())
        );
        assert_eq!(
            a.judge("[CERTIFICATE_EXPIRATION] > 72h"),
            Err("[CERTIFICATE_EXPIRATION] > 72h: got 2d0h".into())
        );
        a.cert_left_ms = Some(-3_600_000);
        assert_eq!(
            a.judge("[CERTIFICATE_EXPIRATION] > 0"),
            Err("[CERTIFICATE_EXPIRATION] > 0: got expired 1h0m ago".into())
        );
        assert_eq!(
            a.judge("[RESPONSE_TIME] < 1s\n[RESPONSE_TIME] >= 120ms"),
            Ok(())
        );
    }

    #[test]
    fn what_is_seen_is_redacted_and_cut_to_fit() {
        let a = answer(
            200,
            r#"{"echo": "key=hunter22 at https://u:pw@h/x?token=t0k", "n": 1}"#,
        );
        let redactor = Redactor::new(["hunter22"]);
        assert_eq!(
            a.judge_with("[BODY].echo == x", &redactor),
            Err(r#"[BODY].echo == x: got "key=*** at https://***@h/x?token=***""#.into())
        );
        let mut h = answer(200, "");
        h.headers
            .insert("set-cookie", HeaderValue::from_static("sid=abcdef"));
        assert_eq!(
            h.judge("[HEADER].Set-Cookie == x"),
            Err(r#"[HEADER].Set-Cookie == x: got "***""#.into())
        );
        let long = answer(200, &format!("{{\"a\": \"{}\\u001b\"}}", "x".repeat(300)));
        let e = long.judge("[BODY].a == pat(y*)").unwrap_err();
        assert_eq!(e.chars().count(), DESCRIPTION_MAX, "{e}");
        assert!(
            e.starts_with("[BODY].a == pat(y*): got \"xxx") && e.ends_with("x..."),
            "{e}"
        );
        let cond = format!("[BODY].{} == 1", "k".repeat(200));
        let e = long.judge(&cond).unwrap_err();
        assert_eq!(e.chars().count(), DESCRIPTION_MAX, "{e}");
        assert!(e.contains("...: got nothing ([BODY] has no key"), "{e}");
    }

    proptest! {
        #[test]
        fn status_conditions_agree_with_integer_comparison(
            status in 100u16..600,
            n in 100u16..600,
            op in prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]),
        ) {
            let want = match op {
                "==" => status == n, "!=" => status != n, "<" => status < n,
                "<=" => status <= n, ">" => status > n, _ => status >= n,
            };
            let got = answer(status, "").judge(&format!("[STATUS] {op} {n}"));
            prop_assert_eq!(got.is_ok(), want);
            if let Err(e) = got {
                prop_assert_eq!(e, format!("[STATUS] {op} {n}: got {status}"));
            }
        }

        #[test]
        fn descriptions_always_fit_and_never_hold_the_secret(
            value in "[ -~\u{e9}\n]{0,300}",
            key in "[a-z]{1,150}",
        ) {
            let secret = "S3cr3tValue";
            let body = serde_json::json!({ key.clone(): format!("{value}{secret}{value}") }).to_string();
            let redactor = Redactor::new([secret]);
            let got = answer(200, &body).judge_with(&format!("[BODY].{key} == ~"), &redactor);
            let e = got.unwrap_err();
            prop_assert!(e.chars().count() <= DESCRIPTION_MAX, "{}", e);
            prop_assert!(!e.contains(secret) && !e.contains('\n'), "{}", e);
        }
    }
}
