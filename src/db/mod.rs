//! The database layer: an r2d2 pool of MySQL/MariaDB connections and every SQL statement the
//! program runs, all parameterized. Used from the loader, writer and notifier threads and the
//! CLI; a [`Pool`] is an `Arc` inside, so clones share the same connections.

pub mod notifiers;
pub mod results;
pub mod schema;
pub mod targets;

use std::fmt;
use std::time::Duration;

use mysql::prelude::Queryable;
use r2d2_mysql::MySqlConnectionManager;

use crate::config::DbConfig;

/// A pool of database connections; clones share it.
pub type Pool = r2d2::Pool<MySqlConnectionManager>;
/// A connection checked out of the pool; goes back when dropped.
pub type Conn = r2d2::PooledConnection<MySqlConnectionManager>;

/// Why a database operation failed. Messages name the database (never the password) and what
/// to do.
#[derive(Debug)]
pub enum Error {
    /// No connection could be made or checked out within the timeout.
    Connect { db: String, reason: String },
    /// A statement failed.
    Query { what: String, reason: String },
    /// The database holds no skypunch schema, or one this program cannot use.
    Schema(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connect { db, reason } => {
                write!(f, "cannot connect to database {db}: {reason}")
            }
            Error::Query { what, reason } => write!(f, "database error while {what}: {reason}"),
            Error::Schema(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// Builds a closure that wraps a driver error with what was being done.
    pub fn query(what: &str) -> impl Fn(mysql::Error) -> Error + '_ {
        move |e| Error::Query {
            what: what.to_string(),
            reason: e.to_string(),
        }
    }

    /// True when the error means the database is unreachable (as opposed to a bad statement),
    /// so the caller should hold its work and retry.
    pub fn is_outage(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Query { reason, .. } => {
                let r = reason.to_ascii_lowercase();
                [
                    "i/o error",
                    "connection",
                    "broken pipe",
                    "server has gone",
                    "timed out",
                    "lost",
                ]
                .iter()
                .any(|s| r.contains(s))
            }
            _ => false,
        }
    }
}

fn manager(cfg: &DbConfig) -> MySqlConnectionManager {
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(cfg.host.clone()))
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(Some(cfg.password.clone()))
        .db_name(Some(cfg.name.clone()))
        .tcp_connect_timeout(Some(cfg.connect_timeout))
        .read_timeout(Some(Duration::from_secs(60)))
        .write_timeout(Some(Duration::from_secs(60)))
        .prefer_socket(false)
        .stmt_cache_size(Some(64));
    MySqlConnectionManager::new(opts)
}

fn builder(cfg: &DbConfig) -> r2d2::Builder<MySqlConnectionManager> {
    r2d2::Pool::builder()
        .max_size(cfg.pool_size)
        .min_idle(Some(0))
        .connection_timeout(cfg.connect_timeout)
        .test_on_check_out(false)
        .error_handler(Box::new(r2d2::NopErrorHandler))
}

/// A pool whose first connection is made now: fails at once, with the reason, when the
/// database cannot be reached. For the CLI and for starting the daemon.
pub fn connect(cfg: &DbConfig) -> Result<Pool, Error> {
    let pool = builder(cfg).build_unchecked(manager(cfg));
    checkout_from(&pool, cfg)?;
    Ok(pool)
}

/// A pool, a connection from it, and the schema checked: what every command that reads the
/// tables starts with.
pub fn open(cfg: &DbConfig) -> Result<(Pool, Conn), Error> {
    let pool = connect(cfg)?;
    let mut conn = checkout(&pool)?;
    schema::check(&mut conn, &cfg.describe())?;
    Ok((pool, conn))
}

/// A pool that connects lazily: the daemon keeps running while the database is down and its
/// stages retry.
pub fn lazy(cfg: &DbConfig) -> Pool {
    builder(cfg).build_unchecked(manager(cfg))
}

fn checkout_from(pool: &Pool, cfg: &DbConfig) -> Result<Conn, Error> {
    use r2d2::ManageConnection;
    match pool.get() {
        Ok(conn) => Ok(conn),
        // r2d2 only says "timed out"; connect once more directly to learn why.
        Err(timeout) => {
            let reason = match manager(cfg).connect() {
                Ok(_) => timeout.to_string(),
                Err(e) => describe(&e),
            };
            Err(Error::Connect {
                db: cfg.describe(),
                reason,
            })
        }
    }
}

/// Checks a connection out of the pool.
pub fn checkout(pool: &Pool) -> Result<Conn, Error> {
    pool.get().map_err(|e| Error::Connect {
        db: "(pool)".into(),
        reason: format!("no connection within the timeout: {e}"),
    })
}

/// Runs a script of `;`-terminated statements (a schema file), skipping `--` comments.
pub fn run_script(conn: &mut Conn, script: &str) -> Result<(), Error> {
    for statement in split_script(script) {
        let head: String = statement.chars().take(60).collect();
        conn.query_drop(&statement).map_err(|e| Error::Query {
            what: format!("running `{head}...`"),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// Splits a schema script into statements at `;` outside quotes, dropping `--` comment lines.
pub fn split_script(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for line in script.lines().filter(|l| !l.trim_start().starts_with("--")) {
        for c in line.chars() {
            match (quote, c) {
                (None, ';') => statements.push(std::mem::take(&mut current)),
                (None, '\'' | '"' | '`') => {
                    quote = Some(c);
                    current.push(c);
                }
                (Some(q), c) if c == q => {
                    quote = None;
                    current.push(c);
                }
                _ => current.push(c),
            }
        }
        current.push('\n');
    }
    statements.push(current);
    statements
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A driver error in words: the server's message and code, without the driver's wrapping.
pub fn describe(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => format!("{} (error {})", m.message, m.code),
        mysql::Error::IoError(io) => format!("I/O error: {io}"),
        mysql::Error::DriverError(d) => format!("connection error: {d}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_statements_without_comments() {
        let s = split_script(
            "-- a comment; with a semicolon\nCREATE TABLE a (x INT COMMENT 'a;b');\n\nUSE b;\n",
        );
        assert_eq!(s, vec!["CREATE TABLE a (x INT COMMENT 'a;b')", "USE b"]);
    }

    #[test]
    fn an_unreachable_database_is_named_without_its_password() {
        let cfg = DbConfig {
            host: "127.0.0.1".into(),
            port: 1,
            user: "mon".into(),
            password: "hunter2".into(),
            name: "skypunch".into(),
            pool_size: 1,
            connect_timeout: Duration::from_secs(1),
        };
        let err = connect(&cfg).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot connect to database mon@127.0.0.1:1/skypunch: "),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
    }
}
