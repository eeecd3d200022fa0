//! Finding the configuration file and reading it from disk: `-c FILE`, `$SKYPUNCH_CONFIG`
//! or the search path; the warning for a file that shows its secrets to every user.

use std::path::{Path, PathBuf};

use super::parse;
use super::{Config, Error, Loaded, PLACEHOLDER};

/// Where the configuration is looked for when `-c FILE` is not given, first match wins.
pub const SEARCH_PATH: &[&str] = &[
    "./skypunch.conf",
    "./skypunch.config",
    "/etc/skypunch/skypunch.conf",
    "/etc/skypunch.conf",
];

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
