//! Joining the cluster: this node's row in `nodes` under a new epoch, on the main thread at
//! start and on the cluster thread when the others declared the node dead. Reads and writes
//! `nodes` and `node_fences` through `db::nodes`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::member::Member;
use crate::config::ClusterConfig;
use crate::db::nodes::{self, Fence, JoinError, Joining, NodeRow};
use crate::db::{self, Pool};

/// Why the node could not join. The database's error is kept as the source.
#[derive(Debug)]
pub enum Error {
    /// No connection to the database for the join at start.
    Connect(db::Error),
    /// A live node (its heartbeat within `DeadAfter`) holds this node's name.
    NameTaken(Box<NodeRow>),
    /// The database failed the join.
    Db(db::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect(e) => e.fmt(f),
            Error::NameTaken(row) => write!(
                f,
                "node name {} is in use by a live skypunch on {} (pid {}, heartbeat {} ms \
                 ago): give this one another [cluster] NodeName",
                row.name, row.host, row.pid, row.heartbeat_age_ms
            ),
            Error::Db(e) => write!(f, "cannot join the cluster: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect(e) | Error::Db(e) => Some(e),
            Error::NameTaken(_) => None,
        }
    }
}

impl From<JoinError> for Error {
    fn from(e: JoinError) -> Error {
        match e {
            JoinError::NameTaken(row) => Error::NameTaken(row),
            JoinError::Db(e) => Error::Db(e),
        }
    }
}

/// Joins the cluster for a daemon that starts: the row in `nodes`, with a new epoch. An error
/// when a live node has the same name.
pub fn join(pool: &Pool, config: &ClusterConfig) -> Result<Arc<Member>, Error> {
    let fence = Fence {
        node: config.node_name(),
        epoch: new_epoch(),
    };
    let mut conn = db::checkout(pool).map_err(Error::Connect)?;
    join_as(&mut conn, &fence, config, false)?;
    log::info!(
        "cluster: joined as node {} (epoch {})",
        fence.node,
        fence.epoch
    );
    Ok(Arc::new(Member::new(fence)))
}

/// Joins again as `node` under a new epoch, after the others declared this node dead: its own
/// old row is taken over too. Returns the new fence.
pub(super) fn join_again(pool: &Pool, node: &str, config: &ClusterConfig) -> Result<Fence, Error> {
    let fence = Fence {
        node: node.to_string(),
        epoch: new_epoch(),
    };
    // A database error goes through `with_conn`, which throws away a broken connection.
    db::with_conn(pool, |conn| match join_as(conn, &fence, config, true) {
        Err(JoinError::Db(e)) => Err(e),
        other => Ok(other),
    })
    .map_err(Error::Db)??;
    Ok(fence)
}

/// Joins with `fence`. A row of the same name left by a process of this host that is gone
/// (a daemon killed and restarted within `DeadAfter`) is taken over; `again` takes over this
/// process's own old row too (after it was declared dead).
fn join_as(
    conn: &mut db::Conn,
    fence: &Fence,
    config: &ClusterConfig,
    again: bool,
) -> Result<(), JoinError> {
    let host = crate::base::os::host_name();
    let me = Joining {
        fence,
        host: &host,
        pid: std::process::id(),
        version: crate::base::version::VERSION,
    };
    let dead_after_ms = config.dead_after.as_millis() as i64;
    match join_retrying(conn, &me, dead_after_ms, None) {
        Err(JoinError::NameTaken(row))
            if row.host == host && (again && row.pid == me.pid || !pid_alive(row.pid)) =>
        {
            join_retrying(conn, &me, dead_after_ms, Some(row.epoch))
        }
        other => other,
    }
}

/// [`nodes::join`], tried again after a passing conflict: daemons starting at the same moment
/// deadlock on the table's gap locks (error 1213), and one of them is told to retry.
fn join_retrying(
    conn: &mut db::Conn,
    me: &Joining,
    dead_after_ms: i64,
    replace: Option<i64>,
) -> Result<(), JoinError> {
    let mut tries = 0;
    loop {
        match nodes::join(conn, me, dead_after_ms, replace) {
            Err(JoinError::Db(e)) if e.class() == db::Class::Transient && tries < 10 => {
                tries += 1;
                log::debug!("cluster: joining met a passing conflict, retrying: {e}");
                std::thread::sleep(Duration::from_millis(20 * tries));
            }
            other => return other,
        }
    }
}

/// Whether the process `pid` of this host runs (a zombie does not).
fn pid_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(crate::lifecycle::process_alive)
}

/// A new epoch: the time in microseconds, which no earlier join of this name can have had.
fn new_epoch() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_operators_and_the_source_is_kept() {
        let row = NodeRow {
            name: "a".into(),
            epoch: 1,
            host: "h1".into(),
            pid: 42,
            version: String::new(),
            state: "active".into(),
            heartbeat_age_ms: 300,
            targets_owned: 0,
            checks_per_s: 0.0,
            clock_offset_ms: None,
        };
        let taken = Error::from(JoinError::NameTaken(Box::new(row)));
        assert_eq!(
            taken.to_string(),
            "node name a is in use by a live skypunch on h1 (pid 42, heartbeat 300 ms ago): \
             give this one another [cluster] NodeName"
        );
        assert!(std::error::Error::source(&taken).is_none());
        let db = || db::Error::Schema("no skypunch schema".into());
        let failed = Error::from(JoinError::Db(db()));
        assert_eq!(
            failed.to_string(),
            "cannot join the cluster: no skypunch schema"
        );
        let source = std::error::Error::source(&failed).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("no skypunch schema"));
        assert_eq!(Error::Connect(db()).to_string(), "no skypunch schema");
    }
}
