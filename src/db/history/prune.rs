//! Pruning of the history tables, for the prune thread: rollup rows and ended incidents older
//! than `[history]` keeps them, deleted a bounded chunk at a time.

use mysql::prelude::Queryable;

use crate::config::HistoryConfig;
use crate::db::{self, Error, Pool};

/// Rows one pruning statement deletes, so that no statement holds locks for long.
const PRUNE_CHUNK: u64 = 5000;

/// What a prune removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub hours: u64,
    pub days: u64,
    pub incidents: u64,
}

/// Deletes what is older than the retention, a chunk at a time, each chunk on a connection
/// checked out for it alone (so a long prune never keeps one from the other threads);
/// `keep_going` is asked between chunks (a stop request ends the prune; the next one goes on).
pub fn prune(
    pool: &Pool,
    keep: &HistoryConfig,
    keep_going: &dyn Fn() -> bool,
) -> Result<Pruned, Error> {
    let hours = prune_table(
        pool,
        "DELETE FROM target_hours WHERE hour < UTC_TIMESTAMP() - INTERVAL ? DAY LIMIT ?",
        keep.hourly_days,
        keep_going,
    )?;
    let days = prune_table(
        pool,
        "DELETE FROM target_days WHERE day < UTC_DATE() - INTERVAL ? DAY LIMIT ?",
        keep.daily_days,
        keep_going,
    )?;
    let incidents = match keep.incident_days {
        Some(d) => prune_table(
            pool,
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
    pool: &Pool,
    sql: &str,
    days: u32,
    keep_going: &dyn Fn() -> bool,
) -> Result<u64, Error> {
    let mut total = 0;
    loop {
        let n = db::with_conn(pool, |conn| {
            conn.exec_drop(sql, (days, PRUNE_CHUNK))
                .map_err(Error::query("pruning history"))?;
            Ok(conn.affected_rows())
        })?;
        total += n;
        if n < PRUNE_CHUNK || !keep_going() {
            return Ok(total);
        }
    }
}
