//! Retention of the outbox, for the prune thread: alerts sent to everybody and their
//! deliveries, once older than `RetentionDays`, in bounded statements.

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::TxOpts;

use super::id_list;
use crate::db::decode;
use crate::db::{self, Conn, Error, Pool};

/// Alerts deleted per transaction.
const ALERT_BATCH: usize = 500;

/// What a prune removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Pending deliveries to notifiers disabled for longer than the retention period.
    pub dropped: u64,
    pub deliveries: u64,
    pub alerts: u64,
}

/// Rows one statement of [`prune`] deletes, so that no statement holds locks for long.
const PRUNE_CHUNK: u64 = 5000;

/// Removes what is older than `retention`: SENT and DROPPED deliveries, and alerts that are
/// expanded and owe nothing any more (with their delivery rows). First drops what a notifier
/// that is still disabled was owed for that long. For the prune thread: each statement (or
/// transaction) runs on a connection checked out for it alone, and `keep_going` is asked
/// between them (a stop request ends the prune; the next one goes on).
pub fn prune(
    pool: &Pool,
    retention: Duration,
    keep_going: &dyn Fn() -> bool,
) -> Result<Pruned, Error> {
    let secs = retention.as_secs();
    let mut pruned = Pruned {
        dropped: db::with_conn(pool, |conn| drop_disabled(conn, secs))?,
        ..Pruned::default()
    };
    loop {
        let n = db::with_conn(pool, |conn| {
            conn.exec_drop(
                "DELETE FROM alert_deliveries WHERE state IN ('SENT', 'DROPPED') \
                 AND COALESCE(sent_at, next_attempt) < NOW(3) - INTERVAL ? SECOND LIMIT ?",
                (secs, PRUNE_CHUNK),
            )
            .map_err(Error::query("pruning old deliveries"))?;
            Ok(conn.affected_rows())
        })?;
        pruned.deliveries += n;
        if !keep_going() {
            return Ok(pruned);
        }
        if n < PRUNE_CHUNK {
            break;
        }
    }
    loop {
        let (found, deliveries, alerts) = db::with_conn(pool, |conn| prune_alerts(conn, secs))?;
        pruned.deliveries += deliveries;
        pruned.alerts += alerts;
        if found < ALERT_BATCH || !keep_going() {
            return Ok(pruned);
        }
    }
}

/// Drops the pending deliveries of alerts older than `secs` owed to notifiers still
/// disabled; how many.
fn drop_disabled(conn: &mut Conn, secs: u64) -> Result<u64, Error> {
    conn.exec_drop(
        "UPDATE alert_deliveries d JOIN alerts a ON a.id = d.alert_id \
         JOIN notifiers n ON n.id = d.notifier_id \
         SET d.state = 'DROPPED', d.next_attempt = NOW(3), \
         d.last_error = CONCAT('notifier ', d.notifier_id, ' stayed disabled past the retention period') \
         WHERE d.state = 'PENDING' AND n.enabled = 0 AND a.created_at < NOW(3) - INTERVAL ? SECOND",
        (secs,),
    )
    .map_err(Error::query("dropping alerts owed to disabled notifiers"))?;
    Ok(conn.affected_rows())
}

/// Deletes up to [`ALERT_BATCH`] alerts older than `secs` that owe nothing, with their
/// delivery rows, in one transaction: how many were found, and the deliveries and alerts
/// deleted.
fn prune_alerts(conn: &mut Conn, secs: u64) -> Result<(usize, u64, u64), Error> {
    let rows: Vec<mysql::Row> = conn
        .exec(
            format!(
                "SELECT a.id FROM alerts a WHERE a.expanded = 1 \
                 AND a.created_at < NOW(3) - INTERVAL ? SECOND AND NOT EXISTS \
                 (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = a.id AND d.state = 'PENDING') \
                 ORDER BY a.id LIMIT {ALERT_BATCH}"
            ),
            (secs,),
        )
        .map_err(Error::query("finding old alerts"))?;
    // As stored: an alert with an id no delivery could name goes too.
    let ids: Vec<i64> = decode::good_rows("alerts", rows, |f| f.get(0, "id"));
    if ids.is_empty() {
        return Ok((0, 0, 0));
    }
    let list = id_list(&ids);
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .map_err(Error::query("starting to prune alerts"))?;
    tx.query_drop(format!(
        "DELETE FROM alert_deliveries WHERE alert_id IN ({list})"
    ))
    .map_err(Error::query("pruning old deliveries"))?;
    let deliveries = tx.affected_rows();
    tx.query_drop(format!("DELETE FROM alerts WHERE id IN ({list})"))
        .map_err(Error::query("pruning old alerts"))?;
    let alerts = tx.affected_rows();
    tx.commit().map_err(Error::query("pruning old alerts"))?;
    Ok((ids.len(), deliveries, alerts))
}
