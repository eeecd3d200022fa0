//! The history tables (schema 2.1): incidents written with the state changes that cause
//! them, hourly and daily rollups added to at most once a minute, disabled periods, and
//! their pruning. Times are UTC, `YYYY-MM-DD HH:MM:SS.mmm`.

use std::collections::BTreeMap;

use mysql::prelude::Queryable;
use mysql::Value;

use super::{Conn, Error};
use crate::config::HistoryConfig;
use crate::model::TargetId;
use crate::rollup::{Rollup, Rollups, BUCKET_COLUMNS};
use crate::state::{IncidentEvent, RowUpdate};
use crate::text;

/// `first_reason` and `last_reason` are VARCHAR(128).
const MAX_REASON: usize = 128;
/// Rows per multi-row statement.
const CHUNK: usize = 250;
/// Rows one pruning statement deletes, so that no statement holds locks for long.
const PRUNE_CHUNK: u64 = 5000;

/// Applies every target's incident events, in order: round k takes each target's k-th
/// event, so the events of one target stay in order while those of many targets share a
/// statement.
pub fn write_incidents(
    tx: &mut impl Queryable,
    updates: &BTreeMap<TargetId, RowUpdate>,
) -> Result<(), Error> {
    let rounds = updates.values().map(|u| u.incidents.len()).max().unwrap_or(0);
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
fn open_or_extend(tx: &mut impl Queryable, rows: &[(TargetId, &IncidentEvent)]) -> Result<(), Error> {
    let marks = vec!["(?,?,?,?,?,?,?)"; rows.len()].join(",");
    let sql = format!(
        "INSERT INTO incidents (target_id, started, first_reason, last_reason, failed_checks, \
         alerted, http_status) VALUES {marks} ON DUPLICATE KEY UPDATE \
         last_reason = VALUES(last_reason), failed_checks = failed_checks + VALUES(failed_checks), \
         alerted = alerted OR VALUES(alerted), http_status = VALUES(http_status)"
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

fn close(tx: &mut impl Queryable, rows: &[(TargetId, &str)]) -> Result<(), Error> {
    let values = vec!["SELECT ? AS t, ? AS e"; rows.len()].join(" UNION ALL ");
    let sql = format!(
        "UPDATE incidents i JOIN ({values}) v ON i.open_target = v.t SET i.ended = v.e"
    );
    let params: Vec<Value> = rows
        .iter()
        .flat_map(|(id, at)| [Value::from(*id), Value::from(*at)])
        .collect();
    tx.exec_drop(sql, params)
        .map_err(Error::query("closing incidents"))
}

/// Adds the rollups to `target_hours`, and the same sums to `target_days`.
pub fn write_rollups(tx: &mut impl Queryable, rollups: &Rollups) -> Result<(), Error> {
    let hours: Vec<(TargetId, i64, Rollup)> = rollups.iter().map(|((t, h), r)| (*t, *h, *r)).collect();
    let mut days: BTreeMap<(TargetId, i64), Rollup> = BTreeMap::new();
    for (id, hour, r) in &hours {
        days.entry((*id, hour.div_euclid(86400) * 86400))
            .or_default()
            .add(r);
    }
    let days: Vec<(TargetId, i64, Rollup)> = days.into_iter().map(|((t, d), r)| (t, d, r)).collect();
    for chunk in hours.chunks(CHUNK) {
        add_rollups(tx, "target_hours", "hour", "FROM_UNIXTIME(?)", chunk)?;
    }
    for chunk in days.chunks(CHUNK) {
        add_rollups(tx, "target_days", "day", "DATE(FROM_UNIXTIME(?))", chunk)?;
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
    let one = format!("(?, {time}, ?, ?, ?, ?, ?{})", ", ?".repeat(BUCKET_COLUMNS.len()));
    let marks = vec![one.as_str(); rows.len()].join(",");
    let added: Vec<String> = ["checks", "failures", "fail_seconds", "response_ms_sum"]
        .iter()
        .chain(BUCKET_COLUMNS.iter())
        .map(|c| format!("{c} = {c} + VALUES({c})"))
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

/// What a prune removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub hours: u64,
    pub days: u64,
    pub incidents: u64,
}

/// Deletes what is older than the retention, a chunk at a time; `keep_going` is asked
/// between chunks (a stop request ends the prune; the next one goes on).
pub fn prune(
    conn: &mut Conn,
    keep: &HistoryConfig,
    keep_going: &dyn Fn() -> bool,
) -> Result<Pruned, Error> {
    let hours = prune_table(
        conn,
        "DELETE FROM target_hours WHERE hour < UTC_TIMESTAMP() - INTERVAL ? DAY LIMIT ?",
        keep.hourly_days,
        keep_going,
    )?;
    let days = prune_table(
        conn,
        "DELETE FROM target_days WHERE day < UTC_DATE() - INTERVAL ? DAY LIMIT ?",
        keep.daily_days,
        keep_going,
    )?;
    let incidents = match keep.incident_days {
        Some(d) => prune_table(
            conn,
            "DELETE FROM incidents WHERE ended IS NOT NULL \
             AND ended < UTC_TIMESTAMP() - INTERVAL ? DAY LIMIT ?",
            d,
            keep_going,
        )?,
        None => 0,
    };
    Ok(Pruned {
        hours,
        days,
        incidents,
    })
}

fn prune_table(
    conn: &mut Conn,
    sql: &str,
    days: u32,
    keep_going: &dyn Fn() -> bool,
) -> Result<u64, Error> {
    let mut total = 0;
    loop {
        conn.exec_drop(sql, (days, PRUNE_CHUNK))
            .map_err(Error::query("pruning history"))?;
        let n = conn.affected_rows();
        total += n;
        if n < PRUNE_CHUNK || !keep_going() {
            return Ok(total);
        }
    }
}

/// A target stopped being checked (disabled): its pause opens now, unless one is open.
pub fn pause(conn: &mut Conn, id: TargetId) -> Result<(), Error> {
    conn.exec_drop(
        "INSERT IGNORE INTO target_pauses (target_id, started) VALUES (?, UTC_TIMESTAMP(3))",
        (id,),
    )
    .map_err(Error::query("recording a disabled target"))
}

/// A target is checked again: its open pause, if any, ends now.
pub fn resume(conn: &mut Conn, id: TargetId) -> Result<(), Error> {
    conn.exec_drop(
        "UPDATE target_pauses SET ended = UTC_TIMESTAMP(3) WHERE open_target = ?",
        (id,),
    )
    .map_err(Error::query("recording an enabled target"))
}

/// At start: ends the pauses of targets enabled meanwhile, and opens one for each disabled
/// target without one (disabled while no daemon ran; the pause starts now).
pub fn reconcile_pauses(conn: &mut Conn) -> Result<(), Error> {
    conn.query_drop(
        "UPDATE target_pauses p JOIN targets t ON t.id = p.target_id \
         SET p.ended = UTC_TIMESTAMP(3) WHERE p.ended IS NULL AND t.enabled = 1",
    )
    .map_err(Error::query("ending pauses of enabled targets"))?;
    conn.query_drop(
        "INSERT IGNORE INTO target_pauses (target_id, started) \
         SELECT id, UTC_TIMESTAMP(3) FROM targets WHERE enabled = 0",
    )
    .map_err(Error::query("opening pauses of disabled targets"))
}
