//! What one notifier is owed, for the notifier thread's grouping ([`crate::notifier::group`]):
//! the summary a plan is made from, and a grouped message's deliveries claimed (and the
//! claim renewed) as one. Every statement is a lookup on the notifier's index
//! (`deliveries_notifier`, `deliveries_group`), so its cost does not grow with the outbox.
//! Times are the database's.

use std::time::Duration;

use mysql::prelude::Queryable;

use super::deliveries::UNCLAIMED;
use super::{id_list, DELIVERIES};
use crate::db::decode;
use crate::db::{Conn, Error};
use crate::notifier::group::{First, Owed};

/// The database's clock (ms since the epoch), and what notifier `notifier` is owed: its
/// first pending delivery that no other node is sending, and whether it was sent two or
/// more alerts in the last `interval` (a storm).
pub fn owed(
    conn: &mut Conn,
    notifier: u64,
    node: &str,
    interval: Duration,
) -> Result<(i64, Owed), Error> {
    let micros = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
    let recent: Option<mysql::Row> = conn
        .exec_first(
            "SELECT CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED), \
             (SELECT CAST(UNIX_TIMESTAMP(MAX(s.next_attempt)) * 1000 AS SIGNED) \
              FROM alert_deliveries s FORCE INDEX (deliveries_notifier) \
              WHERE s.notifier_id = ? AND s.state = 'SENT'), \
             (SELECT COUNT(*) FROM (SELECT 1 FROM alert_deliveries r \
              FORCE INDEX (deliveries_notifier) WHERE r.notifier_id = ? \
              AND r.state = 'SENT' AND r.next_attempt > NOW(3) - INTERVAL ? MICROSECOND \
              LIMIT 2) x)",
            (notifier, notifier, micros),
        )
        .map_err(Error::query("reading what a notifier was sent lately"))?;
    let (now, last_sent_ms, sent) = decode::first(DELIVERIES, recent, |f| {
        Ok((
            f.get::<i64>(0, "NOW")?,
            f.opt::<i64>(1, "next_attempt")?,
            f.get::<i64>(2, "COUNT")?,
        ))
    })
    .ok_or_else(|| Error::Schema("the database gave no time".into()))?;
    let first: Option<mysql::Row> = conn
        .exec_first(
            format!(
                "SELECT CAST(UNIX_TIMESTAMP(a.created_at) * 1000 AS SIGNED), \
                 CAST(UNIX_TIMESTAMP(d.next_attempt) * 1000 AS SIGNED) \
                 FROM alert_deliveries d FORCE INDEX (deliveries_notifier) \
                 JOIN alerts a ON a.id = d.alert_id \
                 WHERE d.notifier_id = ? AND d.state = 'PENDING' AND {UNCLAIMED} \
                 ORDER BY d.next_attempt, d.alert_id LIMIT 1"
            ),
            (notifier, node),
        )
        .map_err(Error::query("reading what a notifier is owed"))?;
    let first = decode::first(DELIVERIES, first, |f| {
        Ok(First {
            raised_ms: f.get(0, "created_at")?,
            due_ms: f.get(1, "next_attempt")?,
        })
    });
    let owed = Owed {
        first,
        last_sent_ms,
        storm: sent >= 2,
    };
    Ok((now, owed))
}

/// Claims the pending deliveries of `alert_ids` to `notifier` for this node for `lease`, as
/// one grouped message whose id is `group` (its smallest alert id): the ids this node may
/// send (those no other node holds a live claim on and that are still pending).
pub fn claim_group(
    conn: &mut Conn,
    notifier: u64,
    alert_ids: &[u64],
    group: u64,
    node: &str,
    lease: Duration,
) -> Result<Vec<u64>, Error> {
    if alert_ids.is_empty() {
        return Ok(Vec::new());
    }
    let micros = u64::try_from(lease.as_micros()).unwrap_or(u64::MAX);
    let list = id_list(alert_ids);
    conn.exec_drop(
        format!(
            "UPDATE alert_deliveries d SET d.claimed_by = ?, \
             d.claim_until = NOW(3) + INTERVAL ? MICROSECOND, d.group_id = ? \
             WHERE d.notifier_id = ? AND d.alert_id IN ({list}) AND d.state = 'PENDING' \
             AND {UNCLAIMED}"
        ),
        (node, micros, group, notifier, node),
    )
    .map_err(Error::query("claiming a group of deliveries"))?;
    if conn.affected_rows() == alert_ids.len() as u64 {
        return Ok(alert_ids.to_vec());
    }
    // Some were taken by another node, or sent, since they were read.
    let rows: Vec<mysql::Row> = conn
        .exec(
            format!(
                "SELECT alert_id FROM alert_deliveries WHERE notifier_id = ? \
                 AND alert_id IN ({list}) AND state = 'PENDING' AND claimed_by = ? \
                 AND group_id = ?"
            ),
            (notifier, node, group),
        )
        .map_err(Error::query("reading a claimed group"))?;
    Ok(decode::good_rows(DELIVERIES, rows, |f| f.id(0, "alert_id")))
}

/// Extends this node's claim on grouped message `group` to `notifier` by `lease` from now:
/// before each further POST of a message that takes several (PagerDuty's).
pub fn renew(
    conn: &mut Conn,
    notifier: u64,
    group: u64,
    node: &str,
    lease: Duration,
) -> Result<(), Error> {
    let micros = u64::try_from(lease.as_micros()).unwrap_or(u64::MAX);
    conn.exec_drop(
        "UPDATE alert_deliveries SET claim_until = NOW(3) + INTERVAL ? MICROSECOND \
         WHERE notifier_id = ? AND group_id = ? AND claimed_by = ? AND state = 'PENDING'",
        (micros, notifier, group, node),
    )
    .map_err(Error::query("renewing the claim on a group of deliveries"))
}
