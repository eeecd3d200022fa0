//! Reading notifier rows (CLI, notifier thread) and enabling or disabling them.

use mysql::prelude::Queryable;
use mysql::Row;

use super::decode::{self, BadRow, Fields, Fix};
use super::{Conn, Error};

/// A `notifiers` row as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifierRow {
    pub id: u64,
    pub name: String,
    pub kind: String,
    pub address: String,
    pub params: String,
    pub pass_count: i64,
    pub fail_count: i64,
    pub enabled: bool,
}

const COLUMNS: &str = "id, name, type, address, params, pass_count, fail_count, enabled";

const TABLE: &str = "notifiers";

fn decode(f: &mut Fields) -> Result<NotifierRow, BadRow> {
    Ok(NotifierRow {
        id: f.id(0, "id")?,
        name: f.get(1, "name")?,
        kind: f.get(2, "type")?,
        address: f.get(3, "address")?,
        params: f.secret(4, "params")?.unwrap_or_default(),
        pass_count: f.get(5, "pass_count")?,
        fail_count: f.get(6, "fail_count")?,
        enabled: f.flag(7, "enabled")?,
    })
}

impl NotifierRow {
    /// Its counters a person edited out of range, and what they are repaired to.
    pub fn fixes(&self) -> Vec<Fix> {
        [
            ("pass_count", self.pass_count),
            ("fail_count", self.fail_count),
        ]
        .into_iter()
        .filter_map(|(column, n)| decode::counter_fix(column, n))
        .collect()
    }
}

/// Every notifier that decodes, by id; the others are reported (see [`decode::skip`]).
pub fn all(conn: &mut Conn) -> Result<Vec<NotifierRow>, Error> {
    let rows: Vec<Row> = conn
        .query(format!("SELECT {COLUMNS} FROM notifiers ORDER BY id"))
        .map_err(Error::query("listing notifiers"))?;
    Ok(decode::good_rows(TABLE, rows, decode))
}

/// One notifier by id; a row that does not decode is an [`Error::Row`] saying why.
pub fn get(conn: &mut Conn, id: u64) -> Result<Option<NotifierRow>, Error> {
    let row: Option<Row> = conn
        .exec_first(
            format!("SELECT {COLUMNS} FROM notifiers WHERE id = ?"),
            (id,),
        )
        .map_err(Error::query("reading a notifier"))?;
    row.map(|r| decode(&mut Fields::new(TABLE, r)).map_err(Error::Row))
        .transpose()
}

/// Writes (and logs) the repairs of a notifier's counters; true when this call made them.
pub fn repair(conn: &mut Conn, id: u64, fixes: &[Fix]) -> Result<bool, Error> {
    let shown = format!("id {id}");
    super::repair_row(
        conn,
        (TABLE, &shown),
        ("id = ?", vec![id.into()]),
        fixes,
        "",
    )
}

/// Enables or disables a notifier; false when there is no such id.
pub fn set_enabled(conn: &mut Conn, id: u64, enabled: bool) -> Result<bool, Error> {
    conn.exec_drop(
        "UPDATE notifiers SET enabled = ? WHERE id = ?",
        (enabled, id),
    )
    .map_err(Error::query("enabling or disabling a notifier"))?;
    Ok(conn.affected_rows() > 0 || get(conn, id)?.is_some())
}

/// The notifiers a target is routed to (`target_notifiers`), by id; empty: every one.
pub fn routed_to(conn: &mut Conn, target: u64) -> Result<Vec<(u64, String)>, Error> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT n.id, n.name FROM target_notifiers r JOIN notifiers n ON n.id = r.notifier_id \
             WHERE r.target_id = ? ORDER BY n.id",
            (target,),
        )
        .map_err(Error::query("reading the target's notifiers"))?;
    Ok(decode::good_rows(TABLE, rows, |f| {
        Ok((f.id(0, "id")?, f.get(1, "name")?))
    }))
}

/// What became of the FAILURE and REMINDER alerts a target raised in `[from, to]` (ms since
/// the epoch; `to` `None`: until now), for `targets ID history`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlertsFate {
    /// Alerts raised (those older than `RetentionDays` are pruned and not counted).
    pub raised: u64,
    /// Not yet expanded into deliveries: held by a maintenance window, or just raised.
    pub waiting: u64,
    /// Sent, or owed to a notifier that is enabled.
    pub delivered: u64,
}

/// The fate of a target's alerts of an incident: see [`AlertsFate`].
pub fn alerts_fate(
    conn: &mut Conn,
    target_id: u64,
    from: i64,
    to: Option<i64>,
) -> Result<AlertsFate, Error> {
    let row: Option<(u64, u64, u64)> = conn
        .exec_first(
            "SELECT COUNT(*), COALESCE(SUM(a.expanded = 0), 0), COALESCE(SUM(EXISTS (SELECT 1 \
             FROM alert_deliveries d JOIN notifiers n ON n.id = d.notifier_id \
             WHERE d.alert_id = a.id AND (d.state = 'SENT' OR (d.state = 'PENDING' \
             AND n.enabled = 1)))), 0) \
             FROM alerts a WHERE a.target_id = ? AND a.kind IN ('FAILURE', 'REMINDER') \
             AND a.created_at >= FROM_UNIXTIME(? / 1000) \
             AND (? IS NULL OR a.created_at <= FROM_UNIXTIME(? / 1000))",
            (target_id, from, to, to),
        )
        .map_err(Error::query("reading the alerts of an incident"))?;
    let (raised, waiting, delivered) = row.unwrap_or_default();
    Ok(AlertsFate {
        raised,
        waiting,
        delivered,
    })
}
