//! The store thread ("skypunch-store"): takes one batch at a time from the writer thread,
//! reads the state of targets the writer meets for the first time, writes the batch through
//! the pool, and hands back what happened. Keeping the blocking here lets the writer thread
//! go on taking results from the workers while a write hangs on a slow or vanished database,
//! so checks never wait for it. Every statement is bounded by `ReadTimeout`/`WriteTimeout`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::db::results;
use crate::db::{self, Class, Pool};
use crate::model::{Batch, NewAlert, Outcome, Refused, TargetId, TargetState};
use crate::rollup::{self, Rollups};
use crate::stats::Stats;

/// The thread body: one batch in, one outcome out, until the writer drops its sender.
pub fn run(pool: Pool, stats: Arc<Stats>, batches: Receiver<Batch>, outcomes: Sender<Outcome>) {
    for batch in batches {
        crate::fault::point("store");
        if outcomes.send(store(&pool, &stats, batch)).is_err() {
            return;
        }
    }
}

/// Reads what is asked, then writes the batch in one transaction; when the database refuses
/// it for a reason other than an outage or a passing conflict, writes it target by target.
pub fn store(pool: &Pool, stats: &Stats, batch: Batch) -> Outcome {
    let tried = Instant::now();
    let states = match read(pool, &batch.read) {
        Ok(states) => states,
        Err(error) => return failed(batch, error, tried),
    };
    if batch.is_write_empty() {
        return written(0, 0, 0, states, tried);
    }
    let first = db::with_conn(pool, |conn| {
        results::write(conn, &batch.updates, &batch.alerts, &batch.rollups)
    });
    match first {
        Ok(_) => {
            // Counted here, at the commit, so that a stop cut short by a hung database
            // reports exactly the checks that did not reach it.
            Stats::add(&stats.results_written, batch.checks());
            written(
                batch.checks(),
                batch.updates.len(),
                batch.alerts.len(),
                states,
                tried,
            )
        }
        Err(error) if matches!(error.class(), Class::Outage | Class::Transient) => {
            failed(batch, error, tried)
        }
        Err(error) => {
            log::error!(
                "a batch of check results was not taken ({error}); writing each target alone"
            );
            store_each(pool, stats, batch, states, tried)
        }
    }
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
    tried: Instant,
) -> Outcome {
    Outcome::Written {
        checks,
        rows,
        alerts,
        refused: Vec::new(),
        held: None,
        states,
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
    stats: &Stats,
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
        .collect();
    let (mut checks, mut rows, mut alerts) = (0, 0, 0);
    let mut refused = Vec::new();
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
        };
        let write =
            |conn: &mut db::Conn| results::write(conn, &one.updates, &one.alerts, &one.rollups);
        match db::with_conn(pool, write) {
            Ok(_) => {
                Stats::add(&stats.results_written, one.checks());
                checks += one.checks();
                rows += one.updates.len();
                alerts += one.alerts.len();
            }
            Err(error) if error.class() == Class::Outage => {
                merge_back(&mut batch, one);
                merge_back(&mut batch, held);
                return failed(batch, error, tried);
            }
            Err(error) if error.class() == Class::Refused => refused.push(Refused {
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
    rollup::merge(&mut into.rollups, from.rollups);
}
