//! The notifier thread (`skypunch-notifier`): sends the alerts owed in the outbox (tables
//! `alerts` and `alert_deliveries`, see [`outbox`]) to every notifier, retrying with backoff.
//! It reads and writes only the database and talks only SMTP; the writer thread queues alerts
//! in the same transaction as the state change and sends `()` on `wake` after committing.
//!
//! One pass: record sends whose bookkeeping failed earlier, prune (at start and every
//! [`PRUNE_EVERY`]), expand new alerts into one delivery per notifier enabled now, drop the
//! deliveries of deleted notifiers, then send every due delivery, oldest alert first. A
//! success marks the delivery SENT and counts `pass_count`; a failure counts `fail_count`,
//! logs one WARN line, and holds every delivery of that notifier for
//! `min(RetryInitial * 2^(attempts-1), RetryMax)`, so that a server that is down or hangs
//! costs at most one `SmtpTimeout` per retry and never holds up the other notifiers for
//! longer. Deliveries to a disabled notifier wait, untried, until it is enabled again (or the
//! alert passes `RetentionDays`).
//!
//! Guarantees: a delivery is marked SENT only after the server accepted the message, and is
//! never sent again once marked; a crash between the two (or a database outage that outlasts
//! the daemon) can send one message twice, nothing can lose one.

pub mod message;
pub mod outbox;
pub mod smtp;

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{after, select, Receiver};
use log::{error, info, warn};

use crate::config::Config;
use crate::db::{self, notifiers::NotifierRow, Pool};

/// How often old rows are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// The longest sleep: alerts queued by hand, or a notifier enabled again, are seen this soon.
const RESCAN: Duration = Duration::from_secs(30);
/// Deliveries read per query.
const BATCH: usize = 200;
/// Deliveries the last pass at shutdown reads at most.
const LAST_PASS_LIMIT: usize = 100_000;

/// Starts the notifier thread ("skypunch-notifier"). It wakes on every message on `wake` (the
/// writer sends `()` after each commit that queued alerts, with `try_send` on a bounded(1)
/// channel so wakes coalesce) and on its own retry timer. It returns once `wake` is
/// disconnected and what is owed has been tried once more, ignoring backoff, for at most
/// `SmtpTimeout` (a send started before then may take one more `SmtpTimeout`).
pub fn spawn(config: Arc<Config>, pool: Pool, wake: Receiver<()>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("skypunch-notifier".into())
        .spawn(move || run(&config, &pool, &wake))
        .expect("spawning the notifier thread")
}

fn run(config: &Config, pool: &Pool, wake: &Receiver<()>) {
    let mut state = Notifier::new(config, pool);
    loop {
        let wait = state.guarded_pass(None);
        select! {
            recv(wake) -> msg => if msg.is_err() { break },
            recv(after(wait)) -> _ => {}
        }
    }
    let deadline = Instant::now() + config.notify.smtp_timeout;
    state.guarded_pass(Some(deadline));
    info!("notifier: stopped");
}

/// `skypunch notifiers ID test`: sends a test message now (enabled or not; it is not counted
/// in the notifier's pass or fail count) and prints the SMTP outcome; `Err(reason)` on
/// failure.
pub fn send_test(config: &Config, row: &NotifierRow) -> Result<(), String> {
    let mailer = smtp::Mailer::build(row, &config.notify.from, config.notify.smtp_timeout)?;
    let rendered = message::render_test(&row.name, &mailer.server());
    let msg = message::build(&rendered, &mailer.from, &mailer.to)?;
    mailer.send(&msg).map_err(|e| {
        format!(
            "notifier {}: sending to {} via {} failed: {e}",
            row.id,
            row.address,
            mailer.server()
        )
    })?;
    println!(
        "Notifier: {} test message sent to {} via {}",
        row.name,
        row.address,
        mailer.server()
    );
    Ok(())
}

/// The thread's state between passes.
struct Notifier<'a> {
    config: &'a Config,
    pool: &'a Pool,
    mailers: smtp::Cache,
    /// Sends the server accepted but the database did not record yet: recorded first.
    unrecorded: Vec<(u64, u64)>,
    /// The configuration error last logged per notifier, so each is logged once.
    config_errors: HashMap<u64, String>,
    db_down: bool,
    last_prune: Option<Instant>,
}

impl<'a> Notifier<'a> {
    fn new(config: &'a Config, pool: &'a Pool) -> Self {
        Notifier {
            config,
            pool,
            mailers: smtp::Cache::default(),
            unrecorded: Vec::new(),
            config_errors: HashMap::new(),
            db_down: false,
            last_prune: None,
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
        let mut conn = db::checkout(self.pool)?;
        while let Some(&(alert, notifier)) = self.unrecorded.last() {
            outbox::mark_sent(&mut conn, alert, notifier)?;
            self.unrecorded.pop();
        }
        if self.last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            let p = outbox::prune(&mut conn, self.config.notify.retention)?;
            if p != outbox::Pruned::default() {
                info!(
                    "notifier: pruned {} alerts and {} deliveries older than the retention period; \
                     dropped {} owed to notifiers disabled that long",
                    p.alerts, p.deliveries, p.dropped
                );
            }
            self.last_prune = Some(Instant::now());
        }
        outbox::expand(&mut conn)?;
        let orphans = outbox::drop_orphans(&mut conn)?;
        if orphans > 0 {
            info!("notifier: dropped {orphans} deliveries owed to deleted notifiers");
        }
        let notifiers: HashMap<u64, NotifierRow> = db::notifiers::all(&mut conn)?
            .into_iter()
            .map(|n| (n.id, n))
            .collect();
        self.mailers
            .retain(&notifiers.keys().copied().collect::<Vec<_>>());

        let last = shutdown.is_some();
        let mut failed: HashSet<u64> = HashSet::new();
        loop {
            let due = outbox::due(&mut conn, if last { LAST_PASS_LIMIT } else { BATCH }, last)?;
            let mut progress = false;
            for d in &due {
                if shutdown.is_some_and(|t| Instant::now() >= t) {
                    return Ok(Duration::ZERO);
                }
                let Some(row) = notifiers.get(&d.notifier_id) else {
                    continue; // deleted since this pass began: dropped by the next pass
                };
                if failed.contains(&row.id) {
                    continue;
                }
                progress = true;
                // No pooled connection is held across the SMTP conversation.
                drop(conn);
                match self.deliver(row, d) {
                    Ok(()) => {
                        self.unrecorded.push((d.alert.id, row.id));
                        conn = db::checkout(self.pool)?;
                        outbox::mark_sent(&mut conn, d.alert.id, row.id)?;
                        self.unrecorded.pop();
                    }
                    Err(failure) => {
                        failed.insert(row.id);
                        let wait = outbox::backoff(
                            self.config.notify.retry_initial,
                            self.config.notify.retry_max,
                            d.attempts + 1,
                        );
                        self.log_failure(row, d, &failure, wait);
                        conn = db::checkout(self.pool)?;
                        outbox::mark_failed(&mut conn, d.alert.id, row.id, failure.reason(), wait)?;
                    }
                }
            }
            if last || !progress || due.len() < BATCH {
                break;
            }
        }
        let next = outbox::next_due(&mut conn)?.unwrap_or(RESCAN);
        Ok(next.clamp(Duration::from_millis(20), RESCAN))
    }

    /// Renders and sends one delivery; the error is the reason, without secrets.
    fn deliver(&mut self, row: &NotifierRow, d: &outbox::Due) -> Result<(), Failure> {
        let notify = &self.config.notify;
        let mailer = match self.mailers.get(row, &notify.from, notify.smtp_timeout) {
            Ok(m) => m,
            Err(reason) => return Err(Failure::Config(reason.clone())),
        };
        self.config_errors.remove(&row.id);
        let rendered = message::render(&d.alert);
        let msg = message::build(&rendered, &mailer.from, &mailer.to).map_err(Failure::Send)?;
        mailer.send(&msg).map_err(Failure::Send)?;
        info!(
            "notifier {} ({}) <{}>: sent alert {} `{}` via {}",
            row.id,
            row.name,
            row.address,
            d.alert.id,
            rendered.subject,
            mailer.server()
        );
        Ok(())
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
            row.address,
            d.alert.id,
            d.alert.target_id,
            d.attempts + 1,
            wait.as_secs_f64().ceil()
        );
    }
}

/// Why a delivery was not sent.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    /// The notifier row cannot send at all (unknown type, bad params or address): logged once.
    Config(String),
    /// The message or the SMTP conversation failed: logged every time.
    Send(String),
}

impl Failure {
    fn reason(&self) -> &str {
        match self {
            Failure::Config(r) | Failure::Send(r) => r,
        }
    }
}
