//! The outbox tables (`alerts`, `alert_deliveries`): what is owed to whom. Every statement the
//! notifier thread runs on them is here; `owed_to` also serves `skypunch notifiers ID`, and
//! [`prune`] the prune thread.
//!
//! A delivery row moves PENDING → SENT (sent, `sent_at` set) or PENDING → DROPPED (never to
//! be sent, `last_error` says why, `next_attempt` holds when that was decided):
//! - its notifier was deleted: dropped at the next pass;
//! - its notifier is disabled: held, untried, until the notifier is enabled again, or dropped
//!   once the alert is older than the retention period;
//! - its row (or its alert's) does not decode (an id or `target_id` of 0 or below, a value
//!   edited out of its column's range): dropped when it comes due, reported once. An alert
//!   whose own id is not usable is marked expanded without a delivery. An `attempts` set
//!   below zero is repaired to 0; a `snapshot` that is not JSON still renders (see
//!   `message::render`).
//!
//! Times are the database's (`NOW(3)`), so the daemon's clock cannot skew the schedule.

use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::TxOpts;

use crate::base::model::Alert;
use crate::db::decode::{self, BadRow, Fields, Fix};
use crate::db::{self, Conn, Error, Pool};

/// What one notifier is owed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Owed {
    /// Deliveries not yet sent.
    pub pending: u64,
    /// Of those, how many have failed at least once.
    pub failing: u64,
    pub last_error: Option<String>,
}

/// What notifier `id` is owed.
pub fn owed_to(conn: &mut Conn, id: u64) -> Result<Owed, Error> {
    let row: Option<mysql::Row> = conn
        .exec_first(
            "SELECT COUNT(*), CAST(SUM(attempts > 0) AS UNSIGNED) FROM alert_deliveries \
             WHERE notifier_id = ? AND state = 'PENDING'",
            (id,),
        )
        .map_err(Error::query("counting owed alerts"))?;
    let last_error: Option<mysql::Row> = conn
        .exec_first(
            "SELECT last_error FROM alert_deliveries WHERE notifier_id = ? AND state = 'PENDING' \
             AND last_error IS NOT NULL ORDER BY next_attempt DESC LIMIT 1",
            (id,),
        )
        .map_err(Error::query("reading the last delivery error"))?;
    let (pending, failing) = decode::first(DELIVERIES, row, |f| {
        Ok((f.get(0, "COUNT")?, f.opt(1, "attempts")?.unwrap_or(0)))
    })
    .unwrap_or((0, 0));
    Ok(Owed {
        pending,
        failing,
        last_error: decode::first(DELIVERIES, last_error, |f| f.opt(0, "last_error")).flatten(),
    })
}

/// One delivery that is due: the alert and the notifier it goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub notifier_id: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    pub alert: Alert,
}

/// The wait before the next try after `attempts` failed ones (1 or more):
/// `min(initial * 2^(attempts-1), max)`.
pub fn backoff(initial: Duration, max: Duration, attempts: u32) -> Duration {
    let doubling = attempts.saturating_sub(1).min(31);
    initial.saturating_mul(1u32 << doubling).min(max)
}

/// The notifier `n` hears of alert `a`'s target: the target has no rows in
/// `target_notifiers` (everybody hears of it), or one naming `n`.
const ROUTED: &str =
    "(NOT EXISTS (SELECT 1 FROM target_notifiers r WHERE r.target_id = a.target_id) \
    OR EXISTS (SELECT 1 FROM target_notifiers r WHERE r.target_id = a.target_id \
    AND r.notifier_id = n.id))";

/// Alerts expanded per transaction.
const EXPAND_BATCH: usize = 500;

/// Creates a PENDING delivery per enabled notifier the alert's target is routed to (see
/// [`ROUTED`]) for every alert not yet expanded, except during a maintenance window of its
/// target (it waits until the window ends; then only the target's latest alert goes out, and
/// only if it says the target is still down: the rest are marked expanded without a
/// delivery). Marks
/// those alerts expanded, each batch in one transaction (so a crash cannot expand an alert
/// twice or half-way). A new delivery to a notifier that is backing off waits for it rather
/// than hammering a server that is down. Returns the number of alerts expanded.
pub fn expand(conn: &mut Conn) -> Result<usize, Error> {
    let mut total = 0;
    loop {
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .map_err(Error::query("starting to expand alerts"))?;
        let found: Vec<mysql::Row> = tx
            .query(format!(
                "SELECT a.id, ({WINDOWED} AND NOT ({STILL_DOWN}) AND NOT ({CERTIFICATE})) \
                 OR ({RESOLVES_DROPPED}) \
                 FROM alerts a WHERE a.expanded = 0 AND NOT {HELD} \
                 ORDER BY a.id LIMIT {EXPAND_BATCH} FOR UPDATE"
            ))
            .map_err(Error::query("finding new alerts"))?;
        if found.is_empty() {
            tx.commit().map_err(Error::query("expanding alerts"))?;
            return Ok(total);
        }
        let count = found.len();
        let (send, all) = new_alerts(found);
        if !send.is_empty() {
            tx.query_drop(format!(
                "INSERT IGNORE INTO alert_deliveries (alert_id, notifier_id, next_attempt) \
                 SELECT a.id, n.id, GREATEST(NOW(3), COALESCE((SELECT MAX(p.next_attempt) \
                 FROM alert_deliveries p WHERE p.notifier_id = n.id AND p.state = 'PENDING'), NOW(3))) \
                 FROM alerts a JOIN notifiers n ON n.enabled <> 0 WHERE a.id IN ({}) \
                 AND {ROUTED}",
                id_list(&send)
            ))
            .map_err(Error::query("creating alert deliveries"))?;
        }
        tx.query_drop(format!(
            "UPDATE alerts SET expanded = 1 WHERE id IN ({})",
            id_list(&all)
        ))
        .map_err(Error::query("marking alerts expanded"))?;
        tx.commit().map_err(Error::query("expanding alerts"))?;
        total += count;
        if count < EXPAND_BATCH {
            return Ok(total);
        }
    }
}

/// Of the alerts found by [`expand`], those to send (not quiet), and the ids of all to mark
/// expanded as stored: an alert whose id is not usable is reported and marked expanded
/// without a delivery, so that it neither goes out nor holds up the alerts behind it.
fn new_alerts(found: Vec<mysql::Row>) -> (Vec<u64>, Vec<i64>) {
    let mut send = Vec::new();
    let mut all = Vec::new();
    for row in decode::rows("alerts", found, |f| {
        Ok((f.id(0, "id")?, f.flag(1, "quiet")?))
    }) {
        match row {
            Ok((id, quiet)) => {
                if !quiet {
                    send.push(id);
                }
                all.push(id as i64);
            }
            Err(bad) => {
                decode::skip(&bad);
                all.extend(bad.keys.first());
            }
        }
    }
    (send, all)
}

/// Whether alerts wait for a maintenance window to end (all others were just expanded).
pub fn held(conn: &mut Conn) -> Result<bool, Error> {
    let any: Option<mysql::Row> = conn
        .query_first("SELECT 1 FROM alerts WHERE expanded = 0 LIMIT 1")
        .map_err(Error::query("looking for held alerts"))?;
    Ok(any.is_some())
}

/// A maintenance window covering the alert's target now: the alert waits.
const HELD: &str = "EXISTS (SELECT 1 FROM maintenance m WHERE m.starts <= NOW(3) \
    AND m.ends > NOW(3) AND (m.target_id IS NULL OR m.target_id = a.target_id))";

/// The alert was raised during a maintenance window (now over).
const WINDOWED: &str = "EXISTS (SELECT 1 FROM maintenance m WHERE m.starts <= a.created_at \
    AND m.ends > a.created_at AND (m.target_id IS NULL OR m.target_id = a.target_id))";

/// A SUCCESS raised after a window whose FAILURE (or reminder) was raised in the window and
/// dropped with it: nobody was told of the failure, so nobody is told of the recovery.
const RESOLVES_DROPPED: &str = "a.kind = 'SUCCESS' AND EXISTS (SELECT 1 FROM alerts f \
    WHERE f.id = (SELECT MAX(g.id) FROM alerts g WHERE g.target_id = a.target_id \
    AND g.id < a.id AND g.kind IN ('FAILURE', 'REMINDER')) \
    AND NOT EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = f.id) \
    AND EXISTS (SELECT 1 FROM maintenance m WHERE m.starts <= f.created_at \
    AND m.ends > f.created_at AND (m.target_id IS NULL OR m.target_id = f.target_id)))";

/// The alert is the target's latest and says it is down: the one alert a window releases.
const STILL_DOWN: &str = "a.kind IN ('FAILURE', 'REMINDER') \
    AND a.id = (SELECT MAX(b.id) FROM alerts b WHERE b.target_id = a.target_id \
    AND b.kind <> 'CERTIFICATE')";

/// A certificate nearing expiry: still true after the window, and alerted once per
/// certificate, so a window delays it rather than dropping it.
const CERTIFICATE: &str = "a.kind = 'CERTIFICATE'";

/// Drops the pending deliveries of notifiers that were deleted; returns how many.
pub fn drop_orphans(conn: &mut Conn) -> Result<u64, Error> {
    conn.query_drop(
        "UPDATE alert_deliveries d LEFT JOIN notifiers n ON n.id = d.notifier_id \
         SET d.state = 'DROPPED', d.last_error = CONCAT('notifier ', d.notifier_id, ' was deleted'), \
         d.next_attempt = NOW(3) WHERE d.state = 'PENDING' AND n.id IS NULL",
    )
    .map_err(Error::query("dropping deliveries of deleted notifiers"))?;
    Ok(conn.affected_rows())
}

/// Up to `limit` pending deliveries to enabled notifiers, oldest alert first: those whose
/// `next_attempt` has come, or all of them when `ignore_backoff` (the last pass at shutdown);
/// never one that another node has claimed and may be sending now.
pub fn due(
    conn: &mut Conn,
    node: &str,
    limit: usize,
    ignore_backoff: bool,
) -> Result<Vec<Due>, Error> {
    let when = if ignore_backoff {
        ""
    } else {
        "AND d.next_attempt <= NOW(3)"
    };
    let rows: Vec<mysql::Row> = conn
        .exec(
            format!(
                "SELECT d.alert_id, d.notifier_id, d.attempts, a.target_id, a.kind, a.snapshot, \
                 a.trace FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id \
                 JOIN notifiers n ON n.id = d.notifier_id AND n.enabled <> 0 \
                 WHERE d.state = 'PENDING' {when} AND {UNCLAIMED} \
                 ORDER BY d.alert_id, d.notifier_id LIMIT {limit}"
            ),
            (node,),
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

const DELIVERIES: &str = "alert_deliveries";

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
fn drop_undecodable(conn: &mut Conn, bad: &BadRow) -> Result<(), Error> {
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
const UNCLAIMED: &str =
    "(d.claimed_by IS NULL OR d.claimed_by = ? OR d.claim_until IS NULL OR d.claim_until < NOW(3))";

/// Claims a pending delivery for this node for `lease` before it is sent: true when this node
/// may send it, false when another node holds a live claim or it is no longer pending. A
/// claim that outlived its lease (its node died) is taken over.
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
             d.claim_until = NOW(3) + INTERVAL ? MICROSECOND \
             WHERE d.alert_id = ? AND d.notifier_id = ? AND d.state = 'PENDING' AND {UNCLAIMED}"
        ),
        (node, micros, alert_id, notifier_id, node),
    )
    .map_err(Error::query("claiming a delivery"))?;
    Ok(conn.affected_rows() > 0)
}

/// Records a sent delivery and counts it for its notifier, in one transaction. False when the
/// row was no longer pending (already recorded).
pub fn mark_sent(conn: &mut Conn, alert_id: u64, notifier_id: u64) -> Result<bool, Error> {
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .map_err(Error::query("starting to record a sent alert"))?;
    tx.exec_drop(
        "UPDATE alert_deliveries SET state = 'SENT', sent_at = NOW(3), last_error = NULL, \
         claimed_by = NULL, claim_until = NULL \
         WHERE alert_id = ? AND notifier_id = ? AND state = 'PENDING'",
        (alert_id, notifier_id),
    )
    .map_err(Error::query("recording a sent alert"))?;
    let changed = tx.affected_rows() > 0;
    if changed {
        tx.exec_drop(
            format!(
                "UPDATE notifiers SET {} WHERE id = ?",
                plus_one("pass_count", BIGINT)
            ),
            (notifier_id,),
        )
        .map_err(Error::query("counting a sent alert"))?;
    }
    tx.commit()
        .map_err(Error::query("recording a sent alert"))?;
    Ok(changed)
}

/// Records a failed attempt: attempts+1, the reason, the next try after `wait`, the notifier's
/// fail_count+1; and holds the notifier's other pending deliveries until then too, so one
/// server that is down costs one timeout per retry, not one per alert.
pub fn mark_failed(
    conn: &mut Conn,
    alert_id: u64,
    notifier_id: u64,
    reason: &str,
    wait: Duration,
) -> Result<(), Error> {
    let reason = crate::base::text::clip(reason, 500);
    let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .map_err(Error::query("starting to record a failed alert"))?;
    tx.exec_drop(
        format!(
            "UPDATE alert_deliveries SET {}, last_error = ?, next_attempt = NOW(3) + INTERVAL ? MICROSECOND, claimed_by = NULL, claim_until = NULL \
         WHERE alert_id = ? AND notifier_id = ? AND state = 'PENDING'",
            plus_one("attempts", INT)
        ),
        (&reason, micros, alert_id, notifier_id),
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
            plus_one("fail_count", BIGINT)
        ),
        (notifier_id,),
    )
    .map_err(Error::query("counting a failed alert"))?;
    tx.commit()
        .map_err(Error::query("recording a failed alert"))
}

/// How long until the next pending delivery to an enabled notifier is due: `None` when
/// nothing is pending, zero when something is due now. A delivery another node claimed is
/// due, for this node, when the claim runs out.
pub fn next_due(conn: &mut Conn, node: &str) -> Result<Option<Duration>, Error> {
    let row: Option<mysql::Row> = conn
        .exec_first(
            "SELECT TIMESTAMPDIFF(MICROSECOND, NOW(3), MIN(IF(d.claimed_by IS NOT NULL \
             AND d.claimed_by <> ? AND d.claim_until > d.next_attempt, d.claim_until, \
             d.next_attempt))) FROM alert_deliveries d \
             JOIN notifiers n ON n.id = d.notifier_id AND n.enabled <> 0 WHERE d.state = 'PENDING'",
            (node,),
        )
        .map_err(Error::query("finding the next due delivery"))?;
    let micros: Option<i64> =
        decode::first(DELIVERIES, row, |f| f.opt(0, "next_attempt")).flatten();
    Ok(micros.map(|m| Duration::from_micros(m.max(0) as u64)))
}

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
    let mut pruned = Pruned::default();
    pruned.dropped = db::with_conn(pool, |conn| {
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
    })?;
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
        if found < EXPAND_BATCH || !keep_going() {
            return Ok(pruned);
        }
    }
}

/// Deletes up to [`EXPAND_BATCH`] alerts older than `secs` that owe nothing, with their
/// delivery rows, in one transaction: how many were found, and the deliveries and alerts
/// deleted.
fn prune_alerts(conn: &mut Conn, secs: u64) -> Result<(usize, u64, u64), Error> {
    let rows: Vec<mysql::Row> = conn
        .exec(
            format!(
                "SELECT a.id FROM alerts a WHERE a.expanded = 1 \
                 AND a.created_at < NOW(3) - INTERVAL ? SECOND AND NOT EXISTS \
                 (SELECT 1 FROM alert_deliveries d WHERE d.alert_id = a.id AND d.state = 'PENDING') \
                 ORDER BY a.id LIMIT {EXPAND_BATCH}"
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

/// Ids for an `IN (...)` list; they are numbers, so nothing can be injected.
fn id_list<T: ToString>(ids: &[T]) -> String {
    ids.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

/// Largest values of the counters' column types.
const BIGINT: i64 = i64::MAX;
const INT: i64 = i32::MAX as i64;

/// `column = column + 1`, staying at `max` rather than failing: a counter a person set to its
/// type's largest value would otherwise make every delivery's bookkeeping fail, and the
/// notifier send the same alert again and again.
fn plus_one(column: &str, max: i64) -> String {
    format!("{column} = IF({column} < {max}, {column} + 1, {column})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let s = Duration::from_secs;
        let b = |n| backoff(s(10), s(600), n);
        assert_eq!([b(1), b(2), b(3), b(4)], [s(10), s(20), s(40), s(80)]);
        assert_eq!(b(7), s(600));
        assert_eq!(b(5000), s(600));
        assert_eq!(b(0), s(10));
    }

    #[test]
    fn id_lists_are_plain_numbers() {
        assert_eq!(id_list(&[3, 10, 7]), "3,10,7");
    }
}
