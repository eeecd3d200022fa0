//! `skypunch setup-db` against the test MariaDB, and `check-config` judged as the service:
//! the operator's first hour after the package. setup-db creates the database and an account
//! with a random password once, and on later runs (or from another file) never changes that
//! password; it refuses root, a remote server without an administrator, and a `URL` it would
//! not rewrite. check-config, run by root, judges the paths as the user the service runs as
//! and counts a run folder the service manager makes as fine.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::accounts::{admin_args, Made};
use crate::support::{server, skypunch_cmd, stderr, stdout, TestDb};

const PLACEHOLDERS: &str =
    "User: <set by skypunch setup-db>\nPassword: <set by skypunch setup-db>\n";

/// A folder for one test's files.
fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sp-setup-db-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A configuration as an operator leaves it before `setup-db`: the server, a database name,
/// and `account` lines (the package's placeholders, or a name).
fn config(dir: &Path, file: &str, db: &str, account: &str) -> PathBuf {
    let s = server();
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "# the operator's notes\n[settings]\nLogFilePath: {dir}/skypunch.log\n\
             PidFile: {dir}/skypunch.pid\n\n[database]\n# the account, below\nLocation: {}\n\
             port: {}\nDBName: {db}\n{account}\n[http]\nListen:\n",
            s.host,
            s.port,
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    path
}

fn setup_db(config: &Path) -> Output {
    let mut args: Vec<String> = admin_args();
    args.push("setup-db".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    skypunch_cmd(config, &args).output().unwrap()
}

fn password_in(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let line = text.lines().find(|l| l.starts_with("Password: ")).unwrap();
    line["Password: ".len()..].to_string()
}

#[test]
fn setup_db_creates_the_account_once_and_never_changes_its_password() {
    let made = Made::new("spsd");
    let dir = folder("once");
    let first = config(
        &dir,
        "first.conf",
        &made.db,
        &format!(
            "User: {}\n{}",
            made.user, "Password: <set by skypunch setup-db>"
        ),
    );
    let out = setup_db(&first);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let password = password_in(&first);
    assert_eq!(password.len(), 24);
    assert!(
        !stdout(&out).contains(&password),
        "the password was printed"
    );
    assert_eq!(made.hosts(), ["127.0.0.1", "::1", "localhost"]);
    let text = std::fs::read_to_string(&first).unwrap();
    assert!(
        text.starts_with("# the operator's notes\n") && text.contains("# the account, below\n")
    );
    assert_eq!(
        std::fs::metadata(&first).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let checked = skypunch_cmd(&first, &["targets"]).output().unwrap();
    assert_eq!(
        checked.status.code(),
        Some(0),
        "the account cannot read its tables: {}",
        stderr(&checked)
    );

    // Again: nothing is created, the password stays.
    let again = setup_db(&first);
    let said = stdout(&again);
    assert_eq!(again.status.code(), Some(0), "{said}{}", stderr(&again));
    assert!(
        said.contains(&format!("database {} exists", made.db)),
        "{said}"
    );
    assert!(said.contains("its password is left as it is"), "{said}");
    assert!(said.contains("already has skypunch schema 2.3"), "{said}");
    assert_eq!(password_in(&first), password);

    // Another file naming the same user without its password: refused, file untouched.
    let second = config(
        &dir,
        "second.conf",
        &made.db,
        &format!("User: {}\nPassword: <set by skypunch setup-db>", made.user),
    );
    let before = std::fs::read_to_string(&second).unwrap();
    let refused = setup_db(&second);
    assert_eq!(refused.status.code(), Some(1));
    let why = stderr(&refused);
    assert!(
        why.contains(&format!("database user {} exists (", made.user))
            && why.contains(&format!(
                "{} holds no password for it; setup-db never changes a password",
                second.display()
            )),
        "{why}"
    );
    assert_eq!(std::fs::read_to_string(&second).unwrap(), before);

    // ... or with a wrong one: the login fails, and setup-db says whose password it needs.
    let wrong = config(
        &dir,
        "wrong.conf",
        &made.db,
        &format!("User: {}\nPassword: not-it", made.user),
    );
    let refused = setup_db(&wrong);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("existed before: setup-db never changes its password"),
        "{}",
        stderr(&refused)
    );
    let still = skypunch_cmd(&first, &["targets"]).output().unwrap();
    assert_eq!(
        still.status.code(),
        Some(0),
        "the first file no longer logs in"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn setup_db_refuses_root_a_url_and_a_remote_server_without_an_administrator() {
    let dir = folder("refused");
    let root = config(&dir, "root.conf", "sp_never", "User: root\nPassword:");
    let out = skypunch_cmd(&root, &["setup-db"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is root, the database's administrator"),
        "{}",
        stderr(&out)
    );

    let url = config(
        &dir,
        "url.conf",
        "sp_never",
        "URL: mysql://u:p@127.0.0.1/sp_never",
    );
    let out = skypunch_cmd(&url, &["setup-db"]).output().unwrap();
    assert!(
        stderr(&out).contains("sets [database] URL, which overrides User and Password"),
        "{}",
        stderr(&out)
    );

    let remote = dir.join("remote.conf");
    std::fs::write(
        &remote,
        format!("[database]\nLocation: db.example.invalid\n{PLACEHOLDERS}"),
    )
    .unwrap();
    let out = skypunch_cmd(&remote, &["setup-db"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Location names db.example.invalid:3306, another host: run setup-db there, or give --admin-user"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_run_by_root_judges_paths_as_the_services_user() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: check-config judges as this user (CI runs as root)");
        return;
    }
    let db = TestDb::new();
    let private = db.dir.join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let run_dir = db.dir.join("run");
    db.write_config(&format!(
        "LogFilePath: {}/skypunch.log\nPidFile: {}/skypunch.pid",
        private.display(),
        run_dir.display()
    ));
    std::fs::set_permissions(db.config_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    // The service runs as nobody; the service manager makes the run folder.
    let defaults = db.dir.join("default-skypunch");
    std::fs::write(
        &defaults,
        format!("SKYPUNCH_USER=nobody\nRUNDIR={}\n", run_dir.display()),
    )
    .unwrap();
    let check = || {
        skypunch_cmd(&db.config_path(), &["check-config"])
            .env("SKYPUNCH_DEFAULTS", &defaults)
            .output()
            .unwrap()
    };

    let out = check();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let config = db.config_path().display().to_string();
    for expected in [
        format!("paths judged as user nobody, the service's (SKYPUNCH_USER in {})", defaults.display()),
        format!("error: config {config}: not readable by user nobody: chgrp nobody {config}; chmod 640 {config}"),
        format!("the folder {} does not exist or is not writable by user nobody", private.display()),
        format!("PidFile {}/skypunch.pid: the folder {} is created by the service manager at start", run_dir.display(), run_dir.display()),
        format!("/{}: reachable, schema 2.3", db.name),
    ] {
        assert!(text.contains(&expected), "{expected} missing:\n{text}");
    }
    assert!(
        stderr(&out).contains("skypunch: 2 problems found"),
        "{}",
        stderr(&out)
    );

    // The file readable by the service: one problem left, in the singular.
    std::fs::set_permissions(db.config_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = check();
    assert!(
        stderr(&out).contains("skypunch: 1 problem found"),
        "{}",
        stderr(&out)
    );

    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).ends_with("all checks passed\n"));
}
