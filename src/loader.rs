//! The loader thread ("skypunch-loader"): reads the enabled targets at start, then every
//! `ReloadInterval` finds what was changed with the mysql client (insert, update, enable,
//! disable, delete) and tells the wheel. Reads the `targets` table; writes only the
//! `config error: ...` of rows that do not validate.
//!
//! A scan reads `(id, config_changed)` of recently changed rows through an index, and a count
//! and id sum of the enabled rows to notice deletions; whole rows are read only for the rows
//! that changed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::db::{self, targets::TargetRow, Pool};
use crate::model::TargetId;
use crate::target;
use crate::wheel::Control;

/// Rows changed this long before the previous scan are looked at again, so that a
/// transaction that committed late with an earlier timestamp is not missed.
const SLACK_MICROS: i64 = 5_000_000;

/// What the loader knows: every enabled row it has seen, by revision.
pub struct Loader {
    pool: Pool,
    wheel: Sender<Control>,
    known: HashMap<TargetId, i64>,
    /// Enabled rows that do not validate, with the reason written to them.
    invalid: HashMap<TargetId, String>,
    /// The database clock at the previous scan (microseconds).
    scanned_at: i64,
    loaded: bool,
    outage_logged: bool,
}

impl Loader {
    pub fn new(pool: Pool, wheel: Sender<Control>) -> Loader {
        Loader {
            pool,
            wheel,
            known: HashMap::new(),
            invalid: HashMap::new(),
            scanned_at: 0,
            loaded: false,
            outage_logged: false,
        }
    }

    /// One pass: the first read, or a scan for changes. Database errors are logged once per
    /// outage and the pass is retried next time.
    pub fn pass(&mut self) {
        let result = if self.loaded {
            self.scan()
        } else {
            self.load_all()
        };
        match result {
            Ok(()) if self.outage_logged => {
                log::warn!("loader: the database answers again; target changes are picked up");
                self.outage_logged = false;
            }
            Ok(()) => {}
            Err(e) if !self.outage_logged => {
                log::error!("loader: cannot read targets, will retry: {e}");
                self.outage_logged = true;
            }
            Err(_) => {}
        }
    }

    fn load_all(&mut self) -> Result<(), db::Error> {
        const PAGE: usize = 5000;
        let started = Instant::now();
        let mut conn = db::checkout(&self.pool)?;
        let scanned_at = db::targets::db_clock(&mut conn)?;
        let (mut count, mut invalid, mut after) = (0, 0, 0);
        loop {
            let rows = db::targets::enabled_page(&mut conn, after, PAGE)?;
            for row in &rows {
                if !self.apply(&mut conn, row, true)? {
                    invalid += 1;
                }
            }
            count += rows.len();
            match rows.last() {
                Some(last) if rows.len() == PAGE => after = last.id,
                _ => break,
            }
        }
        self.scanned_at = scanned_at;
        self.loaded = true;
        release_free_memory();
        log::info!(
            "loaded {count} enabled targets ({invalid} with config errors) in {} ms",
            started.elapsed().as_millis()
        );
        Ok(())
    }

    fn scan(&mut self) -> Result<(), db::Error> {
        let mut conn = db::checkout(&self.pool)?;
        let scanned_at = db::targets::db_clock(&mut conn)?;
        let changed = db::targets::changed_since(&mut conn, self.scanned_at - SLACK_MICROS)?;
        let ids: Vec<TargetId> = changed
            .iter()
            .filter(|(id, revision)| self.known.get(id) != Some(revision))
            .map(|(id, _)| *id)
            .collect();
        self.refresh(&mut conn, &ids)?;
        self.scanned_at = scanned_at;
        let (count, sum) = db::targets::enabled_fingerprint(&mut conn)?;
        let known_sum = self.known.keys().fold(0u64, |s, id| s.wrapping_add(*id));
        if count != self.known.len() as u64 || sum != known_sum {
            let unseen = self.reconcile(&mut conn)?;
            self.refresh(&mut conn, &unseen)?;
        }
        self.keep_config_errors(&mut conn)
    }

    /// Marks again a row whose `config error: ...` was overwritten without an edit: a check
    /// that was in flight when the row was edited into a bad one writes its (older) result
    /// over the error, and no revision change would bring the loader back to it.
    fn keep_config_errors(&mut self, conn: &mut db::Conn) -> Result<(), db::Error> {
        let ids: Vec<TargetId> = self.invalid.keys().copied().collect();
        for id in db::targets::without_config_error(conn, &ids)? {
            if let Some(reason) = self.invalid.get(&id) {
                db::targets::mark_config_error(conn, id, reason)?;
            }
        }
        Ok(())
    }

    /// Re-reads these rows and schedules, reschedules or drops each.
    fn refresh(&mut self, conn: &mut db::Conn, ids: &[TargetId]) -> Result<(), db::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        for row in db::targets::by_ids(conn, ids)? {
            if row.enabled {
                self.apply(conn, &row, false)?;
            } else if self.known.remove(&row.id).is_some() {
                self.invalid.remove(&row.id);
                log::info!("[{}] target disabled: no longer checked", row.id);
                let _ = self.wheel.send(Control::Remove(row.id));
            }
        }
        Ok(())
    }

    /// Removes deleted rows; returns enabled ids the loader has not seen.
    fn reconcile(&mut self, conn: &mut db::Conn) -> Result<Vec<TargetId>, db::Error> {
        let enabled: std::collections::HashSet<TargetId> =
            db::targets::enabled_ids(conn)?.into_iter().collect();
        let gone: Vec<TargetId> = self
            .known
            .keys()
            .filter(|id| !enabled.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.known.remove(&id);
            self.invalid.remove(&id);
            log::info!("[{id}] target deleted: no longer checked");
            let _ = self.wheel.send(Control::Remove(id));
        }
        Ok(enabled
            .into_iter()
            .filter(|id| !self.known.contains_key(id))
            .collect())
    }

    /// Schedules a valid row, or records its config error. Returns whether it was valid.
    fn apply(
        &mut self,
        conn: &mut db::Conn,
        row: &TargetRow,
        first: bool,
    ) -> Result<bool, db::Error> {
        self.known.insert(row.id, row.revision);
        match target::from_row(row) {
            Ok(t) => {
                self.invalid.remove(&row.id);
                if !first {
                    log::info!(
                        "[{}] target {} scheduled every {}s",
                        t.id,
                        printable(&t.name),
                        t.frequency.as_secs()
                    );
                }
                let _ = self.wheel.send(Control::Upsert {
                    target: Arc::new(t),
                    first,
                });
                Ok(true)
            }
            Err(reason) => {
                log::error!(
                    "[{}] {} config error: {} (not checked until the row is fixed)",
                    row.id,
                    printable(&row.name),
                    printable(&reason)
                );
                let _ = self.wheel.send(Control::Remove(row.id));
                let already = row.status == "FAIL"
                    && row.status_description.as_deref()
                        == Some(&format!("config error: {reason}")[..]);
                if !already {
                    db::targets::mark_config_error(conn, row.id, &reason)?;
                }
                self.invalid.insert(row.id, reason);
                Ok(false)
            }
        }
    }
}

/// A value from a row, fit for one log line: a name or URL holding a line break must not
/// forge a log line of its own.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Gives the memory freed after the first load back to the system: glibc keeps a freed peak
/// otherwise, and 100,000 rows read at start would stay in the daemon's RSS for good.
fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The thread body: a pass every `interval` until `shutdown` is closed.
pub fn run(mut loader: Loader, interval: Duration, shutdown: Receiver<()>) {
    loop {
        loader.pass();
        match shutdown.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}
