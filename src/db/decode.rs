//! Rows decoded column by column, for every thread that reads the database and for the CLI: a
//! value that does not convert to its Rust type is a [`BadRow`] naming the table, the row's key
//! and the column, never a panic (the driver's `FromRow` for typed tuples panics on a value it
//! cannot convert, such as an id of -1 read as `u64`, and took the loader down with it).
//!
//! A reader decides what a bad row means (a target with a usable id gets a config error; a
//! delivery is dropped; other rows are left out) and reports the rows it leaves out with
//! [`skip`], which logs each problem once per process and counts it for `/metrics` and the
//! stats line. The set of problems already reported is process-wide, like the log it guards:
//! a row that the loader, the notifier and the HTTP server all read is one line, not one per
//! thread and poll.
//!
//! Values the daemon owns that a person edited into nonsense (a negative counter or
//! `state_seq`, one past what any count reaches) decode as they are; [`counter_fix`] says what
//! they are repaired to, and the daemon's readers write that back.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};

use mysql::prelude::FromValue;
use mysql::{Row, Value};

use crate::base::text;

/// The highest value a counter may hold: 2^53, the largest integer a JSON number (the API, the
/// alert snapshot) holds exactly, and more than any daemon counts in centuries.
pub const COUNTER_MAX: i64 = 1 << 53;

/// Distinct problems remembered as reported; past this many, further ones are not logged (one
/// line says so), so a table full of bad rows cannot grow the set without end.
const REMEMBERED: usize = 10_000;

/// One row that does not decode: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub table: &'static str,
    /// The row's key as read: `id -1`, `alert_id 7, notifier_id 2`, `name 'a'`.
    pub key: String,
    /// The key's integers as read, in order: what a statement marking the row needs.
    pub keys: Vec<i64>,
    /// The column that does not decode.
    pub column: &'static str,
    pub why: String,
    /// The column is part of the key: the row cannot even be named.
    in_key: bool,
}

impl BadRow {
    /// The row's id when the row is bad for another column than its (positive) id: a target
    /// row then gets a `config error: ...` of its own.
    pub fn usable_id(&self) -> Option<u64> {
        match self.keys.as_slice() {
            [id] if !self.in_key && *id > 0 => Some(*id as u64),
            _ => None,
        }
    }

    /// What is wrong, without the row's name: `ids are positive`, `attempts: NULL is ...`.
    pub fn problem(&self) -> String {
        if self.in_key {
            self.why.clone()
        } else {
            format!("{}: {}", self.column, self.why)
        }
    }
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} row with {}: {}",
            self.table,
            self.key,
            self.problem()
        )
    }
}

/// The values of one row, taken column by column. Built from a driver row, or from values
/// (the unit tests, or a row assembled by hand).
pub struct Fields {
    table: &'static str,
    values: Vec<Option<Value>>,
    key: Vec<Key>,
    keys: Vec<i64>,
}

/// A part of a row's key, as an error names it (`id 5`, `name 'a'`).
enum Key {
    /// An integer read as one: put in words only when an error needs it, since most rows
    /// decode.
    Id(&'static str, i64),
    Shown(String),
}

impl Fields {
    pub fn new(table: &'static str, mut row: Row) -> Fields {
        let values = (0..row.len()).map(|i| row.take::<Value, _>(i)).collect();
        Fields::of(table, values)
    }

    pub fn of(table: &'static str, values: Vec<Option<Value>>) -> Fields {
        Fields {
            table,
            values,
            key: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// Column `i` without taking it, when it converts (what a reader wants to know of a row
    /// that may turn out not to decode).
    pub fn peek<T: FromValue>(&self, i: usize) -> Option<T> {
        let value = self.values.get(i)?.clone()?;
        mysql::from_value_opt::<Option<T>>(value).ok().flatten()
    }

    fn take(&mut self, i: usize) -> Option<Value> {
        self.values.get_mut(i).and_then(Option::take)
    }

    fn bad(&self, column: &'static str, why: String, in_key: bool) -> BadRow {
        let key = if self.key.is_empty() {
            "no readable key".to_string()
        } else {
            let parts: Vec<String> = self
                .key
                .iter()
                .map(|k| match k {
                    Key::Id(column, id) => format!("{column} {id}"),
                    Key::Shown(shown) => shown.clone(),
                })
                .collect();
            parts.join(", ")
        };
        BadRow {
            table: self.table,
            key,
            keys: self.keys.clone(),
            column,
            why,
            in_key,
        }
    }

    /// A positive id that is (part of) the row's key; read first, so that a later column's
    /// error can name the row.
    pub fn id(&mut self, i: usize, column: &'static str) -> Result<u64, BadRow> {
        let value = self.take(i).unwrap_or(Value::NULL);
        match mysql::from_value_opt::<i64>(value) {
            Ok(id) => {
                self.key.push(Key::Id(column, id));
                self.keys.push(id);
                u64::try_from(id)
                    .ok()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| self.bad(column, "ids are positive".into(), true))
            }
            Err(e) => {
                let shown = shown(&e.0);
                self.key.push(Key::Shown(format!("{column} {shown}")));
                Err(self.bad(column, format!("{shown} is not a whole number"), true))
            }
        }
    }

    /// A text that is the row's key (`nodes.name`).
    pub fn key_text(&mut self, i: usize, column: &'static str) -> Result<String, BadRow> {
        let value = self.take(i).unwrap_or(Value::NULL);
        let shown = shown(&value);
        self.key.push(Key::Shown(format!("{column} {shown}")));
        mysql::from_value_opt::<String>(value)
            .map_err(|_| self.bad(column, format!("{shown} is not UTF-8 text"), true))
    }

    /// The id of another table's row (a target, a notifier, an alert): positive.
    pub fn reference(&mut self, i: usize, column: &'static str) -> Result<u64, BadRow> {
        self.opt_ref(i, column)?
            .ok_or_else(|| self.bad(column, "NULL is not an id".into(), false))
    }

    /// [`Fields::reference`] where NULL is allowed (`maintenance.target_id`: every target).
    pub fn opt_ref(&mut self, i: usize, column: &'static str) -> Result<Option<u64>, BadRow> {
        match self.opt::<i64>(i, column)? {
            None => Ok(None),
            Some(id) if id > 0 => Ok(Some(id as u64)),
            Some(id) => Err(self.bad(
                column,
                format!("{id} is not an id (ids are positive)"),
                false,
            )),
        }
    }

    /// A column that may not be NULL.
    pub fn get<T: FromValue>(&mut self, i: usize, column: &'static str) -> Result<T, BadRow> {
        self.opt(i, column)?
            .ok_or_else(|| self.bad(column, format!("NULL is not {}", what::<T>()), false))
    }

    /// A column that may be NULL.
    pub fn opt<T: FromValue>(
        &mut self,
        i: usize,
        column: &'static str,
    ) -> Result<Option<T>, BadRow> {
        match self.take(i) {
            None | Some(Value::NULL) => Ok(None),
            // The value comes back with the error: shown only then, since most decode.
            Some(value) => mysql::from_value_opt::<T>(value).map(Some).map_err(|e| {
                let why = format!("{} is not {}", shown(&e.0), what::<T>());
                self.bad(column, why, false)
            }),
        }
    }

    /// A text that may hold a secret (`authn_parms`, a notifier's `params`): its value is
    /// never shown in the error.
    pub fn secret(&mut self, i: usize, column: &'static str) -> Result<Option<String>, BadRow> {
        match self.take(i) {
            None | Some(Value::NULL) => Ok(None),
            Some(value) => mysql::from_value_opt::<String>(value)
                .map(Some)
                .map_err(|_| self.bad(column, "(not shown) is not UTF-8 text".into(), false)),
        }
    }

    /// A BOOLEAN (a TINYINT): any value other than 0 is true, as in SQL's `WHERE enabled`.
    pub fn flag(&mut self, i: usize, column: &'static str) -> Result<bool, BadRow> {
        self.get::<i64>(i, column).map(|n| n != 0)
    }
}

/// What a type's values are, in an error message.
fn what<T>() -> &'static str {
    match std::any::type_name::<T>() {
        "u64" => "a whole number from 0 to 18446744073709551615",
        "i64" => "a whole number",
        "u32" => "a whole number from 0 to 4294967295",
        "i32" => "a whole number from -2147483648 to 2147483647",
        "u16" => "a whole number from 0 to 65535",
        "f64" => "a number",
        "alloc::string::String" => "UTF-8 text",
        other => other,
    }
}

/// A value as an error shows it: numbers as they are (the text protocol sends them as text),
/// other text quoted, cut and made printable.
fn shown(value: &Value) -> String {
    let number = |s: &str| {
        let digits = |b: u8| b.is_ascii_digit() || b"+-.e".contains(&b);
        !s.is_empty() && s.len() < 40 && s.bytes().all(digits)
    };
    match value {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if number(s) => s.to_string(),
            Ok(s) => format!("'{}'", text::printable(&text::clip_marked(s, 40))),
            Err(_) => format!("{} bytes of binary", b.len()),
        },
        Value::Int(n) => n.to_string(),
        Value::UInt(n) => n.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Double(x) => x.to_string(),
        other => other.as_sql(true),
    }
}

/// Decodes every row with `decode`; the rows that do not decode come back as errors, for the
/// caller to deal with.
pub fn rows<T>(
    table: &'static str,
    rows: Vec<Row>,
    decode: impl Fn(&mut Fields) -> Result<T, BadRow>,
) -> Vec<Result<T, BadRow>> {
    rows.into_iter()
        .map(|row| decode(&mut Fields::new(table, row)))
        .collect()
}

/// Decodes every row with `decode`, leaving out (and reporting, see [`skip`]) those that do
/// not decode.
pub fn good_rows<T>(
    table: &'static str,
    all: Vec<Row>,
    decode: impl Fn(&mut Fields) -> Result<T, BadRow>,
) -> Vec<T> {
    rows(table, all, decode)
        .into_iter()
        .filter_map(|r| r.map_err(|bad| skip(&bad)).ok())
        .collect()
}

/// Decodes the one row a statement may return.
pub fn first<T>(
    table: &'static str,
    row: Option<Row>,
    decode: impl Fn(&mut Fields) -> Result<T, BadRow>,
) -> Option<T> {
    good_rows(table, row.into_iter().collect(), decode).pop()
}

static REPORTED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// Reports a row left out: logged the first time this process meets the problem, counted
/// each first time.
pub fn skip(bad: &BadRow) {
    if first_report(&bad.to_string()) {
        SKIPPED.fetch_add(1, Relaxed);
        log::error!(
            "{} row with {} skipped: {}",
            bad.table,
            bad.key,
            text::printable(&bad.problem())
        );
    }
}

/// True the first time this process is told of `problem` (a row's table, key and fault).
pub fn first_report(problem: &str) -> bool {
    let set = REPORTED.get_or_init(|| Mutex::new(HashSet::new()));
    let mut set = set.lock().unwrap_or_else(|p| p.into_inner());
    if set.contains(problem) {
        return false;
    }
    if set.len() < REMEMBERED {
        return set.insert(problem.to_string());
    }
    // The empty marker: the line below is written once.
    if set.insert(String::new()) {
        log::error!("more than {REMEMBERED} bad rows: further ones are no longer logged");
    }
    false
}

/// Distinct bad rows left out since the process started.
pub fn skipped() -> u64 {
    SKIPPED.load(Relaxed)
}

/// A value the daemon owns, edited out of its range, and what it is repaired to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fix {
    pub column: &'static str,
    pub was: i64,
    pub now: i64,
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.column, self.was, self.now)
    }
}

/// A counter (or a sequence number, `state_seq`) below zero or above [`COUNTER_MAX`] starts
/// again at 0: no count reaches either, and a counter kept at the edge would be out of range
/// again at its next step.
pub fn counter_fix(column: &'static str, was: i64) -> Option<Fix> {
    (!(0..=COUNTER_MAX).contains(&was)).then_some(Fix {
        column,
        was,
        now: 0,
    })
}

/// `column`'s value once `fixes` are made: `was` when none repairs it.
pub fn repaired(fixes: &[Fix], column: &str, was: i64) -> i64 {
    fixes
        .iter()
        .find(|f| f.column == column)
        .map_or(was, |f| f.now)
}

/// The fixes as a log line shows them: `state_seq -1 -> 0, pass_count -5 -> 0`.
pub fn describe(fixes: &[Fix]) -> String {
    fixes
        .iter()
        .map(Fix::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
