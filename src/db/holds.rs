//! Alerts held in the result transaction, run by the writer's store thread after the rows and
//! incidents of a batch are written (so a parent failing in the same batch as its children
//! is seen down): a FAILURE is held while the target's parent (`depends_on`) is in FAIL, or
//! when this node could not reach its network at the time of the check that raised it (a
//! network error, judged by the caller: `NewAlert::blind`); a reminder is dropped in the same cases, and a
//! recovery or reminder after a held FAILURE, of the same batch or of an incident whose
//! FAILURE never went out. A held target's row is written back
//! as not alerted, and its incident says why (`suppressed_by`, `monitor_blind`).
//!
//! When the node finds it is blind, the FAILUREs it raised from network errors in the minute
//! before and nobody has heard of yet are withdrawn ([`retract`]): their deliveries dropped
//! (the notifier never sends a DROPPED one, and claims only PENDING ones), unexpanded alerts
//! marked expanded without a delivery, and their targets held as above.

use std::collections::{BTreeMap, HashMap, HashSet};

use mysql::prelude::Queryable;
use mysql::Value;

use super::decode;
use super::Error;
use crate::base::model::{AlertKind, NewAlert, TargetId};

/// Parents read per statement.
const CHUNK: usize = 1000;

/// Why a FAILURE was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The parent's open incident.
    Parent { incident: u64 },
    /// The node could not reach its network.
    Blind,
    /// A reminder of an incident whose FAILURE was held or withdrawn (its incident says
    /// why) by a node whose memory of the target this one did not share: the target goes
    /// back to not alerted, so that its next failing check raises the FAILURE again.
    Unheard,
}

/// What goes out of a batch's alerts, and the targets whose FAILURE was held.
#[derive(Debug, Default)]
pub struct Decided<'a> {
    pub send: Vec<&'a NewAlert>,
    /// By target: its last FAILURE of the batch was held, and why.
    pub held: BTreeMap<TargetId, Hold>,
    /// Reminders and recoveries left out, for the log.
    pub dropped: usize,
}

/// Decides which of `alerts` (in the order raised) go out; each says whether the node could
/// reach its network when its network error happened (`NewAlert::blind`).
pub fn decide<'a>(tx: &mut impl Queryable, alerts: &[&'a NewAlert]) -> Result<Decided<'a>, Error> {
    let parents: Vec<TargetId> = alerts
        .iter()
        .filter(|a| matches!(a.kind, AlertKind::Failure | AlertKind::Reminder))
        .filter_map(|a| a.parent)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let down = parents_down(tx, &parents)?;
    let unheard = unheard_incidents(tx, alerts)?;
    let mut decided = Decided::default();
    for alert in alerts {
        let why = alert
            .parent
            .and_then(|p| down.get(&p))
            .map(|&incident| Hold::Parent { incident })
            .or_else(|| alert.blind.then_some(Hold::Blind));
        let id = alert.target_id;
        match (alert.kind, why) {
            (AlertKind::Failure, Some(why)) => {
                decided.held.insert(id, why);
            }
            (AlertKind::Failure, None) => {
                decided.held.remove(&id);
                decided.send.push(alert);
            }
            (AlertKind::Reminder, Some(_)) => decided.dropped += 1,
            (AlertKind::Reminder, _) if unheard.contains(&id) => {
                decided.held.insert(id, Hold::Unheard);
                decided.dropped += 1
            }
            (AlertKind::Success, _) if unheard.contains(&id) => decided.dropped += 1,
            (AlertKind::Success | AlertKind::Reminder, _) if decided.held.contains_key(&id) => {
                decided.dropped += 1
            }
            _ => decided.send.push(alert),
        }
    }
    Ok(decided)
}

/// The targets among those of `alerts`' recoveries and reminders whose latest incident (the
/// one they close or remind of, written by this batch) was held and never had its FAILURE go
/// out: held behind its parent, withdrawn while the node that raised it was blind, or not
/// confirmed by a second node (`db::confirm`). Another node's memory of the
/// target can predate that (it took the target over before the withdrawal was written), so
/// the database, not the memory, says whether anybody heard of the failure. A target with no
/// incident (history off, or pruned) is not among them.
fn unheard_incidents(
    tx: &mut impl Queryable,
    alerts: &[&NewAlert],
) -> Result<HashSet<TargetId>, Error> {
    let ids: Vec<TargetId> = alerts
        .iter()
        .filter(|a| matches!(a.kind, AlertKind::Success | AlertKind::Reminder))
        .map(|a| a.target_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut unheard = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(",");
        let rows: Vec<mysql::Row> = tx
            .exec(
                format!(
                    "SELECT i.target_id FROM incidents i JOIN (SELECT target_id, MAX(id) AS id \
                     FROM incidents WHERE target_id IN ({marks}) GROUP BY target_id) l \
                     ON l.id = i.id WHERE i.alerted = 0 AND (i.suppressed_by IS NOT NULL \
                     OR i.monitor_blind <> 0 OR i.unconfirmed <> 0)"
                ),
                chunk.to_vec(),
            )
            .map_err(Error::query("reading whether failures went out"))?;
        unheard.extend(decode::good_rows("incidents", rows, |f| {
            f.id(0, "target_id")
        }));
    }
    Ok(unheard)
}

/// The parents among `ids` in FAIL now (enabled, with an open incident), with that incident;
/// in the transaction, so a parent written by this batch counts as it now is.
fn parents_down(
    tx: &mut impl Queryable,
    ids: &[TargetId],
) -> Result<HashMap<TargetId, u64>, Error> {
    let mut down = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(",");
        let rows: Vec<mysql::Row> = tx
            .exec(
                format!(
                    "SELECT p.id, i.id FROM targets p JOIN incidents i ON i.open_target = p.id \
                     WHERE p.id IN ({marks}) AND p.status = 'FAIL' AND p.enabled <> 0"
                ),
                chunk.to_vec(),
            )
            .map_err(Error::query("reading the state of the targets' parents"))?;
        down.extend(decode::good_rows("targets", rows, |f| {
            Ok((f.id(0, "id")?, f.id(1, "incident")?))
        }));
    }
    Ok(down)
}

/// Writes what holding their FAILURE means for these targets: the row is not alerted, and
/// its latest incident (the one the FAILURE was raised in) not alerted either, with the
/// parent's incident that held it, or marked `monitor_blind`.
pub fn mark(tx: &mut impl Queryable, held: &BTreeMap<TargetId, Hold>) -> Result<(), Error> {
    if held.is_empty() {
        return Ok(());
    }
    let ids: Vec<TargetId> = held.keys().copied().collect();
    for chunk in ids.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(",");
        tx.exec_drop(
            format!(
                "UPDATE targets SET alerted = 0, config_changed = config_changed \
                 WHERE id IN ({marks})"
            ),
            chunk.to_vec(),
        )
        .map_err(Error::query("writing held alerts' targets as not alerted"))?;
    }
    let latest = "WHERE target_id = ? ORDER BY id DESC LIMIT 1";
    let parent: Vec<(Value, Value)> = held
        .iter()
        .filter_map(|(id, h)| match h {
            Hold::Parent { incident } => Some((Value::from(*incident), Value::from(*id))),
            Hold::Blind | Hold::Unheard => None,
        })
        .collect();
    tx.exec_batch(
        format!("UPDATE incidents SET alerted = 0, suppressed_by = ? {latest}"),
        parent,
    )
    .map_err(Error::query(
        "recording which parent held an incident's alert",
    ))?;
    let blind: Vec<Value> = held
        .iter()
        .filter(|(_, h)| **h == Hold::Blind)
        .map(|(id, _)| Value::from(*id))
        .collect();
    tx.exec_batch(
        format!("UPDATE incidents SET alerted = 0, monitor_blind = 1 {latest}"),
        blind.into_iter().map(|id| (id,)),
    )
    .map_err(Error::query(
        "recording an incident's alert held while blind",
    ))
}

/// Moves the `state_seq` of targets whose FAILURE was withdrawn on by one: another node may
/// have taken one over (this one found itself blind) and read it as alerted before the
/// withdrawal; its next write is then stale, and it reads the row as it now is, so that the
/// target's next failing check raises the FAILURE again instead of a recovery nobody expects.
pub fn move_on(tx: &mut impl Queryable, targets: &[TargetId]) -> Result<(), Error> {
    for chunk in targets.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(",");
        tx.exec_drop(
            format!(
                "UPDATE targets SET state_seq = state_seq + 1, config_changed = config_changed \
                 WHERE id IN ({marks})"
            ),
            chunk.to_vec(),
        )
        .map_err(Error::query("moving on the rows of withdrawn alerts"))?;
    }
    Ok(())
}

/// How far back [`retract`] looks for the alerts of the window, by the database's clock: the
/// suspicion's minute and some margin for the writer's batches.
const RETRACT_SECS: u64 = 70;

/// Withdraws the FAILURE alerts of these targets raised in the last minute (the writer
/// raised them from network errors before the node knew it was blind) that nobody was sent
/// or is being sent: their pending deliveries are dropped, unexpanded ones never expand.
/// Returns the targets withdrawn; a target one of whose alerts was sent, tried or claimed by
/// a notifier keeps it (somebody was told), and its recovery goes out as usual.
pub fn retract(tx: &mut impl Queryable, targets: &[TargetId]) -> Result<Vec<TargetId>, Error> {
    let mut withdrawn = Vec::new();
    for chunk in targets.chunks(CHUNK) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut params: Vec<Value> = chunk.iter().map(|id| Value::from(*id)).collect();
        params.push(Value::from(RETRACT_SECS));
        let rows: Vec<mysql::Row> = tx
            .exec(
                format!(
                    "SELECT id, target_id FROM alerts WHERE target_id IN ({marks}) \
                     AND kind = 'FAILURE' AND created_at >= NOW(3) - INTERVAL ? SECOND FOR UPDATE"
                ),
                params,
            )
            .map_err(Error::query("finding the alerts raised while blind"))?;
        let alerts: Vec<(u64, TargetId)> = decode::good_rows("alerts", rows, |f| {
            Ok((f.id(0, "id")?, f.id(1, "target_id")?))
        });
        if alerts.is_empty() {
            continue;
        }
        let ids: Vec<Value> = alerts.iter().map(|(id, _)| Value::from(*id)).collect();
        let marks = vec!["?"; ids.len()].join(",");
        // Locked, so a notifier cannot claim one between this look and the drop.
        let told: Vec<mysql::Row> = tx
            .exec(
                format!(
                    "SELECT alert_id FROM alert_deliveries WHERE alert_id IN ({marks}) \
                     AND (state = 'SENT' OR attempts <> 0 OR (claimed_by IS NOT NULL \
                     AND claim_until > NOW(3))) FOR UPDATE"
                ),
                ids.clone(),
            )
            .map_err(Error::query(
                "looking at the deliveries of alerts raised while blind",
            ))?;
        let told: HashSet<u64> =
            decode::good_rows("alert_deliveries", told, |f| f.id(0, "alert_id"))
                .into_iter()
                .collect();
        let kept: HashSet<TargetId> = alerts
            .iter()
            .filter(|(id, _)| told.contains(id))
            .map(|(_, t)| *t)
            .collect();
        let drop: Vec<Value> = alerts
            .iter()
            .filter(|(_, t)| !kept.contains(t))
            .map(|(id, _)| Value::from(*id))
            .collect();
        if drop.is_empty() {
            continue;
        }
        let marks = vec!["?"; drop.len()].join(",");
        let mut params = vec![Value::from(WITHDRAWN)];
        params.extend(drop.iter().cloned());
        tx.exec_drop(
            format!(
                "UPDATE alert_deliveries SET state = 'DROPPED', last_error = ?, \
                 next_attempt = NOW(3) WHERE alert_id IN ({marks}) AND state = 'PENDING'"
            ),
            params,
        )
        .map_err(Error::query(
            "dropping the deliveries of alerts raised while blind",
        ))?;
        tx.exec_drop(
            format!("UPDATE alerts SET expanded = 1 WHERE id IN ({marks})"),
            drop,
        )
        .map_err(Error::query("withdrawing alerts raised while blind"))?;
        let mut targets: Vec<TargetId> = alerts
            .iter()
            .map(|(_, t)| *t)
            .filter(|t| !kept.contains(t))
            .collect();
        targets.dedup();
        withdrawn.extend(targets);
    }
    withdrawn.sort_unstable();
    withdrawn.dedup();
    Ok(withdrawn)
}

/// The `last_error` of a delivery [`retract`] dropped.
pub const WITHDRAWN: &str =
    "withdrawn: raised while the node that checked the target could not reach its network";
