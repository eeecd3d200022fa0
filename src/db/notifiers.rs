//! Reading notifier rows (CLI, notifier thread) and enabling or disabling them.

use mysql::prelude::Queryable;
use mysql::Row;

use super::{col, Conn, Error};

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

fn from_row(mut r: Row) -> NotifierRow {
    NotifierRow {
        id: col(&mut r, 0),
        name: col(&mut r, 1),
        kind: col(&mut r, 2),
        address: col(&mut r, 3),
        params: col(&mut r, 4),
        pass_count: col(&mut r, 5),
        fail_count: col(&mut r, 6),
        enabled: col(&mut r, 7),
    }
}

/// Every notifier, by id.
pub fn all(conn: &mut Conn) -> Result<Vec<NotifierRow>, Error> {
    let rows: Vec<Row> = conn
        .query(format!("SELECT {COLUMNS} FROM notifiers ORDER BY id"))
        .map_err(Error::query("listing notifiers"))?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// One notifier by id.
pub fn get(conn: &mut Conn, id: u64) -> Result<Option<NotifierRow>, Error> {
    let row: Option<Row> = conn
        .exec_first(
            format!("SELECT {COLUMNS} FROM notifiers WHERE id = ?"),
            (id,),
        )
        .map_err(Error::query("reading a notifier"))?;
    Ok(row.map(from_row))
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
    conn.exec(
        "SELECT n.id, n.name FROM target_notifiers r JOIN notifiers n ON n.id = r.notifier_id \
         WHERE r.target_id = ? ORDER BY n.id",
        (target,),
    )
    .map_err(Error::query("reading the target's notifiers"))
}
