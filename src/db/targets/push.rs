//! PUSH targets' rows: a push recorded (HTTP handler threads, on whichever node got it),
//! the pushes of the last seconds read (every node's heartbeat thread), a NULL token filled
//! (the loader), a target's last push (the CLI). No statement here moves `config_changed`:
//! the loader would read the row again as if a person had edited it.

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::Row;

use super::super::decode::{self, Fields};
use super::super::{Conn, Error};
use super::TABLE;
use crate::base::model::TargetId;
use crate::base::push::{Report, MIN_TOKEN};

/// One push as a row holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub id: TargetId,
    /// `push_count`: each push adds one, so a node tells a new push from one it has read.
    pub count: i64,
    /// How long ago it came, by the database's clock.
    pub age: Duration,
    /// When it came, milliseconds since the epoch.
    pub wall_ms: i64,
    /// `last_push_status` is FAIL.
    pub failed: bool,
    pub message: Option<String>,
}

/// Records a push for the enabled PUSH target whose token is `token`; false when there is
/// none (an unknown token, a disabled target or one that is not PUSH, which the caller
/// answers alike). The token is compared byte for byte, past the case-blind unique key
/// that finds the row. The same one statement whatever the token, so that the answer's time
/// tells nothing of which tokens exist.
pub fn record(conn: &mut Conn, token: &str, report: &Report) -> Result<bool, Error> {
    conn.exec_drop(
        "UPDATE targets SET last_push_at = NOW(6), last_push_status = ?, last_push_msg = ?, \
         push_count = IF(push_count < 9223372036854775807 AND push_count >= 0, \
         push_count + 1, 1), config_changed = config_changed \
         WHERE push_token = ? AND BINARY push_token = BINARY ? AND enabled \
         AND TRIM(method) = 'PUSH' AND CHAR_LENGTH(push_token) >= ?",
        (
            report.status(),
            report.message.as_deref(),
            token,
            token,
            MIN_TOKEN as u64,
        ),
    )
    .map_err(Error::query("recording a push"))?;
    Ok(conn.affected_rows() > 0)
}

/// The columns [`decode_pushed`] reads.
const PUSHED: &str = "SELECT id, push_count, TIMESTAMPDIFF(MICROSECOND, last_push_at, NOW(6)), \
     CAST(UNIX_TIMESTAMP(last_push_at) * 1000 AS SIGNED), last_push_status, last_push_msg \
     FROM targets";

/// The rows pushed at or after `since` (microseconds since the epoch, by the database's
/// clock), through the `last_push_at` index: what a heartbeat thread reads once a second. A
/// row that does not decode is reported (see [`decode::skip`]) and left out.
pub fn pushed_since(conn: &mut Conn, since: i64) -> Result<Vec<Pushed>, Error> {
    let rows: Vec<Row> = conn
        .exec(
            format!("{PUSHED} WHERE last_push_at >= FROM_UNIXTIME(? / 1000000)"),
            (since.max(0),),
        )
        .map_err(Error::query("reading the pushes"))?;
    Ok(decode::good_rows(TABLE, rows, decode_pushed))
}

/// Target `id`'s last push, `None` when it has had none.
pub fn last(conn: &mut Conn, id: TargetId) -> Result<Option<Pushed>, Error> {
    let row: Option<Row> = conn
        .exec_first(
            format!("{PUSHED} WHERE id = ? AND last_push_at IS NOT NULL"),
            (id,),
        )
        .map_err(Error::query("reading a target's last push"))?;
    Ok(decode::first(TABLE, row, decode_pushed))
}

fn decode_pushed(f: &mut Fields) -> Result<Pushed, decode::BadRow> {
    let id = f.id(0, "id")?;
    let age: i64 = f.opt(2, "last_push_at")?.unwrap_or(0);
    Ok(Pushed {
        id,
        count: f.get(1, "push_count")?,
        age: Duration::from_micros(age.max(0) as u64),
        wall_ms: f.opt(3, "last_push_at")?.unwrap_or(0),
        failed: f.opt::<String>(4, "last_push_status")?.as_deref() == Some("FAIL"),
        message: f.opt(5, "last_push_msg")?,
    })
}

/// Gives PUSH target `id` the token `token` if it still has none; false when another node
/// (or a person) gave it one first.
pub fn fill_token(conn: &mut Conn, id: TargetId, token: &str) -> Result<bool, Error> {
    conn.exec_drop(
        "UPDATE targets SET push_token = ?, config_changed = config_changed \
         WHERE id = ? AND push_token IS NULL",
        (token, id),
    )
    .map_err(Error::query("filling a push token"))?;
    Ok(conn.affected_rows() > 0)
}
