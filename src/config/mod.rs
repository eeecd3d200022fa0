//! The configuration file: read once at start (and again on SIGHUP) into an immutable
//! [`Config`] that is passed explicitly to every stage.
//!
//! The format is the original skypunch's INI file: `[section]` headers, `key: value` or
//! `key = value`, keys case-insensitive, `#` and `;` comments. The original's keys
//! (`MainLoopTov`, `LogFilePath`, `Location`, `port`, `User`, `Password`, `DBName`) are read as
//! they are. The parser is hand-written so that every error can name the file and line.
//!
//! - [`parse`]: the INI reader, and where each value was found;
//! - [`keys`]: every key, and what each does to the [`Config`];
//! - [`edit`]: `setup-db`'s rewrite of `[database] User` and `Password` in a file.

pub mod edit;
mod keys;
mod parse;

pub use keys::{known_keys, Key, KEYS};
pub use parse::parse;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::base::proxy::{NoProxy, ProxyUrl};
use crate::base::secrets::Secrets;

/// Where the configuration is looked for when `-c FILE` is not given, first match wins.
pub const SEARCH_PATH: &[&str] = &[
    "./skypunch.conf",
    "./skypunch.config",
    "/etc/skypunch/skypunch.conf",
    "/etc/skypunch.conf",
];

/// Validated settings. Cheap to share behind an `Arc`; never changed after loading.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file these settings came from; `None` when no file was found and defaults apply.
    pub source: Option<PathBuf>,
    pub log_file: PathBuf,
    pub log_level: log::LevelFilter,
    pub pid_file: PathBuf,
    pub workers: usize,
    pub reload_interval: Duration,
    pub stats_interval: Duration,
    pub max_body_bytes: u64,
    pub token_lifetime: Duration,
    pub max_pending_alerts: usize,
    /// How long a stop may take: the process is gone this long after SIGTERM.
    pub stop_timeout: Duration,
    /// How long the checks in flight at a stop get to finish before they are abandoned;
    /// below `stop_timeout`.
    pub stop_grace: Duration,
    /// PEM bundle of CA certificates trusted, besides the public roots, for the HTTPS checks
    /// of targets without a `ca_file` of their own.
    pub ca_file: Option<PathBuf>,
    /// `[settings] Proxy`: the proxy of targets without a `proxy_url` of their own.
    pub proxy: Option<ProxyUrl>,
    /// `[settings] NoProxy`: the hosts those targets reach directly.
    pub no_proxy: Arc<NoProxy>,
    /// `host:port` addresses that are always up (a gateway, resolvers): while every one of
    /// them refuses a TCP connection, the node is blind. Empty: the suspicion decides.
    pub connectivity: Vec<Endpoint>,
    /// The node suspects it is blind when more than this percentage of the (at least 20)
    /// targets it checked in the last minute failed with network errors; 100: never.
    pub blind_percent: u32,
    pub db: DbConfig,
    pub notify: NotifyConfig,
    pub history: HistoryConfig,
    pub cluster: ClusterConfig,
    pub http: HttpConfig,
    /// `[secrets]`: values that targets name as `${secret:NAME}` instead of holding them.
    /// Re-read with the rest of the file on SIGHUP. Its `Debug` shows the names only.
    pub secrets: Secrets,
}

/// The daemon's HTTP server (`[http]`): metrics, health and JSON API.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where to listen; empty: no server.
    pub listen: Vec<Endpoint>,
    /// HTTP Basic credentials asked for everything but `/healthz`; no user: none asked.
    pub user: String,
    pub password: String,
    /// Show only targets with `public = 1` on the status pages and in the JSON API.
    pub public_only: bool,
    /// The status pages' base URL for links in alerts; `None`: the first `listen` address.
    pub public_url: Option<String>,
    /// Open connections at most (reading their request or being answered).
    pub max_connections: usize,
    /// `/push/TOKEN` asks for the Basic credentials too (off: the token is the secret).
    pub push_auth: bool,
}

impl HttpConfig {
    /// The base URL of the status pages that alerts link to: `PublicUrl`, else the first
    /// listen address (a wildcard address named by this host's name); `None` with the server
    /// off or on a port chosen at start (0).
    pub fn page_base(&self) -> Option<String> {
        if let Some(url) = &self.public_url {
            return Some(url.clone());
        }
        let first = self.listen.first().filter(|e| e.port != 0)?;
        let wildcard = matches!(first.host.as_str(), "0.0.0.0" | "::" | "");
        let host = if wildcard {
            crate::base::os::host_name()
        } else {
            first.host.clone()
        };
        Some(format!(
            "http://{}",
            Endpoint {
                host,
                port: first.port
            }
        ))
    }
}

/// The port `[http] Listen` uses when an address names none.
pub const HTTP_PORT: u16 = 9470;

// Hand-written, as for DbConfig: `{:?}` never prints the password.
impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("user", &self.user)
            .field("password", &"(redacted)")
            .field("public_only", &self.public_only)
            .field("public_url", &self.public_url)
            .field("max_connections", &self.max_connections)
            .field("push_auth", &self.push_auth)
            .finish()
    }
}

/// How this daemon takes part in a cluster of daemons sharing the database (`[cluster]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's name in `nodes`; empty: the host name.
    pub node_name: String,
    /// A node whose heartbeat is older than this is dead; its targets go to the others.
    pub dead_after: Duration,
    /// `MaxClockSkew`: past this offset from the database's clock a node checks nothing;
    /// zero: no limit.
    pub max_clock_skew: Duration,
}

impl ClusterConfig {
    /// How often the heartbeat is written: six times per `DeadAfter`, between 0.25 and 2 s.
    pub fn heartbeat(&self) -> Duration {
        (self.dead_after / 6).clamp(Duration::from_millis(250), Duration::from_secs(2))
    }

    /// `[cluster] NodeName`, or the host name.
    pub fn node_name(&self) -> String {
        if self.node_name.is_empty() {
            crate::base::os::host_name()
        } else {
            self.node_name.clone()
        }
    }
}

/// How long history is kept (`[history]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Days of `target_hours` rows.
    pub hourly_days: u32,
    /// Days of `target_days` rows.
    pub daily_days: u32,
    /// Days an ended incident is kept; `None`: forever.
    pub incident_days: Option<u32>,
}

/// How to reach the database.
#[derive(Clone, PartialEq)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub name: String,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    /// Bounds on every statement's reply and request.
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// The session's `innodb_lock_wait_timeout`: a row lock held longer by another client
    /// fails the write with error 1205, which is retried.
    pub lock_wait_timeout: Duration,
    /// The session's `idle_transaction_timeout` (MariaDB): a transaction whose client sends
    /// nothing for this long is rolled back and its connection closed by the server, so that
    /// a frozen daemon's row locks cannot stop the others. A third of `[cluster] DeadAfter`.
    pub idle_transaction_timeout: Duration,
    /// The file whose `User` or `Password` is still the package's [`PLACEHOLDER`]: nothing
    /// connects with such a configuration (never as root by default), it says what to do.
    pub placeholder_in: Option<PathBuf>,
}

/// The value of `[database] User` and `Password` in the packaged configuration until
/// `skypunch setup-db` (or the operator) writes real ones.
pub const PLACEHOLDER: &str = "<set by skypunch setup-db>";

/// How the notifier thread sends, groups and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyConfig {
    pub from: String,
    pub smtp_timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub retention: Duration,
    /// How long the first alert of a burst waits for others to go out with it; zero: every
    /// alert is a message of its own, sent at once.
    pub group_wait: Duration,
    /// During a storm, the least time between two messages to one notifier.
    pub group_interval: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            from: "SkyPunch <skypunch@localhost>".into(),
            smtp_timeout: Duration::from_secs(20),
            retry_initial: Duration::from_secs(10),
            retry_max: Duration::from_secs(600),
            retention: Duration::from_secs(30 * 86400),
            group_wait: Duration::from_secs(10),
            group_interval: Duration::from_secs(60),
        }
    }
}

// A hand-written Debug so that `{:?}` of a Config can never print the database password.
impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"(redacted)")
            .field("name", &self.name)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("lock_wait_timeout", &self.lock_wait_timeout)
            .field("idle_transaction_timeout", &self.idle_transaction_timeout)
            .field("placeholder_in", &self.placeholder_in)
            .finish()
    }
}

impl DbConfig {
    /// `user@host:port/db` (every host of the list), for messages: never the password.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self.endpoints().iter().map(Endpoint::to_string).collect();
        format!("{}@{}/{}", self.user, hosts.join(","), self.name)
    }

    /// What to do when the configuration still holds the package's placeholders, in the
    /// words `start`, `check-config` and every command that connects print.
    pub fn placeholder_error(&self) -> Option<String> {
        let file = self.placeholder_in.as_ref()?;
        Some(format!(
            "[database] User/Password are the package's placeholders: run 'skypunch setup-db' \
             or edit {}",
            file.display()
        ))
    }

    /// The hosts of `Location`, in order, each with its port (`port` where it names none).
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let list: Vec<Endpoint> = self
            .host
            .split(',')
            .filter_map(|entry| parse_endpoint(entry.trim(), self.port))
            .collect();
        if list.is_empty() {
            // Only a value the file's checks never let through gets here: try it as it is.
            return vec![Endpoint {
                host: self.host.clone(),
                port: self.port,
            }];
        }
        list
    }
}

/// One database server of `[database] Location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when it is none of them.
pub fn parse_endpoint(entry: &str, default_port: u16) -> Option<Endpoint> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after.strip_prefix(':') {
            Some(p) => (host, port(p)?),
            None if after.is_empty() => (host, default_port),
            None => return None,
        }
    } else {
        match entry.split_once(':') {
            Some((host, p)) if !p.contains(':') => (host, port(p)?),
            // A bare IPv6 address: no port can follow it.
            Some(_) => (entry, default_port),
            None => (entry, default_port),
        }
    };
    let fine = !host.is_empty() && !host.contains(char::is_whitespace);
    fine.then(|| Endpoint {
        host: host.to_string(),
        port,
    })
}

/// Why a configuration could not be used. Every message names the file and, where there is
/// one, the line and key.
#[derive(Debug, PartialEq)]
pub enum Error {
    /// The file named with `-c` (or found on the search path) could not be read.
    Read { path: PathBuf, reason: String },
    /// A line that is neither a section, a `key: value` pair, a comment nor blank.
    Syntax {
        path: PathBuf,
        line: usize,
        text: String,
    },
    /// A key whose value is not allowed.
    Value {
        path: PathBuf,
        line: usize,
        key: String,
        value: String,
        allowed: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, reason } => {
                write!(f, "cannot read config file {}: {}", path.display(), reason)
            }
            Error::Syntax { path, line, text } => write!(
                f,
                "{}:{}: cannot parse `{}`: expected `[section]` or `key: value`",
                path.display(),
                line,
                text
            ),
            Error::Value {
                path,
                line,
                key,
                value,
                allowed,
            } => write!(
                f,
                "{}:{}: bad value `{}` for {}: {}",
                path.display(),
                line,
                value,
                key,
                allowed
            ),
        }
    }
}

impl std::error::Error for Error {}

/// A configuration and the warnings met while reading it (unknown keys, obsolete keys, a
/// password in a file others can read), for the caller to log once logging is set up.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Default for DbConfig {
    fn default() -> Self {
        DbConfig {
            host: "localhost".into(),
            port: 3306,
            user: "root".into(),
            password: String::new(),
            name: "skypunch".into(),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            lock_wait_timeout: Duration::from_secs(5),
            idle_transaction_timeout: Duration::from_secs(2),
            placeholder_in: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: None,
            log_file: PathBuf::from("./skypunch.log"),
            log_level: log::LevelFilter::Info,
            pid_file: default_pid_file(),
            workers: 256,
            reload_interval: Duration::from_secs(5),
            stats_interval: Duration::from_secs(60),
            max_body_bytes: 1024 * 1024,
            token_lifetime: Duration::from_secs(3600),
            max_pending_alerts: 10_000,
            stop_timeout: Duration::from_secs(30),
            stop_grace: Duration::from_secs(2),
            ca_file: None,
            proxy: None,
            no_proxy: Arc::new(NoProxy::default()),
            connectivity: Vec::new(),
            blind_percent: 50,
            db: DbConfig::default(),
            notify: NotifyConfig::default(),
            history: HistoryConfig {
                hourly_days: 35,
                daily_days: 800,
                incident_days: None,
            },
            cluster: ClusterConfig {
                node_name: String::new(),
                dead_after: Duration::from_secs(6),
                max_clock_skew: Duration::from_secs(5),
            },
            http: HttpConfig {
                listen: vec![Endpoint {
                    host: "127.0.0.1".into(),
                    port: HTTP_PORT,
                }],
                user: String::new(),
                password: String::new(),
                public_only: false,
                public_url: None,
                max_connections: 256,
                push_auth: false,
            },
            secrets: Secrets::new(),
        }
    }
}

impl Config {
    /// Makes the file paths absolute, relative ones taken from `base` (the folder `start` was
    /// run in): the daemon works in `/`, and a re-read on SIGHUP must compare like with like.
    pub fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p.strip_prefix(".").unwrap_or(p))
            }
        };
        if self.log_file.as_os_str() != crate::logging::STDERR {
            self.log_file = abs(&self.log_file);
        }
        self.pid_file = abs(&self.pid_file);
        self.source = self.source.as_deref().map(abs);
        self.ca_file = self.ca_file.as_deref().map(abs);
    }
}

/// `/run/skypunch.pid` for root (the init script's user), else a file in the temp folder that
/// only this user's daemon uses.
fn default_pid_file() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        PathBuf::from("/run/skypunch.pid")
    } else {
        std::env::temp_dir().join(format!("skypunch-{uid}.pid"))
    }
}

/// Finds the configuration: `explicit` when given (it must exist), else `$SKYPUNCH_CONFIG`,
/// else the first file of [`SEARCH_PATH`] that exists, else the defaults.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, Error> {
    let mut loaded = match locate(explicit) {
        Some(path) => load_file(&path)?,
        None => Loaded {
            config: Config::default(),
            warnings: Vec::new(),
        },
    };
    // The systemd unit sends the log to the journal this way, whatever the file says.
    if let Some(log) = std::env::var_os("SKYPUNCH_LOG_FILE").filter(|v| !v.is_empty()) {
        loaded.config.log_file = PathBuf::from(log);
    }
    Ok(loaded)
}

/// The file to read: `-c FILE`, else `$SKYPUNCH_CONFIG`, else the first of [`SEARCH_PATH`]
/// that exists; `None`: no file, the defaults apply.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    let env = std::env::var_os("SKYPUNCH_CONFIG").map(PathBuf::from);
    explicit
        .map(Path::to_path_buf)
        .or(env)
        .or_else(|| SEARCH_PATH.iter().map(PathBuf::from).find(|p| p.is_file()))
}

/// Reads one file and reports every problem in it, not only the first: the configuration as
/// far as it is valid, and each bad line. `Err` when the file cannot be read.
pub fn check_file(path: &Path) -> Result<(Loaded, Vec<Error>), Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (mut loaded, errors) = parse::parse_all(path, &text);
    if let Some(warning) = readable_secret_warning(path, &loaded.config) {
        loaded.warnings.push(warning);
    }
    Ok((loaded, errors))
}

/// Reads and validates one file.
pub fn load_file(path: &Path) -> Result<Loaded, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut loaded = parse(path, &text)?;
    if let Some(warning) = readable_secret_warning(path, &loaded.config) {
        loaded.warnings.push(warning);
    }
    Ok(loaded)
}

fn readable_secret_warning(path: &Path, config: &Config) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    let which = if !config.db.password.is_empty() && config.db.password != PLACEHOLDER {
        "a database password"
    } else if !config.http.password.is_empty() {
        "an [http] password"
    } else if !config.secrets.is_empty() {
        "[secrets]"
    } else {
        return None;
    };
    (mode & 0o004 != 0).then(|| {
        format!(
            "{} holds {which} and is readable by every user (mode {:o}): chmod 640 it",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn location_takes_a_list_of_hosts_each_with_an_optional_port() {
        let text = "[database]\nLocation: db1, db2:3307,[::1]:3308, [fe80::1]\nport: 3310\n";
        let c = parse_str(text).unwrap().config;
        let list: Vec<String> = c.db.endpoints().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            list,
            ["db1:3310", "db2:3307", "[::1]:3308", "[fe80::1]:3310"]
        );
        let shown = c.db.describe();
        assert!(
            shown.contains("@db1:3310,db2:3307,[::1]:3308,[fe80::1]:3310/"),
            "{shown}"
        );
        for bad in ["db1,,db2", "db1:x", "db1:0", "db 1", "[::1"] {
            let text = format!("[database]\nLocation: {bad}\n");
            let err = parse_str(&text).unwrap_err().to_string();
            assert!(
                err.contains("a host, host:port, or a comma-separated list"),
                "{bad}: {err}"
            );
        }
    }

    use super::*;

    fn parse_str(text: &str) -> Result<Loaded, Error> {
        parse(Path::new("test.conf"), text)
    }

    #[test]
    fn the_original_file_is_read_as_it_is() {
        let text = "[settings]\nMainLoopTov: 1\nLogFilePath: ./skypunch.log\n\n[database]\n\
                    Location: db.example\nport: 3307\nUser: root\nPassword: root\nDBName: skypunch\n";
        let loaded = parse_str(text).unwrap();
        let c = loaded.config;
        assert_eq!(c.log_file, PathBuf::from("./skypunch.log"));
        assert_eq!((c.db.host.as_str(), c.db.port), ("db.example", 3307));
        assert_eq!(
            (c.db.user.as_str(), c.db.password.as_str()),
            ("root", "root")
        );
        assert_eq!(
            loaded.warnings.len(),
            1,
            "MainLoopTov is accepted with a note"
        );
    }

    #[test]
    fn keys_are_case_insensitive_and_equals_works() {
        let c = parse_str("[SETTINGS]\nworkers = 8\n[Database]\nDBNAME=mon_1\n")
            .unwrap()
            .config;
        assert_eq!(c.workers, 8);
        assert_eq!(c.db.name, "mon_1");
    }

    #[test]
    fn a_bad_value_names_file_line_key_and_what_is_allowed() {
        let err = parse_str("[settings]\n\nWorkers: many\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "test.conf:3: bad value `many` for [settings] Workers: a whole number from 1 to 4096"
        );
    }

    #[test]
    fn the_stop_grace_ends_before_the_stop_timeout_wherever_either_is_set() {
        let c = parse_str("[settings]\nStopGrace: 0\n").unwrap().config;
        assert_eq!(c.stop_grace, Duration::ZERO, "0: abandon at once");
        assert_eq!(Config::default().stop_grace, Duration::from_secs(2));
        let err = parse_str("[settings]\nStopGrace: 10\nStopTimeout: 10\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "test.conf:2: bad value `10` for [settings] StopGrace: a whole number of seconds \
             below StopTimeout (10): the last writes need time after it"
        );
        let err = parse_str("[settings]\nStopGrace: 2s\n").unwrap_err();
        assert!(
            err.to_string().contains("a whole number from 0 to 3599"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_is_a_warning() {
        let loaded = parse_str("[settings]\nColour: blue\n").unwrap();
        assert!(loaded.warnings[0].contains("test.conf:2: unknown key `Colour`"));
    }

    #[test]
    fn a_line_without_separator_is_a_syntax_error() {
        let err = parse_str("[settings]\nworkers\n").unwrap_err();
        assert!(matches!(err, Error::Syntax { line: 2, .. }), "{err}");
    }

    #[test]
    fn the_database_may_be_a_url() {
        let text = "[database]\nurl = mysql://mon%40x:p%3Ass@10.1.2.3:3310/skymon\n";
        let db = parse_str(text).unwrap().config.db;
        assert_eq!((db.user.as_str(), db.password.as_str()), ("mon@x", "p:ss"));
        assert_eq!(
            (db.host.as_str(), db.port, db.name.as_str()),
            ("10.1.2.3", 3310, "skymon")
        );
    }

    #[test]
    fn a_bad_url_error_does_not_show_the_password() {
        let err = parse_str("[database]\nurl = postgres://u:secret@h/db\n").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn the_default_proxy_and_its_exceptions_are_read_and_its_password_never_shown() {
        let loaded = parse_str(
            "[settings]\nProxy: http://ops:hunter2@proxy.example:3128\n\
             NoProxy: localhost, .corp.example, 10.0.0.0/8\n",
        )
        .unwrap();
        let proxy = loaded.config.proxy.clone().unwrap();
        assert_eq!(proxy.shown(), "http://***@proxy.example:3128");
        assert!(loaded.config.no_proxy.matches("db.corp.example"));
        assert!(!format!("{:?}", loaded.config).contains("hunter2"));
        let err = parse_str("[settings]\nProxy: http://ops:hunter2@proxy.example\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no port"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse_str("[settings]\nNoProxy: 10.0.0.0/40\n").unwrap_err();
        assert!(err.to_string().contains("`10.0.0.0/40` is not"), "{err}");
    }

    #[test]
    fn every_listed_key_and_alias_is_accepted() {
        for (section, name) in known_keys() {
            let example = KEYS
                .iter()
                .find(|k| k.name == name || k.aliases.contains(&name))
                .unwrap()
                .example;
            // Basic authentication takes both or neither: the other of the pair is given.
            let pair = if section == "http" {
                "User: u\nPassword: p\n"
            } else {
                ""
            };
            let loaded = parse_str(&format!("[{section}]\n{pair}{name}: {example}\n"))
                .unwrap_or_else(|e| panic!("[{section}] {name}: {e}"));
            assert!(
                loaded.warnings.iter().all(|w| !w.contains("unknown key")),
                "[{section}] {name} is listed but not parsed: {:?}",
                loaded.warnings
            );
        }
    }

    #[test]
    fn secrets_are_free_names_whose_values_never_show() {
        let text = "[secrets]\nAPI_KEY: k-123:456=x\ndb.pass-2 = hunter22\n";
        let c = parse_str(text).unwrap().config;
        assert_eq!(c.secrets.len(), 2);
        assert_eq!(c.secrets.get("API_KEY").unwrap().expose(), "k-123:456=x");
        assert_eq!(c.secrets.get("db.pass-2").unwrap().expose(), "hunter22");
        assert!(
            c.secrets.get("api_key").is_none(),
            "names are case-sensitive"
        );
        assert!(!format!("{c:?}").contains("hunter22"));
        for (bad, allowed) in [
            (
                "[secrets]\nbad name: hunter22\n",
                "a name of letters, digits",
            ),
            ("[secrets]\nA: hunter22\nA: hunter23\n", "each name once"),
            ("[secrets]\nA:\n", "a non-empty value"),
        ] {
            let err = parse_str(bad).unwrap_err().to_string();
            assert!(err.contains(allowed), "{bad}: {err}");
            assert!(err.contains("bad value `(hidden)` for [secrets]"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = parse_str("[secrets]\nhunter22\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "test.conf:2: cannot parse `(a line of [secrets], hidden)`: expected `[section]` or \
             `key: value`"
        );
    }

    #[test]
    fn a_secret_too_short_to_redact_is_a_warning() {
        let loaded = parse_str("[secrets]\nPIN: 123\nTOKEN: long-enough\n").unwrap();
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("[secrets] PIN is shorter than 4 characters"));
        assert!(!loaded.warnings[0].contains("123"));
    }

    #[test]
    fn paths_are_resolved_against_the_start_folder() {
        let mut c = parse_str("[settings]\nLogFilePath: ./x.log\nPidFile: /run/x.pid\n")
            .unwrap()
            .config;
        c.resolve_paths(Path::new("/srv/mon"));
        assert_eq!(c.log_file, PathBuf::from("/srv/mon/x.log"));
        assert_eq!(c.pid_file, PathBuf::from("/run/x.pid"));
        assert_eq!(c.source, Some(PathBuf::from("/srv/mon/test.conf")));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let c = parse_str("[database]\npassword = hunter2\n[http]\nUser: u\nPassword: swordfish\n")
            .unwrap()
            .config;
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c:?}").contains("swordfish"));
    }

    #[test]
    fn http_listen_takes_a_list_or_nothing() {
        let c = parse_str("[http]\nListen: 0.0.0.0:80, [::1], localhost\n")
            .unwrap()
            .config;
        let list: Vec<String> = c.http.listen.iter().map(|e| e.to_string()).collect();
        assert_eq!(list, ["0.0.0.0:80", "[::1]:9470", "localhost:9470"]);
        let off = parse_str("[http]\nListen:\n").unwrap().config;
        assert!(off.http.listen.is_empty());
        let err = parse_str("[http]\nListen: a:b\n").unwrap_err().to_string();
        assert!(err.contains("[http] Listen"), "{err}");
        let err = parse_str("[http]\nPassword: x\n").unwrap_err().to_string();
        assert!(err.contains("[http] Password needs [http] User"), "{err}");
    }

    #[test]
    fn http_max_connections_is_bounded() {
        let c = parse_str("[http]\nMaxConnections: 2000\n").unwrap().config;
        assert_eq!(c.http.max_connections, 2000);
        assert_eq!(Config::default().http.max_connections, 256);
        let err = parse_str("[http]\nMaxConnections: 4\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("MaxConnections"), "{err}");
        assert!(err.contains("a whole number from 8 to 1000000"), "{err}");
    }

    #[test]
    fn alerts_link_to_the_public_url_else_the_first_listen_address() {
        let c = parse_str("[http]\nListen: 127.0.0.1:9470\nPublicUrl: https://s.example.com/x/\n")
            .unwrap();
        assert_eq!(
            c.config.http.page_base().as_deref(),
            Some("https://s.example.com/x")
        );
        let c = parse_str("[http]\nListen: 10.0.0.5:8080, 127.0.0.1\n").unwrap();
        assert_eq!(
            c.config.http.page_base().as_deref(),
            Some("http://10.0.0.5:8080")
        );
        let c = parse_str("[http]\nListen: 127.0.0.1:0\n").unwrap();
        assert_eq!(
            c.config.http.page_base(),
            None,
            "a port chosen at start is not known here"
        );
        let c = parse_str("[http]\nListen:\n").unwrap();
        assert_eq!(c.config.http.page_base(), None);
        for bad in [
            "ftp://x",
            "status.example.com",
            "https://u:p@x",
            "https://x/?a=1",
        ] {
            let e = parse_str(&format!("[http]\nPublicUrl: {bad}\n")).unwrap_err();
            assert!(e.to_string().contains("[http] PublicUrl"), "{bad}: {e}");
        }
    }
}
