//! The history tables (schema 2.1): incidents, hourly and daily rollups, disabled periods.
//! One file per party that runs the statements: [`write`] (the writer's store thread),
//! [`disabled`] (the loader), [`prune`] (the prune thread) and [`read`] (the reports, the
//! status pages and the notifier). Times are UTC, `YYYY-MM-DD HH:MM:SS.mmm`.

mod disabled;
mod prune;
mod read;
mod write;

pub use disabled::{pause, reconcile_pauses, resume};
pub use prune::{prune, Pruned};
pub use read::{
    created, daily, hourly, incident, incident_of, incidents, incidents_of, pauses, rollup_sums,
    windows, INCIDENT_COLUMNS,
};
pub use write::{write_incidents, write_rollups};
