//! A target's `conditions`: assertions on the answer in Gatus's syntax, one per line, all of
//! which must hold for a PASS. Parsed once on the loader thread into [`Conditions`] (a line
//! that does not parse is a config error naming its line and column); evaluated on the worker
//! thread against a [`ResponseView`] of the answer, the first that fails described with what
//! was seen. Pure: no I/O, no clock.
//!
//! ```text
//! # blank lines and lines starting with # are skipped
//! [STATUS] == any(200, 204)
//! [BODY].status == ok
//! len([BODY].items) > 1
//! has([BODY].error) == false
//! [HEADER].Content-Type == pat(application/json*)
//! [RESPONSE_TIME] < 300
//! [CERTIFICATE_EXPIRATION] > 72h
//! ```
//!
//! - [`parse`]: the grammar, and its errors;
//! - [`eval`]: resolving placeholders and comparing, and the failure's description;
//! - [`json`]: the `[BODY].path` walker;
//! - [`values`]: numbers, durations and `pat()` patterns.

mod eval;
mod json;
mod parse;
mod values;

pub use eval::ResponseView;
pub use parse::ParseError;

use json::Step;
use values::Num;

/// Conditions per target at most: a bound on the work of every check.
pub const MAX_CONDITIONS: usize = 100;

/// Characters of a failure's description at most: the `targets.status_description` column.
pub const DESCRIPTION_MAX: usize = 128;

/// A target's conditions, validated. Part of the target definition: read only, shared with it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conditions {
    list: Vec<Condition>,
}

/// One line: `left op right`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// As written, trimmed: what a failure names.
    text: String,
    /// 1-based line in the column's text.
    line: usize,
    left: Operand,
    op: Op,
    right: Operand,
}

impl Condition {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn line(&self) -> usize {
        self.line
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Value(Value),
    Literal(Literal),
    /// `pat(...)`: `*` stands for any run of characters.
    Pattern(String),
    /// `any(a, b, ...)`: equal to one of them.
    Any(Vec<Literal>),
}

/// What a placeholder stands for in the answer.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Status,
    /// Milliseconds from sending the request to the end of the body.
    ResponseTime,
    /// Milliseconds until the leaf certificate expires (negative once it has).
    CertExpiration,
    /// The whole body as text, white space around it trimmed.
    Body,
    /// A value in the JSON body.
    BodyPath(Vec<Step>),
    /// The first value of a response header, by its name in lowercase.
    Header(String),
    Len(Box<Value>),
    Has(Box<Value>),
}

/// How a value compares, which decides what the literal beside it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A whole number: `[STATUS]`, `len()`.
    Number,
    /// Milliseconds; the literal may be a duration (`72h`, `1h30m`, `500ms`).
    Millis,
    /// `true` or `false`: `has()`.
    Bool,
    /// Text that may hold a number: `[BODY]`, a JSON value, a header.
    Text,
}

impl Value {
    fn kind(&self) -> Kind {
        match self {
            Value::Status | Value::Len(_) => Kind::Number,
            Value::ResponseTime | Value::CertExpiration => Kind::Millis,
            Value::Has(_) => Kind::Bool,
            Value::Body | Value::BodyPath(_) | Value::Header(_) => Kind::Text,
        }
    }

    fn names_body(&self) -> bool {
        match self {
            Value::Body | Value::BodyPath(_) => true,
            Value::Len(inner) | Value::Has(inner) => inner.names_body(),
            _ => false,
        }
    }
}

/// A value written in the condition; `number` when it reads as one (a duration in ms beside a
/// [`Kind::Millis`] value).
#[derive(Debug, Clone, PartialEq)]
struct Literal {
    text: String,
    number: Option<Num>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Conditions {
    /// Parses the `conditions` column. Only blank lines and comments: no conditions.
    pub fn parse(text: &str) -> Result<Conditions, ParseError> {
        parse::parse(text)
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Condition> {
        self.list.iter()
    }

    /// Whether a condition names `[STATUS]`: then it judges the status, and `pass_result` is
    /// not checked as well.
    pub fn names_status(&self) -> bool {
        self.values().any(|v| *v == Value::Status)
    }

    /// Whether a condition reads the body: the check keeps it (up to `max_body_bytes`).
    pub fn needs_body(&self) -> bool {
        self.values().any(Value::names_body)
    }

    /// Whether a condition reads the certificate's expiry.
    pub fn needs_certificate(&self) -> bool {
        self.values().any(|v| *v == Value::CertExpiration)
    }

    fn values(&self) -> impl Iterator<Item = &Value> {
        self.list
            .iter()
            .flat_map(|c| [&c.left, &c.right])
            .filter_map(|side| match side {
                Operand::Value(v) => Some(v),
                _ => None,
            })
    }
}
