//! The connection pool: r2d2 over r2d2_mysql's connection manager, with two changes that
//! keep a hung database from holding a thread longer than the configured bounds:
//! - every connection has read and write timeouts (`ReadTimeout`, `WriteTimeout`), a session
//!   lock wait bound (`LockWaitTimeout`) and runs in UTC (`time_zone = '+00:00'`), so
//!   `TIMESTAMP` values mean the same instant whatever zone the daemon or the server runs in;
//! - a connection handed back is not pinged (r2d2_mysql's check does a round trip, which on a
//!   frozen server waits out the read timeout in whichever thread returns it); instead the
//!   code that saw an outage on it marks it with [`Connection::discard`].
//!
//! A [`Pool`] is an `Arc` inside: clones share the same connections across threads.

use std::ops::{Deref, DerefMut};

use r2d2::ManageConnection;
use r2d2_mysql::MySqlConnectionManager;

use crate::config::DbConfig;

/// A pool of database connections; clones share it.
pub type Pool = r2d2::Pool<Manager>;
/// A connection checked out of the pool; goes back when dropped, unless discarded.
pub type Conn = r2d2::PooledConnection<Manager>;

/// Makes connections with r2d2_mysql and tells r2d2 which ones to throw away.
#[derive(Debug)]
pub struct Manager {
    inner: MySqlConnectionManager,
}

/// A MySQL connection and whether it is still fit for use.
pub struct Connection {
    conn: mysql::Conn,
    broken: bool,
}

impl Connection {
    /// Marks the connection unfit: the pool closes it instead of taking it back.
    pub fn discard(&mut self) {
        self.broken = true;
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
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some(cfg.host.clone()))
            .tcp_port(cfg.port)
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
            ]);
        Manager {
            inner: MySqlConnectionManager::new(opts),
        }
    }

    /// One connection attempt outside the pool, to learn why the pool could not connect.
    pub fn connect_once(&self) -> Result<Connection, mysql::Error> {
        self.connect()
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = mysql::Error;

    fn connect(&self) -> Result<Connection, mysql::Error> {
        let conn = self.inner.connect()?;
        log::debug!(
            "database: opened a pooled connection (id {})",
            conn.connection_id()
        );
        Ok(Connection {
            conn,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), mysql::Error> {
        self.inner.is_valid(&mut conn.conn)
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
