//! `skypunch setup-db`: from an installed package to a database the daemon can use, in one
//! command run on the main thread. Reads the configuration, talks to the server as its
//! administrator, writes `[database] User` and `Password` into the file.
//!
//! ```text
//! usage: skypunch [-c FILE] setup-db [--admin-user USER [--admin-password PASSWORD|-]]
//!
//! Run as root on the database host: connects to MariaDB as root through its socket (with
//! --admin-user: as USER over TCP to [database] Location), creates the database DBName and
//! the account User of the configuration when they are absent (a new account gets a random
//! password; an existing one's is never changed, the file must hold it), writes User and
//! Password into the file (comments, mode and owner kept), grants the account what the
//! daemon needs on that database and nothing else, and creates or upgrades the tables.
//! ```

use std::path::{Path, PathBuf};

use super::out::line;
use super::service;
use super::{database, Error, Invocation};
use crate::config::{self, edit, Config, PLACEHOLDER};
use crate::db::accounts::{self, Admin};

/// The account the package's placeholder `User` becomes.
const DEFAULT_USER: &str = "skypunch";

/// Length of a generated password: ~143 bits from the OS's generator, in letters and digits
/// that need no quoting in an INI file, a URL or a shell.
const PASSWORD_LEN: usize = 24;

/// What the configuration asks for.
struct Plan {
    file: PathBuf,
    config: Config,
    user: String,
    /// The host parts of the daemon's accounts.
    hosts: Vec<&'static str>,
    /// The file's password, when it holds a real one.
    password: Option<String>,
}

pub fn run(inv: &Invocation) -> Result<(), Error> {
    let plan = plan(inv)?;
    let admin = admin(inv, &plan)?;
    let mut conn = admin.connect(plan.config.db.connect_timeout)?;
    say(format_args!("connected as {}", admin.describe()))?;
    let existing = accounts::account_hosts(&mut conn, &plan.user)?;
    let (password, generated) = password_for(&plan, &existing)?;
    write_credentials(&plan, generated.then_some(password.as_str()))?;
    let name = &plan.config.db.name;
    if accounts::database_exists(&mut conn, name)? {
        say(format_args!("database {name} exists"))?;
    } else {
        accounts::create_database(&mut conn, name)?;
        say(format_args!("created database {name}"))?;
    }
    create_accounts(&mut conn, &plan, &existing, &password)?;
    drop(conn);
    let config = config::load_file(&plan.file)?.config;
    login(&config, &plan, &existing)?;
    database::upgrade(&config, "setup-db")?;
    next_steps(inv, &plan.file)
}

fn say(text: impl std::fmt::Display) -> Result<(), Error> {
    line(format_args!("setup-db: {text}"))
}

/// Reads the configuration and decides the account; refuses what `setup-db` must not do.
fn plan(inv: &Invocation) -> Result<Plan, Error> {
    let file = config::locate(inv.config.as_deref()).ok_or_else(|| {
        Error::failed(
            "setup-db writes the database account into the configuration file, and none was \
             found: give -c FILE (the package's is /etc/skypunch/skypunch.conf)",
        )
    })?;
    let (loaded, errors) = config::check_file(&file)?;
    if let Some(e) = errors.first() {
        return Err(Error::failed(format!(
            "{e} (fix the file first: skypunch check-config)"
        )));
    }
    let text = std::fs::read_to_string(&file)?;
    if sets_url(&text) {
        return Err(Error::failed(format!(
            "{} sets [database] URL, which overrides User and Password: remove it (keep \
             Location, port and DBName) and run setup-db again",
            file.display()
        )));
    }
    let config = loaded.config;
    let user = match config.db.user.as_str() {
        PLACEHOLDER => DEFAULT_USER.to_string(),
        name => name.to_string(),
    };
    check_user(&user, &file)?;
    let password = Some(config.db.password.clone()).filter(|p| !p.is_empty() && p != PLACEHOLDER);
    let local = config.db.endpoints().iter().all(|e| is_local(&e.host));
    let hosts = if local {
        vec!["localhost", "127.0.0.1", "::1"]
    } else {
        vec!["%"]
    };
    Ok(Plan {
        file,
        config,
        user,
        hosts,
        password,
    })
}

fn sets_url(text: &str) -> bool {
    let mut section = String::new();
    text.lines().map(str::trim).any(|l| {
        if let Some(name) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
        }
        let key = l.split([':', '=']).next().unwrap_or("").trim();
        section == "database" && key.eq_ignore_ascii_case("url") && l.contains([':', '='])
    })
}

fn check_user(user: &str, file: &Path) -> Result<(), Error> {
    if user == "root" {
        return Err(Error::failed(format!(
            "[database] User in {} is root, the database's administrator: the daemon gets an \
             account of its own. Set User: {DEFAULT_USER} (or another new name) there and run \
             setup-db again",
            file.display()
        )));
    }
    if !accounts::valid_user_name(user) {
        return Err(Error::failed(format!(
            "[database] User `{user}` in {}: setup-db creates users named with letters, \
             digits, _ - and . (at most 32); choose such a name, or create this one yourself",
            file.display()
        )));
    }
    Ok(())
}

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// The administrator's connection: `--admin-user` over TCP to the first host of
/// `Location`, else this OS user through the local server's socket.
fn admin(inv: &Invocation, plan: &Plan) -> Result<Admin, Error> {
    let at = plan.config.db.endpoints().remove(0);
    if let Some(user) = &inv.admin_user {
        let password = match inv.admin_password.as_ref().map(|p| p.expose()) {
            Some("-") => read_password()?,
            Some(p) => p.to_string(),
            None => String::new(),
        };
        return Ok(Admin::Tcp {
            at,
            user: user.clone(),
            password,
        });
    }
    if !is_local(&at.host) {
        return Err(Error::failed(format!(
            "[database] Location names {at}, another host: run setup-db there, or give \
             --admin-user and --admin-password of an account of that server that may create \
             databases, users and grants"
        )));
    }
    let path = socket()?;
    let user = service::current()?.name;
    Ok(Admin::Socket { path, user })
}

fn read_password() -> Result<String, Error> {
    let mut text = String::new();
    std::io::stdin().read_line(&mut text)?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn socket() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os("MYSQL_UNIX_PORT").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    accounts::SOCKETS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| {
            Error::failed(format!(
                "no MariaDB socket on this host ({}; MYSQL_UNIX_PORT names another): start \
                 MariaDB, or give --admin-user and --admin-password to connect over TCP",
                accounts::SOCKETS.join(", ")
            ))
        })
}

/// The account's password, and whether it is new (to be written into the file): an
/// existing account keeps the one it has, which the file must hold.
fn password_for(plan: &Plan, existing: &[String]) -> Result<(String, bool), Error> {
    match (&plan.password, existing.is_empty()) {
        (Some(p), _) => Ok((p.clone(), false)),
        (None, true) => Ok((random_password()?, true)),
        (None, false) => Err(Error::failed(format!(
            "database user {} exists ({}) and {} holds no password for it; setup-db never \
             changes a password: put its password in [database] Password there and run \
             setup-db again, or name a new user in [database] User",
            plan.user,
            hosts_of(&plan.user, existing),
            plan.file.display()
        ))),
    }
}

fn hosts_of(user: &str, hosts: &[String]) -> String {
    let list: Vec<String> = hosts.iter().map(|h| format!("'{user}'@'{h}'")).collect();
    list.join(", ")
}

fn random_password() -> Result<String, Error> {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = ring::rand::SystemRandom::new();
    let mut password = String::with_capacity(PASSWORD_LEN);
    while password.len() < PASSWORD_LEN {
        let mut bytes = [0u8; 64];
        rng.fill(&mut bytes)
            .map_err(|_| Error::failed("the OS's random number generator failed"))?;
        // 248 = 4 × 62: taking only bytes below it keeps every character equally likely.
        for b in bytes
            .iter()
            .filter(|b| **b < 248)
            .take(PASSWORD_LEN - password.len())
        {
            password.push(ALPHABET[(*b % 62) as usize] as char);
        }
    }
    Ok(password)
}

/// Writes the account into the file, before it exists on the server: a failure after this
/// leaves a file whose password the next run gives the account.
fn write_credentials(plan: &Plan, new_password: Option<&str>) -> Result<(), Error> {
    let placeholder_user = plan.config.db.user == PLACEHOLDER;
    if !placeholder_user && new_password.is_none() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&plan.file)?;
    let user = placeholder_user.then_some(plan.user.as_str());
    let edited = edit::with_credentials(&text, user, new_password);
    edit::replace_file(&plan.file, &edited).map_err(|e| {
        Error::failed(format!(
            "cannot write {}: {e} (run setup-db as root)",
            plan.file.display()
        ))
    })?;
    let what = match (user, new_password) {
        (Some(_), Some(_)) => "User and a new random Password",
        (None, Some(_)) => "a new random Password",
        _ => "User",
    };
    say(format_args!(
        "wrote [database] {what} to {}",
        plan.file.display()
    ))
}

fn create_accounts(
    conn: &mut mysql::Conn,
    plan: &Plan,
    existing: &[String],
    password: &str,
) -> Result<(), Error> {
    let missing: Vec<String> = plan
        .hosts
        .iter()
        .filter(|h| !existing.iter().any(|e| e == *h))
        .map(|h| h.to_string())
        .collect();
    for host in &missing {
        accounts::create_account(conn, &plan.user, host, password)?;
    }
    if !existing.is_empty() {
        say(format_args!(
            "database user {} exists ({}): its password is left as it is",
            plan.user,
            hosts_of(&plan.user, existing)
        ))?;
    }
    if !missing.is_empty() {
        say(format_args!(
            "created database user {} (password in {})",
            hosts_of(&plan.user, &missing),
            plan.file.display()
        ))?;
    }
    for host in &plan.hosts {
        accounts::grant_daemon(conn, &plan.config.db.name, &plan.user, host)?;
    }
    say(format_args!(
        "granted {} on {}.* to {} and nothing else",
        accounts::DAEMON_PRIVILEGES,
        plan.config.db.name,
        plan.user
    ))
}

/// Logs in as the daemon will. A refused login of an account that existed before means the
/// file's password is not its own, which setup-db never changes.
fn login(config: &Config, plan: &Plan, existing: &[String]) -> Result<(), Error> {
    let e = match crate::db::connect(&config.db) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let denied = matches!(
        std::error::Error::source(&e).and_then(|s| s.downcast_ref::<mysql::Error>()),
        Some(mysql::Error::MySqlError(m)) if m.code == 1045
    );
    if existing.is_empty() || !denied {
        return Err(e.into());
    }
    Err(Error::failed(format!(
        "{e} (the database user {} existed before: setup-db never changes its password; put \
         its password in {})",
        plan.user,
        plan.file.display()
    )))
}

fn next_steps(inv: &Invocation, file: &Path) -> Result<(), Error> {
    let dash_c = match &inv.config {
        Some(_) => format!(" -c {}", file.display()),
        None => String::new(),
    };
    say(format_args!(
        "done. Next: skypunch{dash_c} check-config, then {}",
        service::start_command()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_plain_and_different() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn a_database_url_is_found_in_its_section_only() {
        assert!(sets_url("[database]\nURL = mysql://u@h/d\n"));
        assert!(!sets_url(
            "[database]\n#URL: mysql://u@h/d\n[http]\nurl: x\n"
        ));
    }
}
