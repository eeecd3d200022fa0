//! What travels between the writer thread and its store thread: a batch of row updates,
//! alerts and rollups to write, and what became of it. Plain data; nothing else sees these.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::base::model::{NewAlert, TargetId, TargetState};
use crate::base::rollup::Rollups;
use crate::base::state::RowUpdate;
use crate::db;

/// What one write owes the database: row updates (sorted by id) and the alerts they raised,
/// and the targets whose stored state the writer needs.
#[derive(Debug, Default)]
pub struct Batch {
    pub updates: BTreeMap<TargetId, RowUpdate>,
    pub alerts: Vec<NewAlert>,
    /// Read before writing. These targets are new to the writer, so it owes their rows
    /// nothing and the order does not matter.
    pub read: Vec<TargetId>,
    /// Hourly rollups to add to the history tables, at most once a minute.
    pub rollups: Rollups,
    /// Targets whose FAILUREs of the last minute (raised from network errors) to withdraw:
    /// the node has just found it is blind.
    pub retract: Vec<TargetId>,
}

impl Batch {
    pub fn checks(&self) -> u64 {
        self.updates.values().map(|u| u.counts.checks()).sum()
    }

    pub fn is_write_empty(&self) -> bool {
        self.updates.is_empty()
            && self.alerts.is_empty()
            && self.rollups.is_empty()
            && self.retract.is_empty()
    }
}

/// A row whose update the database refused for its values, dropped so the others could be
/// written.
#[derive(Debug)]
pub struct RefusedRow {
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
        refused: Vec<RefusedRow>,
        /// Rows the database would not take now for a reason other than their values (a
        /// lock wait, a missing grant): to merge back and retry, with the last error.
        held: Option<(Batch, db::Error)>,
        /// The state of the targets asked for; a deleted target is missing.
        states: Vec<(TargetId, TargetState)>,
        /// Targets whose row another writer moved on since this one read it, with their
        /// checks, which were not written: their state is to be read again.
        stale: Vec<(TargetId, u64)>,
        /// Targets whose FAILURE alert was held (their parent was down, or this node could
        /// not reach its network): written as not alerted, to alert at a later check.
        withheld: Vec<TargetId>,
        /// Those of them whose FAILURE of an earlier batch was withdrawn: their row's
        /// `state_seq` moved on once more (see `db::holds::move_on`).
        withdrawn: Vec<TargetId>,
        took: Duration,
    },
    /// Nothing written: the batch comes back to be merged with newer results and retried.
    Failed {
        batch: Batch,
        error: db::Error,
        tried: Instant,
    },
}
