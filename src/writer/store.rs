//! The store thread ("skypunch-store"): takes one batch at a time from the writer thread,
//! reads the state of targets the writer meets for the first time, writes the batch through
//! the pool, and hands back what happened. Keeping the blocking here lets the writer thread
//! go on taking results from the workers while a write hangs on a slow or vanished database,
//! so checks never wait for it. Every statement is bounded by `ReadTimeout`/`WriteTimeout`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::db::results::{self, NewAlert};
use crate::db::{self, Class, Pool};
use crate::model::{TargetId, TargetState};
use crate::state::RowUpdate;
use crate::stats::Stats;

/// What one write owes the database: row updates (sorted by id) and the alerts they raised,
/// and the targets whose stored state the writer needs.
#[derive(Debug, Default)]
pub struct Batch {
    pub updates: BTreeMap<TargetId, RowUpdate>,
    pub alerts: Vec<NewAlert>,
    /// Read before writing. These targets are new to the writer, so it owes their rows
    /// nothing and the order does not matter.
    pub read: Vec<TargetId>,
}

impl Batch {
    pub fn checks(&self) -> u64 {
        self.updates.values().map(|u| u.counts.checks()).sum()
    }

    fn is_write_empty(&self) -> bool {
        self.updates.is_empty() && self.alerts.is_empty()
    }
}

/// A row whose update the database refused for its values, dropped so the others could be
/// written.
#[derive(Debug)]
pub struct Refused {
    pub id: TargetId,
    pub checks: u64,
    pub alerts: usize,
    pub error: db::Error,
}

/// What became of a batch.
#[derive(Debug)]
pub enum Outcome {
    /// Written, but for the refused rows and the held ones; `took` is the write's latency.
    Written {
        checks: u64,
        rows: usize,
        alerts: usize,
        refused: Vec<Refused>,
        /// Rows the database would not take now for a reason other than their values (a
        /// lock wait, a missing grant): to merge back and retry, with the last error.
        held: Option<(Batch, db::Error)>,
        /// The state of the targets asked for; a deleted target is missing.
        states: Vec<(TargetId, TargetState)>,
        took: Duration,
    },
    /// Nothing written: the batch comes back to be merged with newer results and retried.
    Failed {
        batch: Batch,
        error: db::Error,
        tried: Instant,
    },
}

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
        results::write(conn, &batch.updates, &batch.alerts)
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
        };
        match db::with_conn(pool, |conn| results::write(conn, &one.updates, &one.alerts)) {
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

fn merge_back(into: &mut Batch, from: Batch) {
    into.updates.extend(from.updates);
    into.alerts.extend(from.alerts);
    into.read.extend(from.read);
}
