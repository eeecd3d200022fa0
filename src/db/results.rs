//! Writing check results: one transaction per batch, touching rows in id order (so that
//! concurrent writers cannot deadlock), with the alerts the batch raised inserted in the same
//! transaction. Called from the writer thread and by `targets ID test`.

use std::collections::{BTreeMap, HashMap};

use mysql::prelude::Queryable;
use mysql::{TxOpts, Value};

use super::nodes::Fence;
use super::{Conn, Error};
use crate::model::{NewAlert, Status, TargetId, TargetState};
use crate::rollup::Rollups;
use crate::state::RowUpdate;
use crate::text;

/// Rows per UPDATE statement. A batch is cut into statements of these sizes only, largest
/// first, so that the few statement shapes stay prepared on each connection instead of every
/// odd batch size being parsed and prepared anew.
const STATEMENT_ROWS: [usize; 5] = [250, 64, 16, 4, 1];
/// `status_description` is VARCHAR(128).
const MAX_DESCRIPTION: usize = 128;
/// `last_trace` is TEXT (64 KiB).
const MAX_TRACE_BYTES: usize = 60_000;

/// What a result transaction did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Target rows updated.
    pub rows: u64,
    /// Targets whose row another writer (another node, `targets ID test`) changed since this
    /// one read it: nothing of theirs was written, and their state must be read again.
    pub stale: Vec<TargetId>,
}

/// Writes the updates (sorted by id), the incidents they open and close, the rollups and the
/// alerts in one transaction; all or nothing. With a `fence`, only while this node is still
/// a member of the cluster ([`Error::Fenced`] otherwise). Each row is written only if its
/// `state_seq` is still the one the update was made from, and moves it on by one; the rows
/// that moved on meanwhile come back as `stale`, with neither their incidents nor their
/// alerts written.
pub fn write(
    conn: &mut Conn,
    fence: Option<&Fence>,
    updates: &BTreeMap<TargetId, RowUpdate>,
    alerts: &[NewAlert],
    rollups: &Rollups,
) -> Result<Written, Error> {
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .map_err(Error::query("starting a result transaction"))?;
    if let Some(fence) = fence {
        super::nodes::hold_fence(&mut tx, fence)?;
    }
    let seqs = lock_seqs(&mut tx, updates)?;
    let stale: Vec<TargetId> = updates
        .iter()
        .filter(|(id, u)| seqs.get(id).is_some_and(|seq| *seq != u.seq))
        .map(|(id, _)| *id)
        .collect();
    let live: BTreeMap<TargetId, &RowUpdate> = updates
        .iter()
        .filter(|(id, u)| seqs.get(id) == Some(&u.seq))
        .map(|(id, u)| (*id, u))
        .collect();
    let entries: Vec<(&TargetId, &&RowUpdate)> = live.iter().collect();
    let mut rows = 0;
    for chunk in shaped_chunks(&entries) {
        let (sql, params) = update_statement(chunk);
        tx.exec_drop(sql, params)
            .map_err(Error::query("writing check results"))?;
        rows += tx.affected_rows();
    }
    super::history::write_incidents(&mut tx, &live)?;
    if !rollups.is_empty() {
        super::history::write_rollups(&mut tx, rollups)?;
    }
    for alert in alerts.iter().filter(|a| !stale.contains(&a.target_id)) {
        tx.exec_drop(
            INSERT_ALERT,
            (
                alert.kind.as_str(),
                text::clip_bytes(&alert.trace, MAX_TRACE_BYTES),
                alert.target_id,
            ),
        )
        .map_err(Error::query("queueing an alert"))?;
    }
    tx.commit()
        .map_err(Error::query("committing check results"))?;
    Ok(Written { rows, stale })
}

/// The `state_seq` of the rows to update, locked until the commit so that no other writer
/// can move them on in between; a deleted row is missing from the answer.
fn lock_seqs(
    tx: &mut mysql::Transaction,
    updates: &BTreeMap<TargetId, RowUpdate>,
) -> Result<HashMap<TargetId, u64>, Error> {
    let ids: Vec<TargetId> = updates.keys().copied().collect();
    let mut seqs = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let marks = vec!["?"; chunk.len()].join(",");
        let rows: Vec<(TargetId, u64)> = tx
            .exec(
                format!("SELECT id, state_seq FROM targets WHERE id IN ({marks}) FOR UPDATE"),
                chunk.to_vec(),
            )
            .map_err(Error::query("locking the rows of check results"))?;
        seqs.extend(rows);
    }
    Ok(seqs)
}

/// The stored result state of these targets; a deleted target is missing from the answer.
/// The writer reads a target's state once, the first time it writes it, after every write it
/// owed the row.
pub fn read_states(
    conn: &mut Conn,
    ids: &[TargetId],
) -> Result<Vec<(TargetId, TargetState)>, Error> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let marks = vec!["?"; chunk.len()].join(",");
        let rows: Vec<(TargetId, String, i64, bool, u64)> = conn
            .exec(
                format!(
                    "SELECT id, status, repeated_fails, alerted, state_seq FROM targets \
                     WHERE id IN ({marks})"
                ),
                chunk.to_vec(),
            )
            .map_err(Error::query("reading the result state of targets"))?;
        out.extend(rows.into_iter().map(|(id, status, fails, alerted, seq)| {
            let state = TargetState {
                status: Status::parse(&status),
                repeated_fails: fails.max(0) as u64,
                alerted,
                seq,
            };
            (id, state)
        }));
    }
    Ok(out)
}

/// The alert's snapshot is taken by the database from the row just updated, so the message
/// shows the counters exactly as they were after the change. Never `authn_parms`.
const INSERT_ALERT: &str = "INSERT INTO alerts (target_id, kind, snapshot, trace) \
    SELECT id, ?, JSON_OBJECT('id', id, 'name', name, 'tenantid', tenantid, 'enabled', enabled, \
    'status', status, 'previous_status', previous_status, 'status_description', status_description, \
    'last_updated', DATE_FORMAT(last_updated, '%Y-%m-%d %H:%i:%s'), 'url', url, 'method', method, \
    'authn', authn, 'frequency', frequency, 'timeout', timeout, 'pass_result', pass_result, \
    'pass_count', pass_count, 'fail_count', fail_count, 'count200', count200, 'count300', count300, \
    'count400', count400, 'count500', count500, 'repeated_fails', repeated_fails, \
    'network_fails', network_fails, 'fail_threshold', fail_threshold, \
    'last_http_status', last_http_status, 'last_response_ms', last_response_ms), ? \
    FROM targets WHERE id = ?";

const VALUE_COLUMNS: [&str; 18] = [
    "id", "st", "prev", "descr", "at", "dp", "df", "c2", "c3", "c4", "c5", "nf", "rf", "al", "hs",
    "ms", "tr", "sq",
];

/// One multi-row UPDATE joined to a derived table of the new values; rows deleted meanwhile
/// simply match nothing. Counters are added, so a hand edit of a counter is never overwritten.
fn update_statement(chunk: &[(&TargetId, &&RowUpdate)]) -> (String, Vec<Value>) {
    let marks = vec!["?"; VALUE_COLUMNS.len()].join(",");
    let first: Vec<String> = VALUE_COLUMNS.iter().map(|c| format!("? AS {c}")).collect();
    let mut sql = format!("UPDATE targets t JOIN (SELECT {}", first.join(","));
    for _ in 1..chunk.len() {
        sql.push_str(" UNION ALL SELECT ");
        sql.push_str(&marks);
    }
    sql.push_str(
        ") v ON t.id = v.id AND t.state_seq = v.sq SET t.state_seq = v.sq + 1, t.status = v.st, t.previous_status = v.prev, \
         t.status_description = v.descr, t.last_updated = v.at, \
         t.pass_count = t.pass_count + v.dp, t.fail_count = t.fail_count + v.df, \
         t.count200 = t.count200 + v.c2, t.count300 = t.count300 + v.c3, \
         t.count400 = t.count400 + v.c4, t.count500 = t.count500 + v.c5, \
         t.network_fails = t.network_fails + v.nf, t.repeated_fails = v.rf, t.alerted = v.al, \
         t.last_http_status = v.hs, t.last_response_ms = v.ms, t.last_trace = v.tr, \
         t.config_changed = t.config_changed",
    );
    let mut params = Vec::with_capacity(chunk.len() * VALUE_COLUMNS.len());
    for (id, u) in chunk {
        params.extend([
            Value::from(**id),
            Value::from(u.status.as_str()),
            Value::from(u.previous_status.as_str()),
            Value::from(text::clip(&u.description, MAX_DESCRIPTION)),
            Value::from(u.at.as_str()),
            signed(u.counts.pass),
            signed(u.counts.fail),
            signed(u.counts.c200),
            signed(u.counts.c300),
            signed(u.counts.c400),
            signed(u.counts.c500),
            signed(u.counts.network),
            Value::from(u.repeated_fails),
            Value::from(u.alerted),
            u.http_status.map_or(Value::NULL, Value::from),
            Value::from(u.response_ms.min(i32::MAX as u64)),
            Value::from(text::clip_bytes(&u.trace, MAX_TRACE_BYTES)),
            Value::from(u.seq),
        ]);
    }
    (sql, params)
}

/// A counter increment as a signed value: an unsigned parameter makes MariaDB compute
/// `pass_count + ?` as BIGINT UNSIGNED, which fails for the whole batch when an operator has
/// set a counter below zero.
fn signed(n: u64) -> Value {
    Value::from(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Cuts `items` into runs whose lengths are all in [`STATEMENT_ROWS`].
fn shaped_chunks<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    while !items.is_empty() {
        let size = STATEMENT_ROWS
            .iter()
            .copied()
            .find(|s| *s <= items.len())
            .unwrap_or(1);
        let (head, rest) = items.split_at(size);
        chunks.push(head);
        items = rest;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_the_few_prepared_shapes() {
        let items: Vec<u32> = (0..587).collect();
        let sizes: Vec<usize> = shaped_chunks(&items).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![250, 250, 64, 16, 4, 1, 1, 1]);
        assert_eq!(sizes.iter().sum::<usize>(), 587);
    }
}
