//! Settling one confirmation request, in one transaction under the row's lock, so that it is
//! settled once whoever gets there first: the confirm thread of the node that asked (answered,
//! expired, or nobody left to answer), any node's once the request is long past its deadline
//! (the node that asked is gone), or the result transaction of the node that asked when the
//! target recovered meanwhile.

use mysql::prelude::Queryable;
use mysql::Value;

use super::super::decode::{self, BadRow, Fields};
use super::super::Error;
use crate::base::model::TargetId;
use crate::base::text;

/// How a request was settled: the `state` it ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// The second check failed too: the FAILURE went to the outbox.
    Confirmed,
    /// The second check passed, or the target recovered first: nobody paged, the incident
    /// marked `unconfirmed`.
    Unconfirmed,
    /// No usable answer in time, or nobody left to give one: the FAILURE went to the outbox
    /// as it would have without confirmation, its trace saying why.
    NotConfirmed,
}

impl Fate {
    fn state(self) -> &'static str {
        match self {
            Fate::Confirmed => "CONFIRMED",
            Fate::Unconfirmed => "UNCONFIRMED",
            Fate::NotConfirmed => "NOT_CONFIRMED",
        }
    }
}

/// A request settled, for the log and the writer of the node that asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub target_id: TargetId,
    pub fate: Fate,
    /// The node that asked.
    pub requested_by: String,
    /// In words: who checked again and what was found, or why nobody did.
    pub note: String,
}

impl Resolved {
    /// One log line, `[ID] ...`, as the check lines name targets.
    pub fn log(&self) {
        let id = self.target_id;
        match self.fate {
            Fate::Confirmed => log::info!("[{id}] FAILURE confirmed: {}; sent", self.note),
            Fate::Unconfirmed => log::info!(
                "[{id}] FAILURE not confirmed: {}; recorded as unconfirmed, nobody paged",
                self.note
            ),
            Fate::NotConfirmed => {
                log::warn!("[{id}] FAILURE sent without confirmation: {}", self.note)
            }
        }
    }
}

/// A pending request as [`resolve`] reads it.
struct Request {
    target_id: TargetId,
    incident_id: Option<u64>,
    requested_by: String,
    snapshot: String,
    trace: String,
    claimed_by: Option<String>,
    answer: Option<String>,
    answer_trace: String,
    expired: bool,
    /// Seconds the node that asked waits at most.
    bound_secs: i64,
    /// The node that took it is no longer in the cluster (dead, or gone).
    claimer_gone: bool,
    /// No node but the one that asked is active.
    alone: bool,
}

const READ: &str = "SELECT c.target_id, c.incident_id, c.requested_by, c.snapshot, c.trace, \
    c.claimed_by, c.answer, c.answer_trace, c.deadline <= NOW(3), \
    CAST(CEIL(TIMESTAMPDIFF(MICROSECOND, c.requested_at, c.deadline) / 1000000) AS SIGNED), \
    c.claimed_by IS NOT NULL AND NOT EXISTS (SELECT 1 FROM nodes n \
    WHERE n.name = c.claimed_by AND n.state IN ('active', 'stopping')), \
    NOT EXISTS (SELECT 1 FROM nodes n WHERE n.name <> c.requested_by AND n.state = 'active') \
    FROM confirmations c WHERE c.id = ? AND c.state = 'PENDING' FOR UPDATE";

fn lossy(f: &mut Fields, i: usize, column: &'static str) -> Result<String, BadRow> {
    let bytes: Option<Vec<u8>> = f.opt(i, column)?;
    Ok(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned())
}

fn request(f: &mut Fields) -> Result<Request, BadRow> {
    Ok(Request {
        target_id: f.reference(0, "target_id")?,
        incident_id: f.opt_ref(1, "incident_id")?,
        requested_by: text::printable(&lossy(f, 2, "requested_by")?),
        snapshot: lossy(f, 3, "snapshot")?,
        trace: lossy(f, 4, "trace")?,
        claimed_by: f
            .opt::<Vec<u8>>(5, "claimed_by")?
            .map(|b| text::printable(&String::from_utf8_lossy(&b))),
        answer: f.opt(6, "answer")?,
        answer_trace: lossy(f, 7, "answer_trace")?,
        expired: f.flag(8, "deadline")?,
        bound_secs: f.opt(9, "deadline")?.unwrap_or(0),
        claimer_gone: f.flag(10, "claimed_by")?,
        alone: f.flag(11, "requested_by")?,
    })
}

/// Settles request `id` if it is due: answered, past its deadline, taken by a node that is
/// gone, with no other node active, or (`recovered`) its target recovered since. `None` when
/// it is not due, or no longer pending (settled elsewhere first). In the caller's
/// transaction, which must commit.
pub fn resolve(
    tx: &mut impl Queryable,
    id: u64,
    recovered: bool,
) -> Result<Option<Resolved>, Error> {
    lock_target(tx, id)?;
    let row: Option<mysql::Row> = tx
        .exec_first(READ, (id,))
        .map_err(Error::query("reading a confirmation request"))?;
    let Some(r) = decode::first("confirmations", row, request) else {
        return Ok(None);
    };
    let Some((fate, note)) = judge(&r, recovered) else {
        return Ok(None);
    };
    match fate {
        Fate::Unconfirmed => settle_unpaged(tx, &r)?,
        Fate::Confirmed | Fate::NotConfirmed => page(tx, &r, &trace_of(&r, fate, &note))?,
    }
    tx.exec_drop(
        "UPDATE confirmations SET state = ?, resolved_at = NOW(3), note = ? WHERE id = ?",
        (fate.state(), text::clip(&note, 255), id),
    )
    .map_err(Error::query("settling a confirmation request"))?;
    Ok(Some(Resolved {
        target_id: r.target_id,
        fate,
        requested_by: r.requested_by,
        note,
    }))
}

/// Locks the row of request `id`'s target first, as the result transactions do before they
/// touch its requests: both lock in the same order, so they wait for each other instead of
/// deadlocking.
fn lock_target(tx: &mut impl Queryable, id: u64) -> Result<(), Error> {
    let target: Option<mysql::Row> = tx
        .exec_first("SELECT target_id FROM confirmations WHERE id = ?", (id,))
        .map_err(Error::query("reading a confirmation request"))?;
    let Some(target) = decode::first("confirmations", target, |f| f.reference(0, "target_id"))
    else {
        return Ok(());
    };
    tx.exec_drop(
        "SELECT id FROM targets FORCE INDEX (PRIMARY) WHERE id = ? FOR UPDATE",
        (target,),
    )
    .map_err(Error::query("locking a confirmed target's row"))
}

/// What a request comes to now, in words; `None` while it is still to wait for.
fn judge(r: &Request, recovered: bool) -> Option<(Fate, String)> {
    let by = r.claimed_by.as_deref().unwrap_or("another node");
    let answer = r.answer.as_deref();
    match answer {
        Some("FAIL") => return Some((Fate::Confirmed, format!("node {by} found it failing too"))),
        Some("PASS") => return Some((Fate::Unconfirmed, format!("node {by} found it up"))),
        _ => {}
    }
    let why = if recovered {
        return Some((
            Fate::Unconfirmed,
            "the target recovered before a second node had checked it".to_string(),
        ));
    } else if answer.is_some() {
        let reason = r.answer_trace.lines().next().unwrap_or("").trim();
        format!("node {by} could not check it ({reason})")
    } else if r.claimer_gone {
        format!("node {by}, which was checking it, left the cluster")
    } else if r.expired {
        match &r.claimed_by {
            Some(by) => format!("node {by} gave no answer within {} s", r.bound_secs),
            None => format!("no node took it within {} s", r.bound_secs),
        }
    } else if r.claimed_by.is_none() && r.alone {
        "no other node is live to check it".to_string()
    } else {
        return None;
    };
    Some((Fate::NotConfirmed, why))
}

/// The alert's trace: the failed check's, headed by the node that made it, then what the
/// second node found (its own trace) or why there is none.
fn trace_of(r: &Request, fate: Fate, note: &str) -> String {
    let mut trace = format!("-- the check from node {} failed:\n", r.requested_by);
    trace.push_str(&r.trace);
    if !trace.ends_with('\n') {
        trace.push('\n');
    }
    match fate {
        Fate::Confirmed => {
            let by = r.claimed_by.as_deref().unwrap_or("another node");
            trace.push_str(&format!(
                "-- confirmed: the same check from node {by} at once failed too:\n"
            ));
            trace.push_str(text::clip_bytes(&r.answer_trace, super::TRACE_BYTES));
        }
        _ => trace.push_str(&format!("-- not confirmed by a second node: {note}\n")),
    }
    trace
}

/// The FAILURE goes to the outbox (its snapshot as taken when it was raised), and its
/// incident counts as alerted. A deleted target queues nothing.
fn page(tx: &mut impl Queryable, r: &Request, trace: &str) -> Result<(), Error> {
    tx.exec_drop(
        "INSERT INTO alerts (target_id, kind, snapshot, trace) \
         SELECT id, 'FAILURE', ?, ? FROM targets WHERE id = ?",
        (
            r.snapshot.as_str(),
            text::clip_bytes(trace, super::super::results::MAX_TRACE_BYTES),
            r.target_id,
        ),
    )
    .map_err(Error::query("queueing a confirmed alert"))?;
    if let Some(incident) = r.incident_id {
        tx.exec_drop(
            "UPDATE incidents SET alerted = 1, unconfirmed = 0 WHERE id = ?",
            (incident,),
        )
        .map_err(Error::query("marking a confirmed incident alerted"))?;
    }
    Ok(())
}

/// Nobody is paged: the incident is marked unconfirmed, and the row not alerted, so that the
/// target's next failing check raises the FAILURE (and a request) again. `state_seq` stays:
/// the writer that owns the row is told apart (`ToWriter::Unconfirmed`), and would otherwise
/// find its next write stale.
fn settle_unpaged(tx: &mut impl Queryable, r: &Request) -> Result<(), Error> {
    if let Some(incident) = r.incident_id {
        tx.exec_drop(
            "UPDATE incidents SET alerted = 0, unconfirmed = 1 WHERE id = ?",
            (incident,),
        )
        .map_err(Error::query("marking an incident unconfirmed"))?;
    }
    tx.exec_drop(
        "UPDATE targets SET alerted = 0, config_changed = config_changed WHERE id = ?",
        (Value::from(r.target_id),),
    )
    .map_err(Error::query("writing an unconfirmed target as not alerted"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Request {
        Request {
            target_id: 7,
            incident_id: Some(3),
            requested_by: "mon-1".into(),
            snapshot: "{}".into(),
            trace: "2026-01-01 00:00:00.000Z +     0.0ms            [Fail] reason: 503\n".into(),
            claimed_by: None,
            answer: None,
            answer_trace: String::new(),
            expired: false,
            bound_secs: 7,
            claimer_gone: false,
            alone: false,
        }
    }

    #[test]
    fn an_answer_decides_and_without_one_the_request_waits_until_it_cannot_come() {
        let mut r = pending();
        assert_eq!(judge(&r, false), None, "still waiting");
        r.claimed_by = Some("mon-2".into());
        r.answer = Some("FAIL".into());
        let (fate, note) = judge(&r, true).unwrap();
        assert_eq!(
            fate,
            Fate::Confirmed,
            "an answer outweighs a recovery since"
        );
        assert_eq!(note, "node mon-2 found it failing too");
        r.answer = Some("PASS".into());
        assert_eq!(judge(&r, false).unwrap().0, Fate::Unconfirmed);
        r.answer = None;
        assert_eq!(judge(&r, true).unwrap().0, Fate::Unconfirmed);
        r.claimer_gone = true;
        assert_eq!(
            judge(&r, false).unwrap(),
            (
                Fate::NotConfirmed,
                "node mon-2, which was checking it, left the cluster".into()
            )
        );
        let mut r = pending();
        r.expired = true;
        assert_eq!(judge(&r, false).unwrap().1, "no node took it within 7 s");
        let mut r = pending();
        r.alone = true;
        assert_eq!(
            judge(&r, false).unwrap().1,
            "no other node is live to check it"
        );
    }

    #[test]
    fn the_trace_holds_both_checks_and_the_nodes_that_made_them() {
        let mut r = pending();
        r.claimed_by = Some("mon-2".into());
        r.answer = Some("FAIL".into());
        r.answer_trace = "2026-01-01 00:00:01.000Z +     0.0ms            [Fail] x\n".into();
        let t = trace_of(&r, Fate::Confirmed, "");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "-- the check from node mon-1 failed:");
        assert!(lines[1].ends_with("[Fail] reason: 503"));
        assert_eq!(
            lines[2],
            "-- confirmed: the same check from node mon-2 at once failed too:"
        );
        assert!(lines[3].ends_with("[Fail] x"));
        let t = trace_of(&pending(), Fate::NotConfirmed, "no node took it within 7 s");
        assert!(t.ends_with("-- not confirmed by a second node: no node took it within 7 s\n"));
    }
}
