//! The prune thread (`skypunch-prune`): at start and every [`PRUNE_EVERY`], deletes the rows
//! past their retention, the outbox's (`[notifications] RetentionDays`, see
//! `notifier::outbox::prune`, and the settled confirmation requests alike) then the history's (`[history]`, see `db::history::prune`). It
//! reads only the configuration and writes only the database, one bounded statement at a
//! time, each on a connection checked out for it alone. It runs apart from the notifier so
//! that a prune of millions of rows never delays an alert. A stop request ends it at once, or
//! after the statement in hand.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use log::{error, info, warn};

use crate::base::stop::Stop;
use crate::config::Config;
use crate::db::{self, Pool};
use crate::notifier::outbox;

/// How often old rows are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How soon a prune that failed (the database away, a pass that panicked) is tried again.
const RETRY: Duration = Duration::from_secs(30);

/// The thread body: a prune now, then one every [`PRUNE_EVERY`], until the stop.
pub fn run(config: &Config, pool: &Pool, stop: &Stop) {
    let mut failing = false;
    while !stop.requested() {
        crate::base::fault::point("prune");
        let wait = match catch_unwind(AssertUnwindSafe(|| pass(config, pool, stop))) {
            Ok(Ok(())) => {
                if failing {
                    info!("prune: database reachable again");
                    failing = false;
                }
                PRUNE_EVERY
            }
            Ok(Err(e)) => {
                if !failing {
                    warn!(
                        "prune: {e}; old rows stay until a prune succeeds (retrying every {} s)",
                        RETRY.as_secs()
                    );
                    failing = true;
                }
                RETRY
            }
            Err(_) => {
                error!("prune: a pass panicked; retrying in {} s", RETRY.as_secs());
                RETRY
            }
        };
        if stop.sleep(wait) {
            break;
        }
    }
    log::debug!("prune: stopped");
}

/// One prune of the outbox and the history; logs what it removed.
fn pass(config: &Config, pool: &Pool, stop: &Stop) -> Result<(), db::Error> {
    let keep_going = || !stop.requested();
    log::debug!(
        "prune: pruning on thread {}",
        std::thread::current().name().unwrap_or("(unnamed)")
    );
    let p = outbox::prune(pool, config.notify.retention, &keep_going)?;
    if p != outbox::Pruned::default() {
        info!(
            "notifier: pruned {} alerts and {} deliveries older than the retention period; \
             dropped {} owed to notifiers disabled that long",
            p.alerts, p.deliveries, p.dropped
        );
    }
    let settled = db::confirm::poll::prune(pool, config.notify.retention, &keep_going)?;
    if settled > 0 {
        info!("confirm: pruned {settled} settled confirmation requests older than the retention period");
    }
    // A test holds the prune here to stand for one of millions of rows.
    crate::base::fault::hold("prune", &keep_going);
    if !keep_going() {
        return Ok(());
    }
    let p = db::history::prune(pool, &config.history, &keep_going)?;
    if p != db::history::Pruned::default() {
        info!(
            "history: pruned {} hourly and {} daily rollup rows and {} incidents past \
             their retention",
            p.hours, p.days, p.incidents
        );
    }
    Ok(())
}
