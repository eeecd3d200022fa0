//! `skypunch check-config`: everything `start` would check, without starting, judged as the
//! service would meet it: every bad line of the file (with its file and line), the package's
//! placeholders, the folders of the log and pid files and the file itself as the user the
//! service runs as (when run by root), the database (reachable, schema version), and the
//! target rows naming a `${secret:NAME}` the file's `[secrets]` lacks. Exits 0 only when all
//! is well. Runs on the main thread; reads the file, the defaults file and the
//! database, writes nothing.

use std::path::Path;

use super::out::{line, plural};
use super::service::{self, Access, Account, Service};
use super::{Error, Invocation};
use crate::base::secrets::{has_references, Secrets};
use crate::base::text;
use crate::config::{self, Config};
use crate::db::{self, targets::TargetRow};

/// Runs every check and prints one line per finding.
pub fn run(inv: &Invocation) -> Result<(), Error> {
    let mut problems = 0;
    let service = match service::service() {
        Ok(s) => {
            line(format_args!("paths judged as {}", s.why))?;
            Some(s)
        }
        Err(e) => {
            line(format_args!("error: {e}"))?;
            problems += 1;
            None
        }
    };
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
            let unreadable = match &service {
                Some(s) => check_readable(&path, &s.account)?,
                None => 0,
            };
            problems += errors.len() + unreadable;
            if errors.is_empty() && unreadable == 0 {
                line(format_args!("config {}: ok", path.display()))?;
            }
            loaded.config
        }
    };
    if let Some(s) = &service {
        problems += check_folder(&config.log_file, "LogFilePath", s)?;
        problems += check_folder(&config.pid_file, "PidFile", s)?;
    }
    problems += check_database(&config)?;
    if problems == 0 {
        return line("all checks passed");
    }
    Err(Error::failed(format!(
        "{} found",
        plural(problems as u64, "problem")
    )))
}

/// The service reads its configuration as its own user: 1 when that user cannot.
fn check_readable(path: &Path, account: &Account) -> Result<usize, Error> {
    if service::may(account, path, Access::Read) {
        return Ok(0);
    }
    let (file, user) = (path.display(), &account.name);
    line(format_args!(
        "error: config {file}: not readable by user {user}: chgrp {user} {file}; chmod 640 {file}"
    ))?;
    Ok(1)
}

/// The folder `file` goes in must exist and be writable by the service's user, unless the
/// service manager makes it at start; 1 when it is neither.
fn check_folder(file: &Path, key: &str, service: &Service) -> Result<usize, Error> {
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
    let who = &service.account;
    let exists = std::fs::metadata(dir).is_ok_and(|m| m.is_dir());
    if exists && service::may(who, dir, Access::Write) {
        // A log file that exists must take appends too.
        if file.exists() && !service::may(who, file, Access::Write) {
            line(format_args!(
                "error: {key} {}: the file exists and is not writable by user {}",
                file.display(),
                who.name
            ))?;
            return Ok(1);
        }
        line(format_args!("{key} {}: folder ok", file.display()))?;
        return Ok(0);
    }
    if service.managed.iter().any(|m| m == dir) {
        line(format_args!(
            "{key} {}: the folder {} is created by the service manager at start",
            file.display(),
            dir.display()
        ))?;
        return Ok(0);
    }
    line(format_args!(
        "error: {key} {}: the folder {} does not exist or is not writable by user {}",
        file.display(),
        dir.display(),
        who.name
    ))?;
    Ok(1)
}

/// Connects and checks the schema, then the rows' secret references; 1 when the database
/// cannot be used, else 1 per row naming a secret the file lacks.
fn check_database(config: &Config) -> Result<usize, Error> {
    let name = config.db.describe();
    match db::open(&config.db) {
        Ok((_, mut conn)) => {
            let (major, minor) = db::schema::VERSION;
            line(format_args!(
                "database {name}: reachable, schema {major}.{minor}"
            ))?;
            match db::targets::all(&mut conn) {
                Ok(rows) => check_references(&rows, &config.secrets),
                Err(e) => {
                    line(format_args!("error: {e}"))?;
                    Ok(1)
                }
            }
        }
        Err(e) => {
            line(format_args!("error: {e}"))?;
            Ok(1)
        }
    }
}

/// The rows whose `${secret:NAME}` references `secrets` cannot fill in (an unknown name, a
/// malformed reference): each is a config error once the daemon reads this file. One line and
/// one problem per row, naming the first column at fault.
fn check_references(rows: &[TargetRow], secrets: &Secrets) -> Result<usize, Error> {
    let (mut naming, mut bad) = (0, 0);
    for r in rows {
        let columns = [
            ("url", Some(r.url.as_str())),
            ("authn_parms", r.authn_parms.as_deref()),
            ("request_headers", r.request_headers.as_deref()),
            ("request_body", r.request_body.as_deref()),
        ];
        let texts = columns.iter().filter_map(|(c, t)| Some((*c, (*t)?)));
        let named: Vec<_> = texts.filter(|(_, t)| has_references(t)).collect();
        if named.is_empty() {
            continue;
        }
        naming += 1;
        if let Some((column, e)) = named
            .iter()
            .find_map(|(c, t)| secrets.check(t).err().map(|e| (c, e)))
        {
            let name = text::visible(&r.name);
            line(format_args!(
                "error: target {} ({name}): {column}: {e}",
                r.id
            ))?;
            bad += 1;
        }
    }
    if naming > 0 && bad == 0 {
        line(format_args!(
            "targets: every secret the {} naming secrets name is in [secrets]",
            plural(naming, "row")
        ))?;
    }
    Ok(bad)
}
