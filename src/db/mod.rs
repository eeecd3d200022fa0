//! The database layer: an r2d2 pool of MySQL/MariaDB connections and every SQL statement the
//! program runs, all parameterized. Used from the loader, writer and notifier threads and the
//! CLI; a [`Pool`] is an `Arc` inside, so clones share the same connections. Every row read is
//! decoded column by column ([`decode`]), never by a `FromRow` that can panic.

pub mod accounts;
pub mod confirm;
pub mod decode;
mod error;
pub mod history;
pub mod holds;
pub mod maintenance;
pub mod nodes;
pub mod notifiers;
mod pool;
pub mod redact;
pub mod results;
pub mod schema;
pub mod targets;

use mysql::prelude::Queryable;

use crate::config::DbConfig;
pub use error::{reason_of, Class, Error};
use pool::Manager;
pub use pool::{Conn, Pool};

fn builder(cfg: &DbConfig) -> r2d2::Builder<Manager> {
    r2d2::Pool::builder()
        .max_size(cfg.pool_size)
        .min_idle(Some(0))
        // Each host of the list may take ConnectTimeout before the next one is tried.
        .connection_timeout(cfg.connect_timeout * cfg.endpoints().len() as u32)
        .test_on_check_out(false)
        .error_handler(Box::new(r2d2::NopErrorHandler))
}

/// A pool whose first connection is made now: fails at once, with the reason, when the
/// database cannot be reached. For the CLI and for starting the daemon.
///
/// The first connection is made outside r2d2, which retries a failed connect until
/// `ConnectTimeout`: a refused port, a wrong password or an unknown database would otherwise
/// take the whole timeout to report. The manager then goes into the pool, on the host that
/// answered.
pub fn connect(cfg: &DbConfig) -> Result<Pool, Error> {
    if let Some(what_to_do) = cfg.placeholder_error() {
        return Err(Error::Unconfigured(what_to_do));
    }
    let manager = Manager::new(cfg);
    if let Err(e) = manager.connect_once() {
        return Err(Error::Connect {
            db: cfg.describe(),
            reason: reason_of(&e),
            source: Some(e),
        });
    }
    let pool = builder(cfg).build_unchecked(manager);
    log::debug!("connected to database {}", cfg.describe());
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

/// Checks a connection out of the pool, waiting at most `ConnectTimeout`.
pub fn checkout(pool: &Pool) -> Result<Conn, Error> {
    pool.get().map_err(|e| Error::Connect {
        db: "(pool)".into(),
        reason: format!("no connection within the timeout: {e}"),
        source: None,
    })
}

/// Runs `f` on a connection from the pool. A connection whose statement failed for an
/// outage is thrown away instead of going back to the pool: it may be half-way through a
/// reply that timed out, and the pool does not ping connections handed back (a ping on a
/// hung server would wait out `ReadTimeout` in every thread that returns one).
pub fn with_conn<T>(
    pool: &Pool,
    f: impl FnOnce(&mut Conn) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut conn = checkout(pool)?;
    let result = f(&mut conn);
    if let Err(e) = &result {
        if e.class() == Class::Outage {
            conn.discard();
        }
    }
    result
}

/// Writes the repairs of one row's values (see [`decode::Fix`]), only where the row still
/// holds the values they repair (a writer may have moved it on meanwhile); `also` is more of
/// the `SET` list (`config_changed = config_changed`). Logs the repair when this call made
/// it, so that only the first of the threads that met the row does; true then.
pub fn repair_row(
    conn: &mut Conn,
    (table, shown): (&str, &str),
    (key, mut params): (&str, Vec<mysql::Value>),
    fixes: &[decode::Fix],
    also: &str,
) -> Result<bool, Error> {
    if fixes.is_empty() {
        return Ok(false);
    }
    // Table and column names come from the program's own lists, never from a row.
    let set: Vec<String> = fixes.iter().map(|f| format!("{} = ?", f.column)).collect();
    let held: String = fixes
        .iter()
        .map(|f| format!(" AND {} = ?", f.column))
        .collect();
    let mut values: Vec<mysql::Value> = fixes.iter().map(|f| f.now.into()).collect();
    values.append(&mut params);
    values.extend(fixes.iter().map(|f| mysql::Value::from(f.was)));
    conn.exec_drop(
        format!(
            "UPDATE {table} SET {}{also} WHERE {key}{held}",
            set.join(", ")
        ),
        values,
    )
    .map_err(Error::query("repairing values edited out of range"))?;
    let repaired = conn.affected_rows() > 0;
    if repaired {
        log::warn!(
            "{table} row with {shown} repaired: {} (values the daemon keeps, edited out of range)",
            decode::describe(fixes)
        );
    }
    Ok(repaired)
}

/// `column = column + VALUES(column)` of an additive upsert, stopping at `max` (about the
/// column type's largest value, [`BIGINT_MAX`] and the like) instead of failing: a counter a
/// person set near that limit would otherwise make the server refuse every write of its row.
fn capped_add(column: &str, max: &str) -> String {
    format!(
        "{column} = IF({column} > {max} - VALUES({column}), {max}, {column} + VALUES({column}))"
    )
}

/// Largest values of the column types counters have, for [`capped_add`].
const BIGINT_MAX: &str = "9223372036854775807";
const INT_MAX: &str = "2147483647";
const DOUBLE_MAX: &str = "1e300";

/// Runs a script of `;`-terminated statements (a schema file), skipping `--` comments.
pub fn run_script(conn: &mut Conn, script: &str) -> Result<(), Error> {
    for statement in split_script(script) {
        let head = crate::base::text::clip(&statement, 60);
        conn.query_drop(&statement).map_err(|source| Error::Query {
            what: format!("running `{head}...`"),
            source,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
            connect_timeout: Duration::from_secs(5),
            ..DbConfig::default()
        };
        let began = std::time::Instant::now();
        let err = connect(&cfg).unwrap_err().to_string();
        // Nothing listens on port 1: refused at once, not after ConnectTimeout.
        assert!(began.elapsed() < Duration::from_millis(2500), "{err}");
        assert!(
            err.starts_with("cannot connect to database mon@127.0.0.1:1/skypunch: "),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn the_packages_placeholders_are_never_tried() {
        let cfg = DbConfig {
            user: crate::config::PLACEHOLDER.into(),
            placeholder_in: Some("/etc/skypunch/skypunch.conf".into()),
            ..DbConfig::default()
        };
        let err = connect(&cfg).unwrap_err();
        assert_eq!(
            err.to_string(),
            "[database] User/Password are the package's placeholders: run 'skypunch setup-db' \
             or edit /etc/skypunch/skypunch.conf"
        );
        assert!(!err.is_outage(), "--wait must not wait for an edit");
    }
}
