//! The outbox tables: what is owed to whom.

use mysql::prelude::Queryable;

use crate::db::{Conn, Error};

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
    let row: Option<(u64, Option<u64>)> = conn
        .exec_first(
            "SELECT COUNT(*), CAST(SUM(attempts > 0) AS UNSIGNED) FROM alert_deliveries \
             WHERE notifier_id = ? AND state = 'PENDING'",
            (id,),
        )
        .map_err(Error::query("counting owed alerts"))?;
    let last_error: Option<Option<String>> = conn
        .exec_first(
            "SELECT last_error FROM alert_deliveries WHERE notifier_id = ? AND last_error IS NOT NULL \
             ORDER BY next_attempt DESC LIMIT 1",
            (id,),
        )
        .map_err(Error::query("reading the last delivery error"))?;
    let (pending, failing) = row.unwrap_or((0, None));
    Ok(Owed {
        pending,
        failing: failing.unwrap_or(0),
        last_error: last_error.flatten(),
    })
}
