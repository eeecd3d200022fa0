//! Writing check results: one transaction per batch, touching rows in id order (so that
//! concurrent writers cannot deadlock), with the alerts the batch raised inserted in the same
//! transaction. Called from the writer thread (its store thread); `targets ID test` records its
//! check with [`record_test`], which leaves the result state alone.

use std::collections::{BTreeMap, HashMap};

use mysql::prelude::Queryable;
use mysql::{TxOpts, Value};

use super::decode;
use super::nodes::Fence;
use super::targets::{self, Read, COUNTERS};
use super::{Conn, Error};
use crate::base::model::{NewAlert, TargetId, TargetState};
use crate::base::phases::Phases;
use crate::base::rollup::Rollups;
use crate::base::state::{CertSeen, Counts, RowUpdate};
use crate::base::text;

/// Rows per UPDATE statement. A batch is cut into statements of these sizes only, largest
/// first, so that the few statement shapes stay prepared on each connection instead of every
/// odd batch size being parsed and prepared anew.
const STATEMENT_ROWS: [usize; 5] = [250, 64, 16, 4, 1];
/// `status_description` is VARCHAR(128).
const MAX_DESCRIPTION: usize = 128;
/// `last_trace` is TEXT (64 KiB).
pub(super) const MAX_TRACE_BYTES: usize = 60_000;

/// What a result transaction did besides writing.
#[derive(Debug, Default)]
pub struct Written {
    /// Rows another writer (another node) moved on since this one read them, of which
    /// nothing was written, incidents and alerts included; their state must be read again.
    pub stale: Vec<TargetId>,
    /// Targets whose FAILURE was held (see [`super::holds`]): written as not alerted.
    pub withheld: Vec<TargetId>,
    /// Those of them whose FAILURE of an earlier batch was withdrawn ([`super::holds::retract`]):
    /// their `state_seq` moved on once more, so that a node which took one over before the
    /// withdrawal reads it again, and this writer's memory moves on with it.
    pub withdrawn: Vec<TargetId>,
}

/// Writes the updates (sorted by id), the incidents they open and close, the rollups and the
/// alerts in one transaction; all or nothing. With a `fence`, only while this node is still
/// a member of the cluster ([`Error::Fenced`] otherwise). Each row is written only if its
/// `state_seq` is still the one the update was made from, and moves it on by one. The alerts
/// go through [`super::holds::decide`] first, and the FAILUREs of the targets in `retract`
/// (the node has just found it is blind) through [`super::holds::retract`]; then those that
/// go out through [`super::confirm::screen`] (`ask`: this node asks another to confirm its
/// FAILUREs, `[cluster] ConfirmFailures`).
pub fn write(
    conn: &mut Conn,
    fence: Option<&Fence>,
    batch: (&BTreeMap<TargetId, RowUpdate>, &[NewAlert], &Rollups),
    retract: &[TargetId],
    ask: Option<&super::confirm::Ask>,
) -> Result<Written, Error> {
    let (updates, alerts, rollups) = batch;
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .map_err(Error::query("starting a result transaction"))?;
    if let Some(fence) = fence {
        super::nodes::hold_fence(&mut tx, fence)?;
        crate::base::fault::freeze("result-transaction");
    }
    let seqs = lock_seqs(&mut tx, updates)?;
    let stale: Vec<TargetId> = updates
        .iter()
        .filter(|(id, u)| seqs.get(id).is_some_and(|seq| *seq != Some(u.seq)))
        .map(|(id, _)| *id)
        .collect();
    let live: BTreeMap<TargetId, &RowUpdate> = updates
        .iter()
        .filter(|(id, u)| seqs.get(id) == Some(&Some(u.seq)))
        .map(|(id, u)| (*id, u))
        .collect();
    let entries: Vec<(&TargetId, &&RowUpdate)> = live.iter().collect();
    for chunk in shaped_chunks(&entries) {
        let (sql, params) = update_statement(chunk);
        tx.exec_drop(sql, params)
            .map_err(Error::query("writing check results"))?;
    }
    super::history::write_incidents(&mut tx, &live)?;
    if !rollups.is_empty() {
        super::history::write_rollups(&mut tx, rollups)?;
    }
    let raised: Vec<&NewAlert> = alerts
        .iter()
        .filter(|a| !stale.contains(&a.target_id))
        .collect();
    let mut decided = super::holds::decide(&mut tx, &raised)?;
    let retract: Vec<TargetId> = retract
        .iter()
        .filter(|id| !stale.contains(id))
        .copied()
        .collect();
    let withdrawn = super::holds::retract(&mut tx, &retract)?;
    for id in &withdrawn {
        decided.held.entry(*id).or_insert(super::holds::Hold::Blind);
    }
    super::holds::mark(&mut tx, &decided.held)?;
    super::holds::move_on(&mut tx, &withdrawn)?;
    let screened = super::confirm::screen(&mut tx, &decided.send, ask)?;
    for alert in &screened.send {
        queue_alert(&mut tx, alert)?;
    }
    tx.commit()
        .map_err(Error::query("committing check results"))?;
    log_held(&decided);
    screened.log();
    Ok(Written {
        stale,
        withheld: decided.held.keys().copied().collect(),
        withdrawn,
    })
}

/// One debug line per batch that held alerts: held FAILUREs are shown on the target (its
/// page, `targets ID`), and happen at every check of a child while its parent is down.
fn log_held(decided: &super::holds::Decided) {
    if decided.held.is_empty() && decided.dropped == 0 {
        return;
    }
    let ids: Vec<String> = decided.held.keys().map(TargetId::to_string).collect();
    log::debug!(
        "held the FAILURE alerts of targets {} and {} reminders or recoveries of held ones \
         (a parent down, this node blind, or their FAILURE never went out)",
        ids.join(", "),
        decided.dropped
    );
}

/// The `state_seq` of the rows to update, locked until the commit so that no other writer
/// can move them on in between; a deleted row is missing from the answer, and one whose
/// `state_seq` was edited out of range is `None` (stale: its state is read, and repaired,
/// again).
fn lock_seqs(
    tx: &mut mysql::Transaction,
    updates: &BTreeMap<TargetId, RowUpdate>,
) -> Result<HashMap<TargetId, Option<u64>>, Error> {
    let ids: Vec<TargetId> = updates.keys().copied().collect();
    let mut seqs = HashMap::with_capacity(ids.len());
    // In the few prepared shapes, as the writes below: a new `IN (...)` length per batch
    // would be prepared anew every time.
    for chunk in shaped_chunks(&ids) {
        let marks = vec!["?"; chunk.len()].join(",");
        let rows: Vec<mysql::Row> = tx
            .exec(
                // A key lookup, never a scan: a scan (the optimizer's pick when the list is a
                // large share of a small table) would lock rows of other nodes' targets too.
                format!(
                    "SELECT id, state_seq FROM targets FORCE INDEX (PRIMARY) \
                     WHERE id IN ({marks}) FOR UPDATE"
                ),
                chunk.to_vec(),
            )
            .map_err(Error::query("locking the rows of check results"))?;
        seqs.extend(decode::good_rows("targets", rows, |f| {
            let id = f.id(0, "id")?;
            let seq: i64 = f.get(1, "state_seq")?;
            let usable = decode::counter_fix("state_seq", seq).is_none();
            Ok((id, usable.then_some(seq as u64)))
        }));
    }
    Ok(seqs)
}

/// The stored result state of these targets; a deleted target is missing from the answer.
/// The writer reads a target's state once, the first time it writes it, after every write it
/// owed the row. Daemon-owned values edited out of range are repaired (and logged) here.
pub fn read_states(
    conn: &mut Conn,
    ids: &[TargetId],
) -> Result<Vec<(TargetId, TargetState)>, Error> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!("{} WHERE t.id IN ({marks})", targets::select(Read::State));
        let rows: Vec<mysql::Row> = conn
            .exec(sql, chunk.to_vec())
            .map_err(Error::query("reading the result state of targets"))?;
        for row in rows
            .into_iter()
            .filter_map(|r| targets::decoded(Read::State, r))
        {
            targets::repair(conn, row.id, &row.state_fixes())?;
            out.push((row.id, row.state()));
        }
    }
    Ok(out)
}

/// Records the check `targets ID test` made: what the last check saw (`last_updated`, the
/// HTTP status, the response time, the trace, the certificate) and its counts, added to the
/// counters as a result's are. Never the result state (status, description, `repeated_*`,
/// `alerted`, incidents, `state_seq`): that is the daemon's, which goes on from the state it
/// holds, so its own next write of the row is not stale and none of its checks is dropped.
/// False when there is no such row.
pub fn record_test(conn: &mut Conn, id: TargetId, test: &TestRecord) -> Result<bool, Error> {
    let counters: Vec<String> = COUNTERS
        .iter()
        .map(|c| {
            format!(
                "{c} = IF({c} > {max} - :{c}, {max}, {c} + :{c})",
                max = super::BIGINT_MAX
            )
        })
        .collect();
    let sql = format!(
        "UPDATE targets SET {}, last_updated = :at, last_http_status = :status, \
         last_response_ms = :ms, last_trace = :trace, last_phases = :phases, \
         cert_expires_at = IF(:issuer IS NULL, cert_expires_at, :expires), \
         cert_issuer = IF(:issuer IS NULL, cert_issuer, NULLIF(:issuer, '')), \
         config_changed = config_changed WHERE id = :id",
        counters.join(", ")
    );
    let [expires, issuer] = cert_seen(&test.cert);
    let values = [
        ("at", Value::from(test.at.as_str())),
        ("status", test.http_status.map_or(Value::NULL, Value::from)),
        ("ms", Value::from(test.response_ms.min(i32::MAX as u64))),
        (
            "trace",
            Value::from(text::clip_bytes(&test.trace, MAX_TRACE_BYTES)),
        ),
        ("issuer", issuer),
        ("expires", expires),
        ("phases", phases_value(test.phases.as_ref())),
        ("id", Value::from(id)),
    ];
    let counts = COUNTERS.into_iter().zip(counter_values(&test.counts));
    let named: HashMap<Vec<u8>, Value> = values
        .into_iter()
        .chain(counts)
        .map(|(name, v)| (name.as_bytes().to_vec(), v))
        .collect();
    conn.exec_drop(sql, mysql::Params::Named(named))
        .map_err(Error::query("recording a test's check"))?;
    Ok(conn.affected_rows() > 0)
}

/// What [`record_test`] writes of a check made by `targets ID test`.
#[derive(Debug, Clone)]
pub struct TestRecord {
    pub counts: Counts,
    /// `last_updated`, UTC `YYYY-MM-DD HH:MM:SS.mmm`.
    pub at: String,
    pub http_status: Option<u16>,
    pub response_ms: u64,
    pub trace: String,
    pub cert: CertSeen,
    /// `last_phases`.
    pub phases: Option<Phases>,
}

/// Puts an alert in the outbox, its snapshot holding the display form of the row's URL: the
/// URL as written may hold a password or a token, and the outbox keeps alerts for
/// `RetentionDays`. The row is locked (by [`lock_seqs`]), so its URL cannot change between
/// the two statements; a deleted row queues nothing.
fn queue_alert(tx: &mut mysql::Transaction, alert: &NewAlert) -> Result<(), Error> {
    let Some(shown) = shown_url(tx, alert.target_id)? else {
        return Ok(());
    };
    tx.exec_drop(
        insert_alert(),
        (
            alert.kind.as_str(),
            shown,
            text::clip_bytes(&alert.trace, MAX_TRACE_BYTES),
            alert.target_id,
        ),
    )
    .map_err(Error::query("queueing an alert"))
}

/// The display form of target `id`'s URL, for an alert's snapshot; `None` when the row is
/// gone.
pub(super) fn shown_url(tx: &mut impl Queryable, id: TargetId) -> Result<Option<String>, Error> {
    // As bytes: decoding a column can never fail, whatever a person wrote into it.
    let url: Option<Option<Vec<u8>>> = tx
        .exec_first("SELECT url FROM targets WHERE id = ?", (id,))
        .map_err(Error::query("reading the URL of an alert's target"))?;
    Ok(url.map(|u| crate::base::urls::shown(&String::from_utf8_lossy(&u.unwrap_or_default()))))
}

/// The alert's snapshot is taken by the database from the row just updated, so the message
/// shows the counters exactly as they were after the change; its keys are the row's column
/// names ([`targets::snapshot`]). Parameters: the kind, the URL's display form, the trace, the
/// target's id.
fn insert_alert() -> String {
    format!(
        "INSERT INTO alerts (target_id, kind, snapshot, trace) SELECT t.id, ?, {}, ? FROM {} \
         WHERE t.id = ?",
        targets::snapshot(),
        targets::FROM
    )
}

/// The columns a result sets, in the order of each row's values; its counts follow, in
/// [`COUNTERS`] order.
const SETS: [&str; 16] = [
    "id",
    "status",
    "previous_status",
    "status_description",
    "last_updated",
    "repeated_fails",
    "repeated_passes",
    "alerted",
    "last_alerted",
    "last_http_status",
    "last_response_ms",
    "last_trace",
    "cert_expires_at",
    "cert_issuer",
    "cert_alerted_for",
    "last_phases",
];

/// One multi-row `INSERT ... ON DUPLICATE KEY UPDATE` over rows that exist and are locked
/// ([`lock_seqs`]), so it only ever updates; counters are added (stopping at the column's
/// largest value rather than failing), so a hand edit of a counter is never overwritten, and
/// `state_seq` moves on by one.
///
/// Not `UPDATE targets JOIN (SELECT ... UNION ALL ...)`, which this program used until
/// schema 2.2: MariaDB 10.11.19 builds a temporary table for that multi-table update, and a
/// failure to build it crashed the server (signal 11 in `ha_maria::drop_table` from
/// `Create_tmp_table::cleanup_on_failure`), twice under the test suite's load.
fn update_statement(chunk: &[(&TargetId, &&RowUpdate)]) -> (String, Vec<Value>) {
    let width = SETS.len() + COUNTERS.len();
    let row = format!("({})", vec!["?"; width].join(","));
    let rows = vec![row.as_str(); chunk.len()].join(",");
    let sql = format!(
        "INSERT INTO targets ({}, {}) VALUES {rows} ON DUPLICATE KEY UPDATE \
         state_seq = state_seq + 1, status = VALUES(status), \
         previous_status = VALUES(previous_status), \
         status_description = VALUES(status_description), last_updated = VALUES(last_updated), \
         {}, \
         repeated_fails = VALUES(repeated_fails), repeated_passes = VALUES(repeated_passes), \
         alerted = VALUES(alerted), last_alerted = VALUES(last_alerted), \
         last_http_status = VALUES(last_http_status), \
         last_response_ms = VALUES(last_response_ms), last_trace = VALUES(last_trace), \
         cert_expires_at = IF(VALUES(cert_issuer) IS NULL, cert_expires_at, VALUES(cert_expires_at)), \
         cert_issuer = IF(VALUES(cert_issuer) IS NULL, cert_issuer, NULLIF(VALUES(cert_issuer), '')), \
         cert_alerted_for = VALUES(cert_alerted_for), last_phases = VALUES(last_phases), \
         config_changed = config_changed",
        SETS.join(", "),
        COUNTERS.join(", "),
        COUNTERS
            .iter()
            .map(|c| super::capped_add(c, super::BIGINT_MAX))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut params = Vec::with_capacity(chunk.len() * width);
    for (id, u) in chunk {
        params.extend([
            Value::from(**id),
            Value::from(u.status.as_str()),
            Value::from(u.previous_status.as_str()),
            Value::from(text::clip(&u.description, MAX_DESCRIPTION)),
            Value::from(u.at.as_str()),
            Value::from(u.repeated_fails),
            Value::from(u.repeated_passes),
            Value::from(u.alerted),
            u.last_alerted.as_deref().map_or(Value::NULL, Value::from),
            u.http_status.map_or(Value::NULL, Value::from),
            Value::from(u.response_ms.min(i32::MAX as u64)),
            Value::from(text::clip_bytes(&u.trace, MAX_TRACE_BYTES)),
        ]);
        params.extend(cert_values(u));
        params.push(phases_value(u.phases.as_ref()));
        params.extend(counter_values(&u.counts));
    }
    (sql, params)
}

/// `last_phases`: the JSON object of the check's phases, NULL when it sent no request.
fn phases_value(phases: Option<&Phases>) -> Value {
    phases.map_or(Value::NULL, |p| Value::from(p.to_json()))
}

/// What a check (or a batch of them) adds to each of [`COUNTERS`].
fn counter_values(c: &Counts) -> [Value; 7] {
    [c.pass, c.fail, c.c200, c.c300, c.c400, c.c500, c.network].map(signed)
}

/// `cert_expires_at`, `cert_issuer`, `cert_alerted_for`.
fn cert_values(u: &RowUpdate) -> [Value; 3] {
    let [expires, issuer] = cert_seen(&u.cert);
    [
        expires,
        issuer,
        u.cert_alerted_for.map_or(Value::NULL, utc_seconds),
    ]
}

/// `cert_expires_at`, `cert_issuer`. The issuer says what a write does to both: NULL keeps
/// them (no handshake got through), '' clears them (plain HTTP), a name sets them.
fn cert_seen(cert: &CertSeen) -> [Value; 2] {
    match cert {
        CertSeen::Seen(c) => [utc_seconds(c.expires), Value::from(c.issuer.as_str())],
        CertSeen::NotTls => [Value::NULL, Value::from("")],
        CertSeen::Unknown => [Value::NULL, Value::NULL],
    }
}

/// A DATETIME value (UTC, as every session runs) of seconds since the epoch.
fn utc_seconds(s: i64) -> Value {
    chrono::DateTime::from_timestamp(s, 0).map_or(Value::NULL, |t| {
        Value::from(t.format("%Y-%m-%d %H:%M:%S").to_string())
    })
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
