//! The INI reader: sections, `key: value` or `key = value` lines, comments; every value goes
//! to [`super::keys`] with the place it was found, so that errors name the file and line.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::keys::apply;
use super::{Config, Error, Loaded};

/// Parses the text of a configuration file; `path` is only used in messages. Stops at the
/// first bad line.
pub fn parse(path: &Path, text: &str) -> Result<Loaded, Error> {
    let (loaded, mut errors) = parse_all(path, text);
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors.remove(0))
    }
}

/// Parses the whole text, collecting every bad line instead of stopping at the first (for
/// `skypunch check-config`); the configuration keeps the defaults where a value was bad.
pub fn parse_all(path: &Path, text: &str) -> (Loaded, Vec<Error>) {
    let mut config = Config {
        source: Some(path.to_path_buf()),
        ..Config::default()
    };
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let mut section = String::new();
    // Where [http] User and Password were set: one without the other is an error there.
    let mut http_lines = (0, 0);
    let mut grace_line = 0;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            continue;
        }
        let Some((key, value)) = split_pair(trimmed) else {
            // A line of [secrets] may be a value whose name was forgotten: never shown.
            let text = match section.as_str() {
                "secrets" => "(a line of [secrets], hidden)".into(),
                _ => trimmed.into(),
            };
            errors.push(Error::Syntax {
                path: path.into(),
                line,
                text,
            });
            continue;
        };
        let at = Place {
            path,
            line,
            section: &section,
            key,
        };
        if section == "settings" && key.eq_ignore_ascii_case("StopGrace") {
            grace_line = line;
        }
        if section == "http" {
            match key.to_ascii_lowercase().as_str() {
                "user" => http_lines.0 = line,
                "password" => http_lines.1 = line,
                _ => {}
            }
        }
        match apply(&mut config, &at, value) {
            Ok(Some(warning)) => warnings.push(warning),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    config.db.idle_transaction_timeout =
        (config.cluster.dead_after / 3).max(Duration::from_secs(1));
    let db = &config.db;
    if db.user == super::PLACEHOLDER || db.password == super::PLACEHOLDER {
        // The real path, for the message: `-c ./x.conf` may be run from anywhere.
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        config.db.placeholder_in = Some(real);
    }
    if let Some(e) = http_pair_error(path, &config, http_lines) {
        errors.push(e);
    }
    if let Some(e) = grace_error(path, &config, grace_line) {
        errors.push(e);
    }
    for name in crate::base::redactor::too_short(&config.secrets) {
        warnings.push(format!(
            "{}: [secrets] {name} is shorter than {} characters: outputs cannot be searched \
             for so short a value, so it may show in logs and traces",
            path.display(),
            crate::base::redactor::MIN_LEN
        ));
    }
    (Loaded { config, warnings }, errors)
}

/// Basic authentication needs both a user and a password: one alone is a mistake, not a
/// server left open on purpose.
fn http_pair_error(path: &Path, config: &Config, lines: (usize, usize)) -> Option<Error> {
    let (user, password) = (&config.http.user, &config.http.password);
    let (line, key, value, allowed) = match (user.is_empty(), password.is_empty()) {
        (true, false) => (
            lines.1,
            "Password",
            "(hidden)",
            "[http] Password needs [http] User",
        ),
        (false, true) => (
            lines.0,
            "User",
            user.as_str(),
            "[http] User needs [http] Password",
        ),
        _ => return None,
    };
    Some(Error::Value {
        path: path.into(),
        line,
        key: format!("[http] {key}"),
        value: value.into(),
        allowed: allowed.into(),
    })
}

/// The checks' grace at a stop must end before the stop's deadline, leaving time for the
/// last writes.
fn grace_error(path: &Path, config: &Config, line: usize) -> Option<Error> {
    if line == 0 || config.stop_grace < config.stop_timeout {
        return None;
    }
    Some(Error::Value {
        path: path.into(),
        line,
        key: "[settings] StopGrace".into(),
        value: config.stop_grace.as_secs().to_string(),
        allowed: format!(
            "a whole number of seconds below StopTimeout ({}): the last writes need time \
             after it",
            config.stop_timeout.as_secs()
        ),
    })
}

/// Splits `key: value` or `key = value` at whichever separator comes first, so that a value
/// may itself contain `:` or `=` (a database URL, a password).
fn split_pair(line: &str) -> Option<(&str, &str)> {
    let at = line.find([':', '='])?;
    let key = line[..at].trim();
    (!key.is_empty()).then(|| (key, line[at + 1..].trim()))
}

/// Where a value was found, for error messages.
pub(super) struct Place<'a> {
    pub(super) path: &'a Path,
    pub(super) line: usize,
    pub(super) section: &'a str,
    pub(super) key: &'a str,
}

impl Place<'_> {
    pub(super) fn bad(&self, value: &str, allowed: &str) -> Error {
        Error::Value {
            path: self.path.into(),
            line: self.line,
            key: format!("[{}] {}", self.section, self.key),
            value: value.into(),
            allowed: allowed.into(),
        }
    }

    pub(super) fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
        &self,
        value: &str,
        min: T,
        max: T,
    ) -> Result<T, Error> {
        match value.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(self.bad(value, &format!("a whole number from {min} to {max}"))),
        }
    }

    pub(super) fn seconds(&self, value: &str, min: u64, max: u64) -> Result<Duration, Error> {
        self.number(value, min, max).map(Duration::from_secs)
    }

    /// An IP address checks connect from (`[settings] SourceAddress`); empty: none.
    pub(super) fn source_address(&self, value: &str) -> Result<Option<IpAddr>, Error> {
        if value.is_empty() {
            return Ok(None);
        }
        match value.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() => Ok(Some(ip)),
            _ => Err(self.bad(value, "an IP address of this host, or nothing")),
        }
    }

    pub(super) fn text(&self, value: &str) -> Result<String, Error> {
        if value.is_empty() {
            return Err(self.bad(value, "a non-empty value"));
        }
        Ok(value.to_string())
    }
}

/// `yes`/`no` and their synonyms.
pub(super) fn parse_bool(at: &Place, value: &str) -> Result<bool, Error> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(at.bad(value, "yes or no")),
    }
}
