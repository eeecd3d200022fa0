//! Stored text brought to schema 2.3's rule that no secret is at rest: the URLs in alert
//! snapshots and traces and in the targets' last traces, written by releases that stored the
//! URL as typed, are put in their display form ([`crate::base::urls`]). Run by `upgrade-db` on the
//! main thread; reads and rewrites `alerts` and `targets.last_trace`.
//!
//! Batched (a bounded number of rows per statement, in id order), parameterized, and safe to
//! run again or beside running daemons: a row is rewritten only while it still holds the text
//! that was read, so a trace a daemon wrote since is never replaced by an older one.

use std::borrow::Cow;

use mysql::prelude::Queryable;
use serde_json::Value;

use super::{Conn, Error};
use crate::base::urls;

/// Rows read per statement.
const BATCH: u64 = 500;

/// Redacts every stored URL.
pub fn stored_urls(conn: &mut Conn) -> Result<(), Error> {
    alerts(conn)?;
    last_traces(conn)
}

/// A stored snapshot with its URLs in their display form; `None` when it holds none to hide.
/// A JSON object has its `url` value shown redacted and the URLs inside its other texts; any
/// other text (a snapshot damaged by hand) has the URLs in it redacted where they stand.
pub fn snapshot(text: &str) -> Option<String> {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(text) else {
        return changed(urls::redact_in(text));
    };
    let mut any = false;
    for (key, value) in map.iter_mut() {
        if let Value::String(s) = value {
            let safe = if key == "url" {
                Cow::Owned(urls::shown(s))
            } else {
                urls::redact_in(s)
            };
            if safe != s.as_str() {
                *s = safe.into_owned();
                any = true;
            }
        }
    }
    any.then(|| Value::Object(map).to_string())
}

/// A stored trace with the URLs in it redacted; `None` when it holds none to hide.
pub fn trace(text: &str) -> Option<String> {
    changed(urls::redact_in(text))
}

fn changed(text: Cow<'_, str>) -> Option<String> {
    match text {
        Cow::Owned(s) => Some(s),
        Cow::Borrowed(_) => None,
    }
}

/// Columns read as bytes: decoding them cannot fail, whatever a person wrote into them.
type Bytes = Option<Vec<u8>>;

fn text(bytes: &Bytes) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes.as_deref().unwrap_or_default())
}

/// Where the batch after one that ended at id `last` starts; `None` after the last batch.
fn next_batch(last: Option<i64>, rows: usize) -> Option<i64> {
    last.filter(|_| rows as u64 == BATCH)?.checked_add(1)
}

fn alerts(conn: &mut Conn) -> Result<(), Error> {
    let mut from = i64::MIN;
    loop {
        let rows: Vec<(i64, Bytes, Bytes)> = conn
            .exec(
                "SELECT id, snapshot, trace FROM alerts WHERE id >= ? ORDER BY id LIMIT ?",
                (from, BATCH),
            )
            .map_err(Error::query("reading alerts to redact their URLs"))?;
        for (id, old_snapshot, old_trace) in &rows {
            let new_snapshot = snapshot(&text(old_snapshot));
            let new_trace = trace(&text(old_trace));
            if new_snapshot.is_none() && new_trace.is_none() {
                continue;
            }
            let new_snapshot = new_snapshot.unwrap_or_else(|| text(old_snapshot).into_owned());
            let new_trace = new_trace.unwrap_or_else(|| text(old_trace).into_owned());
            conn.exec_drop(
                "UPDATE alerts SET snapshot = ?, trace = ? \
                 WHERE id = ? AND BINARY snapshot <=> ? AND BINARY trace <=> ?",
                (new_snapshot, new_trace, id, old_snapshot, old_trace),
            )
            .map_err(Error::query("redacting the URLs of an alert"))?;
        }
        match next_batch(rows.last().map(|r| r.0), rows.len()) {
            Some(next) => from = next,
            None => return Ok(()),
        }
    }
}

fn last_traces(conn: &mut Conn) -> Result<(), Error> {
    let mut from = i64::MIN;
    loop {
        // Only a trace with a URL holding user info or a parameter can hold a secret.
        let rows: Vec<(i64, Bytes)> = conn
            .exec(
                "SELECT id, last_trace FROM targets WHERE id >= ? \
                 AND (last_trace LIKE '%://%@%' OR last_trace LIKE '%://%=%') \
                 ORDER BY id LIMIT ?",
                (from, BATCH),
            )
            .map_err(Error::query("reading traces to redact their URLs"))?;
        for (id, old) in &rows {
            let Some(new) = trace(&text(old)) else {
                continue;
            };
            // Neither an edit (config_changed) nor a check (last_updated): left as they were.
            conn.exec_drop(
                "UPDATE targets SET last_trace = ?, config_changed = config_changed, \
                 last_updated = last_updated WHERE id = ? AND BINARY last_trace <=> ?",
                (new, id, old),
            )
            .map_err(Error::query("redacting the URLs of a trace"))?;
        }
        match next_batch(rows.last().map(|r| r.0), rows.len()) {
            Some(next) => from = next,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_everything_but_its_secrets() {
        let old = r#"{"id":7,"name":"api","url":"https://user:PW@h/?token=abc&x=1","count200":3,
            "status_description":"see http://u:pw2@h/","enabled":1}"#;
        let new: Value = serde_json::from_str(&snapshot(old).unwrap()).unwrap();
        assert_eq!(new["url"], "https://***@h/?token=***&x=1");
        assert_eq!(new["status_description"], "see http://***@h/");
        assert_eq!(
            (new["id"].as_u64(), new["count200"].as_u64()),
            (Some(7), Some(3))
        );
        assert_eq!(
            (new["name"].as_str(), new["enabled"].as_u64()),
            (Some("api"), Some(1))
        );
        let again = snapshot(&new.to_string());
        assert_eq!(again, None, "a redacted snapshot is left alone");
        assert_eq!(snapshot(r#"{"url":"http://127.0.0.1:9/"}"#), None);
    }

    #[test]
    fn a_damaged_snapshot_and_a_trace_are_redacted_as_text() {
        assert_eq!(
            snapshot("not json https://u:PW@h/ {").as_deref(),
            Some("not json https://***@h/ {")
        );
        assert_eq!(snapshot("not json"), None);
        assert_eq!(
            trace("x keystone: POST http://u:pw@ks/v3/auth/tokens?nocatalog sent\n").as_deref(),
            Some("x keystone: POST http://***@ks/v3/auth/tokens?nocatalog sent\n")
        );
        assert_eq!(trace("GET http://h/ sent\n"), None);
    }
}
