//! Pruning of the history tables: rollup rows and ended incidents older than `[history]`
//! keeps them, deleted a bounded chunk at a time so that no statement holds locks for long.

use mysql::prelude::Queryable;

use crate::config::HistoryConfig;
use crate::db::{Conn, Error};

/// Rows one pruning statement deletes, so that no statement holds locks for long.
const PRUNE_CHUNK: u64 = 5000;

/// What a prune removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub hours: u64,
    pub days: u64,
    pub incidents: u64,
}

/// Deletes what is older than the retention, a chunk at a time; `keep_going` is asked
/// between chunks (a stop request ends the prune; the next one goes on).
pub fn prune(
    conn: &mut Conn,
    keep: &HistoryConfig,
    keep_going: &dyn Fn() -> bool,
) -> Result<Pruned, Error> {
    let hours = prune_table(
        conn,
        "DELETE FROM target_hours WHERE hour < UTC_TIMESTAMP() - INTERVAL ? DAY LIMIT ?",
        keep.hourly_days,
        keep_going,
    )?;
    let days = prune_table(
        conn,
        "DELETE FROM target_days WHERE day < UTC_DATE() - INTERVAL ? DAY LIMIT ?",
        keep.daily_days,
        keep_going,
    )?;
    let incidents = match keep.incident_days {
        Some(d) => prune_table(
            conn,
            "DELETE FROM incidents WHERE ended IS NOT NULL \
             AND ended < UTC_TIMESTAMP() - INTERVAL ? DAY LIMIT ?",
            d,
            keep_going,
        )?,
        None => 0,
    };
    Ok(Pruned {
        hours,
        days,
        incidents,
    })
}

fn prune_table(
    conn: &mut Conn,
    sql: &str,
    days: u32,
    keep_going: &dyn Fn() -> bool,
) -> Result<u64, Error> {
    let mut total = 0;
    loop {
        conn.exec_drop(sql, (days, PRUNE_CHUNK))
            .map_err(Error::query("pruning history"))?;
        let n = conn.affected_rows();
        total += n;
        if n < PRUNE_CHUNK || !keep_going() {
            return Ok(total);
        }
    }
}
