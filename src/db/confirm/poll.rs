//! The statements the confirm thread runs on `confirmations` between its checks: taking the
//! others' requests, writing its answers, finding the requests due to be settled, and the
//! prune thread's removal of old settled ones.

use std::time::Duration;

use mysql::prelude::Queryable;

use super::super::decode;
use super::super::{Conn, Error};
use crate::base::model::TargetId;
use crate::base::text;

/// How often every node looks for requests to take and to settle.
pub const EVERY: Duration = Duration::from_millis(250);

/// Requests settled per look: a storm's are settled over a few looks.
const DUE_BATCH: u64 = 200;

/// Rows one statement of [`prune`] deletes.
const PRUNE_CHUNK: u64 = 5000;

/// Another node's request this node took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: u64,
    pub target_id: TargetId,
    /// The node whose check failed, for the log.
    pub requested_by: String,
}

/// Takes up to `limit` of the other nodes' pending requests nobody took yet, oldest first.
/// Each is taken with a conditional update, so that two nodes never take the same one.
pub fn claim(conn: &mut Conn, me: &str, limit: usize) -> Result<Vec<Claim>, Error> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<mysql::Row> = conn
        .exec(
            "SELECT id, target_id, requested_by FROM confirmations WHERE state = 'PENDING' \
             AND claimed_by IS NULL AND requested_by <> ? AND deadline > NOW(3) \
             ORDER BY id LIMIT ?",
            (me, limit as u64),
        )
        .map_err(Error::query("looking for failures to confirm"))?;
    let offered = decode::good_rows("confirmations", rows, |f| {
        let name: Vec<u8> = f.get(2, "requested_by")?;
        Ok(Claim {
            id: f.id(0, "id")?,
            target_id: f.reference(1, "target_id")?,
            requested_by: text::printable(&String::from_utf8_lossy(&name)),
        })
    });
    let mut taken = Vec::with_capacity(offered.len());
    for c in offered {
        conn.exec_drop(
            "UPDATE confirmations SET claimed_by = ? WHERE id = ? AND state = 'PENDING' \
             AND claimed_by IS NULL",
            (me, c.id),
        )
        .map_err(Error::query("taking a failure to confirm"))?;
        if conn.affected_rows() == 1 {
            taken.push(c);
        }
    }
    Ok(taken)
}

/// What a second check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Pass,
    Fail,
    /// It could not check (the target's row is gone or has a config error, this node lost
    /// its network): the trace says why.
    None,
}

impl Answer {
    fn as_str(self) -> &'static str {
        match self {
            Answer::Pass => "PASS",
            Answer::Fail => "FAIL",
            Answer::None => "NONE",
        }
    }
}

/// Writes this node's answer to request `id`, if it still holds the request and it is still
/// pending (settled meanwhile: the answer came too late and is dropped); whether it was
/// written.
pub fn answer(
    conn: &mut Conn,
    id: u64,
    me: &str,
    answer: Answer,
    trace: &str,
) -> Result<bool, Error> {
    conn.exec_drop(
        "UPDATE confirmations SET answer = ?, answer_trace = ?, answered_at = NOW(3) \
         WHERE id = ? AND claimed_by = ? AND state = 'PENDING'",
        (
            answer.as_str(),
            text::clip_bytes(trace, super::TRACE_BYTES),
            id,
            me,
        ),
    )
    .map_err(Error::query("answering a confirmation request"))?;
    Ok(conn.affected_rows() == 1)
}

/// Requests due to be settled by this node: its own that are answered, past their deadline,
/// taken by a node that is gone, or that no other active node can take; and anybody's past
/// their deadline by `orphaned` (the node that asked is gone, or cannot settle them).
pub fn due(conn: &mut Conn, me: &str, orphaned: Duration) -> Result<Vec<u64>, Error> {
    let orphaned_us = i64::try_from(orphaned.as_micros()).unwrap_or(i64::MAX);
    let rows: Vec<mysql::Row> = conn
        .exec(
            "SELECT c.id FROM confirmations c WHERE c.state = 'PENDING' AND ((c.requested_by = ? \
             AND (c.answer IS NOT NULL OR c.deadline <= NOW(3) OR (c.claimed_by IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.name = c.claimed_by \
             AND n.state IN ('active', 'stopping'))) OR (c.claimed_by IS NULL \
             AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.name <> c.requested_by \
             AND n.state = 'active')))) OR c.deadline <= NOW(3) - INTERVAL ? MICROSECOND) \
             ORDER BY c.id LIMIT ?",
            (me, orphaned_us, DUE_BATCH),
        )
        .map_err(Error::query("looking for confirmations to settle"))?;
    Ok(decode::good_rows("confirmations", rows, |f| f.id(0, "id")))
}

/// Deletes settled requests older than `retention`, [`PRUNE_CHUNK`] a statement, while
/// `keep_going` says so; how many.
pub fn prune(
    pool: &super::super::Pool,
    retention: Duration,
    keep_going: &dyn Fn() -> bool,
) -> Result<u64, Error> {
    let mut total = 0;
    loop {
        let n = super::super::with_conn(pool, |conn| {
            conn.exec_drop(
                "DELETE FROM confirmations WHERE state <> 'PENDING' \
                 AND resolved_at < NOW(3) - INTERVAL ? SECOND LIMIT ?",
                (retention.as_secs(), PRUNE_CHUNK),
            )
            .map_err(Error::query("pruning old confirmations"))?;
            Ok(conn.affected_rows())
        })?;
        total += n;
        if n < PRUNE_CHUNK || !keep_going() {
            return Ok(total);
        }
    }
}
