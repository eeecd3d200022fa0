//! Writer thread: what becomes of a batch once the store thread is done with it. Written rows
//! move on; a row refused for its values is dropped, logged and counted; a passing conflict is
//! retried at once; an outage holds everything (alerts up to `MaxPendingAlerts`) and retries
//! with backoff; a fenced node drops what it holds. No I/O.

use std::time::{Duration, Instant};

use super::batch::{Batch, Outcome, RefusedRow};
use super::{Writer, FLUSH_EVERY, RETRY_MAX, RETRY_MIN};
use crate::base::model::NewAlert;
use crate::base::rollup;

use crate::db::{self, Class};

/// An ongoing database outage, for the two log lines that bracket it.
pub(super) struct Outage {
    since: Instant,
    delay: Duration,
}

impl Writer {
    /// Takes in what the store thread did with the batch in flight.
    pub(super) fn settle(&mut self, outcome: Outcome) {
        let (reading, written_ids) = self
            .in_flight
            .take()
            .map(|b| (b.reading, b.ids))
            .unwrap_or_default();
        match outcome {
            Outcome::Written {
                checks,
                rows,
                alerts,
                refused,
                held,
                states,
                stale,
                withheld,
                withdrawn,
                took,
            } => {
                self.stats.batch_written(took, rows as u64);
                if rows + alerts > 0 {
                    log::debug!(
                        "wrote {checks} checks of {rows} targets and {alerts} alerts in {} ms",
                        took.as_millis()
                    );
                }
                let mut written_ids = written_ids;
                for r in &refused {
                    written_ids.remove(&r.id);
                }
                if let Some((batch, _)) = &held {
                    written_ids.retain(|id| !batch.updates.contains_key(id));
                }
                self.drop_refused(refused);
                self.moved_on(&written_ids, &stale);
                self.withdrawn(&withdrawn);
                self.withheld(&withheld);
                self.adopt(reading, states);
                if alerts > 0 {
                    // A full channel means a wake is already waiting: nothing is lost.
                    let _ = self.wake_notifier.try_send(());
                }
                match held {
                    Some((batch, error)) => {
                        self.take_back(batch);
                        self.failed(&error, Instant::now());
                    }
                    None => self.recovered(checks, rows, alerts),
                }
            }
            Outcome::Failed { batch, error, .. } if error.class() == Class::Fenced => {
                self.fenced(batch, &error);
            }
            Outcome::Failed {
                batch,
                error,
                tried,
            } => {
                self.take_back(batch);
                self.failed(&error, tried);
            }
        }
        self.purge();
    }

    /// This node was declared dead by the others, who took its targets over: what it holds
    /// is theirs to record now. Dropped, counted and logged; the cluster thread joins again.
    pub(super) fn fenced(&mut self, batch: Batch, error: &db::Error) {
        self.take_back(batch);
        let checks = self
            .pending
            .values()
            .map(|u| u.counts.checks())
            .sum::<u64>();
        let alerts = self.alerts.len();
        self.stats.add_results_dropped(checks);
        self.pending.clear();
        self.alerts.clear();
        self.states.clear();
        // The hourly rollups of those checks go too: the nodes that took the targets over
        // count their own.
        self.rollups.clear();
        if checks + alerts as u64 > 0 || !self.fence_logged {
            log::error!(
                "{error}: the {checks} checks and {alerts} alerts this node held are not recorded"
            );
        }
        self.fence_logged = true;
        self.retry_at = Some(Instant::now() + FLUSH_EVERY);
    }

    pub(super) fn drop_refused(&mut self, refused: Vec<RefusedRow>) {
        for r in refused {
            self.stats.add_results_dropped(r.checks);
            log::error!(
                "[{}] the results of {} checks and {} alerts were dropped: the row refused them \
                 ({}); fix the row's values",
                r.id,
                r.checks,
                r.alerts,
                r.error
            );
        }
    }

    /// Puts a batch that could not be written back in front of what came since.
    pub(super) fn take_back(&mut self, batch: Batch) {
        for (id, mut older) in batch.updates {
            if let Some(newer) = self.pending.remove(&id) {
                older.merge(newer);
            }
            self.pending.insert(id, older);
        }
        let newer = std::mem::take(&mut self.alerts);
        for alert in batch.alerts.into_iter().chain(newer) {
            self.push_alert(alert);
        }
        self.to_read.extend(batch.read);
        self.retract.extend(batch.retract);
        rollup::merge(&mut self.rollups, batch.rollups);
    }

    /// A write that did not go through: a passing conflict is retried at once; anything else
    /// starts (or continues) an outage with backoff.
    pub(super) fn failed(&mut self, e: &db::Error, tried: Instant) {
        let now = Instant::now();
        if e.class() == Class::Transient && self.outage.is_none() {
            log::warn!("writing check results met a passing conflict, retrying: {e}");
            self.retry_at = Some(now + FLUSH_EVERY);
            return;
        }
        let delay = match &mut self.outage {
            None => {
                log::error!("cannot write check results, holding them in memory and retrying: {e}");
                // From the try, not its failure: a checkout waits up to ConnectTimeout
                // before it fails, and that wait was already part of the outage.
                self.outage = Some(Outage {
                    since: tried,
                    delay: RETRY_MIN,
                });
                RETRY_MIN
            }
            Some(o) => {
                o.delay = (o.delay * 2).min(RETRY_MAX);
                log::debug!(
                    "writing check results failed again, retrying in {} ms: {e}",
                    o.delay.as_millis()
                );
                o.delay
            }
        };
        self.retry_at = Some(now + delay);
    }

    pub(super) fn recovered(&mut self, checks: u64, rows: usize, alerts: usize) {
        self.retry_at = None;
        self.fence_logged = false;
        if let Some(o) = self.outage.take() {
            log::warn!(
                "database writes work again after {:.1}s: wrote the {checks} checks of {rows} \
                 targets and {alerts} alerts held meanwhile",
                o.since.elapsed().as_secs_f64()
            );
        }
        if self.dropped_alerts > 0 {
            log::error!(
                "{} alerts were dropped during the outage (MaxPendingAlerts {})",
                self.dropped_alerts,
                self.max_alerts
            );
            self.dropped_alerts = 0;
        }
    }

    /// Holds an alert, dropping the oldest past `MaxPendingAlerts`: logged for the first drop
    /// and counted after that, so a long outage does not flood the log.
    pub(super) fn push_alert(&mut self, alert: NewAlert) {
        if self.alerts.len() >= self.max_alerts {
            if let Some(lost) = self.alerts.pop_front() {
                if self.dropped_alerts == 0 {
                    log::error!(
                        "alert buffer full ({} held while the database is away): dropping the \
                         oldest, starting with a {} alert for target {}; raise MaxPendingAlerts \
                         to hold more",
                        self.max_alerts,
                        lost.kind.as_str(),
                        lost.target_id
                    );
                }
                self.dropped_alerts += 1;
                self.stats.alert_dropped();
            }
        }
        self.alerts.push_back(alert);
    }
}

#[cfg(test)]
mod tests {

    use crate::base::stats::WriterStats;

    use super::*;
    use crate::base::model::{AlertKind, Status, TargetId};
    use crate::base::state::{Counts, RowUpdate};
    use crossbeam_channel::bounded;

    fn update(status: Status, counts: Counts, at: &str) -> RowUpdate {
        RowUpdate {
            status,
            previous_status: Status::New,
            description: String::new(),
            at: at.into(),
            counts,
            repeated_fails: 0,
            repeated_passes: 0,
            alerted: false,
            last_alerted: None,
            http_status: None,
            response_ms: 0,
            trace: String::new(),
            incidents: Vec::new(),
            seq: 0,
            cert: crate::base::state::CertSeen::NotTls,
            cert_alerted_for: None,
            phases: None,
        }
    }

    fn alert(id: TargetId) -> NewAlert {
        NewAlert {
            target_id: id,
            kind: AlertKind::Failure,
            trace: String::new(),
            parent: None,
            network: None,
            blind: false,
            confirm: None,
        }
    }

    #[test]
    fn a_deadlock_is_retried_at_once_without_an_outage() {
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(WriterStats::default(), wake, 100);
        w.pending
            .insert(1, update(Status::Pass, Counts::default(), "t"));
        let batch = w.next_batch().unwrap();
        let deadlock = mysql::Error::MySqlError(mysql::MySqlError {
            state: "40001".into(),
            message: "Deadlock found".into(),
            code: 1213,
        });
        w.settle(Outcome::Failed {
            batch,
            error: db::Error::query("writing")(deadlock),
            tried: Instant::now(),
        });
        assert!(w.outage.is_none());
        assert!(w.pending.contains_key(&1));
        assert!(w.retry_at.unwrap() <= Instant::now() + FLUSH_EVERY);
    }

    #[test]
    fn a_failed_batch_goes_back_in_front_of_newer_results_losing_nothing() {
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(WriterStats::default(), wake, 100);
        let fail = Counts {
            fail: 1,
            network: 1,
            ..Counts::default()
        };
        let pass = Counts {
            pass: 1,
            c200: 1,
            ..Counts::default()
        };
        w.pending.insert(1, update(Status::Fail, fail, "old"));
        w.alerts.push_back(alert(1));
        let batch = w.next_batch().expect("a batch is owed");
        assert!(w.next_batch().is_none(), "one write at a time");

        w.pending.insert(1, update(Status::Pass, pass, "new"));
        w.pending.insert(2, update(Status::Pass, pass, "new"));
        w.alerts.push_back(alert(2));
        let error = db::Error::Connect {
            db: "x".into(),
            reason: "down".into(),
            source: None,
        };
        w.settle(Outcome::Failed {
            batch,
            error,
            tried: Instant::now(),
        });

        let one = &w.pending[&1];
        assert_eq!(
            (one.status, one.at.as_str()),
            (Status::Pass, "new"),
            "the latest check wins"
        );
        assert_eq!(
            (one.counts.pass, one.counts.fail, one.counts.network),
            (1, 1, 1),
            "counters add up"
        );
        let order: Vec<TargetId> = w.alerts.iter().map(|a| a.target_id).collect();
        assert_eq!(order, vec![1, 2], "older alerts first");
        assert!(
            w.next_batch().is_none(),
            "the outage's backoff holds the retry"
        );
    }

    #[test]
    fn past_the_alert_bound_the_oldest_are_dropped_and_counted() {
        let (wake, _rx) = bounded(1);
        let mut w = Writer::new(WriterStats::default(), wake, 3);
        for id in 1..=5 {
            w.push_alert(alert(id));
        }
        let held: Vec<TargetId> = w.alerts.iter().map(|a| a.target_id).collect();
        assert_eq!(held, vec![3, 4, 5]);
        assert_eq!(w.dropped_alerts, 2);
    }
}
