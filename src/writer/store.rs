//! The store thread ("skypunch-store"): takes one batch at a time from the writer thread,
//! reads the state of targets the writer meets for the first time, writes the batch through
//! the pool, and hands back what happened. Keeping the blocking here lets the writer thread
//! go on taking results from the workers while a write hangs on a slow or vanished database,
//! so checks never wait for it. Every statement is bounded by `ReadTimeout`/`WriteTimeout`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::batch::{Batch, Outcome, RefusedRow};
use crate::base::model::{AlertKind, NewAlert, TargetId, TargetState};
use crate::base::rollup::{self, Rollups};
use crate::base::sight::Sight;
use crate::base::stats::StoreStats;
use crate::cluster::Member;
use crate::db::confirm::Ask;
use crate::db::nodes::Fence;
use crate::db::results;
use crate::db::{self, Class, Pool};

/// The longest a batch whose alerts come from network errors waits for a probe of
/// `[settings] Connectivity` made after them (a round takes at most `sight::PROBE_TIMEOUT`).
const VERDICT_WAIT: Duration = Duration::from_secs(5);

/// The thread body: one batch in, one outcome out, until the writer drops its sender.
/// `confirm`: FAILUREs are confirmed by another node live within this (`[cluster]
/// ConfirmFailures`).
pub fn run(
    pool: Pool,
    stats: StoreStats,
    (member, sight): (Arc<Member>, Arc<Sight>),
    confirm: Option<Duration>,
    batches: Receiver<Batch>,
    outcomes: Sender<Outcome>,
) {
    for mut batch in batches {
        crate::base::fault::point("store");
        let fence = member.fence();
        judge_blind(&sight, &mut batch);
        let ask = confirm.map(|fresh| Ask {
            node: fence.node.clone(),
            fresh,
        });
        let outcome = store(&pool, &stats, (&fence, ask.as_ref()), batch);
        if outcomes.send(outcome).is_err() {
            return;
        }
    }
}

/// Marks the batch's FAILUREs and reminders raised by network errors that happened while
/// this node could not reach its network (`base::sight`): with `[settings] Connectivity`,
/// a probe made after each says (waited for, before the transaction, at most
/// [`VERDICT_WAIT`] in all, newest first so that one probe answers for all); without, the
/// writer's suspicion.
fn judge_blind(sight: &Sight, batch: &mut Batch) {
    let mut raised: Vec<&mut NewAlert> = batch
        .alerts
        .iter_mut()
        .filter(|a| matches!(a.kind, AlertKind::Failure | AlertKind::Reminder))
        .filter(|a| a.network.is_some())
        .collect();
    raised.sort_by_key(|a| std::cmp::Reverse(a.network));
    let until = Instant::now() + VERDICT_WAIT;
    for alert in raised {
        if let Some(at) = alert.network {
            let wait = until.saturating_duration_since(Instant::now());
            alert.blind = sight.verdict_after(at, wait);
        }
    }
}

/// Reads what is asked, then writes the batch in one transaction; when the database refuses
/// it for a reason other than an outage or a passing conflict, writes it target by target.
pub fn store(
    pool: &Pool,
    stats: &StoreStats,
    (fence, ask): (&Fence, Option<&Ask>),
    batch: Batch,
) -> Outcome {
    let tried = Instant::now();
    let states = match read(pool, &batch.read) {
        Ok(states) => states,
        Err(error) => return failed(batch, error, tried),
    };
    if batch.is_write_empty() {
        return written(0, 0, 0, states, Default::default(), tried);
    }
    let first = db::with_conn(pool, |conn| {
        let all = (&batch.updates, &batch.alerts[..], &batch.rollups);
        results::write(conn, Some(fence), all, &batch.retract, ask)
    });
    match &first {
        Ok(_) => stats.db_write(true),
        Err(e) if e.class() == Class::Outage => stats.db_write(false),
        Err(_) => {}
    }
    match first {
        Ok(done) => {
            let stale = stale_checks(&batch, &done.stale);
            let lost: u64 = stale.iter().map(|(_, n)| n).sum();
            // Counted here, at the commit, so that a stop cut short by a hung database
            // reports exactly the checks that did not reach it.
            stats.add_results_written(batch.checks() - lost);
            stats.add_results_dropped(lost);
            let alerts = batch
                .alerts
                .iter()
                .filter(|a| !done.stale.contains(&a.target_id));
            written(
                batch.checks() - lost,
                batch.updates.len() - stale.len(),
                alerts.count(),
                states,
                (stale, done.withheld, done.withdrawn),
                tried,
            )
        }
        Err(error)
            if matches!(
                error.class(),
                Class::Outage | Class::Transient | Class::Fenced
            ) =>
        {
            failed(batch, error, tried)
        }
        Err(error) => {
            log::error!(
                "a batch of check results was not taken ({error}); writing each target alone"
            );
            store_each(pool, stats, (fence, ask), batch, states, tried)
        }
    }
}

/// The checks of each stale target in the batch: not written.
fn stale_checks(batch: &Batch, stale: &[TargetId]) -> Vec<(TargetId, u64)> {
    stale
        .iter()
        .map(|id| (*id, batch.updates.get(id).map_or(0, |u| u.counts.checks())))
        .collect()
}

fn read(pool: &Pool, ids: &[TargetId]) -> Result<Vec<(TargetId, TargetState)>, db::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let states = db::with_conn(pool, |conn| results::read_states(conn, ids))?;
    log::debug!(
        "read the stored state of {} targets new to the writer",
        ids.len()
    );
    Ok(states)
}

fn failed(batch: Batch, error: db::Error, tried: Instant) -> Outcome {
    Outcome::Failed {
        batch,
        error,
        tried,
    }
}

fn written(
    checks: u64,
    rows: usize,
    alerts: usize,
    states: Vec<(TargetId, TargetState)>,
    (stale, withheld, withdrawn): (Vec<(TargetId, u64)>, Vec<TargetId>, Vec<TargetId>),
    tried: Instant,
) -> Outcome {
    Outcome::Written {
        checks,
        rows,
        alerts,
        refused: Vec::new(),
        held: None,
        states,
        stale,
        withheld,
        withdrawn,
        took: tried.elapsed(),
    }
}

/// Most likely one row cannot take its update (a counter hand-edited to the edge of its
/// range): each target gets its own transaction, so one bad row does not hold every other
/// result forever. Only a row refused for its values is dropped; one the database will not
/// take for another reason (a lock wait, a missing grant or table) is held and retried with
/// backoff. An outage meanwhile sends the whole batch back.
fn store_each(
    pool: &Pool,
    stats: &StoreStats,
    (fence, ask): (&Fence, Option<&Ask>),
    mut batch: Batch,
    states: Vec<(TargetId, TargetState)>,
    tried: Instant,
) -> Outcome {
    let ids: BTreeSet<TargetId> = batch
        .updates
        .keys()
        .copied()
        .chain(batch.alerts.iter().map(|a| a.target_id))
        .chain(batch.rollups.keys().map(|(id, _)| *id))
        .chain(batch.retract.iter().copied())
        .collect();
    let (mut checks, mut rows, mut alerts) = (0, 0, 0);
    let mut refused = Vec::new();
    let mut stale = Vec::new();
    let mut withheld = Vec::new();
    let mut withdrawn = Vec::new();
    let mut held = Batch::default();
    let mut held_error = None;
    for id in ids {
        let one = Batch {
            updates: batch
                .updates
                .remove(&id)
                .map(|u| (id, u))
                .into_iter()
                .collect(),
            alerts: take_alerts(&mut batch.alerts, id),
            read: Vec::new(),
            rollups: take_rollups(&mut batch.rollups, id),
            retract: take_retract(&mut batch.retract, id),
        };
        let write = |conn: &mut db::Conn| {
            let all = (&one.updates, &one.alerts[..], &one.rollups);
            results::write(conn, Some(fence), all, &one.retract, ask)
        };
        match db::with_conn(pool, write) {
            Ok(done) if !done.stale.is_empty() => {
                let lost = one.checks();
                stats.add_results_dropped(lost);
                stale.push((id, lost));
            }
            Ok(done) => {
                withheld.extend(done.withheld);
                withdrawn.extend(done.withdrawn);
                stats.add_results_written(one.checks());
                checks += one.checks();
                rows += one.updates.len();
                alerts += one.alerts.len();
            }
            Err(error) if matches!(error.class(), Class::Outage | Class::Fenced) => {
                merge_back(&mut batch, one);
                merge_back(&mut batch, held);
                return failed(batch, error, tried);
            }
            Err(error) if error.class() == Class::Refused => refused.push(RefusedRow {
                id,
                checks: one.checks(),
                alerts: one.alerts.len(),
                error,
            }),
            Err(error) => {
                merge_back(&mut held, one);
                held_error = Some(error);
            }
        }
    }
    Outcome::Written {
        checks,
        rows,
        alerts,
        refused,
        held: held_error.map(|e| (held, e)),
        states,
        stale,
        withheld,
        withdrawn,
        took: tried.elapsed(),
    }
}

fn take_alerts(alerts: &mut Vec<NewAlert>, id: TargetId) -> Vec<NewAlert> {
    let (mine, rest) = std::mem::take(alerts)
        .into_iter()
        .partition(|a| a.target_id == id);
    *alerts = rest;
    mine
}

fn take_retract(retract: &mut Vec<TargetId>, id: TargetId) -> Vec<TargetId> {
    let found = retract.contains(&id);
    retract.retain(|t| *t != id);
    if found {
        vec![id]
    } else {
        Vec::new()
    }
}

fn take_rollups(rollups: &mut Rollups, id: TargetId) -> Rollups {
    let (mine, rest) = std::mem::take(rollups)
        .into_iter()
        .partition(|((target, _), _)| *target == id);
    *rollups = rest;
    mine
}

fn merge_back(into: &mut Batch, from: Batch) {
    into.updates.extend(from.updates);
    into.alerts.extend(from.alerts);
    into.read.extend(from.read);
    into.retract.extend(from.retract);
    rollup::merge(&mut into.rollups, from.rollups);
}
