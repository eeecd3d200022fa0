//! Schema version checks, `skypunch init-db` and `skypunch upgrade-db`. Runs on the main
//! thread before the daemon starts, and in the CLI.

use mysql::prelude::Queryable;

use super::decode::{BadRow, Fields};
use super::{run_script, Conn, Error};

/// The schema this program reads and writes.
pub const VERSION: (i32, i32) = (2, 3);

/// `schema/skypunch.sql`, embedded so that `init-db` and `upgrade-db` need no files.
pub const SCHEMA_SQL: &str = include_str!("../../schema/skypunch.sql");
const UPGRADE_1_0: &str = include_str!("../../schema/upgrade-1.0-to-2.0.sql");
const UPGRADE_2_1: &str = include_str!("../../schema/upgrade-2.1-to-2.2.sql");
const UPGRADE_2_2: &str = include_str!("../../schema/upgrade-2.2-to-2.3.sql");

/// The table part of skypunch.sql: without `CREATE DATABASE` and `USE`, so that it runs in
/// whatever database the connection is in.
pub fn tables_sql() -> String {
    SCHEMA_SQL
        .lines()
        .filter(|l| {
            let l = l.trim_start().to_ascii_uppercase();
            !l.starts_with("CREATE DATABASE") && !l.starts_with("USE ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The version stored in `versions`, or `None` when the database has no skypunch tables.
pub fn stored_version(conn: &mut Conn) -> Result<Option<(i32, i32)>, Error> {
    let has_table: Option<mysql::Row> = conn
        .query_first("SHOW TABLES LIKE 'versions'")
        .map_err(Error::query("looking for the versions table"))?;
    if has_table.is_none() {
        return Ok(None);
    }
    let row: Option<mysql::Row> = conn
        .query_first("SELECT major, minor FROM versions ORDER BY major DESC LIMIT 1")
        .map_err(Error::query("reading the schema version"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    version(&mut Fields::new("versions", row))
        .map(Some)
        .map_err(Error::Row)
}

fn version(f: &mut Fields) -> Result<(i32, i32), BadRow> {
    Ok((f.get(0, "major")?, f.get(1, "minor")?))
}

/// Refuses a database whose schema this program cannot use, saying what to run.
pub fn check(conn: &mut Conn, db: &str) -> Result<(), Error> {
    match stored_version(conn)? {
        Some(v) if v == VERSION => Ok(()),
        Some((major, minor)) if (major, minor) < VERSION => Err(Error::Schema(format!(
            "database {db} has skypunch schema {major}.{minor}, older than the {}.{} this skypunch \
             needs: back it up, then run `skypunch upgrade-db`",
            VERSION.0, VERSION.1
        ))),
        Some((major, minor)) => Err(Error::Schema(format!(
            "database {db} has skypunch schema {major}.{minor}, newer than the {}.{} this skypunch \
             knows: run the skypunch release that created it",
            VERSION.0, VERSION.1
        ))),
        None => Err(Error::Schema(format!(
            "database {db} has no skypunch tables: run `skypunch init-db` (or load schema/skypunch.sql)"
        ))),
    }
}

/// What `upgrade-db` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    AlreadyCurrent,
    Created,
    Upgraded { from: (i32, i32) },
}

/// Creates the tables when there are none, upgrades a 1.0, 2.0, 2.1 or 2.2 database in place, and
/// leaves a current one alone but for URLs stored unredacted (see below). Every step can run
/// again after an interruption.
pub fn upgrade(conn: &mut Conn, db: &str) -> Result<Upgrade, Error> {
    let from = match stored_version(conn)? {
        None => {
            run_script(conn, &tables_sql())?;
            return Ok(Upgrade::Created);
        }
        Some(v) if v == VERSION => {
            // An upgrade cut short after the script, or the script loaded by hand, leaves
            // version 2.3 with secrets still stored: running upgrade-db again finishes it.
            super::redact::stored_urls(conn)?;
            return Ok(Upgrade::AlreadyCurrent);
        }
        Some(v @ (1, _)) => {
            run_script(conn, UPGRADE_1_0)?;
            conn.query_drop("DELETE FROM versions WHERE major < 2")
                .map_err(Error::query("recording schema version 2"))?;
            v
        }
        // 2.1 added tables only (history), which the schema file creates when absent.
        Some(v @ (2, 0..=2)) => v,
        Some(_) => return check(conn, db).map(|_| Upgrade::AlreadyCurrent),
    };
    run_script(conn, &tables_sql())?;
    run_script(conn, UPGRADE_2_1)?;
    run_script(conn, UPGRADE_2_2)?;
    // 2.3: no secret at rest. Redacting URLs inside JSON and free text takes a URL parser,
    // so it is done here rather than in the script.
    super::redact::stored_urls(conn)?;
    Ok(Upgrade::Upgraded { from })
}
