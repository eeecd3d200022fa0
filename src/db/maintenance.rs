//! The `maintenance` table: windows during which a target's alerts are held (see
//! `notifier::outbox::expand`) and its time is left out of uptime (`history::pauses`).

use mysql::prelude::Queryable;

use super::decode::{self, BadRow, Fields};
use super::{Conn, Error};
use crate::base::model::TargetId;

/// One window, as `skypunch maintenance list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub id: u64,
    /// `None`: every target.
    pub target: Option<TargetId>,
    /// Seconds since the epoch.
    pub starts: i64,
    pub ends: i64,
    pub reason: String,
}

/// Opens a window from now for `minutes`; its id.
pub fn add(
    conn: &mut Conn,
    target: Option<TargetId>,
    seconds: i64,
    reason: &str,
) -> Result<u64, Error> {
    conn.exec_drop(
        "INSERT INTO maintenance (target_id, starts, ends, reason) \
         VALUES (?, NOW(3), NOW(3) + INTERVAL ? SECOND, ?)",
        (target, seconds, reason),
    )
    .map_err(Error::query("adding a maintenance window"))?;
    Ok(conn.last_insert_id())
}

fn decode(f: &mut Fields) -> Result<Window, BadRow> {
    let id = f.id(0, "id")?;
    let target = f.opt_ref(1, "target_id")?;
    Ok(Window {
        id,
        target,
        starts: f.get(2, "starts")?,
        ends: f.get(3, "ends")?,
        reason: f.get(4, "reason")?,
    })
}

/// Windows that have not ended, and those that ended in the last `recent_days`; those that do
/// not decode are reported (see [`decode::skip`]).
pub fn list(conn: &mut Conn, recent_days: i64) -> Result<Vec<Window>, Error> {
    let rows: Vec<mysql::Row> = conn
        .exec(
            "SELECT id, target_id, CAST(FLOOR(UNIX_TIMESTAMP(starts)) AS SIGNED), \
             CAST(FLOOR(UNIX_TIMESTAMP(ends)) AS SIGNED), reason FROM maintenance \
             WHERE ends > NOW(3) - INTERVAL ? DAY ORDER BY starts, id",
            (recent_days,),
        )
        .map_err(Error::query("listing maintenance windows"))?;
    Ok(decode::good_rows("maintenance", rows, decode))
}

/// Ends a window now; false when there is no such window still open.
pub fn end(conn: &mut Conn, id: u64) -> Result<bool, Error> {
    conn.exec_drop(
        "UPDATE maintenance SET ends = GREATEST(starts, NOW(3)) WHERE id = ? AND ends > NOW(3)",
        (id,),
    )
    .map_err(Error::query("ending a maintenance window"))?;
    Ok(conn.affected_rows() > 0)
}
