//! The reads of the history tables, for `skypunch report`, `skypunch history`, the status
//! pages and the notifier's incident look-up: incidents, disabled periods and maintenance
//! windows overlapping a window, rollup sums, and when targets were created.

use std::collections::BTreeMap;

use mysql::prelude::Queryable;
use mysql::Value;

use crate::base::model::{Incident, TargetId};
use crate::base::rollup::{Rollup, BUCKET_COLUMNS};
use crate::db::decode::{self, BadRow, Fields};
use crate::db::{Conn, Error};

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
    Ok(decode::good_rows("targets", rows, |f| {
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
     i.last_reason, i.http_status, i.unconfirmed";

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
        unconfirmed: f.flag(9, "unconfirmed")?,
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

/// The latest incident of each of these targets (see [`incident_of`]), for the lines of a
/// grouped message: one statement per 1,000 targets, each a lookup on the targets' index.
pub fn incidents_of(
    conn: &mut Conn,
    targets: &[TargetId],
) -> Result<BTreeMap<TargetId, Incident>, Error> {
    let mut latest: BTreeMap<TargetId, Incident> = BTreeMap::new();
    for chunk in targets.chunks(1000) {
        let (filter, params) = id_filter(chunk, "target_id");
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents i WHERE (i.target_id, i.started) IN \
             (SELECT target_id, MAX(started) FROM incidents WHERE 1 = 1{filter} GROUP BY target_id)"
        );
        let rows: Vec<mysql::Row> = conn
            .exec(sql, params)
            .map_err(Error::query("reading the targets' incidents"))?;
        for i in decode::good_rows("incidents", rows, incident) {
            // Two incidents that started in the same millisecond: the later one.
            if latest.get(&i.target_id).is_none_or(|l| l.id < i.id) {
                latest.insert(i.target_id, i);
            }
        }
    }
    Ok(latest)
}
