//! `skypunch check-config`: everything `start` would check, without starting: every bad line
//! of the file (with its file and line), the folders of the log and pid files, and the
//! database (reachable, schema version). Exits 0 only when all is well.

use std::path::Path;

use super::out::line;
use super::{Error, Invocation};
use crate::config::{self, Config};
use crate::db;

/// Runs every check and prints one line per finding.
pub fn run(inv: &Invocation) -> Result<(), Error> {
    let mut problems = 0;
    let config = match config::locate(inv.config.as_deref()) {
        None => {
            line("config: no file found; the built-in defaults apply")?;
            Config::default()
        }
        Some(path) => {
            let (loaded, errors) = config::check_file(&path)?;
            for warning in &loaded.warnings {
                line(format_args!("warning: {warning}"))?;
            }
            for e in &errors {
                line(format_args!("error: {e}"))?;
            }
            problems += errors.len();
            if errors.is_empty() {
                line(format_args!("config {}: ok", path.display()))?;
            }
            loaded.config
        }
    };
    problems += check_folder(&config.log_file, "LogFilePath")?;
    problems += check_folder(&config.pid_file, "PidFile")?;
    problems += check_database(&config)?;
    if problems == 0 {
        return line("all checks passed");
    }
    Err(Error::failed(format!("{problems} problems found")))
}

/// The folder `file` goes in must exist and be writable; 1 when it is not.
fn check_folder(file: &Path, key: &str) -> Result<usize, Error> {
    if file.as_os_str() == crate::logging::STDERR {
        line(format_args!(
            "{key} -: standard error (the journal under systemd)"
        ))?;
        return Ok(0);
    }
    let dir = match file.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d,
        None => Path::new("."),
    };
    let writable = std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) && tempfile_in(dir).is_ok();
    if writable {
        line(format_args!("{key} {}: folder ok", file.display()))?;
        Ok(0)
    } else {
        line(format_args!(
            "error: {key} {}: the folder {} does not exist or is not writable by this user",
            file.display(),
            dir.display()
        ))?;
        Ok(1)
    }
}

/// Creates and removes a file in `dir`, the one sure test of writing there.
fn tempfile_in(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".skypunch-check-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// Connects and checks the schema; 1 when either fails.
fn check_database(config: &Config) -> Result<usize, Error> {
    let name = config.db.describe();
    match db::open(&config.db) {
        Ok(_) => {
            let (major, minor) = db::schema::VERSION;
            line(format_args!(
                "database {name}: reachable, schema {major}.{minor}"
            ))?;
            Ok(0)
        }
        Err(e) => {
            line(format_args!("error: {e}"))?;
            Ok(1)
        }
    }
}
