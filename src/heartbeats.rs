//! The heartbeat thread ("skypunch-heartbeats"): once a second ([`PUSH_POLL`]), reads the
//! rows of the targets pushed in the last seconds (whichever node's HTTP server got the
//! push) into this node's [`Heartbeats`], which tell the wheel which targets were pushed and
//! the workers what the pushes said (see `check::push`). Reads the `targets` table through
//! the `last_push_at` index; writes nothing.
//!
//! Each read takes the rows pushed since the previous read's database clock, less
//! [`SLACK_MICROS`] (a push whose statement began before that read but committed after it
//! is not missed); a push read twice is told by its `push_count`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::base::stop::Stop;
use crate::check::{Heard, Heartbeats, PUSH_POLL};
use crate::db::{self, Pool};

/// Pushes this long before the previous read are read again.
const SLACK_MICROS: i64 = 5_000_000;
/// How often what the node holds of targets long gone is cleared.
const FORGET_EVERY: Duration = Duration::from_secs(600);

/// The thread's state.
pub struct Watcher {
    pool: Pool,
    heartbeats: Arc<Heartbeats>,
    /// The database's clock at the last read (microseconds); 0 before the first, which
    /// reads every push a row holds.
    read_to: i64,
    outage_logged: bool,
    forgot_at: Instant,
}

impl Watcher {
    pub fn new(pool: Pool, heartbeats: Arc<Heartbeats>) -> Watcher {
        Watcher {
            pool,
            heartbeats,
            read_to: 0,
            outage_logged: false,
            forgot_at: Instant::now(),
        }
    }

    /// One read; a database error is logged once per outage, and the next read tries again
    /// from where the last good one ended.
    pub fn pass(&mut self) {
        let started = Instant::now();
        let since = if self.read_to == 0 {
            0
        } else {
            self.read_to - SLACK_MICROS
        };
        let read = db::with_conn(&self.pool, |conn| {
            let clock = db::targets::db_clock(conn)?;
            let pushed = db::targets::push::pushed_since(conn, since)?;
            Ok((clock, pushed))
        });
        match read {
            Ok((clock, pushed)) => {
                let now = Instant::now();
                let mut new = 0;
                for p in pushed {
                    let heard = Heard {
                        count: p.count,
                        at: now.checked_sub(p.age).unwrap_or(now),
                        wall_ms: p.wall_ms,
                        failed: p.failed,
                        message: p.message,
                    };
                    new += usize::from(self.heartbeats.heard(p.id, heard));
                }
                self.heartbeats.read(started);
                self.read_to = clock;
                if new > 0 {
                    log::debug!("heartbeats: {new} new pushes read");
                }
                if self.outage_logged {
                    log::warn!("heartbeats: the database answers again; pushes are read");
                    self.outage_logged = false;
                }
            }
            Err(e) if !self.outage_logged => {
                log::error!(
                    "heartbeats: cannot read the pushes, will retry every {} s (no PUSH \
                     target is declared missing meanwhile): {e}",
                    PUSH_POLL.as_secs()
                );
                self.outage_logged = true;
            }
            Err(_) => {}
        }
        if started.duration_since(self.forgot_at) >= FORGET_EVERY {
            self.heartbeats.forget_stale(started);
            self.forgot_at = started;
        }
    }
}

/// The thread body: a read every [`PUSH_POLL`] until the stop request.
pub fn run(mut watcher: Watcher, stop: &Stop) {
    loop {
        crate::base::fault::point("heartbeats");
        watcher.pass();
        if stop.sleep(PUSH_POLL) {
            return;
        }
    }
}
