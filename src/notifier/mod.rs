//! The notifier thread (`skypunch-notifier`): sends the alerts owed in the outbox (tables
//! `alerts` and `alert_deliveries`, see [`outbox`]) to every notifier, retrying with backoff.
//! It reads and writes only the database and talks only SMTP and HTTP (one file per kind of
//! notifier, see [`send`]); the writer thread queues alerts in the same transaction as the
//! state change and sends `()` on `wake` after committing.
//!
//! One pass: record sends whose bookkeeping failed earlier, expand new alerts into one
//! delivery per notifier enabled now, drop the deliveries of deleted notifiers, then send
//! every due delivery, oldest alert first (old rows are pruned by the prune thread, see
//! `crate::prune`, so that a long prune never delays an alert). A success marks the
//! delivery SENT and counts `pass_count`; a failure counts `fail_count`,
//! logs one WARN line, and holds every delivery of that notifier for
//! `min(RetryInitial * 2^(attempts-1), RetryMax)`, so that a server that is down or hangs
//! costs at most one `SmtpTimeout` per retry and never holds up the other notifiers for
//! longer. Deliveries to a disabled notifier wait, untried, until it is enabled again (or the
//! alert passes `RetentionDays`).
//!
//! Guarantees: a delivery is marked SENT only after the server accepted the message, and is
//! never sent again once marked; a crash between the two (or a database outage that outlasts
//! the daemon) can send one message twice, nothing can lose one.

pub mod hooks;
pub mod message;
pub mod outbox;
mod send;
pub mod smtp;

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use std::time::{Duration, Instant};

use crossbeam_channel::{after, select, Receiver};
use log::{error, info, warn};

use crate::base::stop::Stop;
use crate::config::Config;
use crate::db::{self, notifiers::NotifierRow, Pool};
pub use send::send_test;
use send::{Failure, Outlets};

/// The longest sleep: alerts queued by hand, or a notifier enabled again, are seen this soon.
const RESCAN: Duration = Duration::from_secs(30);
/// How often alerts held by a maintenance window are looked at again.
const HELD_RESCAN: Duration = Duration::from_secs(2);
/// Deliveries read per query.
const BATCH: usize = 200;
/// Deliveries the last pass at shutdown reads at most; what it leaves stays in the outbox for
/// the next start.
pub const LAST_PASS_LIMIT: usize = 1000;
/// Left of the stop deadline for the writer's last rounds and the main thread's account.
const LAST_PASS_MARGIN: Duration = Duration::from_secs(2);

/// The thread body. It wakes on every message on `wake` (the writer sends `()` after each
/// commit that queued alerts, with `try_send` on a bounded(1) channel so wakes coalesce) and
/// on its own retry timer. Once `wake` is disconnected (the writer has written everything at
/// stop) it makes a last pass over what is owed, ignoring backoff, for at most
/// [`LAST_PASS_LIMIT`] deliveries and until `SmtpTimeout` has passed or the stop deadline is
/// near, whichever comes first (a send started before then may take one more `SmtpTimeout`).
pub fn run(config: &Config, pool: &Pool, wake: &Receiver<()>, stop: &Stop) {
    let mut state = Notifier::new(config, pool, stop);
    while !stop.requested() {
        crate::base::fault::point("notifier");
        let wait = state.guarded_pass(None);
        select! {
            recv(wake) -> msg => if msg.is_err() { break },
            recv(after(wait)) -> _ => {},
            recv(stop.channel()) -> _ => {},
        }
    }
    // Let the writer write its last alerts (it drops `wake` when done), within the time
    // the stop leaves.
    let left = stop.time_left().unwrap_or(config.notify.smtp_timeout);
    let end = Instant::now() + left.saturating_sub(LAST_PASS_MARGIN);
    while wake.recv_deadline(end).is_ok() {}
    let deadline = end.min(Instant::now() + config.notify.smtp_timeout);
    state.guarded_pass(Some(deadline));
    info!("notifier: stopped");
}

/// How long a claim on a delivery holds: long enough for a send that meets every timeout
/// (connect, greeting, each command) before another node may take the delivery over.
pub fn claim_lease(smtp_timeout: Duration) -> Duration {
    smtp_timeout * 4 + Duration::from_secs(10)
}

/// The thread's state between passes.
struct Notifier<'a> {
    config: &'a Config,
    pool: &'a Pool,
    stop: &'a Stop,
    outlets: Outlets<'a>,
    /// Sends the server accepted but the database did not record yet: recorded first.
    unrecorded: Vec<(u64, u64)>,
    /// The configuration error last logged per notifier, so each is logged once.
    config_errors: HashMap<u64, String>,
    db_down: bool,
    /// This node's name, which its claims on deliveries carry.
    node: String,
}

impl<'a> Notifier<'a> {
    fn new(config: &'a Config, pool: &'a Pool, stop: &'a Stop) -> Self {
        Notifier {
            config,
            pool,
            stop,
            outlets: Outlets::new(config, pool),
            unrecorded: Vec::new(),
            config_errors: HashMap::new(),
            db_down: false,
            node: config.cluster.node_name(),
        }
    }

    /// One pass; a panic in it is logged and the thread goes on. Returns how long to sleep.
    fn guarded_pass(&mut self, shutdown: Option<Instant>) -> Duration {
        match catch_unwind(AssertUnwindSafe(|| self.pass(shutdown))) {
            Ok(Ok(wait)) => {
                if self.db_down {
                    info!("notifier: database reachable again");
                    self.db_down = false;
                }
                wait
            }
            Ok(Err(e)) => {
                if !self.db_down {
                    error!("notifier: {e}; alerts stay queued, retrying");
                    self.db_down = true;
                }
                self.config.notify.retry_initial.min(RESCAN)
            }
            Err(_) => {
                error!("notifier: a pass panicked; alerts stay queued, retrying");
                self.config.notify.retry_initial.min(RESCAN)
            }
        }
    }

    /// `shutdown`: the last pass, which tries everything owed (ignoring backoff) and starts no
    /// send after that instant.
    fn pass(&mut self, shutdown: Option<Instant>) -> Result<Duration, db::Error> {
        let pool = self.pool;
        let notifiers = db::with_conn(pool, |conn| self.housekeeping(conn))?;
        let last = shutdown.is_some();
        let limit = if last { LAST_PASS_LIMIT } else { BATCH };
        let mut failed: HashSet<u64> = HashSet::new();
        loop {
            let due = db::with_conn(pool, |conn| outbox::due(conn, &self.node, limit, last))?;
            let mut progress = false;
            for d in &due {
                // A stop asked during a pass leaves the rest to the last pass; the last pass
                // itself ends at its deadline.
                let out_of_time = shutdown.is_some_and(|t| Instant::now() >= t);
                if out_of_time || (!last && self.stop.requested()) {
                    return Ok(Duration::ZERO);
                }
                let Some(row) = notifiers.get(&d.notifier_id) else {
                    continue; // deleted since this pass began: dropped by the next pass
                };
                if failed.contains(&row.id) {
                    continue;
                }
                progress = true;
                if !self.deliver_and_record(row, d)? {
                    failed.insert(row.id);
                }
            }
            if last || !progress || due.len() < BATCH {
                break;
            }
        }
        let next =
            db::with_conn(pool, |conn| outbox::next_due(conn, &self.node))?.unwrap_or(RESCAN);
        // Alerts held by a maintenance window go out soon after it ends (or is ended).
        let next = if db::with_conn(pool, outbox::held)? {
            next.min(HELD_RESCAN)
        } else {
            next
        };
        Ok(next.clamp(Duration::from_millis(20), RESCAN))
    }

    /// The bookkeeping before sending: sends recorded late, new alerts expanded into
    /// deliveries, deliveries of deleted notifiers dropped. Returns the notifiers by id.
    fn housekeeping(
        &mut self,
        conn: &mut db::Conn,
    ) -> Result<HashMap<u64, NotifierRow>, db::Error> {
        while let Some(&(alert, notifier)) = self.unrecorded.last() {
            outbox::mark_sent(conn, alert, notifier)?;
            self.unrecorded.pop();
        }
        let expanded = outbox::expand(conn)?;
        if expanded > 0 {
            log::debug!("notifier: {expanded} new alerts expanded into deliveries");
        }
        let orphans = outbox::drop_orphans(conn)?;
        if orphans > 0 {
            info!("notifier: dropped {orphans} deliveries owed to deleted notifiers");
        }
        let notifiers: HashMap<u64, NotifierRow> = db::notifiers::all(conn)?
            .into_iter()
            .map(|n| (n.id, n))
            .collect();
        for n in notifiers.values() {
            db::notifiers::repair(conn, n.id, &n.fixes())?;
        }
        self.outlets
            .retain(&notifiers.keys().copied().collect::<Vec<_>>());
        Ok(notifiers)
    }

    /// Sends one delivery (holding no pooled connection across the SMTP conversation) and
    /// records the outcome; false when the send failed.
    fn deliver_and_record(
        &mut self,
        row: &NotifierRow,
        d: &outbox::Due,
    ) -> Result<bool, db::Error> {
        // Every node's notifier sends the outbox: a delivery is sent by the one that claims it.
        let lease = claim_lease(self.config.notify.smtp_timeout);
        let claimed = db::with_conn(self.pool, |conn| {
            outbox::claim(conn, d.alert.id, row.id, &self.node, lease)
        })?;
        if !claimed {
            log::debug!(
                "alert {} to notifier {}: claimed by another node",
                d.alert.id,
                row.id
            );
            return Ok(true);
        }
        let sent = self.outlets.deliver(row, d);
        if !matches!(sent, Err(Failure::Config(_))) {
            // The row can send again: its next configuration error is logged.
            self.config_errors.remove(&row.id);
        }
        match sent {
            Ok(()) => {
                self.unrecorded.push((d.alert.id, row.id));
                db::with_conn(self.pool, |conn| {
                    outbox::mark_sent(conn, d.alert.id, row.id)
                })?;
                self.unrecorded.pop();
                Ok(true)
            }
            Err(failure) => {
                let notify = &self.config.notify;
                let wait = outbox::backoff(notify.retry_initial, notify.retry_max, d.attempts + 1);
                self.log_failure(row, d, &failure, wait);
                db::with_conn(self.pool, |conn| {
                    outbox::mark_failed(conn, d.alert.id, row.id, failure.reason(), wait)
                })?;
                Ok(false)
            }
        }
    }

    /// One WARN line per failed send; a configuration error (unknown type, bad params) only
    /// the first time it is met for that notifier.
    fn log_failure(
        &mut self,
        row: &NotifierRow,
        d: &outbox::Due,
        failure: &Failure,
        wait: Duration,
    ) {
        if let Failure::Config(reason) = failure {
            if self.config_errors.get(&row.id) == Some(reason) {
                return;
            }
            self.config_errors.insert(row.id, reason.clone());
        }
        let reason = failure.reason();
        warn!(
            "notifier {} ({}) <{}>: alert {} for target {} not sent (attempt {}), next try in {}s: {reason}",
            row.id,
            row.name,
            hooks::shown_address(row),
            d.alert.id,
            d.alert.target_id,
            d.attempts + 1,
            wait.as_secs_f64().ceil()
        );
    }
}
