//! The plain data types that cross threads, in one place so one file shows what travels
//! between them: target definitions and controls (loader → wheel → workers), check outcomes
//! (workers → writer), alerts (writer → outbox → notifier) and incidents (the history every
//! face reads). No I/O here; what only the writer and its store thread exchange is
//! `writer::batch`.
//!
//! This file holds the messages of the channels (a [`Job`] to a worker, a [`CheckResult`] or
//! a [`ToWriter`] to the writer, a [`Control`] to the wheel); beside it, what they carry:
//! `target` (a target's definition), `outcome` (what a check found), `status` (a target's
//! status, the writer's state of it, its incidents) and `alert` (alerts to the outbox).

mod alert;
mod outcome;
mod status;
mod target;

pub use alert::{Alert, AlertKind, NewAlert};
pub use outcome::{CertInfo, CheckError, CheckOutcome, Phase, Verdict};
pub use status::{Incident, Status, TargetState};
pub use target::{IpFamily, Method, Target};

use std::sync::Arc;
use std::time::Instant;

/// A target id, the `targets.id` column.
pub type TargetId = u64;

/// A due check handed from the wheel to a worker.
#[derive(Debug, Clone)]
pub struct Job {
    pub target: Arc<Target>,
    /// When the wheel wanted it to start; the worker measures its lag against this.
    pub due: Instant,
    /// The node's ownership generation when the wheel dispatched it (see
    /// `cluster::Member::generation`): its result is dropped if the target was handed to
    /// another node since.
    pub generation: u64,
}

/// A finished check, handed from a worker to the writer.
#[derive(Debug)]
pub struct CheckResult {
    pub target: Arc<Target>,
    pub outcome: CheckOutcome,
    /// Wall-clock time the check ended, in UTC: the row's `last_updated`.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The ownership generation its check was dispatched under ([`Job::generation`]).
    pub generation: u64,
}

/// A message to the writer thread: a finished check from a worker, or from the loader or the
/// cluster thread a target no longer checked here (deleted, disabled, invalid, handed to
/// another node), whose state it may forget once it owes its row nothing.
#[derive(Debug)]
pub enum ToWriter {
    Checked(CheckResult),
    Forget(TargetId),
    /// Handed to another node at ownership generation `generation` (the cluster thread):
    /// forgotten as by `Forget`, and the results of checks dispatched at or before that
    /// generation, which arrive late, are dropped and counted instead of written.
    HandedOver {
        id: TargetId,
        generation: u64,
    },
    /// A second node found the target up as its FAILURE became due (`confirm`): nobody was
    /// paged, so its next failing check raises the FAILURE again.
    Unconfirmed(TargetId),
}

/// What the loader tells the wheel.
#[derive(Debug)]
pub enum Control {
    /// A new or edited target. `first` is true for the targets read at start, whose first
    /// checks are spread over their period; a target added later is checked at once.
    Upsert { target: Arc<Target>, first: bool },
    /// A target deleted, disabled or no longer valid.
    Remove(TargetId),
}
