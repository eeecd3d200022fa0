//! The settings of the file's sections besides `[settings]`, one struct each: how to reach
//! the database (`[database]`), the HTTP server (`[http]`), the cluster (`[cluster]`), how
//! long history is kept (`[history]`), and how the notifier sends; with their defaults and
//! the `Debug` that never prints a password.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::endpoint::{parse_endpoint, Endpoint};

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
    /// `ConfirmFailures`: a FAILURE due here is checked again by another live node first.
    pub confirm_failures: bool,
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
