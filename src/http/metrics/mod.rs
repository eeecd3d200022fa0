//! `/metrics`: the Prometheus text exposition (format 0.0.4), encoded by `prometheus-client`.
//! Daemon figures come from [`Stats`] (atomics); per-target figures from one read of the
//! `targets` rows (their counters, last result and open incident), which every node shares,
//! so every node of a cluster shows the same per-target series. The text is written to the
//! socket as it is encoded (4 KiB at a time): only the rows read are held, not the text.
//! The only texts in label values are the targets' and notifiers' names (the others are ids
//! and fixed words such as `phase` and `result`): they are read with every value of
//! `[secrets]` masked as `***` (the redactor of the daemon's keyring, taken once per scrape),
//! then escaped as label values when encoded.
//!
//! This file reads what a scrape shows and streams the answer; `series` says which series
//! that is (names, help, values), `encode` holds the small helpers that write them.

mod encode;
mod series;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use prometheus_client::registry::Registry;

use super::answer::{Answer, Body};
use super::query::{self, NotifierNow, TargetFigures};
use super::Shared;
use crate::base::redactor::Redactor;
use crate::base::stats::Exported;

/// Targets from which a scrape gives the memory it freed back to the system at once (glibc
/// would keep the peak of each handler thread's arena otherwise).
const LARGE: usize = 10_000;

pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything one scrape shows, read before the answer starts.
#[derive(Debug)]
struct Scrape {
    daemon: Daemon,
    targets: Vec<TargetFigures>,
    notifiers: Vec<NotifierNow>,
}

#[derive(Debug)]
struct Daemon {
    checks: u64,
    fails_by_kind: Vec<(&'static str, u64)>,
    lag: Histo,
    duration: Histo,
    write: Histo,
    queue_depth: u64,
    held_checks: u64,
    held_alerts: u64,
    written: u64,
    dropped: u64,
    alerts_queued: u64,
    alerts_dropped: u64,
    write_conflicts: u64,
    database_up: bool,
    db_ok_s: f64,
    targets_known: u64,
    targets_owned: u64,
    live_nodes: u64,
    blind: u64,
    workers: u64,
    workers_busy: u64,
    oldest_wait_s: f64,
    late_starts: u64,
    rows_skipped: u64,
    stale_results: u64,
    missed_rounds: u64,
    clock_offset_s: f64,
    skewed: u64,
    /// Whether the per-target read worked (`skypunch_scrape_database_ok`).
    read_ok: bool,
}

/// A histogram's exported figures (a newtype, for `Debug`).
struct Histo(Exported);

impl fmt::Debug for Histo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Histo(count {})", self.0.count)
    }
}

pub fn answer(shared: &Shared) -> Answer {
    let vault = shared.keyring.now();
    let (targets, notifiers, read_ok) = match read(shared, &vault.redactor) {
        Ok((t, n)) => (t, n, true),
        Err(e) => {
            log::warn!("http: /metrics without per-target series: {e}");
            (Vec::new(), Vec::new(), false)
        }
    };
    let scrape = Scrape {
        daemon: daemon(shared, read_ok),
        targets,
        notifiers,
    };
    let large = scrape.targets.len() >= LARGE;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    Answer {
        status: 200,
        content_type: CONTENT_TYPE,
        headers: Vec::new(),
        body: Body::Stream(Box::new(move |out| {
            let mut sink = FmtToIo { out, error: None };
            let encoded =
                prometheus_client::encoding::prometheus_text::encode(&mut sink, &registry);
            drop(registry);
            if large {
                crate::base::os::release_free_memory();
            }
            match encoded {
                Ok(()) => Ok(()),
                Err(_) => Err(sink
                    .error
                    .unwrap_or_else(|| std::io::Error::other("encoding"))),
            }
        })),
    }
}

/// The rows a scrape shows, their names masked by `redactor`.
fn read(
    shared: &Shared,
    redactor: &Redactor,
) -> Result<(Vec<TargetFigures>, Vec<NotifierNow>), crate::db::Error> {
    let mut conn = query::checkout(&shared.pool)?;
    let mut targets = query::figures(&mut conn)?;
    let mut notifiers = query::notifiers(&mut conn)?;
    mask_names(&mut targets, &mut notifiers, redactor);
    Ok((targets, notifiers))
}

/// Every value of `[secrets]` in the names replaced by `***`. Nothing to do without secrets;
/// with some, one pass over each name, and a new one only for a name that holds a secret.
fn mask_names(targets: &mut [TargetFigures], notifiers: &mut [NotifierNow], redactor: &Redactor) {
    if redactor.is_empty() {
        return;
    }
    let masked = |name: &str| match redactor.redact(name) {
        Cow::Owned(m) => Some(m),
        Cow::Borrowed(_) => None,
    };
    for t in targets {
        if let Some(m) = masked(&t.name) {
            t.name = m.into_boxed_str();
        }
    }
    for n in notifiers {
        if let Some(m) = masked(&n.name) {
            n.name = m;
        }
    }
}

fn daemon(shared: &Shared, read_ok: bool) -> Daemon {
    let s = &shared.stats;
    let facts = super::health::facts(shared);
    Daemon {
        checks: s.checks(),
        fails_by_kind: s.fails_by_kind().collect(),
        lag: Histo(s.lag().exported()),
        duration: Histo(s.duration().exported()),
        write: Histo(s.write_latency().exported()),
        queue_depth: s.queue_depth(),
        held_checks: s.unwritten(),
        held_alerts: s.held_alerts(),
        written: s.results_written(),
        dropped: s.results_dropped(),
        alerts_queued: s.alerts_queued(),
        alerts_dropped: s.alerts_dropped(),
        write_conflicts: s.write_conflicts(),
        database_up: facts.database_up(),
        db_ok_s: s.db_ok_ms() as f64 / 1000.0,
        targets_known: s.targets_known(),
        targets_owned: s.targets_owned(),
        live_nodes: s.live_nodes(),
        blind: s.blind(),
        workers: shared.config.workers as u64,
        workers_busy: s.workers_busy(),
        oldest_wait_s: s.oldest_wait_ms() as f64 / 1000.0,
        late_starts: s.late_starts(),
        rows_skipped: crate::db::decode::skipped(),
        stale_results: s.stale_results(),
        missed_rounds: s.missed_rounds(),
        clock_offset_s: s.clock_offset_ms() as f64 / 1000.0,
        skewed: s.skewed(),
        read_ok,
    }
}

/// `fmt::Write` onto the socket, keeping the I/O error that `fmt::Error` cannot carry.
struct FmtToIo<'a> {
    out: &'a mut dyn Write,
    error: Option<std::io::Error>,
}

impl fmt::Write for FmtToIo<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.out.write_all(s.as_bytes()).map_err(|e| {
            self.error = Some(e);
            fmt::Error
        })
    }
}
