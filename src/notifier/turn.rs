//! One notifier's turn in a pass of the notifier thread: what it is owed is read
//! ([`outbox::owed`]), the grouping decides ([`group::plan`]), then its due deliveries go out,
//! each a message of its own or all in one grouped message, claimed for this node, sent
//! (holding no pooled connection across the conversation) and recorded.

use std::time::Duration;

use log::warn;

use super::group::{self, Plan, MAX_GROUP};
use super::outbox::{self, Due, Texts};
use super::send::Failure;
use super::{claim_lease, hooks, Notifier, BATCH};
use crate::db::{self, notifiers::NotifierRow};

/// What a turn did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    /// Nothing is owed (or another node is sending it).
    Idle,
    /// Nothing is due before this long from now.
    Wait(Duration),
    /// Sent what was due (`failed`: a send failed, the notifier now backs off); `filled`: a
    /// grouped message took [`MAX_GROUP`] alerts and more may be owed.
    Sent { failed: bool, filled: bool },
}

impl Notifier<'_> {
    /// The notifier's turn. `last`: the last pass at stop (backoff and waits ignored);
    /// `urgent`: its previous message was full, the rest goes now. `budget`: messages this
    /// pass may still send, lowered by what this turn sends.
    pub(super) fn turn(
        &mut self,
        row: &NotifierRow,
        last: bool,
        urgent: bool,
        budget: &mut usize,
    ) -> Result<Turn, db::Error> {
        let settings = group::Settings::of(&self.config.notify);
        let (now, owed) = db::with_conn(self.pool, |conn| {
            outbox::owed(conn, row.id, &self.node, settings.interval)
        })?;
        match group::plan(settings, now, &owed, urgent || last) {
            Plan::Idle => Ok(Turn::Idle),
            Plan::WaitUntil(at) => Ok(Turn::Wait(Duration::from_millis(
                at.saturating_sub(now).max(0) as u64,
            ))),
            Plan::EachAlone => self.each_alone(row, last, budget),
            Plan::Together => self.together(row, last, budget),
        }
    }

    /// Sends up to [`BATCH`] due deliveries, each a message of its own.
    fn each_alone(
        &mut self,
        row: &NotifierRow,
        last: bool,
        budget: &mut usize,
    ) -> Result<Turn, db::Error> {
        let limit = BATCH.min(*budget);
        let due = db::with_conn(self.pool, |conn| {
            outbox::due(conn, row.id, &self.node, limit, last, Texts::Whole)
        })?;
        if due.is_empty() {
            return Ok(Turn::Idle);
        }
        for d in &due {
            if !last && self.stop.requested() {
                break;
            }
            *budget = budget.saturating_sub(1);
            if !self.alone(row, d)? {
                return Ok(Turn::Sent {
                    failed: true,
                    filled: false,
                });
            }
        }
        Ok(Turn::Sent {
            failed: false,
            filled: false,
        })
    }

    /// Sends everything due as one message (one alert: its own message, as always).
    fn together(
        &mut self,
        row: &NotifierRow,
        last: bool,
        budget: &mut usize,
    ) -> Result<Turn, db::Error> {
        let due = db::with_conn(self.pool, |conn| {
            outbox::due(conn, row.id, &self.node, MAX_GROUP, last, Texts::Brief)
        })?;
        let filled = due.len() >= MAX_GROUP;
        let ok = match due.len() {
            0 => return Ok(Turn::Idle),
            1 => {
                let d = db::with_conn(self.pool, |conn| outbox::whole(conn, &due[0]))?;
                self.alone(row, &d)?
            }
            _ => self.grouped(row, due)?,
        };
        *budget = budget.saturating_sub(1);
        Ok(Turn::Sent {
            failed: !ok,
            filled,
        })
    }

    /// Sends one delivery as a message of its own and records the outcome; false when the
    /// send failed.
    fn alone(&mut self, row: &NotifierRow, d: &Due) -> Result<bool, db::Error> {
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
        let sent = self.outlets.deliver(row, d, &self.node);
        self.record(row, &[d.alert.id], d.attempts, sent, d)
    }

    /// Sends the due deliveries as one grouped message and records the outcome; false when
    /// the send failed.
    fn grouped(&mut self, row: &NotifierRow, due: Vec<Due>) -> Result<bool, db::Error> {
        let ids: Vec<u64> = due.iter().map(|d| d.alert.id).collect();
        let id = ids.iter().copied().min().unwrap_or_default();
        let lease = claim_lease(self.config.notify.smtp_timeout);
        let claimed = db::with_conn(self.pool, |conn| {
            outbox::claim_group(conn, row.id, &ids, id, &self.node, lease)
        })?;
        let due: Vec<Due> = due
            .into_iter()
            .filter(|d| claimed.contains(&d.alert.id))
            .collect();
        match due.len() {
            0 => return Ok(true), // another node took them
            1 => {
                // The others went elsewhere: this one is a message of its own after all.
                let d = db::with_conn(self.pool, |conn| outbox::whole(conn, &due[0]))?;
                return self.alone(row, &d);
            }
            _ => {}
        }
        let attempts = due.iter().map(|d| d.attempts).max().unwrap_or(0);
        let sent = self.outlets.deliver_group(row, id, &due, &self.node);
        let ids: Vec<u64> = due.iter().map(|d| d.alert.id).collect();
        self.record(row, &ids, attempts, sent, &due[0])
    }

    /// Records a message's outcome: its deliveries SENT, or failed and held with the
    /// notifier's others; true when it was sent. `first` names the message in the log.
    fn record(
        &mut self,
        row: &NotifierRow,
        ids: &[u64],
        attempts: u32,
        sent: Result<(), Failure>,
        first: &Due,
    ) -> Result<bool, db::Error> {
        if !matches!(sent, Err(Failure::Config(_))) {
            // The row can send again: its next configuration error is logged.
            self.config_errors.remove(&row.id);
        }
        match sent {
            Ok(()) => {
                self.unrecorded.push((row.id, ids.to_vec()));
                db::with_conn(self.pool, |conn| outbox::mark_sent(conn, row.id, ids))?;
                self.unrecorded.pop();
                Ok(true)
            }
            Err(failure) => {
                let notify = &self.config.notify;
                let wait = outbox::backoff(notify.retry_initial, notify.retry_max, attempts + 1);
                self.log_failure(row, first, ids.len(), attempts, &failure, wait);
                db::with_conn(self.pool, |conn| {
                    outbox::mark_failed(conn, row.id, ids, failure.reason(), wait)
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
        d: &Due,
        count: usize,
        attempts: u32,
        failure: &Failure,
        wait: Duration,
    ) {
        if let Failure::Config(reason) = failure {
            if self.config_errors.get(&row.id) == Some(reason) {
                return;
            }
            self.config_errors.insert(row.id, reason.clone());
        }
        let what = if count > 1 {
            format!(
                "a group of {count} alerts (alert {} for target {} first)",
                d.alert.id, d.alert.target_id
            )
        } else {
            format!("alert {} for target {}", d.alert.id, d.alert.target_id)
        };
        let reason = failure.reason();
        warn!(
            "notifier {} ({}) <{}>: {what} not sent (attempt {}), next try in {}s: {reason}",
            row.id,
            row.name,
            hooks::shown_address(row),
            attempts + 1,
            wait.as_secs_f64().ceil()
        );
    }
}
