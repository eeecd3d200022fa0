//! Reading target rows (loader thread, CLI) and the few writes that are not check results:
//! enable/disable and config errors. The row itself, its one column list and its decoder are
//! `row.rs`, which every reader of whole rows shares; PUSH targets' pushes are `push.rs`.

mod columns;
pub mod push;
mod row;

use std::collections::BTreeMap;

use mysql::prelude::Queryable;
use mysql::{params, Row};

use super::decode::{self, Fields, Fix};
use super::{Conn, Error};
use crate::base::model::TargetId;
pub use columns::{select, snapshot, Read, COUNTERS, FROM};
pub use row::{decoded, TargetRow};

const TABLE: &str = "targets";

/// Writes (and logs) the repairs of a row's daemon-owned values, keeping its revision; true
/// when this call repaired the row (see [`super::repair_row`]).
pub fn repair(conn: &mut Conn, id: TargetId, fixes: &[Fix]) -> Result<bool, Error> {
    let shown = format!("id {id}");
    let key = ("id = ?", vec![id.into()]);
    let keep = ", config_changed = config_changed";
    super::repair_row(conn, (TABLE, &shown), key, fixes, keep)
}

/// Every target that decodes, for the CLI's list; the others are reported (see
/// [`decode::skip`]).
pub fn all(conn: &mut Conn) -> Result<Vec<TargetRow>, Error> {
    let sql = format!("{} ORDER BY t.id", select(Read::NoTrace));
    let rows: Vec<Row> = conn.query(sql).map_err(Error::query("listing targets"))?;
    Ok(decode::good_rows(TABLE, rows, |f| {
        TargetRow::decode(f, Read::NoTrace)
    }))
}

/// One target by id; a row that does not decode is an [`Error::Row`] saying why.
pub fn get(conn: &mut Conn, id: TargetId) -> Result<Option<TargetRow>, Error> {
    let sql = format!("{} WHERE t.id = ?", select(Read::All));
    let row: Option<Row> = conn
        .exec_first(sql, (id,))
        .map_err(Error::query("reading a target"))?;
    row.map(|r| TargetRow::decode(&mut Fields::new(TABLE, r), Read::All).map_err(Error::Row))
        .transpose()
}

/// Up to `limit` enabled targets with ids above `after`, by id: the loader's first read, in
/// pages so that 100,000 rows are never all in memory at once.
pub fn enabled_page(
    conn: &mut Conn,
    after: TargetId,
    limit: usize,
) -> Result<Vec<TargetRow>, Error> {
    let sql = format!(
        "{} WHERE t.enabled AND t.id > ? ORDER BY t.id LIMIT ?",
        select(Read::NoTrace)
    );
    let rows: Vec<Row> = conn
        .exec(sql, (after, limit as u64))
        .map_err(Error::query("loading enabled targets"))?;
    Ok(decode::good_rows(TABLE, rows, TargetRow::load))
}

/// The database server's clock, in microseconds since the epoch: change scans are measured
/// against it, not against this host's clock.
pub fn db_clock(conn: &mut Conn) -> Result<i64, Error> {
    let row: Option<Row> = conn
        .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)")
        .map_err(Error::query("reading the database clock"))?;
    Ok(decode::first("NOW()", row, |f| f.get(0, "NOW(6)")).unwrap_or(0))
}

/// The targets with these ids (enabled or not).
pub fn by_ids(conn: &mut Conn, ids: &[TargetId]) -> Result<Vec<TargetRow>, Error> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!("{} WHERE t.id IN ({marks})", select(Read::NoTrace));
        let rows: Vec<Row> = conn
            .exec(sql, chunk.to_vec())
            .map_err(Error::query("reading changed targets"))?;
        out.extend(decode::good_rows(TABLE, rows, TargetRow::load));
    }
    Ok(out)
}

/// Ids and revisions of rows whose `config_changed` is at or after `since` (microseconds):
/// the reload scan reads these two columns through the index, not whole rows. A row whose id
/// is not usable (0 or negative) is reported (see [`decode::skip`]) and left out.
pub fn changed_since(conn: &mut Conn, since: i64) -> Result<Vec<(TargetId, i64)>, Error> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT id, CAST(UNIX_TIMESTAMP(config_changed) * 1000000 AS SIGNED) FROM targets \
             WHERE config_changed >= FROM_UNIXTIME(? / 1000000)",
            (since,),
        )
        .map_err(Error::query("scanning for changed targets"))?;
    Ok(decode::good_rows(TABLE, rows, |f| {
        Ok((f.id(0, "id")?, f.opt(1, "config_changed")?.unwrap_or(0)))
    }))
}

/// Reports the rows whose ids are 0 or negative (see [`decode::skip`]): never checked, since
/// no other table could name them. How many there are.
pub fn report_unusable(conn: &mut Conn) -> Result<usize, Error> {
    let rows: Vec<Row> = conn
        .query("SELECT id FROM targets WHERE id <= 0")
        .map_err(Error::query("looking for rows with unusable ids"))?;
    let n = rows.len();
    decode::good_rows(TABLE, rows, |f| f.id(0, "id"));
    Ok(n)
}

/// Count and id sum of enabled rows with usable ids: a cheap fingerprint that changes when a
/// row is deleted.
pub fn enabled_fingerprint(conn: &mut Conn) -> Result<(u64, u64), Error> {
    let row: Option<Row> = conn
        .query_first(
            "SELECT COUNT(*), CAST(COALESCE(SUM(id), 0) AS UNSIGNED) FROM targets \
             WHERE enabled AND id > 0",
        )
        .map_err(Error::query("counting enabled targets"))?;
    let fingerprint = decode::first(TABLE, row, |f| Ok((f.get(0, "COUNT")?, f.get(1, "SUM")?)));
    Ok(fingerprint.unwrap_or((0, 0)))
}

/// Every enabled row's `depends_on` (those with one), and whether a row of that id exists:
/// the loader's whole dependency graph, read through the `targets_depends_on` index.
pub fn dependencies(conn: &mut Conn) -> Result<BTreeMap<TargetId, (i64, bool)>, Error> {
    let rows: Vec<Row> = conn
        .query(
            "SELECT t.id, t.depends_on, p.id IS NOT NULL FROM targets t \
             LEFT JOIN targets p ON p.id = t.depends_on \
             WHERE t.depends_on IS NOT NULL AND t.enabled AND t.id > 0",
        )
        .map_err(Error::query("reading the targets' dependencies"))?;
    Ok(decode::good_rows(TABLE, rows, |f| {
        Ok((
            f.id(0, "id")?,
            (f.get(1, "depends_on")?, f.flag(2, "depends_on")?),
        ))
    })
    .into_iter()
    .collect())
}

/// Ids of every enabled row with a usable id.
pub fn enabled_ids(conn: &mut Conn) -> Result<Vec<TargetId>, Error> {
    let rows: Vec<Row> = conn
        .query("SELECT id FROM targets WHERE enabled AND id > 0")
        .map_err(Error::query("listing enabled ids"))?;
    Ok(decode::good_rows(TABLE, rows, |f| f.id(0, "id")))
}

/// Enables or disables a target; false when there is no such id.
pub fn set_enabled(conn: &mut Conn, id: TargetId, enabled: bool) -> Result<bool, Error> {
    conn.exec_drop("UPDATE targets SET enabled = ? WHERE id = ?", (enabled, id))
        .map_err(Error::query("enabling or disabling a target"))?;
    Ok(conn.affected_rows() > 0 || get(conn, id)?.is_some())
}

/// Of these rows, the ones (still enabled) whose status is not a `config error: ...` FAIL.
pub fn without_config_error(conn: &mut Conn, ids: &[TargetId]) -> Result<Vec<TargetId>, Error> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!(
            "SELECT id FROM targets WHERE id IN ({marks}) AND enabled AND NOT \
             (status = 'FAIL' AND status_description LIKE 'config error:%')"
        );
        let found: Vec<Row> = conn
            .exec(sql, chunk.to_vec())
            .map_err(Error::query("checking config errors"))?;
        out.extend(decode::good_rows(TABLE, found, |f| f.id(0, "id")));
    }
    Ok(out)
}

/// Marks a row that does not validate: FAIL with `config error: ...`, its revision kept so
/// that the write is not mistaken for an operator's edit.
pub fn mark_config_error(conn: &mut Conn, id: TargetId, description: &str) -> Result<(), Error> {
    let description = format!("config error: {description}");
    let description = crate::base::text::clip(&description, 128);
    conn.exec_drop(
        "UPDATE targets SET previous_status = status, status = 'FAIL', \
         status_description = :d, last_updated = NOW(), config_changed = config_changed \
         WHERE id = :id",
        params! { "d" => description, "id" => id },
    )
    .map_err(Error::query("recording a target's config error"))
}

/// Counts for `skypunch status`: every row by status, and how many are disabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub total: u64,
    pub pass: u64,
    pub fail: u64,
    pub new: u64,
    pub disabled: u64,
}

/// One pass over the table for [`Summary`].
pub fn summary(conn: &mut Conn) -> Result<Summary, Error> {
    let row: Option<Row> = conn
        .query_first(
            "SELECT COUNT(*), \
             CAST(COALESCE(SUM(status = 'PASS'), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(status = 'FAIL'), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(status = 'NEW'), 0) AS UNSIGNED), \
             CAST(COALESCE(SUM(NOT enabled), 0) AS UNSIGNED) FROM targets",
        )
        .map_err(Error::query("counting targets"))?;
    let summary = decode::first(TABLE, row, |f| {
        Ok(Summary {
            total: f.get(0, "COUNT")?,
            pass: f.get(1, "PASS")?,
            fail: f.get(2, "FAIL")?,
            new: f.get(3, "NEW")?,
            disabled: f.get(4, "disabled")?,
        })
    });
    Ok(summary.unwrap_or_default())
}
