//! The bench database: created fresh for one run (`skybench_<pid>`), loaded with the skypunch
//! schema and N targets, read for the loss check, and dropped at the end.

use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use super::Error;
use skypunch::DbConfig;

/// The server's address parts, from `mysql://user:password@host:port`.
#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Server {
    /// `mysql://user:password@host:port`, read by the driver's own parser. Errors show the
    /// URL with its password masked.
    pub fn parse(url: &str) -> Result<Server, Error> {
        let as_mysql = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        let opts = mysql::Opts::from_url(&as_mysql).map_err(|e| {
            format!(
                "--db {}: {e}; expected mysql://user:password@host:port",
                skypunch::urls::shown(url)
            )
        })?;
        Ok(Server {
            host: opts.get_ip_or_hostname().to_string(),
            port: opts.get_tcp_port(),
            user: opts.get_user().unwrap_or("root").to_string(),
            password: opts.get_pass().unwrap_or("").to_string(),
        })
    }

    fn opts(&self, db: Option<&str>) -> mysql::Opts {
        mysql::OptsBuilder::new()
            .ip_or_hostname(Some(self.host.clone()))
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .db_name(db.map(String::from))
            .prefer_socket(false)
            .into()
    }

    pub fn is_local(&self) -> bool {
        matches!(self.host.as_str(), "127.0.0.1" | "localhost" | "::1")
    }
}

/// One target as the bench inserts it.
pub struct Row {
    pub url: String,
    pub frequency: u32,
    pub timeout: u32,
    pub ca_file: Option<String>,
}

/// One run's database.
pub struct BenchDb {
    pub server: Server,
    pub name: String,
    conn: mysql::Conn,
}

fn q(what: &str) -> impl Fn(mysql::Error) -> Error + '_ {
    move |e| format!("database error while {what}: {e}")
}

impl BenchDb {
    /// Creates `skybench_<pid>` (dropping a leftover of the same name) with the schema's tables.
    pub fn create(server: Server) -> Result<BenchDb, Error> {
        let name = format!("skybench_{}", std::process::id());
        let mut conn = mysql::Conn::new(server.opts(None)).map_err(|e| {
            format!(
                "cannot connect to MariaDB at {}:{} as {}: {e}",
                server.host, server.port, server.user
            )
        })?;
        conn.query_drop(format!("DROP DATABASE IF EXISTS {name}"))
            .map_err(q("dropping a leftover bench database"))?;
        conn.query_drop(format!(
            "CREATE DATABASE {name} DEFAULT CHARACTER SET utf8mb4"
        ))
        .map_err(q("creating the bench database"))?;
        conn.query_drop(format!("USE {name}"))
            .map_err(q("using the bench database"))?;
        for statement in skypunch::schema::split_script(&skypunch::schema::tables_sql()) {
            conn.query_drop(&statement)
                .map_err(q("loading the schema"))?;
        }
        Ok(BenchDb { server, name, conn })
    }

    /// Inserts `n` targets checked every `frequency` seconds, all pointing at `url`, in
    /// multi-row INSERTs; returns how long that took.
    pub fn insert_targets(&mut self, n: u64, frequency: u32, url: &str) -> Result<Duration, Error> {
        self.insert_rows(n, |_| Row {
            url: url.to_string(),
            frequency,
            timeout: 5,
            ca_file: None,
        })
    }

    /// Inserts targets 1..=n, each as `row` says, 2,000 to an INSERT; how long that took.
    pub fn insert_rows(&mut self, n: u64, row: impl Fn(u64) -> Row) -> Result<Duration, Error> {
        let started = Instant::now();
        const ROWS: u64 = 2000;
        let mut next = 1;
        while next <= n {
            let last = (next + ROWS - 1).min(n);
            let mut sql = String::from(
                "INSERT INTO targets (id, name, url, frequency, timeout, ca_file) VALUES ",
            );
            for id in next..=last {
                if id > next {
                    sql.push(',');
                }
                let r = row(id);
                let ca = r.ca_file.map_or("NULL".to_string(), |p| {
                    format!("'{}'", p.replace('\'', "''"))
                });
                sql.push_str(&format!(
                    "({id},'bench-{id}','{}',{},{},{ca})",
                    r.url, r.frequency, r.timeout
                ));
            }
            self.conn.query_drop(&sql).map_err(q("inserting targets"))?;
            next = last + 1;
        }
        Ok(started.elapsed())
    }

    /// (frequency, checks recorded) of every target, by id.
    pub fn frequencies_and_counts(&mut self) -> Result<Vec<(u64, u32, u64)>, Error> {
        self.conn
            .query(
                "SELECT id, frequency, CAST(pass_count + fail_count AS UNSIGNED) FROM targets \
                 ORDER BY id",
            )
            .map_err(q("reading per-target counters"))
    }

    /// The stored trace of the last check of up to `limit` targets that have one.
    pub fn traces(&mut self, limit: u32) -> Result<Vec<String>, Error> {
        self.conn
            .query(format!(
                "SELECT last_trace FROM targets WHERE last_trace IS NOT NULL LIMIT {limit}"
            ))
            .map_err(q("reading traces"))
    }

    /// Runs one statement in the bench database.
    pub fn exec(&mut self, sql: &str) -> Result<(), Error> {
        self.conn
            .query_drop(sql)
            .map_err(q("filling the bench database"))
    }

    /// The first column of the first row of `sql`.
    pub fn query_one(&mut self, sql: &str) -> Result<u64, Error> {
        let v: Option<u64> = self
            .conn
            .query_first(sql)
            .map_err(q("reading table sizes"))?;
        v.ok_or_else(|| format!("no answer to {sql}"))
    }

    /// The connection to the bench database.
    pub fn conn(&mut self) -> &mut mysql::Conn {
        &mut self.conn
    }

    /// SUM(pass_count + fail_count) over every target: the checks the database recorded.
    pub fn recorded_checks(&mut self) -> Result<u64, Error> {
        let sum: Option<u64> = self
            .conn
            .query_first(
                "SELECT CAST(COALESCE(SUM(pass_count + fail_count), 0) AS UNSIGNED) FROM targets",
            )
            .map_err(q("summing the check counters"))?;
        Ok(sum.unwrap_or(0))
    }

    /// Checks recorded per target, sorted ascending.
    pub fn per_target_counts(&mut self) -> Result<Vec<u64>, Error> {
        self.conn
            .query("SELECT CAST(pass_count + fail_count AS UNSIGNED) FROM targets ORDER BY 1")
            .map_err(q("reading per-target counters"))
    }

    /// Targets whose last check failed, with an example description (a bench target should pass).
    pub fn failing(&mut self) -> Result<(u64, Option<String>), Error> {
        let n: Option<u64> = self
            .conn
            .query_first("SELECT COUNT(*) FROM targets WHERE fail_count > 0")
            .map_err(q("counting failed targets"))?;
        let example: Option<Option<String>> = self
            .conn
            .query_first("SELECT status_description FROM targets WHERE fail_count > 0 LIMIT 1")
            .map_err(q("reading a failure"))?;
        Ok((n.unwrap_or(0), example.flatten()))
    }

    /// The skypunch config's view of this database.
    pub fn db_config(&self) -> DbConfig {
        DbConfig {
            host: self.server.host.clone(),
            port: self.server.port,
            user: self.server.user.clone(),
            password: self.server.password.clone(),
            name: self.name.clone(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(5),
            ..DbConfig::default()
        }
    }

    /// Drops the database.
    pub fn drop_db(mut self) -> Result<(), Error> {
        self.conn
            .query_drop(format!("DROP DATABASE IF EXISTS {}", self.name))
            .map_err(q("dropping the bench database"))
    }
}

/// The cost of reload scans, in ms: medians (and the total's maximum) of `runs` scans.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScanCost {
    pub total_median: f64,
    pub total_max: f64,
    pub changed_since_median: f64,
    pub fingerprint_median: f64,
    /// Rows `changed_since` returned.
    pub rows: usize,
}

/// The loader's reload scan: its two statements, copied from `changed_since` and
/// `enabled_fingerprint` in src/db/targets.rs (keep them alike), prepared once and run as the
/// loader runs them on its pooled connection.
const CHANGED_SINCE: &str = "SELECT id, CAST(UNIX_TIMESTAMP(config_changed) * 1000000 AS SIGNED) \
    FROM targets WHERE config_changed >= FROM_UNIXTIME(? / 1000000)";
const ENABLED_FINGERPRINT: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(id), 0) AS UNSIGNED) \
    FROM targets WHERE enabled AND id > 0";

/// The loader's two scan queries, `runs` times, from `since` (microseconds since the epoch).
fn scan_cost(conn: &mut mysql::Conn, since: i64, runs: usize) -> Result<ScanCost, Error> {
    let (mut total, mut changed, mut fingerprint) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = 0;
    for _ in 0..runs {
        let t0 = Instant::now();
        let found: Vec<(i64, Option<i64>)> = conn
            .exec(CHANGED_SINCE, (since,))
            .map_err(q("scanning for changed targets"))?;
        rows = found.len();
        let t1 = Instant::now();
        let _: Option<(u64, u64)> = conn
            .exec_first(ENABLED_FINGERPRINT, ())
            .map_err(q("counting enabled targets"))?;
        let t2 = Instant::now();
        changed.push((t1 - t0).as_secs_f64() * 1000.0);
        fingerprint.push((t2 - t1).as_secs_f64() * 1000.0);
        total.push((t2 - t0).as_secs_f64() * 1000.0);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok(ScanCost {
        total_median: median(&mut total),
        total_max: total.last().copied().unwrap_or(0.0),
        changed_since_median: median(&mut changed),
        fingerprint_median: median(&mut fingerprint),
        rows,
    })
}

/// Two reload-scan costs: as the loader scans after the targets were inserted (from its
/// newest revision minus the 5 s slack of `loader::SLACK_MICROS`, which takes in every row
/// inserted within 5 s of the last one), and as it scans once nothing changed for longer
/// than the slack (from the server's clock minus 5 s: no rows). On a connection of its own,
/// as the loader has one.
pub fn reload_scan(cfg: &DbConfig, runs: usize) -> Result<(ScanCost, ScanCost), Error> {
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(cfg.host.clone()))
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(Some(cfg.password.clone()))
        .db_name(Some(cfg.name.clone()))
        .prefer_socket(false);
    let mut conn = mysql::Conn::new(opts).map_err(q("connecting for the reload scan"))?;
    let (newest, now): (Option<i64>, i64) = conn
        .query_first(
            "SELECT CAST(UNIX_TIMESTAMP(MAX(config_changed)) * 1000000 AS SIGNED), \
             CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED) FROM targets",
        )
        .map_err(q("reading the newest revision"))?
        .unwrap_or((None, 0));
    let after_insert = scan_cost(&mut conn, newest.unwrap_or(0) - 5_000_000, runs)?;
    let quiet = scan_cost(&mut conn, now - 5_000_000, runs)?;
    Ok((after_insert, quiet))
}
