//! The due deliveries, for the notifier thread: read (and repaired or dropped when a row does
//! not decode), claimed for this node, then marked sent or failed with the notifier's counts.
//! Times are the database's (`NOW(3)`).

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::TxOpts;

use super::{id_list, Due, DELIVERIES};
use crate::base::model::Alert;
use crate::db::decode::{self, BadRow, Fields, Fix};
use crate::db::{Conn, Error};

/// How much of an alert [`due`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Texts {
    /// The snapshot and trace as stored: for a message of its own.
    Whole,
    /// The snapshot up to 16 KiB and the trace's last 2,000 characters: for a line of a
    /// grouped message, so that a group of [`crate::notifier::group::MAX_GROUP`] alerts
    /// holds at most some 20 MB however long their traces.
    Brief,
}

/// Up to `limit` pending deliveries to notifier `notifier`, in the order they came due (the
/// oldest alert first): those whose `next_attempt` has come, or all of them when
/// `ignore_backoff` (the last pass at shutdown); never one that another node has claimed and
/// may be sending now. Reads the notifier's index in order, so the work is bounded by
/// `limit` (and the claimed rows it steps over), not by the size of the outbox.
pub fn due(
    conn: &mut Conn,
    notifier: u64,
    node: &str,
    limit: usize,
    ignore_backoff: bool,
    texts: Texts,
) -> Result<Vec<Due>, Error> {
    let when = if ignore_backoff {
        ""
    } else {
        "AND d.next_attempt <= NOW(3)"
    };
    let (snapshot, trace) = match texts {
        Texts::Whole => ("a.snapshot", "a.trace"),
        Texts::Brief => ("LEFT(a.snapshot, 16384)", "RIGHT(a.trace, 2000)"),
    };
    let rows: Vec<mysql::Row> = conn
        .exec(
            format!(
                "SELECT d.alert_id, d.notifier_id, d.attempts, a.target_id, a.kind, {snapshot}, \
                 {trace} FROM alert_deliveries d FORCE INDEX (deliveries_notifier) \
                 JOIN alerts a ON a.id = d.alert_id \
                 WHERE d.notifier_id = ? AND d.state = 'PENDING' {when} AND {UNCLAIMED} \
                 ORDER BY d.next_attempt, d.alert_id LIMIT {limit}"
            ),
            (notifier, node),
        )
        .map_err(Error::query("reading due deliveries"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in decode::rows(DELIVERIES, rows, due_row) {
        match row {
            Ok((d, fixes)) => {
                repair(conn, &d, &fixes)?;
                out.push(d);
            }
            Err(bad) => {
                decode::skip(&bad);
                drop_undecodable(conn, &bad)?;
            }
        }
    }
    Ok(out)
}

/// `d` with its alert's snapshot and trace as stored (read [`Texts::Brief`] for a group that
/// turned out to be one alert).
pub fn whole(conn: &mut Conn, d: &Due) -> Result<Due, Error> {
    let row: Option<mysql::Row> = conn
        .exec_first(
            "SELECT snapshot, trace FROM alerts WHERE id = ?",
            (d.alert.id,),
        )
        .map_err(Error::query("reading an alert"))?;
    let texts = decode::first("alerts", row, |f| {
        Ok((
            f.get::<String>(0, "snapshot")?,
            f.get::<String>(1, "trace")?,
        ))
    });
    let mut whole = d.clone();
    if let Some((snapshot, trace)) = texts {
        whole.alert.snapshot = snapshot;
        whole.alert.trace = trace;
    }
    Ok(whole)
}

/// One row of [`due`], and the repair its `attempts` needs when a person set it below zero.
fn due_row(f: &mut Fields) -> Result<(Due, Vec<Fix>), BadRow> {
    let id = f.id(0, "alert_id")?;
    let notifier_id = f.id(1, "notifier_id")?;
    let attempts: i64 = f.get(2, "attempts")?;
    let fixes: Vec<Fix> = decode::counter_fix("attempts", attempts)
        .into_iter()
        .collect();
    let attempts = decode::repaired(&fixes, "attempts", attempts);
    let alert = Alert {
        id,
        target_id: f.reference(3, "alerts.target_id")?,
        kind: f.get(4, "alerts.kind")?,
        snapshot: f.get(5, "alerts.snapshot")?,
        trace: f.get(6, "alerts.trace")?,
    };
    let due = Due {
        notifier_id,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        alert,
    };
    Ok((due, fixes))
}

/// Writes (and logs) the repair of a due delivery's `attempts` set below zero.
fn repair(conn: &mut Conn, d: &Due, fixes: &[Fix]) -> Result<(), Error> {
    let key = "alert_id = ? AND notifier_id = ?";
    let params = vec![d.alert.id.into(), d.notifier_id.into()];
    let shown = format!("alert_id {}, notifier_id {}", d.alert.id, d.notifier_id);
    crate::db::repair_row(conn, (DELIVERIES, &shown), (key, params), fixes, "")?;
    Ok(())
}

/// Drops a due delivery whose row does not decode, saying why in its `last_error`: it can
/// never be sent, and is no longer read (and reported) every pass.
pub(super) fn drop_undecodable(conn: &mut Conn, bad: &BadRow) -> Result<(), Error> {
    let [alert_id, notifier_id] = bad.keys[..] else {
        return Ok(()); // not even its key reads: nothing can name it
    };
    let reason = format!("the row does not decode: {}", bad.problem());
    conn.exec_drop(
        "UPDATE alert_deliveries SET state = 'DROPPED', last_error = ?, next_attempt = NOW(3), \
         claimed_by = NULL, claim_until = NULL \
         WHERE alert_id = ? AND notifier_id = ? AND state = 'PENDING'",
        (crate::base::text::clip(&reason, 500), alert_id, notifier_id),
    )
    .map_err(Error::query("dropping a delivery that does not decode"))
}

/// A delivery no other node holds a live claim on (`?` is this node's name).
pub(super) const UNCLAIMED: &str =
    "(d.claimed_by IS NULL OR d.claimed_by = ? OR d.claim_until IS NULL OR d.claim_until < NOW(3))";

/// Claims a pending delivery for this node for `lease` before it is sent as a message of its
/// own (so in no group): true when this node may send it, false when another node holds a
/// live claim or it is no longer pending. A claim that outlived its lease (its node died)
/// is taken over.
pub fn claim(
    conn: &mut Conn,
    alert_id: u64,
    notifier_id: u64,
    node: &str,
    lease: Duration,
) -> Result<bool, Error> {
    let micros = u64::try_from(lease.as_micros()).unwrap_or(u64::MAX);
    conn.exec_drop(
        format!(
            "UPDATE alert_deliveries d SET d.claimed_by = ?, \
             d.claim_until = NOW(3) + INTERVAL ? MICROSECOND, d.group_id = NULL \
             WHERE d.alert_id = ? AND d.notifier_id = ? AND d.state = 'PENDING' AND {UNCLAIMED}"
        ),
        (node, micros, alert_id, notifier_id, node),
    )
    .map_err(Error::query("claiming a delivery"))?;
    Ok(conn.affected_rows() > 0)
}

/// Extends this node's claim on the delivery of alert `alert_id` to `notifier_id` by `lease`
/// from now, while a slow send of it runs; false when this node no longer holds it.
pub fn renew_one(
    conn: &mut Conn,
    alert_id: u64,
    notifier_id: u64,
    node: &str,
    lease: Duration,
) -> Result<bool, Error> {
    let micros = u64::try_from(lease.as_micros()).unwrap_or(u64::MAX);
    conn.exec_drop(
        "UPDATE alert_deliveries SET claim_until = NOW(3) + INTERVAL ? MICROSECOND \
         WHERE alert_id = ? AND notifier_id = ? AND claimed_by = ? AND state = 'PENDING'",
        (micros, alert_id, notifier_id, node),
    )
    .map_err(Error::query("renewing the claim on a delivery"))?;
    Ok(conn.affected_rows() > 0)
}

/// Records the deliveries of one message (one alert, or a group) to `notifier_id` as sent
/// and counts them for it, in one transaction; how many were still pending (a row already
/// recorded is left as it is). `next_attempt` becomes the time they were sent, which the
/// grouping reads (by the notifier's index) to tell a storm.
pub fn mark_sent(conn: &mut Conn, notifier_id: u64, alert_ids: &[u64]) -> Result<u64, Error> {
    if alert_ids.is_empty() {
        return Ok(0);
    }
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .map_err(Error::query("starting to record a sent alert"))?;
    tx.exec_drop(
        format!(
            "UPDATE alert_deliveries SET state = 'SENT', sent_at = NOW(3), next_attempt = NOW(3), \
             last_error = NULL, claimed_by = NULL, claim_until = NULL \
             WHERE notifier_id = ? AND alert_id IN ({}) AND state = 'PENDING'",
            id_list(alert_ids)
        ),
        (notifier_id,),
    )
    .map_err(Error::query("recording a sent alert"))?;
    let changed = tx.affected_rows();
    if changed > 0 {
        tx.exec_drop(
            format!(
                "UPDATE notifiers SET {} WHERE id = ?",
                plus("pass_count", changed, BIGINT)
            ),
            (notifier_id,),
        )
        .map_err(Error::query("counting a sent alert"))?;
    }
    tx.commit()
        .map_err(Error::query("recording a sent alert"))?;
    Ok(changed)
}

/// Records a failed attempt at one message (one alert, or a group) to `notifier_id`: each
/// of its deliveries gets attempts+1, the reason, the next try after `wait` and no group;
/// the notifier fail_count+1; and its other pending deliveries are held until then too, so
/// one server that is down costs one timeout per retry, not one per alert.
pub fn mark_failed(
    conn: &mut Conn,
    notifier_id: u64,
    alert_ids: &[u64],
    reason: &str,
    wait: Duration,
) -> Result<(), Error> {
    if alert_ids.is_empty() {
        return Ok(());
    }
    let reason = crate::base::text::clip(reason, 500);
    let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .map_err(Error::query("starting to record a failed alert"))?;
    tx.exec_drop(
        format!(
            "UPDATE alert_deliveries SET {}, last_error = ?, \
             next_attempt = NOW(3) + INTERVAL ? MICROSECOND, claimed_by = NULL, \
             claim_until = NULL, group_id = NULL \
             WHERE notifier_id = ? AND alert_id IN ({}) AND state = 'PENDING'",
            plus("attempts", 1, INT),
            id_list(alert_ids)
        ),
        (&reason, micros, notifier_id),
    )
    .map_err(Error::query("recording a failed alert"))?;
    tx.exec_drop(
        "UPDATE alert_deliveries SET next_attempt = GREATEST(next_attempt, NOW(3) + INTERVAL ? MICROSECOND) \
         WHERE notifier_id = ? AND state = 'PENDING'",
        (micros, notifier_id),
    )
    .map_err(Error::query("holding a failing notifier's alerts"))?;
    tx.exec_drop(
        format!(
            "UPDATE notifiers SET {} WHERE id = ?",
            plus("fail_count", 1, BIGINT)
        ),
        (notifier_id,),
    )
    .map_err(Error::query("counting a failed alert"))?;
    tx.commit()
        .map_err(Error::query("recording a failed alert"))
}

/// Largest values of the counters' column types.
const BIGINT: i64 = i64::MAX;
const INT: i64 = i32::MAX as i64;

/// `column = column + n`, staying at `max` rather than failing: a counter a person set to
/// its type's largest value would otherwise make every delivery's bookkeeping fail, and the
/// notifier send the same alert again and again.
fn plus(column: &str, n: u64, max: i64) -> String {
    let n = i64::try_from(n).unwrap_or(max);
    format!("{column} = IF({column} <= {max} - {n}, {column} + {n}, {max})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_stops_at_its_largest_value() {
        assert_eq!(
            plus("pass_count", 3, BIGINT),
            "pass_count = IF(pass_count <= 9223372036854775807 - 3, pass_count + 3, \
             9223372036854775807)"
        );
    }
}
