//! The writer's writes to the history tables, run by its store thread in the transaction of
//! the results that cause them: incidents opened, extended and closed with the state changes,
//! and the hourly and daily rollups added to at most once a minute.

use std::collections::BTreeMap;

use mysql::prelude::Queryable;
use mysql::Value;

use crate::base::model::TargetId;
use crate::base::rollup::{Rollup, Rollups, BUCKET_COLUMNS};
use crate::base::state::{IncidentEvent, RowUpdate};
use crate::base::text;
use crate::db::{self, Error};

/// `first_reason` and `last_reason` are VARCHAR(128).
const MAX_REASON: usize = 128;
/// Rows per multi-row statement.
const CHUNK: usize = 250;

/// Applies every target's incident events, in order: round k takes each target's k-th
/// event, so the events of one target stay in order while those of many targets share a
/// statement.
pub fn write_incidents(
    tx: &mut impl Queryable,
    updates: &BTreeMap<TargetId, &RowUpdate>,
) -> Result<(), Error> {
    let rounds = updates
        .values()
        .map(|u| u.incidents.len())
        .max()
        .unwrap_or(0);
    for round in 0..rounds {
        let mut failed = Vec::new();
        let mut recovered = Vec::new();
        for (id, u) in updates {
            match u.incidents.get(round) {
                Some(e @ IncidentEvent::Failed { .. }) => failed.push((*id, e)),
                Some(IncidentEvent::Recovered { at }) => recovered.push((*id, at.as_str())),
                None => {}
            }
        }
        for chunk in failed.chunks(CHUNK) {
            open_or_extend(tx, chunk)?;
        }
        for chunk in recovered.chunks(CHUNK) {
            close(tx, chunk)?;
        }
    }
    Ok(())
}

/// Opens an incident for each target without an open one, and extends the open ones (the
/// unique key on `open_target` tells which).
fn open_or_extend(
    tx: &mut impl Queryable,
    rows: &[(TargetId, &IncidentEvent)],
) -> Result<(), Error> {
    let marks = vec!["(?,?,?,?,?,?,?)"; rows.len()].join(",");
    let sql = format!(
        "INSERT INTO incidents (target_id, started, first_reason, last_reason, failed_checks, \
         alerted, http_status) VALUES {marks} ON DUPLICATE KEY UPDATE \
         last_reason = VALUES(last_reason), {}, \
         alerted = alerted OR VALUES(alerted), http_status = VALUES(http_status)",
        db::capped_add("failed_checks", db::BIGINT_MAX)
    );
    let mut params = Vec::with_capacity(rows.len() * 7);
    for (id, event) in rows {
        if let IncidentEvent::Failed {
            at,
            first_reason,
            last_reason,
            checks,
            alerted,
            http_status,
        } = event
        {
            params.extend([
                Value::from(*id),
                Value::from(at.as_str()),
                Value::from(text::clip(first_reason, MAX_REASON)),
                Value::from(text::clip(last_reason, MAX_REASON)),
                Value::from(*checks),
                Value::from(*alerted),
                http_status.map_or(Value::NULL, Value::from),
            ]);
        }
    }
    tx.exec_drop(sql, params)
        .map_err(Error::query("opening or extending incidents"))
}

/// One statement per incident: recoveries are few, and a multi-table `UPDATE ... JOIN
/// (SELECT ... UNION ALL ...)` makes MariaDB 10.11 build a temporary table whose failure has
/// crashed the server (see `db::results`).
fn close(tx: &mut impl Queryable, rows: &[(TargetId, &str)]) -> Result<(), Error> {
    tx.exec_batch(
        "UPDATE incidents SET ended = ? WHERE open_target = ?",
        rows.iter()
            .map(|(id, at)| (Value::from(*at), Value::from(*id))),
    )
    .map_err(Error::query("closing incidents"))
}

/// Adds the rollups to `target_hours`, and the same sums to `target_days`, [`CHUNK`] rows
/// a statement. Nothing but a chunk is copied: a minute's rollups of 100,000 targets held
/// twice more (as rows and as days) were the daemon's largest passing peak of memory.
pub fn write_rollups(tx: &mut impl Queryable, rollups: &Rollups) -> Result<(), Error> {
    let mut chunk: Vec<(TargetId, i64, Rollup)> = Vec::with_capacity(CHUNK);
    for ((id, hour), r) in rollups {
        chunk.push((*id, *hour, *r));
        if chunk.len() == CHUNK {
            add_rollups(tx, "target_hours", "hour", "FROM_UNIXTIME(?)", &chunk)?;
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        add_rollups(tx, "target_hours", "hour", "FROM_UNIXTIME(?)", &chunk)?;
        chunk.clear();
    }
    // The map is ordered by target, then hour: a target's hours of one day are neighbours.
    let day_time = "DATE(FROM_UNIXTIME(?))";
    for ((id, hour), r) in rollups {
        let day = hour.div_euclid(86400) * 86400;
        match chunk.last_mut() {
            Some((last_id, last_day, sum)) if last_id == id && *last_day == day => sum.add(r),
            _ => {
                if chunk.len() == CHUNK {
                    add_rollups(tx, "target_days", "day", day_time, &chunk)?;
                    chunk.clear();
                }
                chunk.push((*id, day, *r));
            }
        }
    }
    if !chunk.is_empty() {
        add_rollups(tx, "target_days", "day", day_time, &chunk)?;
    }
    Ok(())
}

/// One additive upsert of rollup rows into `table`, whose time column is `column`.
fn add_rollups(
    tx: &mut impl Queryable,
    table: &str,
    column: &str,
    time: &str,
    rows: &[(TargetId, i64, Rollup)],
) -> Result<(), Error> {
    let buckets = BUCKET_COLUMNS.join(", ");
    let one = format!(
        "(?, {time}, ?, ?, ?, ?, ?{})",
        ", ?".repeat(BUCKET_COLUMNS.len())
    );
    let marks = vec![one.as_str(); rows.len()].join(",");
    let sums = [
        ("checks", db::BIGINT_MAX),
        ("failures", db::BIGINT_MAX),
        ("fail_seconds", db::DOUBLE_MAX),
        ("response_ms_sum", db::BIGINT_MAX),
    ];
    let added: Vec<String> = sums
        .into_iter()
        .chain(BUCKET_COLUMNS.iter().map(|c| (*c, db::INT_MAX)))
        .map(|(c, max)| db::capped_add(c, max))
        .collect();
    let sql = format!(
        "INSERT INTO {table} (target_id, {column}, checks, failures, fail_seconds, \
         response_ms_sum, response_ms_max, {buckets}) VALUES {marks} ON DUPLICATE KEY UPDATE \
         {}, response_ms_max = GREATEST(response_ms_max, VALUES(response_ms_max))",
        added.join(", ")
    );
    let mut params = Vec::with_capacity(rows.len() * 18);
    for (id, at, r) in rows {
        params.extend([
            Value::from(*id),
            Value::from(*at),
            Value::from(r.checks),
            Value::from(r.failures),
            Value::from(r.fail_seconds),
            Value::from(r.response_ms_sum),
            Value::from(r.response_ms_max.min(i32::MAX as u64)),
        ]);
        params.extend(r.buckets.iter().map(|n| Value::from(*n)));
    }
    tx.exec_drop(sql, params)
        .map_err(Error::query("adding to the rollups"))
}
