//! The `nodes` table: the daemons sharing this database. Every statement the cluster thread
//! and the writer's fence run on it, and what `skypunch status` reads. Times are the
//! database's clock, so the daemons' clocks need not agree.

use mysql::prelude::Queryable;
use mysql::TxOpts;

use super::decode::{self, BadRow, Fields};
use super::{Conn, Error};

/// A node's claim to write results: its name and the epoch it joined with. Results are
/// written only while the row holds both, so a node the others declared dead (and deleted)
/// cannot write after waking up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub node: String,
    pub epoch: i64,
}

/// What a node tells the others about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Joining<'a> {
    pub fence: &'a Fence,
    pub host: &'a str,
    pub pid: u32,
    pub version: &'a str,
}

/// One row of `nodes`, as others see it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub name: String,
    pub epoch: i64,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub state: String,
    /// Milliseconds since its last heartbeat, by the database's clock.
    pub heartbeat_age_ms: i64,
    pub targets_owned: u64,
    pub checks_per_s: f64,
    /// Its clock minus the database's at its last heartbeat, ms; `None`: not measured.
    pub clock_offset_ms: Option<i64>,
}

/// Why a node could not join.
#[derive(Debug)]
pub enum JoinError {
    /// A live node holds the name.
    NameTaken(Box<NodeRow>),
    Db(Error),
}

impl From<Error> for JoinError {
    fn from(e: Error) -> JoinError {
        JoinError::Db(e)
    }
}

/// Adds this node's row with a new epoch. A row of the same name whose heartbeat is older
/// than `dead_after_ms` (a node that died or stopped without saying so), or whose epoch is
/// `replace` (one the caller knows to be dead), is replaced; a live one is refused.
pub fn join(
    conn: &mut Conn,
    me: &Joining,
    dead_after_ms: i64,
    replace: Option<i64>,
) -> Result<(), JoinError> {
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .map_err(Error::query("starting to join the cluster"))?;
    let held: Option<mysql::Row> = tx
        .exec_first(
            format!("SELECT {SELECT_COLUMNS} FROM nodes WHERE name = ? FOR UPDATE"),
            (&me.fence.node,),
        )
        .map_err(Error::query("looking for a node of the same name"))?;
    // A row of the same name that does not decode is no live node's: it is replaced.
    if let Some(row) = decode::first(TABLE, held, node_row) {
        let live = row.heartbeat_age_ms <= dead_after_ms && row.state == "active";
        if live && replace != Some(row.epoch) {
            return Err(JoinError::NameTaken(Box::new(row)));
        }
    }
    tx.exec_drop(
        "REPLACE INTO nodes (name, epoch, host, pid, version, started, heartbeat, state) \
         VALUES (?, ?, ?, ?, ?, NOW(3), NOW(3), 'active')",
        (&me.fence.node, me.fence.epoch, me.host, me.pid, me.version),
    )
    .map_err(Error::query("adding this node to the nodes table"))?;
    tx.exec_drop(
        "REPLACE INTO node_fences (name, epoch) VALUES (?, ?)",
        (&me.fence.node, me.fence.epoch),
    )
    .map_err(Error::query("adding this node's fence"))?;
    tx.commit().map_err(Error::query("joining the cluster"))?;
    Ok(())
}

/// What a heartbeat says of the node besides being alive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Beat<'a> {
    /// `active`, `stopping`, `blind` or `skewed`.
    pub state: &'a str,
    pub owned: u64,
    /// Checks a second.
    pub rate: f64,
    /// Its clock minus the database's, ms (`None`: not measured).
    pub clock_offset_ms: Option<i64>,
}

/// The heartbeat: this node is alive, as `beat` says. False when its row is gone or has
/// another epoch: the others declared it dead.
pub fn beat(conn: &mut Conn, fence: &Fence, beat: &Beat) -> Result<bool, Error> {
    // Clamped to the column's range: a clock years off must not fail the heartbeat.
    let offset = beat
        .clock_offset_ms
        .map(|ms| ms.clamp(-i64::from(i32::MAX), i64::from(i32::MAX)));
    conn.exec_drop(
        "UPDATE nodes SET heartbeat = NOW(3), state = ?, targets_owned = ?, checks_per_s = ?, \
         clock_offset_ms = ? WHERE name = ? AND epoch = ?",
        (
            beat.state,
            beat.owned,
            beat.rate,
            offset,
            &fence.node,
            fence.epoch,
        ),
    )
    .map_err(Error::query("writing this node's heartbeat"))?;
    Ok(conn.affected_rows() > 0)
}

/// The database's clock, ms since the epoch (`NOW(6)`, the clock leases are measured by).
pub fn clock_ms(conn: &mut Conn) -> Result<i64, Error> {
    let row: Option<mysql::Row> = conn
        .query_first("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000 AS SIGNED)")
        .map_err(Error::query("reading the database's clock"))?;
    decode::first(TABLE, row, |f| f.get::<i64>(0, "NOW"))
        .ok_or_else(|| Error::Schema("the database gave no time".into()))
}

/// A node row [`reap`] deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dead {
    pub name: String,
    /// Its heartbeat was ahead of the database's clock by more than `DeadAfter`: no node
    /// writes that (a hand edit, or a database host whose clock is far off), and such a row
    /// would otherwise hold its share of the targets for ever.
    pub ahead: bool,
}

/// A heartbeat further than `DeadAfter` (`?`, microseconds, given twice) from the clock.
const STALE: &str = "(heartbeat < NOW(3) - INTERVAL ? MICROSECOND \
    OR heartbeat > NOW(3) + INTERVAL ? MICROSECOND)";

/// Deletes the rows of other nodes whose heartbeat is further than `dead_after_ms` from the
/// database's clock (older, or ahead of it): from then on their writes are refused
/// ([`hold_fence`]), and the others take their targets. Returns the rows deleted.
pub fn reap(conn: &mut Conn, me: &Fence, dead_after_ms: i64) -> Result<Vec<Dead>, Error> {
    let micros = dead_after_ms.saturating_mul(1000);
    // Never this node's own row: a heartbeat whose statements were held up (a database
    // host failing over) must not make a node declare itself dead.
    let rows: Vec<mysql::Row> = conn
        .exec(
            format!(
                "SELECT name, epoch, heartbeat > NOW(3) FROM nodes WHERE {STALE} AND name <> ?"
            ),
            (micros, micros, &me.node),
        )
        .map_err(Error::query("looking for dead nodes"))?;
    let dead = decode::good_rows(TABLE, rows, |f| {
        Ok((
            f.key_text(0, "name")?,
            f.get::<i64>(1, "epoch")?,
            f.flag(2, "heartbeat")?,
        ))
    });
    let mut reaped = Vec::new();
    for (name, epoch, ahead) in dead {
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .map_err(Error::query("starting to remove a dead node"))?;
        // Only if it did not beat meanwhile; its fence goes in the same transaction, so that
        // its targets change hands only once it can no longer write.
        tx.exec_drop(
            format!("DELETE FROM nodes WHERE name = ? AND epoch = ? AND {STALE}"),
            (&name, epoch, micros, micros),
        )
        .map_err(Error::query("removing a dead node"))?;
        if tx.affected_rows() > 0 {
            tx.exec_drop(
                "DELETE FROM node_fences WHERE name = ? AND epoch = ?",
                (&name, epoch),
            )
            .map_err(Error::query("removing a dead node's fence"))?;
            reaped.push(Dead { name, ahead });
        }
        tx.commit().map_err(Error::query("removing a dead node"))?;
    }
    Ok(reaped)
}

/// Every node's row that decodes, by name; the others are reported (see [`decode::skip`]).
pub fn all(conn: &mut Conn) -> Result<Vec<NodeRow>, Error> {
    let rows: Vec<mysql::Row> = conn
        .query(format!("SELECT {SELECT_COLUMNS} FROM nodes ORDER BY name"))
        .map_err(Error::query("reading the nodes table"))?;
    Ok(decode::good_rows(TABLE, rows, node_row))
}

/// Removes this node's row at a clean stop.
pub fn leave(conn: &mut Conn, fence: &Fence) -> Result<(), Error> {
    let mut tx = conn
        .start_transaction(TxOpts::default())
        .map_err(Error::query("starting to leave the cluster"))?;
    for table in ["nodes", "node_fences"] {
        tx.exec_drop(
            format!("DELETE FROM {table} WHERE name = ? AND epoch = ?"),
            (&fence.node, fence.epoch),
        )
        .map_err(Error::query("removing this node from the nodes table"))?;
    }
    tx.commit().map_err(Error::query("leaving the cluster"))
}

/// The first statement of a result transaction: touches this node's fence row, which fails
/// (and so refuses the whole transaction) when the row is gone or has another epoch. Writing
/// the row, not only reading it, makes a Galera cluster order it against the delete that
/// declared the node dead. Not the `nodes` row: the heartbeat would wait for its lock.
pub fn hold_fence(tx: &mut mysql::Transaction, fence: &Fence) -> Result<(), Error> {
    tx.exec_drop(
        // Starting again at 0 rather than failing past the column's range: the change must
        // always happen, since an unchanged row counts as no row.
        "UPDATE node_fences SET batches = IF(batches < 9223372036854775807, batches + 1, 0) \
         WHERE name = ? AND epoch = ?",
        (&fence.node, fence.epoch),
    )
    .map_err(Error::query("checking this node's membership"))?;
    if tx.affected_rows() == 0 {
        return Err(Error::Fenced {
            node: fence.node.clone(),
        });
    }
    Ok(())
}

const SELECT_COLUMNS: &str = "name, epoch, host, pid, version, state, \
    CAST(TIMESTAMPDIFF(MICROSECOND, heartbeat, NOW(3)) / 1000 AS SIGNED), targets_owned, \
    checks_per_s, clock_offset_ms";

const TABLE: &str = "nodes";

fn node_row(f: &mut Fields) -> Result<NodeRow, BadRow> {
    Ok(NodeRow {
        name: f.key_text(0, "name")?,
        epoch: f.get(1, "epoch")?,
        host: f.get(2, "host")?,
        pid: f.get(3, "pid")?,
        version: f.get(4, "version")?,
        state: f.get(5, "state")?,
        heartbeat_age_ms: f.get(6, "heartbeat")?,
        targets_owned: f.get(7, "targets_owned")?,
        checks_per_s: f.get(8, "checks_per_s")?,
        clock_offset_ms: f.opt(9, "clock_offset_ms")?,
    })
}
