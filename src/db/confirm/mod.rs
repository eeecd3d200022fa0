//! Confirmation of failures from a second node (`[cluster] ConfirmFailures`), in the table
//! `confirmations`. This file is the part the writer's store thread runs in the result
//! transaction ([`screen`]): a FAILURE due while another node is live becomes a request
//! instead of an alert; a recovery or reminder of a target whose FAILURE is being confirmed,
//! or was not confirmed, pages nobody. [`poll`] is what the confirm thread runs (claiming
//! the others' requests, answering them, finding its own answered or expired ones) and
//! [`resolve`] the one transaction that settles a request: the alert goes to the outbox with
//! both checks' traces, or the incident is marked `unconfirmed`.
//!
//! A request is durable: a node that dies leaves it in the table, answered or not, and the
//! node that asked (or, past its deadline plus `DeadAfter`, any node) resolves it exactly
//! once, under the row's lock.

pub mod poll;
mod resolve;

pub use resolve::{resolve, Fate, Resolved};

use std::collections::HashMap;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql::Value;

use super::decode;
use super::Error;
use crate::base::model::{AlertKind, NewAlert, TargetId};
use crate::base::text;

/// Added to a target's timeout to bound the wait for a second node's answer: the other
/// nodes look for requests every [`poll::EVERY`], and the answer takes a few statements.
pub const MARGIN: Duration = Duration::from_secs(5);

/// Targets looked up per statement.
const CHUNK: usize = 1000;

/// Requests pending in the whole cluster past which a FAILURE is sent without asking: in a
/// storm (a switch died), the nodes' few confirming checks at a time would let most
/// requests run out their bound, delaying every page by it for nothing.
pub const STORM: u64 = 64;

/// What the store thread asks of a result transaction: that FAILUREs be confirmed by another
/// node (`[cluster] ConfirmFailures`) when one is live.
#[derive(Debug, Clone)]
pub struct Ask {
    /// This node's name: the others' requests are not its own.
    pub node: String,
    /// A node whose heartbeat is older than this does not count as live for a request.
    pub fresh: Duration,
}

/// What goes out of a batch's alerts once confirmation had its say.
#[derive(Debug, Default)]
pub struct Screened<'a> {
    pub send: Vec<&'a NewAlert>,
    /// Targets whose FAILURE waits for a second node.
    pub asked: Vec<TargetId>,
    /// Requests settled in this transaction (their target recovered meanwhile).
    pub resolved: Vec<Resolved>,
    /// Recoveries and reminders left out: their FAILURE was not (or not yet) confirmed.
    pub dropped: usize,
    /// FAILUREs sent without asking: [`STORM`] requests were pending already.
    pub storm: usize,
}

impl Screened<'_> {
    /// The log lines of the transaction, once it is committed.
    pub fn log(&self) {
        if !self.asked.is_empty() {
            let ids: Vec<String> = self.asked.iter().map(TargetId::to_string).collect();
            log::debug!(
                "asked another node to confirm the FAILUREs of targets {}",
                ids.join(", ")
            );
        }
        for r in &self.resolved {
            r.log();
        }
        if self.storm > 0 {
            log::info!(
                "sent {} FAILUREs without confirmation: {STORM} or more failures are being \
                 confirmed already (a storm)",
                self.storm
            );
        }
        if self.dropped > 0 {
            log::debug!(
                "left out {} recoveries or reminders of FAILUREs not confirmed",
                self.dropped
            );
        }
    }
}

/// Screens the alerts [`super::holds::decide`] lets go (in the order raised):
/// - a FAILURE of a target a second node can check, while one is live and `ask` says so:
///   a request (none when one is pending already) instead of the alert;
/// - a recovery of a target whose request is pending: settled now ([`resolve`]), and the
///   recovery goes out only if the FAILURE did (the second node had found it failing too);
/// - a reminder of a target whose request is pending: nobody heard of that failure yet.
///
/// A recovery or reminder of an incident that was not confirmed never gets here:
/// [`super::holds::decide`] drops it (nobody heard of that failure), and a reminder sets the
/// target back to not alerted, so that its next failing check asks again.
pub fn screen<'a>(
    tx: &mut mysql::Transaction,
    alerts: &[&'a NewAlert],
    ask: Option<&Ask>,
) -> Result<Screened<'a>, Error> {
    let mut out = Screened::default();
    let later: Vec<TargetId> = alerts
        .iter()
        .filter(|a| matches!(a.kind, AlertKind::Success | AlertKind::Reminder))
        .map(|a| a.target_id)
        .collect();
    let mut pending = pending(tx, &later)?;
    let confirmable = alerts
        .iter()
        .any(|a| a.kind == AlertKind::Failure && a.confirm.is_some());
    let ask = match ask {
        Some(ask) if confirmable && live_peer(tx, ask)? => Some(ask),
        _ => None,
    };
    let mut open = if ask.is_some() { pending_count(tx)? } else { 0 };
    for &alert in alerts {
        let id = alert.target_id;
        match (alert.kind, ask, alert.confirm) {
            (AlertKind::Failure, Some(_), Some(_)) if open >= STORM => {
                out.storm += 1;
                out.send.push(alert);
            }
            (AlertKind::Failure, Some(ask), Some(timeout)) => {
                if let Some(request) = request(tx, alert, ask, timeout)? {
                    pending.insert(id, request);
                    out.asked.push(id);
                    open += 1;
                }
            }
            (AlertKind::Success, ..) if pending.contains_key(&id) => {
                let request = pending.remove(&id).unwrap_or_default();
                let settled = resolve(tx, request, true)?;
                let paged = settled
                    .as_ref()
                    .is_some_and(|r| r.fate != Fate::Unconfirmed);
                out.resolved.extend(settled);
                if paged {
                    out.send.push(alert);
                } else {
                    out.dropped += 1;
                }
            }
            (AlertKind::Success | AlertKind::Reminder, ..) if pending.contains_key(&id) => {
                out.dropped += 1;
            }
            _ => out.send.push(alert),
        }
    }
    Ok(out)
}

/// Whether a node other than `ask.node` is active with a fresh heartbeat (the database's
/// clock): only then is a FAILURE held for a second check.
fn live_peer(tx: &mut impl Queryable, ask: &Ask) -> Result<bool, Error> {
    let fresh_us = i64::try_from(ask.fresh.as_micros()).unwrap_or(i64::MAX);
    let found: Option<mysql::Row> = tx
        .exec_first(
            "SELECT 1 FROM nodes WHERE state = 'active' AND name <> ? \
             AND heartbeat >= NOW(3) - INTERVAL ? MICROSECOND LIMIT 1",
            (&ask.node, fresh_us),
        )
        .map_err(Error::query("looking for a node to confirm failures"))?;
    Ok(found.is_some())
}

/// How many requests are pending in the whole cluster.
fn pending_count(tx: &mut impl Queryable) -> Result<u64, Error> {
    let row: Option<mysql::Row> = tx
        .query_first("SELECT COUNT(*) FROM confirmations WHERE state = 'PENDING'")
        .map_err(Error::query("counting the pending confirmations"))?;
    Ok(decode::first("confirmations", row, |f| f.get::<u64>(0, "id")).unwrap_or(0))
}

/// Inserts the request for `alert`'s FAILURE, with the alert's snapshot as the database
/// takes it now, and marks the incident not alerted until it is settled. `None` when the
/// target is gone or a request of it is pending already (that one settles this failure).
fn request(
    tx: &mut mysql::Transaction,
    alert: &NewAlert,
    ask: &Ask,
    timeout: Duration,
) -> Result<Option<u64>, Error> {
    if !pending(tx, &[alert.target_id])?.is_empty() {
        return Ok(None);
    }
    let Some(shown) = super::results::shown_url(tx, alert.target_id)? else {
        return Ok(None);
    };
    let bound_us = i64::try_from((MARGIN + timeout).as_micros()).unwrap_or(i64::MAX);
    // IGNORE: the unique key on `open_target` (one pending request per target) holds
    // against another node's writer that asked in the meantime.
    tx.exec_drop(
        format!(
            "INSERT IGNORE INTO confirmations (target_id, incident_id, requested_by, deadline, \
             snapshot, trace) SELECT t.id, i.id, ?, NOW(3) + INTERVAL ? MICROSECOND, {}, ? \
             FROM {} WHERE t.id = ?",
            super::targets::snapshot(),
            super::targets::FROM
        ),
        (
            Value::from(ask.node.as_str()),
            Value::from(bound_us),
            Value::from(shown),
            Value::from(text::clip_bytes(&alert.trace, TRACE_BYTES)),
            Value::from(alert.target_id),
        ),
    )
    .map_err(Error::query("asking another node to confirm a failure"))?;
    if tx.affected_rows() != 1 {
        return Ok(None);
    }
    let id = tx.last_insert_id().unwrap_or_default();
    tx.exec_drop(
        "UPDATE incidents SET alerted = 0 WHERE open_target = ?",
        (alert.target_id,),
    )
    .map_err(Error::query(
        "marking an incident not alerted while it is confirmed",
    ))?;
    Ok(Some(id))
}

/// Each trace a request holds (the failed check's, the second node's) is cut to this, so
/// that both fit in an alert's `trace` with the lines around them.
pub(super) const TRACE_BYTES: usize = super::results::MAX_TRACE_BYTES / 2 - 1000;

/// The pending requests of these targets, locked (a confirm thread settling one waits for
/// this transaction, and then finds it settled).
fn pending(tx: &mut impl Queryable, ids: &[TargetId]) -> Result<HashMap<TargetId, u64>, Error> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(",");
        let rows: Vec<mysql::Row> = tx
            .exec(
                format!(
                    "SELECT target_id, id FROM confirmations WHERE open_target IN ({marks}) \
                     FOR UPDATE"
                ),
                chunk.to_vec(),
            )
            .map_err(Error::query("reading the pending confirmations"))?;
        found.extend(decode::good_rows("confirmations", rows, |f| {
            Ok((f.id(0, "target_id")?, f.id(1, "id")?))
        }));
    }
    Ok(found)
}
