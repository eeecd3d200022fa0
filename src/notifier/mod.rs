//! The notifier thread (`skypunch-notifier`): sends the alerts owed in the outbox (tables
//! `alerts` and `alert_deliveries`, see [`outbox`]) to every notifier, grouping the alerts of a
//! storm into one message per notifier ([`group`]), retrying with backoff. It reads and writes
//! only the database and talks only SMTP and HTTP (one file per kind of notifier, see
//! [`send`]); the writer thread queues alerts in the same transaction as the state change
//! and sends `()` on `wake` after committing.
//!
//! One pass: record sends whose bookkeeping failed earlier, expand new alerts into one
//! delivery per notifier enabled now, drop the deliveries of deleted notifiers, then give
//! each enabled notifier its turn ([`turn`]) in rounds until none has anything due: a
//! message of its own per alert (`GroupWait` 0), or, once its group is due, one message
//! with every alert it is owed (old rows are pruned by the prune thread, see
//! `crate::prune`, so that a long prune never delays an alert). A success marks the
//! message's deliveries SENT and counts them in `pass_count`; a failure counts `fail_count`,
//! logs one WARN line, and holds every delivery of that notifier for
//! `min(RetryInitial * 2^(attempts-1), RetryMax)`, so that a server that is down or hangs
//! costs at most one `SmtpTimeout` per retry and never holds up the other notifiers for
//! longer. Deliveries to a disabled notifier wait, untried, until it is enabled again (or the
//! alert passes `RetentionDays`).
//!
//! Guarantees: a delivery is marked SENT only after the server accepted the message that
//! carries it, in one transaction for the whole message, and is never sent again once
//! marked; a crash between the two (or a database outage that outlasts the daemon) can send
//! one message (a single alert, or a whole group) twice, nothing can lose one. The claim a
//! node takes on a delivery before sending it is renewed while a slow mail goes out
//! ([`keep`]), so another node does not take it over mid-send. A group is
//! formed from the outbox's rows at the time it is sent, so a restart or a crash forms it
//! again from what is still owed.

pub mod group;
pub mod hooks;
mod keep;
pub mod message;
pub mod notice;
pub mod outbox;
mod pages;
mod send;
pub mod smtp;
mod turn;

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use std::time::{Duration, Instant};

use crossbeam_channel::{after, select, Receiver};
use log::{error, info};

use crate::base::stop::Stop;
use crate::config::Config;
use crate::db::{self, notifiers::NotifierRow, Pool};
pub use send::send_test;
use send::Outlets;
use turn::Turn;

/// The longest sleep: alerts queued by hand, or a notifier enabled again, are seen this soon.
const RESCAN: Duration = Duration::from_secs(30);
/// How often alerts held by a maintenance window are looked at again.
const HELD_RESCAN: Duration = Duration::from_secs(2);
/// Deliveries a notifier's turn sends, each a message of its own, before the next notifier's
/// turn.
const BATCH: usize = 200;
/// Messages the last pass at shutdown sends at most; what it leaves stays in the outbox for
/// the next start.
pub const LAST_PASS_LIMIT: usize = 1000;
/// Left of the stop deadline for the writer's last rounds and the main thread's account.
const LAST_PASS_MARGIN: Duration = Duration::from_secs(2);

/// The thread body. It wakes on every message on `wake` (the writer sends `()` after each
/// commit that queued alerts, with `try_send` on a bounded(1) channel so wakes coalesce) and
/// on its own timer (a retry, or a group coming due). Once `wake` is disconnected (the writer
/// has written everything at stop) it makes a last pass over what is owed, ignoring backoff
/// and grouping waits (what is owed goes at once, still grouped), for at most
/// [`LAST_PASS_LIMIT`] messages and until `SmtpTimeout` has passed or the stop deadline is
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

/// How long a claim on a delivery holds: long enough for a send that meets several timeouts
/// (connect, greeting, each command) before another node may take the delivery over; a
/// mail's is renewed every `SmtpTimeout` while it is sent ([`keep`]).
pub fn claim_lease(smtp_timeout: Duration) -> Duration {
    smtp_timeout * 4 + Duration::from_secs(10)
}

/// The thread's state between passes.
struct Notifier<'a> {
    config: &'a Config,
    pool: &'a Pool,
    stop: &'a Stop,
    outlets: Outlets<'a>,
    /// Messages the server accepted but the database did not record yet, as the notifier
    /// and the alerts they carried: recorded first.
    unrecorded: Vec<(u64, Vec<u64>)>,
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

    /// `shutdown`: the last pass, which tries everything owed (ignoring backoff and the
    /// grouping's waits) and starts no send after that instant.
    fn pass(&mut self, shutdown: Option<Instant>) -> Result<Duration, db::Error> {
        let pool = self.pool;
        let notifiers = db::with_conn(pool, |conn| self.housekeeping(conn))?;
        let last = shutdown.is_some();
        let mut budget = if last { LAST_PASS_LIMIT } else { usize::MAX };
        let mut ids: Vec<u64> = notifiers
            .values()
            .filter(|n| n.enabled)
            .map(|n| n.id)
            .collect();
        ids.sort_unstable();
        let mut wait = RESCAN;
        let mut done: HashSet<u64> = HashSet::new();
        // A storm too large for one message: the rest follows at once.
        let mut full: HashSet<u64> = HashSet::new();
        loop {
            let mut progress = false;
            for row in ids.iter().filter_map(|id| notifiers.get(id)) {
                // A stop asked during a pass leaves the rest to the last pass; the last pass
                // itself ends at its deadline or its budget.
                let out_of_time = shutdown.is_some_and(|t| Instant::now() >= t);
                if out_of_time || budget == 0 || (!last && self.stop.requested()) {
                    return Ok(Duration::ZERO);
                }
                if done.contains(&row.id) {
                    continue;
                }
                match self.turn(row, last, full.remove(&row.id), &mut budget)? {
                    Turn::Sent { failed, filled } => {
                        progress = true;
                        if failed && last {
                            done.insert(row.id); // the last pass tries each notifier once
                        } else if filled {
                            full.insert(row.id);
                        }
                        // A failed one's next turn says when its backoff ends.
                    }
                    Turn::Wait(until) => {
                        wait = wait.min(until);
                        done.insert(row.id);
                    }
                    Turn::Idle => {
                        done.insert(row.id);
                    }
                }
            }
            if !progress {
                break;
            }
        }
        // Alerts held by a maintenance window go out soon after it ends (or is ended).
        if db::with_conn(pool, outbox::held)? {
            wait = wait.min(HELD_RESCAN);
        }
        Ok(wait.clamp(Duration::from_millis(20), RESCAN))
    }

    /// The bookkeeping before sending: sends recorded late, new alerts expanded into
    /// deliveries, deliveries of deleted notifiers dropped. Returns the notifiers by id.
    fn housekeeping(
        &mut self,
        conn: &mut db::Conn,
    ) -> Result<HashMap<u64, NotifierRow>, db::Error> {
        while let Some((notifier, alerts)) = self.unrecorded.last() {
            outbox::mark_sent(conn, *notifier, alerts)?;
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
}
