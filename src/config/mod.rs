//! The configuration file: read once at start (and again on SIGHUP) into an immutable
//! [`Config`] that is passed explicitly to every stage.
//!
//! The format is the original skypunch's INI file: `[section]` headers, `key: value` or
//! `key = value`, keys case-insensitive, `#` and `;` comments. The original's keys
//! (`MainLoopTov`, `LogFilePath`, `Location`, `port`, `User`, `Password`, `DBName`) are read as
//! they are. The parser is hand-written so that every error can name the file and line.
//!
//! This file holds the [`Config`] itself, its defaults and its [`Error`]; beside it:
//! - `sections`: the settings of `[database]`, `[http]`, `[cluster]`, `[history]` and the
//!   notifier's, one struct each;
//! - `endpoint`: a `host:port` address as the file writes it;
//! - `load`: where the file is found, and reading it from disk;
//! - [`parse`]: the INI reader, and where each value was found;
//! - [`keys`]: every key, and what each does to the [`Config`];
//! - [`edit`]: `setup-db`'s rewrite of `[database] User` and `Password` in a file.

pub mod edit;
mod endpoint;
mod keys;
mod load;
mod parse;
mod sections;
#[cfg(test)]
mod tests;

pub use endpoint::{parse_endpoint, Endpoint};
pub use keys::{known_keys, Key, KEYS};
pub use load::{check_file, load, load_file, locate, SEARCH_PATH};
pub use parse::parse;
pub use sections::{
    ClusterConfig, DbConfig, HistoryConfig, HttpConfig, NotifyConfig, HTTP_PORT, PLACEHOLDER,
};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::base::proxy::{NoProxy, ProxyUrl};
use crate::base::secrets::Secrets;

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
    /// `[settings] SourceAddress`: the local address checks connect from; `None`: the
    /// kernel's choice.
    pub source_address: Option<std::net::IpAddr>,
    pub db: DbConfig,
    pub notify: NotifyConfig,
    pub history: HistoryConfig,
    pub cluster: ClusterConfig,
    pub http: HttpConfig,
    /// `[secrets]`: values that targets name as `${secret:NAME}` instead of holding them.
    /// Re-read with the rest of the file on SIGHUP. Its `Debug` shows the names only.
    pub secrets: Secrets,
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
            source_address: None,
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
                confirm_failures: true,
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
