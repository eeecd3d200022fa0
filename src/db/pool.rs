//! The connection pool: r2d2 over r2d2_mysql's connection manager, with two changes that
//! keep a hung database from holding a thread longer than the configured bounds:
//! - every connection has read and write timeouts (`ReadTimeout`, `WriteTimeout`), a session
//!   lock wait bound (`LockWaitTimeout`) and runs in UTC (`time_zone = '+00:00'`), so
//!   `TIMESTAMP` values mean the same instant whatever zone the daemon or the server runs in;
//! - on MariaDB a transaction left idle by its client (a daemon frozen mid-write) is rolled
//!   back by the server after `idle_transaction_timeout`, so its row locks cannot stop the
//!   other nodes; MySQL, which lacks the setting, keeps only the lock wait bound;
//! - a connection handed back is not pinged (r2d2_mysql's check does a round trip, which on a
//!   frozen server waits out the read timeout in whichever thread returns it); instead the
//!   code that saw an outage on it marks it with [`Connection::discard`].
//!
//! A [`Pool`] is an `Arc` inside: clones share the same connections across threads.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use r2d2::ManageConnection;
use r2d2_mysql::MySqlConnectionManager;

use crate::config::{DbConfig, Endpoint};

/// A pool of database connections; clones share it.
pub type Pool = r2d2::Pool<Manager>;
/// A connection checked out of the pool; goes back when dropped, unless discarded.
pub type Conn = r2d2::PooledConnection<Manager>;

/// Makes connections with r2d2_mysql and tells r2d2 which ones to throw away. With several
/// hosts in `Location` it connects to the one in use, and when that one does not answer (or
/// is a Galera node out of its cluster's primary component), to the next that does, which
/// is then in use until it fails in turn.
#[derive(Debug)]
pub struct Manager {
    hosts: Vec<Host>,
    /// Index into `hosts` of the host in use.
    current: AtomicUsize,
    idle_transaction_timeout: std::time::Duration,
}

#[derive(Debug)]
struct Host {
    name: Arc<str>,
    inner: MySqlConnectionManager,
}

/// A MySQL connection, the host it goes to, and whether it is still fit for use.
pub struct Connection {
    conn: mysql::Conn,
    host: Arc<str>,
    broken: bool,
}

impl Connection {
    /// Marks the connection unfit: the pool closes it instead of taking it back.
    pub fn discard(&mut self) {
        self.broken = true;
    }

    /// The database server this connection goes to (`host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Deref for Connection {
    type Target = mysql::Conn;
    fn deref(&self) -> &mysql::Conn {
        &self.conn
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut mysql::Conn {
        &mut self.conn
    }
}

impl Manager {
    pub fn new(cfg: &DbConfig) -> Manager {
        let hosts = cfg
            .endpoints()
            .into_iter()
            .map(|at| Host {
                name: at.to_string().into(),
                inner: MySqlConnectionManager::new(options(cfg, &at)),
            })
            .collect();
        Manager {
            hosts,
            current: AtomicUsize::new(0),
            idle_transaction_timeout: cfg.idle_transaction_timeout,
        }
    }

    /// One connection attempt outside the pool, to learn why the pool could not connect.
    pub fn connect_once(&self) -> Result<Connection, mysql::Error> {
        self.connect()
    }

    /// Sets the session's idle transaction bound where the server knows it (MariaDB 10.3 and
    /// later); on a server that does not (MySQL: error 1193) the connection is kept as it is.
    fn limit_idle_transactions(&self, mut conn: mysql::Conn) -> Result<mysql::Conn, mysql::Error> {
        use mysql::prelude::Queryable;
        let sql = format!(
            "SET SESSION idle_transaction_timeout = {}",
            self.idle_transaction_timeout.as_secs().max(1)
        );
        match conn.query_drop(sql) {
            Err(mysql::Error::MySqlError(e)) if e.code == 1193 => Ok(conn),
            Err(e) => Err(e),
            Ok(()) => Ok(conn),
        }
    }

    /// Tries the host in use, then the others in order; the first that answers is in use
    /// from now on. The error is the one of the host that was in use.
    fn connect_any(&self) -> Result<Connection, mysql::Error> {
        let start = self.current.load(Ordering::Relaxed);
        let mut first_error = None;
        for k in 0..self.hosts.len() {
            let i = (start + k) % self.hosts.len();
            let host = &self.hosts[i];
            match host
                .inner
                .connect()
                .and_then(|c| self.limit_idle_transactions(c))
                .and_then(ready)
            {
                Ok(conn) => {
                    if i != start
                        && self
                            .current
                            .compare_exchange(start, i, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        log::warn!(
                            "database: {} did not answer ({}); now using {}",
                            self.hosts[start].name,
                            first_error
                                .as_ref()
                                .map_or_else(String::new, super::reason_of),
                            host.name
                        );
                    }
                    return Ok(Connection {
                        conn,
                        host: host.name.clone(),
                        broken: false,
                    });
                }
                Err(e) => {
                    log::debug!(
                        "database: cannot connect to {}: {}",
                        host.name,
                        super::reason_of(&e)
                    );
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.expect("Location names at least one host"))
    }
}

/// A Galera node out of its cluster's primary component (cut off from the others by a
/// network partition, or still joining) accepts connections and `SET`, and refuses every
/// other statement (error 1047) until it is back: such a host counts as one that does not
/// answer, so the next host of `Location` is tried. Only where Galera is on (`wsrep_on`):
/// a MariaDB without it reports `wsrep_ready` OFF too, and MySQL has neither.
fn ready(mut conn: mysql::Conn) -> Result<mysql::Conn, mysql::Error> {
    let on = show(&mut conn, "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'")?;
    if !on.is_some_and(|v| v.eq_ignore_ascii_case("ON")) {
        return Ok(conn);
    }
    match show(&mut conn, "SHOW GLOBAL STATUS LIKE 'wsrep_ready'")? {
        Some(v) if v.eq_ignore_ascii_case("OFF") => {
            Err(mysql::Error::MySqlError(mysql::MySqlError {
                state: "08S01".into(),
                message: "WSREP not ready: this Galera node is not in its cluster's primary \
                          component"
                    .into(),
                code: 1047,
            }))
        }
        _ => Ok(conn),
    }
}

/// The value a `SHOW ... LIKE 'name'` answers, if any (SHOW works on a Galera node out of
/// the primary component, where other statements do not).
fn show(conn: &mut mysql::Conn, sql: &str) -> Result<Option<String>, mysql::Error> {
    use mysql::prelude::Queryable;
    let row: Option<mysql::Row> = conn.query_first(sql)?;
    Ok(row
        .and_then(|r| r.get_opt::<String, usize>(1))
        .and_then(Result::ok))
}

fn options(cfg: &DbConfig, at: &Endpoint) -> mysql::OptsBuilder {
    mysql::OptsBuilder::new()
        .ip_or_hostname(Some(at.host.clone()))
        .tcp_port(at.port)
        .user(Some(cfg.user.clone()))
        .pass(Some(cfg.password.clone()))
        .db_name(Some(cfg.name.clone()))
        .tcp_connect_timeout(Some(cfg.connect_timeout))
        .read_timeout(Some(cfg.read_timeout))
        .write_timeout(Some(cfg.write_timeout))
        .prefer_socket(false)
        .stmt_cache_size(Some(64))
        .init(vec![
            "SET time_zone = '+00:00'".to_string(),
            format!(
                "SET SESSION innodb_lock_wait_timeout = {}",
                cfg.lock_wait_timeout.as_secs().max(1)
            ),
        ])
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = mysql::Error;

    fn connect(&self) -> Result<Connection, mysql::Error> {
        let conn = self.connect_any()?;
        log::debug!(
            "database: opened a pooled connection to {} (id {})",
            conn.host,
            conn.conn.connection_id()
        );
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), mysql::Error> {
        self.hosts[0].inner.is_valid(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        if conn.broken {
            log::debug!(
                "database: closing connection {} after an outage on it",
                conn.conn.connection_id()
            );
        }
        conn.broken
    }
}
