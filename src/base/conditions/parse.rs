//! The grammar of a condition line, and its errors:
//!
//! ```text
//! condition := operand op operand          (at least one side a placeholder)
//! operand   := placeholder | len(placeholder) | has(placeholder)
//!            | pat(pattern) | any(a, b, ...) | literal       (pat and any on the right only)
//! placeholder := [STATUS] | [RESPONSE_TIME] | [CERTIFICATE_EXPIRATION]
//!              | [BODY] path | [HEADER].Name
//! path      := ( .key | [n] )*
//! op        := == | != | < | <= | > | >=
//! ```
//!
//! Placeholder and function names are case-insensitive, keys and header names are not (header
//! names are compared in any case). A literal on the right runs to the end of the line,
//! spaces included; on the left, to the first space or operator.

use std::fmt;

use super::json::Step;
use super::values::{duration_ms, Num};
use super::{Condition, Conditions, Kind, Literal, Op, Operand, Value, MAX_CONDITIONS};
use crate::base::text;

/// Steps of a `[BODY]` path at most.
const MAX_PATH: usize = 64;

/// A line that is not a condition: where, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line of the column's text.
    pub line: usize,
    /// 1-based character of that line.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conditions line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

pub(super) fn parse(text: &str) -> Result<Conditions, ParseError> {
    let mut list = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut cursor = Cursor {
            line,
            pos: 0,
            number: index + 1,
        };
        if list.len() == MAX_CONDITIONS {
            return Err(cursor.error(
                line.len() - line.trim_start().len(),
                format!("more than {MAX_CONDITIONS} conditions"),
            ));
        }
        list.push(cursor.condition()?);
    }
    Ok(Conditions { list })
}

/// A place in one line.
struct Cursor<'a> {
    line: &'a str,
    /// Byte offset into `line`.
    pos: usize,
    number: usize,
}

/// Which side of the operator an operand is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.line[self.pos..]
    }

    fn error(&self, at: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.number,
            column: self.line[..at].chars().count() + 1,
            message: message.into(),
        }
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Takes `word` (ASCII, any case) when the rest starts with it.
    fn eat(&mut self, word: &str) -> bool {
        let rest = self.rest().as_bytes();
        let found =
            rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word.as_bytes());
        if found {
            self.pos += word.len();
        }
        found
    }

    /// The longest run of characters that `keep` accepts.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let end = rest.find(|c| !keep(c)).unwrap_or(rest.len());
        self.pos += end;
        &rest[..end]
    }

    /// What was read from `from` to here, for "after ..." in a message.
    fn since(&self, from: usize) -> String {
        text::clip_marked(&text::visible(&self.line[from..self.pos]), 60)
    }

    fn condition(&mut self) -> Result<Condition, ParseError> {
        self.skip_space();
        let left_at = self.pos;
        let left = self.operand(Side::Left)?;
        let left_text = self.since(left_at);
        self.skip_space();
        let op_at = self.pos;
        let op = self.op().ok_or_else(|| {
            self.error(
                op_at,
                format!("expected an operator after {left_text}: one of ==, !=, <, <=, >, >="),
            )
        })?;
        self.skip_space();
        let right_at = self.pos;
        if self.rest().is_empty() {
            return Err(self.error(
                right_at,
                format!("expected a value after {left_text} {}", op_text(op)),
            ));
        }
        let right = self.operand(Side::Right)?;
        let right_text = self.since(right_at);
        self.skip_space();
        if !self.rest().is_empty() {
            let extra = text::clip_marked(&text::visible(self.rest()), 30);
            return Err(self.error(self.pos, format!("unexpected `{extra}` after {right_text}")));
        }
        let (left, right) = self.checked(left, left_at, op, right, right_at)?;
        Ok(Condition {
            text: self.line.trim().to_string(),
            line: self.number,
            left,
            op,
            right,
        })
    }

    fn op(&mut self) -> Option<Op> {
        [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find(|(text, _)| self.eat(text))
        .map(|(_, op)| op)
    }

    fn operand(&mut self, side: Side) -> Result<Operand, ParseError> {
        let at = self.pos;
        if self.rest().starts_with('[') && self.looks_like_placeholder() {
            return self.placeholder().map(Operand::Value);
        }
        for (word, has) in [("len(", false), ("has(", true)] {
            if self.eat(word) {
                let inner = Box::new(self.function_argument(at, &word[..3])?);
                let value = if has {
                    Value::Has(inner)
                } else {
                    Value::Len(inner)
                };
                return Ok(Operand::Value(value));
            }
        }
        if self.rest().len() >= 4 && self.rest().as_bytes()[..4].eq_ignore_ascii_case(b"age(") {
            return Err(self.error(at, "age() is not available here: compare the value itself"));
        }
        for word in ["pat(", "any("] {
            let rest = self.rest().as_bytes();
            if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case(word.as_bytes()) {
                if side == Side::Left {
                    return Err(self.error(at, format!("{word}...) goes on the right of == or !=")));
                }
                return self.list_function(at, word);
            }
        }
        let literal = match side {
            Side::Left => self.take_while(|c| !c.is_whitespace() && !"=!<>".contains(c)),
            Side::Right => {
                let rest = self.rest().trim_end();
                self.pos += rest.len();
                rest
            }
        };
        Ok(Operand::Literal(Literal {
            text: literal.to_string(),
            number: Num::parse(literal),
        }))
    }

    /// `[WORD]` where WORD is capitals and `_`: a placeholder (or a misspelt one), not a
    /// literal such as `[1,2]`.
    fn looks_like_placeholder(&self) -> bool {
        let rest = &self.rest()[1..];
        let name = rest.split(']').next().unwrap_or("");
        rest.contains(']')
            && !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    }

    fn function_argument(&mut self, at: usize, name: &str) -> Result<Value, ParseError> {
        let inner_at = self.pos;
        if !(self.rest().starts_with('[') && self.looks_like_placeholder()) {
            return Err(self.error(
                inner_at,
                format!("{name}() takes [BODY], [BODY].path or [HEADER].Name"),
            ));
        }
        let inner = self.placeholder()?;
        if !matches!(inner, Value::Body | Value::BodyPath(_) | Value::Header(_)) {
            return Err(self.error(
                inner_at,
                format!("{name}() takes [BODY], [BODY].path or [HEADER].Name"),
            ));
        }
        if !self.eat(")") {
            return Err(self.error(
                self.pos,
                format!("expected `)` to close {}", self.since(at)),
            ));
        }
        Ok(inner)
    }

    /// `pat(...)` or `any(...)` at the end of the line: its text runs to the line's last `)`.
    fn list_function(&mut self, at: usize, word: &str) -> Result<Operand, ParseError> {
        let rest = self.rest().trim_end();
        let Some(inner) = rest[word.len()..].strip_suffix(')') else {
            let end = self.pos + rest.len();
            return Err(self.error(end, format!("expected `)` at the end of {word}...)")));
        };
        self.pos += rest.len();
        if word.eq_ignore_ascii_case("pat(") {
            return Ok(Operand::Pattern(inner.to_string()));
        }
        let items: Vec<&str> = inner.split(',').map(str::trim).collect();
        if items.iter().any(|i| i.is_empty()) {
            return Err(self.error(
                at,
                "any() needs values separated by commas, none of them empty",
            ));
        }
        Ok(Operand::Any(
            items
                .into_iter()
                .map(|t| Literal {
                    text: t.to_string(),
                    number: Num::parse(t),
                })
                .collect(),
        ))
    }

    fn placeholder(&mut self) -> Result<Value, ParseError> {
        let at = self.pos;
        let close = self.rest().find(']').unwrap_or(0);
        let name = self.rest()[1..close].to_ascii_uppercase();
        self.pos += close + 1;
        match name.as_str() {
            "STATUS" => Ok(Value::Status),
            "RESPONSE_TIME" => Ok(Value::ResponseTime),
            "CERTIFICATE_EXPIRATION" => Ok(Value::CertExpiration),
            "BODY" => match self.path()? {
                steps if steps.is_empty() => Ok(Value::Body),
                steps => Ok(Value::BodyPath(steps)),
            },
            "HEADER" => self.header(at),
            "IP" | "CONNECTED" | "DNS_RCODE" | "DOMAIN_EXPIRATION" | "CONTEXT" => Err(self.error(
                at,
                format!("[{name}] is not available here: a failed connection is a FAIL before conditions are read"),
            )),
            _ => Err(self.error(
                at,
                format!(
                    "unknown placeholder [{}]: use [STATUS], [BODY], [HEADER].Name, \
                     [RESPONSE_TIME] or [CERTIFICATE_EXPIRATION]",
                    text::clip_marked(&name, 30)
                ),
            )),
        }
    }

    fn header(&mut self, at: usize) -> Result<Value, ParseError> {
        let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        let name = if self.eat(".") {
            self.take_while(tchar)
        } else {
            ""
        };
        if name.is_empty() {
            return Err(self.error(
                at,
                "expected a header name after [HEADER], as in [HEADER].Content-Type",
            ));
        }
        Ok(Value::Header(name.to_ascii_lowercase()))
    }

    fn path(&mut self) -> Result<Vec<Step>, ParseError> {
        let mut steps = Vec::new();
        loop {
            let at = self.pos;
            if self.eat(".") {
                let key = self.take_while(|c| !c.is_whitespace() && !".[]()=!<>".contains(c));
                if key.is_empty() {
                    return Err(self.error(self.pos, "expected a key after `.`"));
                }
                steps.push(Step::Key(key.to_string()));
            } else if self.eat("[") {
                if self.rest().starts_with("*]") {
                    return Err(self.error(
                        at,
                        "[*] (every element) is not supported: name one element, as in [0]",
                    ));
                }
                let digits = self.take_while(|c| c.is_ascii_digit());
                let index = digits.parse::<usize>().ok().filter(|_| self.eat("]"));
                let Some(index) = index else {
                    return Err(self.error(at, "expected an index such as [0]"));
                };
                steps.push(Step::Index(index));
            } else {
                return Ok(steps);
            }
            if steps.len() > MAX_PATH {
                return Err(self.error(at, format!("a path of more than {MAX_PATH} steps")));
            }
        }
    }

    /// The sides as compared: at least one placeholder, the functions with the operators they
    /// take, and a literal fit for the value it is compared with.
    fn checked(
        &self,
        left: Operand,
        left_at: usize,
        op: Op,
        right: Operand,
        right_at: usize,
    ) -> Result<(Operand, Operand), ParseError> {
        let equality = matches!(op, Op::Eq | Op::Ne);
        match (&left, &right) {
            (Operand::Value(_), _) | (_, Operand::Value(_)) => {}
            _ => {
                return Err(self.error(
                    left_at,
                    "compares no placeholder: name [STATUS], [BODY], [HEADER].Name, \
                     [RESPONSE_TIME] or [CERTIFICATE_EXPIRATION]",
                ))
            }
        }
        if matches!(right, Operand::Pattern(_) | Operand::Any(_)) && !equality {
            return Err(self.error(right_at, "pat() and any() compare with == or != only"));
        }
        let has = |o: &Operand| matches!(o, Operand::Value(Value::Has(_)));
        if (has(&left) || has(&right)) && !equality {
            return Err(self.error(left_at, "has() compares with == or != only"));
        }
        let left_kind = kind(&left);
        let right = self.fit(right, right_at, left_kind)?;
        let left = self.fit(left, left_at, kind(&right))?;
        Ok((left, right))
    }

    /// `operand` made fit to compare with a value of `kind`: a duration read as milliseconds,
    /// `true`/`false` in lowercase; an error when it cannot be.
    fn fit(&self, operand: Operand, at: usize, kind: Option<Kind>) -> Result<Operand, ParseError> {
        let fit_one = |lit: Literal| -> Result<Literal, ParseError> {
            let shown = || text::clip_marked(&text::visible(&lit.text), 30);
            match kind {
                Some(Kind::Number) if lit.number.is_none() => {
                    Err(self.error(at, format!("expected a number, found `{}`", shown())))
                }
                Some(Kind::Millis) if lit.number.is_none() => match duration_ms(&lit.text) {
                    Some(ms) => Ok(Literal {
                        number: Some(Num::int(ms)),
                        ..lit
                    }),
                    None => Err(self.error(
                        at,
                        format!(
                            "expected a duration such as 72h, 30m or 10s, or a number of \
                             milliseconds, found `{}`",
                            shown()
                        ),
                    )),
                },
                Some(Kind::Bool) => match lit.text.to_ascii_lowercase().as_str() {
                    t @ ("true" | "false") => Ok(Literal {
                        text: t.into(),
                        number: None,
                    }),
                    _ => {
                        Err(self.error(at, format!("expected true or false, found `{}`", shown())))
                    }
                },
                _ => Ok(lit),
            }
        };
        match operand {
            Operand::Literal(lit) => fit_one(lit).map(Operand::Literal),
            Operand::Any(items) => items
                .into_iter()
                .map(fit_one)
                .collect::<Result<_, _>>()
                .map(Operand::Any),
            other => Ok(other),
        }
    }
}

fn kind(operand: &Operand) -> Option<Kind> {
    match operand {
        Operand::Value(v) => Some(v.kind()),
        _ => None,
    }
}

pub(super) fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

#[cfg(test)]
mod tests;
