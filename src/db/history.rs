//! The history tables (schema 2.1): incidents written with the state changes that cause
//! them, hourly and daily rollups added to at most once a minute, disabled periods, and
//! their pruning. Times are UTC, `YYYY-MM-DD HH:MM:SS.mmm`.

use std::collections::BTreeMap;

use mysql::prelude::Queryable;
use mysql::Value;

use super::decode::{self, BadRow, Fields};
use super::{Conn, Error};
use crate::base::model::{Incident, TargetId};
use crate::base::rollup::{Rollup, Rollups, BUCKET_COLUMNS};
use crate::base::state::{IncidentEvent, RowUpdate};
use crate::base::text;
use crate::config::HistoryConfig;

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
        super::capped_add("failed_checks", super::BIGINT_MAX)
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
        ("checks", super::BIGINT_MAX),
        ("failures", super::BIGINT_MAX),
        ("fail_seconds", super::DOUBLE_MAX),
        ("response_ms_sum", super::BIGINT_MAX),
    ];
    let added: Vec<String> = sums
        .into_iter()
        .chain(BUCKET_COLUMNS.iter().map(|c| (*c, super::INT_MAX)))
        .map(|(c, max)| super::capped_add(c, max))
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

/// Ids as a parameter list, or every target.
fn id_filter(ids: &[TargetId], column: &str) -> (String, Vec<Value>) {
    if ids.is_empty() {
        return (String::new(), Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(",");
    (
        format!(" AND {column} IN ({marks})"),
        ids.iter().map(|id| Value::from(*id)).collect(),
    )
}

/// When each of these targets (all when empty) was created (`created_at`, ms since the
/// epoch): uptime counts from then. A row whose id or time does not read is left out; its
/// reader counts from the window's start.
pub fn created(conn: &mut Conn, ids: &[TargetId]) -> Result<BTreeMap<TargetId, i64>, Error> {
    let (filter, params) = id_filter(ids, "id");
    let sql = format!(
        "SELECT id, CAST(UNIX_TIMESTAMP(created_at) * 1000 AS SIGNED) FROM targets \
         WHERE 1 = 1{filter}"
    );
    let rows: Vec<mysql::Row> = conn
        .exec(sql, params)
        .map_err(Error::query("reading when targets were created"))?;
    Ok(super::decode::good_rows("targets", rows, |f| {
        Ok((f.id(0, "id")?, f.get(1, "created_at")?))
    })
    .into_iter()
    .collect())
}

/// Incidents of these targets (all when empty) that overlap `[from, to)`, oldest first.
pub fn incidents(
    conn: &mut Conn,
    ids: &[TargetId],
    from: i64,
    to: i64,
) -> Result<Vec<Incident>, Error> {
    let (filter, mut params) = id_filter(ids, "target_id");
    let sql = format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE started < FROM_UNIXTIME(? / 1000) \
         AND (ended IS NULL OR ended > FROM_UNIXTIME(? / 1000)){filter} ORDER BY started"
    );
    params.splice(0..0, [Value::from(to), Value::from(from)]);
    let rows: Vec<mysql::Row> = conn
        .exec(sql, params)
        .map_err(Error::query("reading incidents"))?;
    Ok(decode::good_rows("incidents", rows, incident))
}

/// The columns of an incident `i`, as [`incident`] decodes them (the HTTP server's lists
/// read them too).
pub const INCIDENT_COLUMNS: &str = "i.id, i.target_id, \
     CAST(UNIX_TIMESTAMP(i.started) * 1000 AS SIGNED), \
     CAST(UNIX_TIMESTAMP(i.ended) * 1000 AS SIGNED), i.first_reason, i.failed_checks, i.alerted, \
     i.last_reason, i.http_status";

/// Decodes an incident read with [`INCIDENT_COLUMNS`] (the first of a row's columns).
pub fn incident(f: &mut Fields) -> Result<Incident, BadRow> {
    let id = f.id(0, "id")?;
    let target_id = f.reference(1, "target_id")?;
    let started = f.get(2, "started")?;
    let ended = f.opt(3, "ended")?;
    let first_reason = f.get(4, "first_reason")?;
    let failed_checks = f.get::<i64>(5, "failed_checks")?.max(0) as u64;
    Ok(Incident {
        id,
        target_id,
        started,
        ended,
        first_reason,
        failed_checks,
        alerted: f.flag(6, "alerted")?,
        last_reason: f.get(7, "last_reason")?,
        http_status: f.opt(8, "http_status")?,
    })
}

/// Time left out of uptime, for these targets (all when empty), overlapping `[from, to)`:
/// disabled periods (`target_pauses`; an open one has no end) and maintenance windows (one
/// for every target applies to each).
pub fn pauses(
    conn: &mut Conn,
    ids: &[TargetId],
    from: i64,
    to: i64,
) -> Result<Vec<(TargetId, i64, Option<i64>)>, Error> {
    let (filter, ids_params) = id_filter(ids, "target_id");
    let (t_filter, t_params) = id_filter(ids, "t.id");
    let sql = format!(
        "SELECT target_id, CAST(UNIX_TIMESTAMP(started) * 1000 AS SIGNED), \
         CAST(UNIX_TIMESTAMP(ended) * 1000 AS SIGNED) FROM target_pauses \
         WHERE started < FROM_UNIXTIME(? / 1000) \
         AND (ended IS NULL OR ended > FROM_UNIXTIME(? / 1000)){filter} \
         UNION ALL SELECT t.id, CAST(UNIX_TIMESTAMP(m.starts) * 1000 AS SIGNED), \
         CAST(UNIX_TIMESTAMP(m.ends) * 1000 AS SIGNED) FROM maintenance m \
         JOIN targets t ON m.target_id IS NULL OR m.target_id = t.id \
         WHERE m.starts < FROM_UNIXTIME(? / 1000) AND m.ends > FROM_UNIXTIME(? / 1000){t_filter}"
    );
    let mut params = vec![Value::from(to), Value::from(from)];
    params.extend(ids_params);
    params.extend([Value::from(to), Value::from(from)]);
    params.extend(t_params);
    let rows: Vec<mysql::Row> = conn.exec(sql, params).map_err(Error::query(
        "reading disabled periods and maintenance windows",
    ))?;
    let all = decode::good_rows("target_pauses", rows, |f| {
        Ok((
            f.get::<i64>(0, "target_id")?,
            f.get(1, "started")?,
            f.opt(2, "ended")?,
        ))
    });
    // A target whose id is not usable is reported where its row is read, not here.
    Ok(all
        .into_iter()
        .filter_map(|(id, from, to)| Some((u64::try_from(id).ok()?, from, to)))
        .collect())
}

/// The maintenance windows covering target `id` (its own and those of every target) that
/// overlap `[from, to)`: start and end, milliseconds since the epoch.
pub fn windows(
    conn: &mut Conn,
    id: TargetId,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, i64)>, Error> {
    let rows: Vec<mysql::Row> = conn
        .exec(
            "SELECT id, CAST(UNIX_TIMESTAMP(starts) * 1000 AS SIGNED), \
             CAST(UNIX_TIMESTAMP(ends) * 1000 AS SIGNED) FROM maintenance \
             WHERE (target_id IS NULL OR target_id = ?) \
             AND starts < FROM_UNIXTIME(? / 1000) AND ends > FROM_UNIXTIME(? / 1000) ORDER BY starts",
            (id, to, from),
        )
        .map_err(Error::query("reading maintenance windows"))?;
    Ok(decode::good_rows("maintenance", rows, |f| {
        f.id(0, "id")?;
        Ok((f.get(1, "starts")?, f.get(2, "ends")?))
    }))
}

/// Rollups summed per target over `[from, to)`: from `target_hours` (`hourly`) or
/// `target_days`, whole hours or days that start in the window.
pub fn rollup_sums(
    conn: &mut Conn,
    ids: &[TargetId],
    from: i64,
    to: i64,
    hourly: bool,
) -> Result<BTreeMap<TargetId, Rollup>, Error> {
    let (table, column) = if hourly {
        ("target_hours", "hour")
    } else {
        ("target_days", "day")
    };
    let rows = rollup_rows(conn, ids, from, to, table, column, "target_id")?;
    Ok(rows.into_iter().collect())
}

/// One target's hourly rollups over `[from, to)`, by the hour's start (seconds).
pub fn hourly(
    conn: &mut Conn,
    id: TargetId,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Rollup)>, Error> {
    let rows = rollup_rows(
        conn,
        &[id],
        from,
        to,
        "target_hours",
        "hour",
        "UNIX_TIMESTAMP(hour)",
    )?;
    Ok(rows.into_iter().map(|(k, r)| (k as i64, r)).collect())
}

fn rollup_rows(
    conn: &mut Conn,
    ids: &[TargetId],
    from: i64,
    to: i64,
    table: &str,
    column: &str,
    key: &str,
) -> Result<Vec<(u64, Rollup)>, Error> {
    let rows = rollup_query(conn, ids, (from, to), (table, column), &[key])?;
    Ok(rows
        .into_iter()
        .map(|row| (number(row.as_ref(0)) as u64, rollup_of(&row, 1)))
        .collect())
}

/// Daily rollups of these targets (all when empty) for the days that start in `[from, to)`:
/// target, the day's start (seconds since the epoch), and its figures.
pub fn daily(
    conn: &mut Conn,
    ids: &[TargetId],
    from: i64,
    to: i64,
) -> Result<Vec<(TargetId, i64, Rollup)>, Error> {
    let keys = ["target_id", "UNIX_TIMESTAMP(day)"];
    let rows = rollup_query(conn, ids, (from, to), ("target_days", "day"), &keys)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (id, day) = (number(row.as_ref(0)), number(row.as_ref(1)));
            (id as TargetId, day as i64, rollup_of(&row, 2))
        })
        .collect())
}

/// Rollup sums grouped by `keys` (selected first, as unsigned numbers), from `table` rows
/// whose `column` is in `[from, to)` (ms).
fn rollup_query(
    conn: &mut Conn,
    ids: &[TargetId],
    (from, to): (i64, i64),
    (table, column): (&str, &str),
    keys: &[&str],
) -> Result<Vec<mysql::Row>, Error> {
    let (filter, mut params) = id_filter(ids, "target_id");
    let sums: Vec<String> = ["checks", "failures", "fail_seconds", "response_ms_sum"]
        .iter()
        .chain(BUCKET_COLUMNS.iter())
        .map(|c| format!("SUM({c})"))
        .collect();
    let selected: Vec<String> = keys
        .iter()
        .map(|k| format!("CAST({k} AS UNSIGNED)"))
        .collect();
    let groups: Vec<String> = (1..=keys.len()).map(|i| i.to_string()).collect();
    let sql = format!(
        "SELECT {}, MAX(response_ms_max), {} FROM {table} \
         WHERE {column} >= FROM_UNIXTIME(? / 1000) AND {column} < FROM_UNIXTIME(? / 1000){filter} \
         GROUP BY {groups} ORDER BY {groups}",
        selected.join(", "),
        sums.join(", "),
        groups = groups.join(", ")
    );
    params.splice(0..0, [Value::from(from), Value::from(to)]);
    conn.exec(sql, params)
        .map_err(Error::query("reading rollups"))
}

/// The figures of a rollup row, from column `first` on: the maximum, then the sums.
fn rollup_of(row: &mysql::Row, first: usize) -> Rollup {
    let x = |i: usize| number(row.as_ref(first + i));
    let n = |i: usize| x(i) as u64;
    let mut r = Rollup {
        response_ms_max: n(0),
        checks: n(1),
        failures: n(2),
        fail_seconds: x(3),
        response_ms_sum: n(4),
        buckets: [0; 11],
    };
    for (i, b) in r.buckets.iter_mut().enumerate() {
        *b = n(5 + i);
    }
    r
}

/// A numeric column as the server sent it (integers, doubles, or decimals as text; the
/// binary and text protocols differ), 0 for NULL.
fn number(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Int(i)) => *i as f64,
        Some(Value::UInt(u)) => *u as f64,
        Some(Value::Float(f)) => f64::from(*f),
        Some(Value::Double(d)) => *d,
        Some(Value::Bytes(b)) => std::str::from_utf8(b)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0.0),
        _ => 0.0,
    }
}

/// The target's latest incident (the open one, or the one a recovery just closed): what a
/// webhook or PagerDuty delivery names, so that its FAILURE and SUCCESS share one key.
pub fn incident_of(conn: &mut Conn, target: TargetId) -> Result<Option<Incident>, Error> {
    let row: Option<mysql::Row> = conn
        .exec_first(
            format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE target_id = ? \
                 ORDER BY started DESC, id DESC LIMIT 1"
            ),
            (target,),
        )
        .map_err(Error::query("reading the target's incident"))?;
    Ok(decode::first("incidents", row, incident))
}
