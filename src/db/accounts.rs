//! The statements of `skypunch setup-db`, run by the CLI on the main thread over a database
//! administrator's connection of its own (not the pool): whether the database and the
//! daemon's user exist, and creating them with the grants the daemon needs.
//!
//! MariaDB takes no parameters in `CREATE DATABASE`, `CREATE USER` or `GRANT`: the names that
//! go there are checked against a strict alphabet first and then quoted, and a password never
//! travels in a statement, only its `mysql_native_password` hash, computed here. Everything
//! else is parameterized.

use std::path::PathBuf;
use std::time::Duration;

use mysql::prelude::Queryable;

use super::{reason_of, Error};
use crate::config::Endpoint;

/// How the administrator connects: as an OS user through the server's socket (MariaDB's
/// `unix_socket` login of root), or as a named account over TCP.
pub enum Admin {
    Socket {
        path: PathBuf,
        user: String,
    },
    Tcp {
        at: Endpoint,
        user: String,
        password: String,
    },
}

/// Where the MariaDB server of this host listens on Debian and elsewhere, when
/// `MYSQL_UNIX_PORT` (the clients' own variable) does not say.
pub const SOCKETS: &[&str] = &[
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
    "/tmp/mysql.sock",
];

/// What the daemon may do in its database: read and write rows, and create and alter the
/// tables (`init-db`, `upgrade-db`). Nothing outside it.
pub const DAEMON_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX";

impl Admin {
    /// `root@/run/mysqld/mysqld.sock`, `admin@db1:3306`: for messages.
    pub fn describe(&self) -> String {
        match self {
            Admin::Socket { path, user } => format!("{user}@{} (socket)", path.display()),
            Admin::Tcp { at, user, .. } => format!("{user}@{at}"),
        }
    }

    /// A connection with no database selected.
    pub fn connect(&self, timeout: Duration) -> Result<mysql::Conn, Error> {
        let opts = match self {
            Admin::Socket { path, user } => mysql::OptsBuilder::new()
                .socket(Some(path.to_string_lossy().into_owned()))
                .user(Some(user.clone())),
            Admin::Tcp { at, user, password } => mysql::OptsBuilder::new()
                .ip_or_hostname(Some(at.host.clone()))
                .tcp_port(at.port)
                .prefer_socket(false)
                .tcp_connect_timeout(Some(timeout))
                .user(Some(user.clone()))
                .pass(Some(password.clone())),
        };
        let opts = opts
            .read_timeout(Some(timeout * 6))
            .write_timeout(Some(timeout * 6));
        mysql::Conn::new(opts).map_err(|e| Error::Connect {
            db: self.describe(),
            reason: reason_of(&e),
            source: Some(e),
        })
    }
}

/// A user name `setup-db` puts into `CREATE USER`: letters, digits, `_`, `-` and `.`, at most
/// 32 characters (MySQL's limit; MariaDB allows 80).
pub fn valid_user_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The host parts `setup-db` makes accounts for, each one quoted in statements.
fn valid_host(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1" | "%")
}

/// Whether database `name` exists.
pub fn database_exists(conn: &mut mysql::Conn, name: &str) -> Result<bool, Error> {
    let n: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (name,),
        )
        .map_err(Error::query("looking for the database"))?;
    Ok(n.unwrap_or(0) > 0)
}

/// The host parts of the accounts named `user`.
pub fn account_hosts(conn: &mut mysql::Conn, user: &str) -> Result<Vec<String>, Error> {
    conn.exec(
        "SELECT Host FROM mysql.user WHERE User = ? ORDER BY Host",
        (user,),
    )
    .map_err(Error::query(
        "looking for the database user (it needs SELECT on mysql.user)",
    ))
}

/// `CREATE DATABASE` with the schema's character set; `name` is one the configuration took
/// (letters, digits, `_` and `$`).
pub fn create_database(conn: &mut mysql::Conn, name: &str) -> Result<(), Error> {
    let name = quoted_name(name)?;
    conn.query_drop(format!(
        "CREATE DATABASE IF NOT EXISTS {name} DEFAULT CHARACTER SET utf8mb4 \
         DEFAULT COLLATE utf8mb4_general_ci"
    ))
    .map_err(Error::query("creating the database"))
}

/// Creates `'user'@'host'` with this password, unless it exists (its password is then left
/// as it is).
pub fn create_account(
    conn: &mut mysql::Conn,
    user: &str,
    host: &str,
    password: &str,
) -> Result<(), Error> {
    let account = account(user, host)?;
    conn.query_drop(format!(
        "CREATE USER IF NOT EXISTS {account} IDENTIFIED BY PASSWORD '{}'",
        native_hash(password)
    ))
    .map_err(Error::query("creating the database user"))
}

/// Grants [`DAEMON_PRIVILEGES`] on database `db` to `'user'@'host'`.
pub fn grant_daemon(conn: &mut mysql::Conn, db: &str, user: &str, host: &str) -> Result<(), Error> {
    let (db, account) = (quoted_name(db)?, account(user, host)?);
    conn.query_drop(format!("GRANT {DAEMON_PRIVILEGES} ON {db}.* TO {account}"))
        .map_err(Error::query("granting the daemon's privileges"))
}

fn quoted_name(name: &str) -> Result<String, Error> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$'));
    if !fine {
        return Err(Error::Unconfigured(format!(
            "`{name}` is no database name setup-db creates"
        )));
    }
    Ok(format!("`{name}`"))
}

fn account(user: &str, host: &str) -> Result<String, Error> {
    if !valid_user_name(user) || !valid_host(host) {
        return Err(Error::Unconfigured(format!(
            "'{user}'@'{host}' is no account setup-db creates"
        )));
    }
    Ok(format!("'{user}'@'{host}'"))
}

/// MariaDB's `PASSWORD()` of `password` (`mysql_native_password`): `*` and the upper-case hex
/// of SHA1(SHA1(password)).
pub fn native_hash(password: &str) -> String {
    use ring::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY as SHA1};
    let inner = digest(&SHA1, password.as_bytes());
    let outer = digest(&SHA1, inner.as_ref());
    let hex: String = outer.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    format!("*{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_mariadbs_password_function() {
        // SELECT PASSWORD('secret') on MariaDB 10.11.
        assert_eq!(
            native_hash("secret"),
            "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"
        );
    }

    #[test]
    fn only_plain_names_reach_a_statement() {
        assert!(valid_user_name("skypunch") && valid_user_name("sp-mon.2"));
        for bad in ["", "a'b", "a b", "x@y", "`x`", &"x".repeat(33)] {
            assert!(!valid_user_name(bad), "{bad}");
        }
        assert!(account("sp", "%").is_ok());
        assert!(account("sp", "evil'--").is_err());
        assert!(quoted_name("sky$punch_1").is_ok());
        assert!(quoted_name("a`b").is_err());
    }
}
