//! What every integration test needs: a fresh database of its own on the test MariaDB, a
//! private working folder with a config file, and the real `skypunch` binary.
//!
//! The server is found through `SKYPUNCH_TEST_DB` (`mysql://user:password@host:port`), by
//! default `mysql://root@127.0.0.1:3306`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

pub mod accounts;
pub mod daemon;
pub mod galera;
pub mod http;
pub mod lifecycle;
pub mod mariadb;
pub mod netcluster;
pub mod netns;
pub mod nginx;
pub mod notify;
pub mod oauth2;
pub mod receiver;
pub mod run;
pub mod servers;
pub mod storm;
pub mod tinyproxy;

pub use daemon::Daemon;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The test server's address parts.
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

pub fn server() -> Server {
    let url =
        std::env::var("SKYPUNCH_TEST_DB").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let opts = mysql::Opts::from_url(&url)
        .unwrap_or_else(|e| panic!("SKYPUNCH_TEST_DB is not a mysql:// URL: {e}"));
    Server {
        host: opts.get_ip_or_hostname().to_string(),
        port: opts.get_tcp_port(),
        user: opts.get_user().unwrap_or("root").to_string(),
        password: opts.get_pass().unwrap_or("").to_string(),
    }
}

fn opts(s: &Server, db: Option<&str>) -> mysql::Opts {
    mysql::OptsBuilder::new()
        .ip_or_hostname(Some(s.host.clone()))
        .tcp_port(s.port)
        .user(Some(s.user.clone()))
        .pass(Some(s.password.clone()))
        .db_name(db.map(String::from))
        .prefer_socket(false)
        .into()
}

/// A database that exists for one test and is dropped after it, with a working folder.
pub struct TestDb {
    pub name: String,
    pub dir: PathBuf,
    server: Server,
}

impl TestDb {
    /// An empty database (no tables).
    pub fn empty() -> TestDb {
        TestDb::empty_on(server())
    }

    /// An empty database on `server` (e.g. a private MariaDB instance a test can kill).
    pub fn empty_on(server: Server) -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("sp_test_{}_{}_{}", std::process::id(), n, nanos % 100_000);
        let mut conn = mysql::Conn::new(opts(&server, None))
            .expect("test MariaDB reachable (SKYPUNCH_TEST_DB)");
        conn.query_drop(format!(
            "CREATE DATABASE {name} DEFAULT CHARACTER SET utf8mb4"
        ))
        .unwrap();
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = TestDb { name, dir, server };
        db.write_config("");
        db
    }

    /// A database called `name` with the tables, on `server`: the twin of another test
    /// database on a second server (a daemon whose `Location` lists both).
    pub fn named_on(server: Server, name: &str) -> TestDb {
        let mut conn = mysql::Conn::new(opts(&server, None))
            .expect("test MariaDB reachable (SKYPUNCH_TEST_DB)");
        conn.query_drop(format!(
            "CREATE DATABASE {name} DEFAULT CHARACTER SET utf8mb4"
        ))
        .unwrap();
        let dir = std::env::temp_dir().join(format!("{name}_twin"));
        std::fs::create_dir_all(&dir).unwrap();
        let db = TestDb {
            name: name.to_string(),
            dir,
            server,
        };
        db.load_schema();
        db
    }

    /// A database with the skypunch tables, loaded from schema/skypunch.sql.
    pub fn new() -> TestDb {
        let db = TestDb::empty();
        db.load_schema();
        db
    }

    /// A database with the skypunch 2.0 tables on `server`.
    pub fn new_on(server: Server) -> TestDb {
        let db = TestDb::empty_on(server);
        db.load_schema();
        db
    }

    /// Loads schema/skypunch.sql's tables into this database (as the README's command does).
    pub fn load_schema(&self) {
        let sql = skypunch::schema::tables_sql();
        let mut conn = self.conn();
        for statement in skypunch::schema::split_script(&sql) {
            conn.query_drop(statement).unwrap();
        }
    }

    pub fn conn(&self) -> mysql::Conn {
        mysql::Conn::new(opts(&self.server, Some(&self.name))).unwrap()
    }

    pub fn exec(&self, sql: &str) {
        self.conn()
            .query_drop(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub fn query<T: mysql::prelude::FromRow>(&self, sql: &str) -> Vec<T> {
        self.conn()
            .query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn one<T: mysql::prelude::FromRow>(&self, sql: &str) -> T {
        self.conn()
            .query_first(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .expect("a row")
    }

    /// Inserts a target with these named columns; returns its id.
    pub fn add_target(&self, columns: &str, values: &str) -> u64 {
        let mut conn = self.conn();
        conn.query_drop(format!("INSERT INTO targets ({columns}) VALUES ({values})"))
            .unwrap();
        conn.last_insert_id()
    }

    /// A target checked every second with a 2 s timeout, the shape most tests watch; its id.
    pub fn add_watched(&self, name: &str, url: &str) -> u64 {
        self.add_target(
            "name, url, frequency, timeout",
            &format!("'{}', '{}', 1, 2", name.replace('\'', "''"), url),
        )
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("skypunch.conf")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("skypunch.log")
    }

    pub fn pid_path(&self) -> PathBuf {
        self.dir.join("skypunch.pid")
    }

    /// Writes the test's config file: this database, a log and pid file in the working
    /// folder, a 1 s reload interval, no HTTP server (tests run in parallel: a fixed port
    /// would collide), alerts not grouped (each its own message, at once: tests/it/storms.rs
    /// turns grouping on), plus `extra` lines (which may add sections, `[http]` and
    /// `[notifications]` included: a key there wins).
    pub fn write_config(&self, extra: &str) {
        let s = &self.server;
        let text = format!(
            "[settings]\nLogFilePath: {}\nPidFile: {}\nReloadInterval: 1\nWorkers: 8\n{extra_settings}\n\
             [database]\nLocation: {}\nport: {}\nUser: {}\nPassword: {}\nDBName: {}\n\
             [notifications]\nGroupWait: 0\n[http]\nListen:\n{extra_rest}\n",
            self.log_path().display(),
            self.pid_path().display(),
            s.host,
            s.port,
            s.user,
            s.password,
            self.name,
            extra_settings = extra.split("\n[").next().unwrap_or(""),
            extra_rest = extra.find("\n[").map(|i| &extra[i..]).unwrap_or(""),
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Runs `skypunch -c <config> args...` to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        skypunch_cmd(&self.config_path(), args).output().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut conn) = mysql::Conn::new(opts(&self.server, None)) {
            let _ = conn.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The built binary with `-c config` and `args`.
pub fn skypunch_cmd(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skypunch"));
    cmd.arg("-c").arg(config).args(args);
    cmd.env_remove("SKYPUNCH_CONFIG");
    cmd
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value of `name` in a two-column `Field | Value` table the CLI prints
/// (`skypunch targets ID`, `skypunch notifiers ID`).
pub fn field(table: &str, name: &str) -> String {
    table
        .lines()
        .filter_map(|l| l.strip_prefix('|')?.strip_suffix('|'))
        .find_map(|l| {
            let (key, value) = l.split_once('|')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {name} in:\n{table}"))
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `limit` with `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The log's check lines for target `id`.
pub fn check_lines(log: &str, id: u64) -> Vec<String> {
    let tag = format!(" [{id}] ");
    log.lines()
        .filter(|l| l.contains(&tag) && (l.contains(" PASS (") || l.contains(" FAIL (")))
        .map(String::from)
        .collect()
}
