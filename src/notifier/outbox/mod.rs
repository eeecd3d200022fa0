//! The outbox tables (`alerts`, `alert_deliveries`): what is owed to whom. Every statement run
//! on them is under this folder, one file per step: [`expand`] (alerts into deliveries, the
//! maintenance windows' rules), [`deliveries`] (the due ones claimed, sent or failed),
//! [`groups`] (what one notifier is owed, a grouped message claimed as one), [`opened`]
//! (which pages a recovery closes, for PagerDuty) and [`prune`] (retention, for the prune
//! thread); here, what they share, and `owed_to` for `skypunch notifiers ID`.
//!
//! A delivery row moves PENDING → SENT (sent, `sent_at` and `next_attempt` set to that time,
//! `group_id` naming the grouped message it went in, if any) or PENDING → DROPPED (never to
//! be sent, `last_error` says why, `next_attempt` holds when that was decided):
//! - its notifier was deleted: dropped at the next pass;
//! - its notifier is disabled: held, untried, until the notifier is enabled again, or dropped
//!   once the alert is older than the retention period;
//! - its row (or its alert's) does not decode (an id or `target_id` of 0 or below, a value
//!   edited out of its column's range): dropped when it comes due, reported once. An alert
//!   whose own id is not usable is marked expanded without a delivery. An `attempts` set
//!   below zero is repaired to 0; a `snapshot` that is not JSON still renders (see
//!   `message::render`).
//!
//! Times are the database's (`NOW(3)`), so the daemon's clock cannot skew the schedule.

mod deliveries;
mod expand;
mod groups;
mod opened;
mod prune;

use std::time::Duration;

use mysql::prelude::Queryable;

use crate::base::model::Alert;
use crate::db::decode;
use crate::db::{Conn, Error};
pub use deliveries::{claim, due, mark_failed, mark_sent, renew_one, whole, Texts};
pub use expand::{drop_orphans, expand, held};
pub use groups::{claim_group, owed, renew};
pub use opened::{all_recovered, openers, Sending};
pub use prune::{prune, Pruned};

/// The deliveries' table, as decoding errors name it.
const DELIVERIES: &str = "alert_deliveries";

/// What one notifier is owed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Owed {
    /// Deliveries not yet sent.
    pub pending: u64,
    /// Of those, how many have failed at least once.
    pub failing: u64,
    pub last_error: Option<String>,
}

/// What notifier `id` is owed.
pub fn owed_to(conn: &mut Conn, id: u64) -> Result<Owed, Error> {
    let row: Option<mysql::Row> = conn
        .exec_first(
            "SELECT COUNT(*), CAST(SUM(attempts > 0) AS UNSIGNED) FROM alert_deliveries \
             WHERE notifier_id = ? AND state = 'PENDING'",
            (id,),
        )
        .map_err(Error::query("counting owed alerts"))?;
    let last_error: Option<mysql::Row> = conn
        .exec_first(
            "SELECT last_error FROM alert_deliveries WHERE notifier_id = ? AND state = 'PENDING' \
             AND last_error IS NOT NULL ORDER BY next_attempt DESC LIMIT 1",
            (id,),
        )
        .map_err(Error::query("reading the last delivery error"))?;
    let (pending, failing) = decode::first(DELIVERIES, row, |f| {
        Ok((f.get(0, "COUNT")?, f.opt(1, "attempts")?.unwrap_or(0)))
    })
    .unwrap_or((0, 0));
    Ok(Owed {
        pending,
        failing,
        last_error: decode::first(DELIVERIES, last_error, |f| f.opt(0, "last_error")).flatten(),
    })
}

/// One delivery that is due: the alert and the notifier it goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub notifier_id: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    pub alert: Alert,
}

/// The wait before the next try after `attempts` failed ones (1 or more):
/// `min(initial * 2^(attempts-1), max)`.
pub fn backoff(initial: Duration, max: Duration, attempts: u32) -> Duration {
    let doubling = attempts.saturating_sub(1).min(31);
    initial.saturating_mul(1u32 << doubling).min(max)
}

/// Ids for an `IN (...)` list; they are numbers, so nothing can be injected.
fn id_list<T: ToString>(ids: &[T]) -> String {
    ids.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let s = Duration::from_secs;
        let b = |n| backoff(s(10), s(600), n);
        assert_eq!([b(1), b(2), b(3), b(4)], [s(10), s(20), s(40), s(80)]);
        assert_eq!(b(7), s(600));
        assert_eq!(b(5000), s(600));
        assert_eq!(b(0), s(10));
    }

    #[test]
    fn id_lists_are_plain_numbers() {
        assert_eq!(id_list(&[3, 10, 7]), "3,10,7");
    }
}
