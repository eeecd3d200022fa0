//! The store thread ("skypunch-store"): takes one batch at a time from the writer thread and
//! writes it through the pool, blocking as long as the database makes it wait, and hands back
//! what happened. Keeping the blocking here lets the writer thread go on taking results from
//! the workers while a write hangs on a slow or vanished database, so checks never wait for it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::db::results::{self, NewAlert};
use crate::db::{self, Pool};
use crate::model::TargetId;
use crate::state::RowUpdate;

/// What one write owes the database: row updates (sorted by id) and the alerts they raised.
#[derive(Debug, Default)]
pub struct Batch {
    pub updates: BTreeMap<TargetId, RowUpdate>,
    pub alerts: Vec<NewAlert>,
}

impl Batch {
    pub fn checks(&self) -> u64 {
        self.updates.values().map(|u| u.counts.checks()).sum()
    }
}

/// A row whose update the database refused, dropped so the others could be written.
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
    /// Written, but for the refused rows; `took` is the write's latency.
    Written {
        checks: u64,
        rows: usize,
        alerts: usize,
        refused: Vec<Refused>,
        took: std::time::Duration,
    },
    /// Nothing written: the batch comes back to be merged with newer results and retried.
    Failed {
        batch: Batch,
        error: db::Error,
        tried: Instant,
    },
}

/// The thread body: one batch in, one outcome out, until the writer drops its sender.
pub fn run(pool: Pool, batches: Receiver<Batch>, outcomes: Sender<Outcome>) {
    for batch in batches {
        if outcomes.send(store(&pool, batch)).is_err() {
            return;
        }
    }
}

/// Writes a batch in one transaction; when the database refuses it for a reason other than
/// an outage, writes it target by target instead.
pub fn store(pool: &Pool, batch: Batch) -> Outcome {
    let tried = Instant::now();
    let first = db::checkout(pool).and_then(|mut conn| {
        results::write(&mut conn, &batch.updates, &batch.alerts).map(|_| conn)
    });
    match first {
        Ok(_) => Outcome::Written {
            checks: batch.checks(),
            rows: batch.updates.len(),
            alerts: batch.alerts.len(),
            refused: Vec::new(),
            took: tried.elapsed(),
        },
        Err(error) if error.is_outage() => Outcome::Failed {
            batch,
            error,
            tried,
        },
        Err(error) => {
            log::error!(
                "a batch of check results was refused ({error}); writing each target alone"
            );
            store_each(pool, batch, tried)
        }
    }
}

/// Most likely one row cannot take its update (a counter hand-edited to the edge of its
/// range): each target gets its own transaction, so one bad row does not hold every other
/// result forever. A target that still fails is dropped and reported, unless several were
/// tried and none could be written (a problem with the table, not a row): then the whole
/// batch comes back to be retried like an outage.
fn store_each(pool: &Pool, mut batch: Batch, tried: Instant) -> Outcome {
    let mut conn = match db::checkout(pool) {
        Ok(conn) => conn,
        Err(error) => {
            return Outcome::Failed {
                batch,
                error,
                tried,
            }
        }
    };
    let ids: BTreeSet<TargetId> = batch
        .updates
        .keys()
        .copied()
        .chain(batch.alerts.iter().map(|a| a.target_id))
        .collect();
    let (mut checks, mut rows, mut alerts) = (0, 0, 0);
    let mut refused = Vec::new();
    let mut held = Batch::default();
    for id in ids {
        let one = Batch {
            updates: batch
                .updates
                .remove(&id)
                .map(|u| (id, u))
                .into_iter()
                .collect(),
            alerts: take_alerts(&mut batch.alerts, id),
        };
        match results::write(&mut conn, &one.updates, &one.alerts) {
            Ok(_) => {
                checks += one.checks();
                rows += one.updates.len();
                alerts += one.alerts.len();
            }
            Err(error) if error.is_outage() => {
                merge_back(&mut batch, one);
                merge_back(&mut batch, held);
                return Outcome::Failed {
                    batch,
                    error,
                    tried,
                };
            }
            Err(error) => {
                refused.push(Refused {
                    id,
                    checks: one.checks(),
                    alerts: one.alerts.len(),
                    error,
                });
                merge_back(&mut held, one);
            }
        }
    }
    if rows + alerts == 0 && refused.len() > 1 {
        let error = refused
            .pop()
            .map(|r| r.error)
            .expect("more than one refused");
        return Outcome::Failed {
            batch: held,
            error,
            tried,
        };
    }
    Outcome::Written {
        checks,
        rows,
        alerts,
        refused,
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
}
