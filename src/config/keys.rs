//! Every key of the configuration file: the table the man page test and the hints read, and
//! what each key does to the [`Config`] it is read into.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::base::proxy::{NoProxy, ProxyUrl};

use super::parse::{parse_bool, Place};
use super::{ClusterConfig, Config, DbConfig, Error, HistoryConfig, HttpConfig, NotifyConfig};

/// One key of the file, as documented: the man page test and the parser's "known keys" hints
/// read this list, and a unit test checks that the parser accepts every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The section, lowercase: `settings`, `database` or `notifications`.
    pub section: &'static str,
    /// The name as documented (keys are case-insensitive).
    pub name: &'static str,
    /// Other names accepted for the same key.
    pub aliases: &'static [&'static str],
    /// A valid value, for tests and examples.
    pub example: &'static str,
}

const fn key(section: &'static str, name: &'static str, example: &'static str) -> Key {
    Key {
        section,
        name,
        aliases: &[],
        example,
    }
}

/// Every key the parser knows, in the order of the sample file.
pub const KEYS: &[Key] = &[
    key("settings", "MainLoopTov", "1"),
    Key {
        aliases: &["LogFile"],
        ..key("settings", "LogFilePath", "/var/log/skypunch/skypunch.log")
    },
    key("settings", "LogLevel", "info"),
    key("settings", "PidFile", "/run/skypunch/skypunch.pid"),
    key("settings", "Workers", "256"),
    key("settings", "ReloadInterval", "5"),
    key("settings", "StatsInterval", "60"),
    key("settings", "MaxBodyBytes", "1048576"),
    key("settings", "TokenLifetime", "3600"),
    key("settings", "MaxPendingAlerts", "10000"),
    key("settings", "StopTimeout", "30"),
    key("settings", "StopGrace", "2"),
    key("settings", "CaFile", "/etc/skypunch/ca.pem"),
    key("settings", "Proxy", "http://proxy.example.com:3128"),
    key(
        "settings",
        "NoProxy",
        "localhost, .internal.example.com, 10.0.0.0/8",
    ),
    key(
        "settings",
        "Connectivity",
        "192.0.2.1:53, gateway.example:443",
    ),
    key("settings", "BlindPercent", "50"),
    key("settings", "SourceAddress", "192.0.2.10"),
    Key {
        aliases: &["Host"],
        ..key("database", "Location", "localhost")
    },
    key("database", "port", "3306"),
    key("database", "User", "skypunch"),
    key("database", "Password", "secret"),
    Key {
        aliases: &["Database"],
        ..key("database", "DBName", "skypunch")
    },
    key(
        "database",
        "URL",
        "mysql://skypunch:secret@localhost:3306/skypunch",
    ),
    key("database", "PoolSize", "8"),
    key("database", "ConnectTimeout", "5"),
    key("database", "ReadTimeout", "10"),
    key("database", "WriteTimeout", "10"),
    key("database", "LockWaitTimeout", "5"),
    key("notifications", "From", "SkyPunch <skypunch@example.com>"),
    key("notifications", "SmtpTimeout", "20"),
    key("notifications", "RetryInitial", "10"),
    key("notifications", "RetryMax", "600"),
    key("notifications", "RetentionDays", "30"),
    key("notifications", "GroupWait", "10"),
    key("notifications", "GroupInterval", "60"),
    key("history", "HourlyDays", "35"),
    key("history", "DailyDays", "800"),
    key("history", "IncidentDays", "3650"),
    key("cluster", "NodeName", "monitor-1"),
    key("cluster", "DeadAfter", "6"),
    key("cluster", "MaxClockSkew", "5"),
    key("cluster", "ConfirmFailures", "yes"),
    key("http", "Listen", "127.0.0.1:9470"),
    key("http", "User", "monitor"),
    key("http", "Password", "secret"),
    key("http", "PublicOnly", "no"),
    key("http", "PublicUrl", "https://status.example.com"),
    key("http", "MaxConnections", "256"),
    key("http", "PushAuth", "no"),
];

/// `(section, key)` for every documented key name, aliases included.
pub fn known_keys() -> Vec<(&'static str, &'static str)> {
    KEYS.iter()
        .flat_map(|k| {
            std::iter::once(k.name)
                .chain(k.aliases.iter().copied())
                .map(|n| (k.section, n))
        })
        .collect()
}

/// `known: A, B, C` for the warning about an unknown key in `section`.
fn known_hint(section: &str) -> String {
    let names: Vec<&str> = KEYS
        .iter()
        .filter(|k| k.section == section)
        .map(|k| k.name)
        .collect();
    format!("known: {}", names.join(", "))
}

/// Applies one key; returns a warning for keys that are accepted but have no effect.
pub(super) fn apply(config: &mut Config, at: &Place, value: &str) -> Result<Option<String>, Error> {
    let key = at.key.to_ascii_lowercase();
    match at.section {
        "settings" => apply_settings(config, at, &key, value),
        "database" => apply_database(&mut config.db, at, &key, value),
        "notifications" => apply_notifications(&mut config.notify, at, &key, value),
        "history" => apply_history(&mut config.history, at, &key, value),
        "cluster" => apply_cluster(&mut config.cluster, at, &key, value),
        "http" => apply_http(&mut config.http, at, &key, value),
        "secrets" => apply_secret(config, at, value).map(|_| None),
        _ => Ok(Some(unknown(
            at,
            "sections are [settings], [database], [notifications], [history], [cluster], \
             [http] and [secrets]",
        ))),
    }
}

fn unknown(at: &Place, hint: &str) -> String {
    format!(
        "{}:{}: unknown key `{}` in [{}] ignored ({})",
        at.path.display(),
        at.line,
        at.key,
        at.section,
        hint
    )
}

fn apply_settings(
    config: &mut Config,
    at: &Place,
    key: &str,
    value: &str,
) -> Result<Option<String>, Error> {
    match key {
        "mainlooptov" => {
            at.number::<u64>(value, 0, 3600)?;
            return Ok(Some(format!(
                "{}:{}: MainLoopTov is no longer used: every target is checked at its own frequency",
                at.path.display(),
                at.line
            )));
        }
        "logfilepath" | "logfile" => config.log_file = PathBuf::from(at.text(value)?),
        "loglevel" => config.log_level = parse_level(at, value)?,
        "pidfile" => config.pid_file = PathBuf::from(at.text(value)?),
        "workers" => config.workers = at.number(value, 1, 4096)?,
        "reloadinterval" => config.reload_interval = at.seconds(value, 1, 3600)?,
        "statsinterval" => config.stats_interval = at.seconds(value, 0, 86400)?,
        "maxbodybytes" => config.max_body_bytes = at.number(value, 1024, 1 << 30)?,
        "tokenlifetime" => config.token_lifetime = at.seconds(value, 60, 86400)?,
        "maxpendingalerts" => config.max_pending_alerts = at.number(value, 100, 10_000_000)?,
        "stoptimeout" => config.stop_timeout = at.seconds(value, 1, 3600)?,
        // Below StopTimeout too, checked once the whole file is read (either may come first).
        "stopgrace" => config.stop_grace = at.seconds(value, 0, 3599)?,
        "cafile" => config.ca_file = Some(PathBuf::from(at.text(value)?)),
        // Empty: no proxy (a later line may take back an earlier one).
        "proxy" if value.is_empty() => config.proxy = None,
        "proxy" => {
            // The value is shown without its user info: it may hold the proxy's password.
            let shown = crate::base::urls::shown(value);
            let proxy = ProxyUrl::parse(value).map_err(|why| at.bad(&shown, &why))?;
            config.proxy = Some(proxy);
        }
        "noproxy" => {
            let list = NoProxy::parse(value).map_err(|why| at.bad(value, &why))?;
            config.no_proxy = Arc::new(list);
        }
        "connectivity" => config.connectivity = parse_connectivity(at, value)?,
        "blindpercent" => config.blind_percent = at.number(value, 1, 100)?,
        "sourceaddress" => config.source_address = at.source_address(value)?,
        _ => return Ok(Some(unknown(at, &known_hint("settings")))),
    }
    Ok(None)
}

/// Addresses probed for the node's sight of its network.
const MAX_CONNECTIVITY: usize = 16;

/// `host:port, host:port, ...` (`[v6]:port` for IPv6), at most [`MAX_CONNECTIVITY`]; empty:
/// none.
fn parse_connectivity(at: &Place, value: &str) -> Result<Vec<super::Endpoint>, Error> {
    let allowed = "a comma-separated list of host:port (at most 16), or nothing";
    let mut list = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let endpoint = super::parse_endpoint(entry, 0)
            .filter(|e| e.port != 0)
            .ok_or_else(|| at.bad(value, allowed))?;
        list.push(endpoint);
    }
    if list.len() > MAX_CONNECTIVITY {
        return Err(at.bad(value, allowed));
    }
    Ok(list)
}

fn parse_level(at: &Place, value: &str) -> Result<log::LevelFilter, Error> {
    match value.to_ascii_lowercase().as_str() {
        "error" => Ok(log::LevelFilter::Error),
        "warn" | "warning" => Ok(log::LevelFilter::Warn),
        "info" => Ok(log::LevelFilter::Info),
        "debug" => Ok(log::LevelFilter::Debug),
        _ => Err(at.bad(value, "one of error, warn, info, debug")),
    }
}

fn apply_database(
    db: &mut DbConfig,
    at: &Place,
    key: &str,
    value: &str,
) -> Result<Option<String>, Error> {
    match key {
        "location" | "host" => db.host = parse_location(at, value)?,
        "port" => db.port = at.number(value, 1, 65535)?,
        "user" => db.user = at.text(value)?,
        "password" => db.password = value.to_string(),
        "dbname" | "database" => db.name = parse_db_name(at, value)?,
        "url" => apply_db_url(db, at, value)?,
        "poolsize" => db.pool_size = at.number(value, 1, 256)?,
        "connecttimeout" => db.connect_timeout = at.seconds(value, 1, 300)?,
        "readtimeout" => db.read_timeout = at.seconds(value, 1, 3600)?,
        "writetimeout" => db.write_timeout = at.seconds(value, 1, 3600)?,
        "lockwaittimeout" => db.lock_wait_timeout = at.seconds(value, 1, 3600)?,
        _ => return Ok(Some(unknown(at, &known_hint("database")))),
    }
    Ok(None)
}

/// One host or a comma-separated list (a Galera cluster without a proxy), each `host`,
/// `host:port` or `[v6]:port`.
fn parse_location(at: &Place, value: &str) -> Result<String, Error> {
    let allowed = "a host, host:port, or a comma-separated list of them";
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    for entry in &entries {
        if super::parse_endpoint(entry, 3306).is_none() {
            return Err(at.bad(value, allowed));
        }
    }
    Ok(entries.join(","))
}

/// Database names go into `USE` and messages; allow what MariaDB allows unquoted.
fn parse_db_name(at: &Place, value: &str) -> Result<String, Error> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if !ok {
        return Err(at.bad(value, "letters, digits, `_` and `$`, at most 64 characters"));
    }
    Ok(value.to_string())
}

/// `mysql://user:password@host:port/dbname`; every part but the host may be left out. User
/// and password may be percent-encoded (a `@` or `:` in a password).
fn apply_db_url(db: &mut DbConfig, at: &Place, value: &str) -> Result<(), Error> {
    let bad = || {
        at.bad(
            &crate::base::urls::shown(value),
            "mysql://user:password@host:port/dbname",
        )
    };
    let url = url::Url::parse(value.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "mysql" | "mariadb") {
        return Err(bad());
    }
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
    db.host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    match url.port() {
        Some(0) => return Err(bad()),
        Some(port) => db.port = port,
        None => {}
    }
    if !url.username().is_empty() {
        db.user = decoded(url.username());
        db.password = url.password().map(decoded).unwrap_or_default();
    }
    let name = url.path().trim_start_matches('/');
    if !name.is_empty() {
        db.name = parse_db_name(at, &decoded(name))?;
    }
    Ok(())
}

fn decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn apply_notifications(
    notify: &mut NotifyConfig,
    at: &Place,
    key: &str,
    value: &str,
) -> Result<Option<String>, Error> {
    match key {
        "from" => notify.from = parse_from(at, value)?,
        "smtptimeout" => notify.smtp_timeout = at.seconds(value, 1, 600)?,
        "retryinitial" => notify.retry_initial = at.seconds(value, 1, 86400)?,
        "retrymax" => notify.retry_max = at.seconds(value, 1, 7 * 86400)?,
        "retentiondays" => {
            notify.retention = Duration::from_secs(at.number::<u64>(value, 1, 3650)? * 86400)
        }
        "groupwait" => notify.group_wait = at.seconds(value, 0, 600)?,
        "groupinterval" => notify.group_interval = at.seconds(value, 1, 3600)?,
        _ => return Ok(Some(unknown(at, &known_hint("notifications")))),
    }
    Ok(None)
}

fn apply_history(
    history: &mut HistoryConfig,
    at: &Place,
    key: &str,
    value: &str,
) -> Result<Option<String>, Error> {
    match key {
        "hourlydays" => history.hourly_days = at.number(value, 1, 3650)?,
        "dailydays" => history.daily_days = at.number(value, 1, 36500)?,
        "incidentdays" => history.incident_days = Some(at.number(value, 1, 36500)?),
        _ => return Ok(Some(unknown(at, &known_hint("history")))),
    }
    Ok(None)
}

fn apply_cluster(
    cluster: &mut ClusterConfig,
    at: &Place,
    key: &str,
    value: &str,
) -> Result<Option<String>, Error> {
    match key {
        "nodename" => cluster.node_name = parse_node_name(at, value)?,
        "deadafter" => cluster.dead_after = at.seconds(value, 2, 300)?,
        "maxclockskew" => cluster.max_clock_skew = at.seconds(value, 0, 3600)?,
        "confirmfailures" => cluster.confirm_failures = parse_bool(at, value)?,
        _ => return Ok(Some(unknown(at, &known_hint("cluster")))),
    }
    Ok(None)
}

fn apply_http(
    http: &mut HttpConfig,
    at: &Place,
    key: &str,
    value: &str,
) -> Result<Option<String>, Error> {
    match key {
        "listen" => http.listen = parse_listen(at, value)?,
        "user" => http.user = at.text(value)?,
        "password" => http.password = value.to_string(),
        "publiconly" => http.public_only = parse_bool(at, value)?,
        "publicurl" => http.public_url = parse_public_url(at, value)?,
        "maxconnections" => http.max_connections = at.number(value, 8, 1_000_000)?,
        "pushauth" => http.push_auth = parse_bool(at, value)?,
        _ => return Ok(Some(unknown(at, &known_hint("http")))),
    }
    Ok(None)
}

/// The status pages' address as others reach it (behind a proxy, a name): an http or https
/// URL with a host, kept without its trailing `/`; empty for none.
fn parse_public_url(at: &Place, value: &str) -> Result<Option<String>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    let ok = url::Url::parse(value)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .filter(|u| u.username().is_empty() && u.password().is_none() && u.query().is_none());
    match ok {
        Some(_) => Ok(Some(value.trim_end_matches('/').to_string())),
        None => Err(at.bad(
            value,
            "an http:// or https:// URL with a host and no user or query, such as \
             https://status.example.com",
        )),
    }
}

/// A comma-separated list of `host`, `host:port` or `[v6]:port` (port 9470 when none is
/// named); empty turns the server off.
fn parse_listen(at: &Place, value: &str) -> Result<Vec<super::Endpoint>, Error> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|entry| {
            let entry = entry.trim();
            // Port 0: any free port, which the log names (tests, several daemons on a host).
            let any_port = entry.strip_suffix(":0").and_then(|host| {
                super::parse_endpoint(host, super::HTTP_PORT)
                    .map(|e| super::Endpoint { port: 0, ..e })
            });
            any_port
                .or_else(|| super::parse_endpoint(entry, super::HTTP_PORT))
                .ok_or_else(|| {
                    at.bad(
                        value,
                        "host:port, [v6]:port, or a comma-separated list of them; empty: no server",
                    )
                })
        })
        .collect()
}

/// One `NAME: value` of `[secrets]`. The name is kept as written (names are case-sensitive,
/// as `${secret:NAME}` spells them); the value never appears in a message.
fn apply_secret(config: &mut Config, at: &Place, value: &str) -> Result<(), Error> {
    let hidden = |allowed: &str| Error::Value {
        path: at.path.into(),
        line: at.line,
        key: format!("[secrets] {}", crate::base::text::clip_marked(at.key, 64)),
        value: "(hidden)".into(),
        allowed: allowed.into(),
    };
    if !crate::base::secrets::valid_name(at.key) {
        return Err(hidden(
            "a name of letters, digits, `_`, `.` and `-`, at most 64 characters",
        ));
    }
    if config.secrets.contains(at.key) {
        return Err(hidden("each name once: this one is given above"));
    }
    if value.is_empty() {
        return Err(hidden("a non-empty value"));
    }
    config.secrets.insert(at.key, value);
    Ok(())
}

/// Node names go into `nodes.name` (VARCHAR(64)) and log lines.
fn parse_node_name(at: &Place, value: &str) -> Result<String, Error> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(at.bad(
            value,
            "letters, digits, `-`, `_` and `.`, at most 64 characters",
        ));
    }
    Ok(value.to_string())
}

fn parse_from(at: &Place, value: &str) -> Result<String, Error> {
    match value.parse::<lettre::message::Mailbox>() {
        Ok(_) => Ok(value.to_string()),
        Err(_) => Err(at.bad(
            value,
            "an e-mail address, e.g. `SkyPunch <skypunch@example.com>`",
        )),
    }
}
