//! Alerts expanded into deliveries, for the notifier thread: one per enabled notifier the
//! alert's target is routed to, unless a maintenance window holds or drops it; and the
//! deliveries of deleted notifiers dropped.

use mysql::prelude::Queryable;
use mysql::{IsolationLevel, TxOpts};

use super::id_list;
use crate::db::decode;
use crate::db::{Conn, Error};

/// The notifier `n` hears of alert `a`'s target: the target has no rows in
/// `target_notifiers` (everybody hears of it), or one naming `n`.
const ROUTED: &str =
    "(NOT EXISTS (SELECT 1 FROM target_notifiers r WHERE r.target_id = a.target_id) \
    OR EXISTS (SELECT 1 FROM target_notifiers r WHERE r.target_id = a.target_id \
    AND r.notifier_id = n.id))";

/// Alerts expanded per transaction.
const EXPAND_BATCH: usize = 500;

/// Creates a PENDING delivery per enabled notifier the alert's target is routed to (see
/// [`ROUTED`]) for every alert not yet expanded (each alert's rules are lookups on the
/// `alerts_target` index and the small `maintenance` table, so a batch costs the same
/// whatever the size of the outbox), except during a maintenance window of its
/// target (it waits until the window ends; then only the target's latest alert goes out, and
/// only if it says the target is still down: the rest are marked expanded without a
/// delivery). Marks
/// those alerts expanded, each batch in one transaction (so a crash cannot expand an alert
/// twice or half-way). A new delivery to a notifier that is backing off waits for it rather
/// than hammering a server that is down. Returns the number of alerts expanded.
pub fn expand(conn: &mut Conn) -> Result<usize, Error> {
    let mut total = 0;
    // READ COMMITTED: the batch locks its alerts but no gap after them, so the writer's
    // inserts of new alerts never wait for it (under REPEATABLE READ the two deadlocked in
    // storms: the writer then retried its whole batch).
    let opts = TxOpts::default().set_isolation_level(Some(IsolationLevel::ReadCommitted));
    loop {
        let mut tx = conn
            .start_transaction(opts)
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
                 FROM alert_deliveries p FORCE INDEX (deliveries_notifier) WHERE p.notifier_id = n.id \
                 AND p.state = 'PENDING'), NOW(3))) \
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
