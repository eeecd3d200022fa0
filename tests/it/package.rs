//! scripts/package: the .deb passes lintian with no errors or warnings, and (as root, as in
//! CI) installs into a throw-away root with `dpkg --root --force-script-chrootless`, where
//! its maintainer scripts create the skypunch user, its log folder and the boot links, and a
//! purge removes them again. Then the operator's first hour, on a host without systemd: the
//! unedited configuration refuses to start with the words to run `skypunch setup-db`,
//! `setup-db` makes the database and its account on the test MariaDB, `check-config` passes
//! before the first start, and the init script starts the service, which checks targets.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    out
}

/// Builds the package from the test build of the binary (stripped by the script).
fn build_package(outdir: &Path) -> PathBuf {
    let out = run(Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/package"))
        .arg(outdir)
        .env("BINARY", env!("CARGO_BIN_EXE_skypunch"))
        .env("COMPRESSION", "gzip"));
    let deb = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        name.starts_with(&format!("skypunch_{version}-1_")) && name.ends_with(".deb"),
        "{name}"
    );
    deb
}

/// An empty root dpkg can install into: its database, and users and groups for useradd.
fn throwaway_root(dir: &Path) {
    for sub in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let files = [
        ("var/lib/dpkg/status", ""),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/shadow", "root:*:19000:0:99999:7:::\n"),
        ("etc/gshadow", "root:*::\n"),
    ];
    for (file, content) in files {
        std::fs::write(dir.join(file), content).unwrap();
    }
}

fn dpkg(root: &Path, args: &[&str]) -> Output {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
        ])
        .args(args))
}

/// The uid and gid of `name` in the root's own passwd file.
fn ids_in(root: &Path, name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f[0] == name).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
    })
}

#[test]
fn the_package_passes_lintian_and_installs_and_purges_in_a_throwaway_root() {
    let dir = std::env::temp_dir().join(format!("sp-package-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let deb = build_package(&dir.join("dist"));

    let lintian = Command::new("lintian").arg(&deb).output();
    let lintian = lintian.expect("lintian is not installed: scripts/test installs it");
    let report = text(&lintian);
    assert!(lintian.status.success(), "lintian:\n{report}");
    assert!(
        !report
            .lines()
            .any(|l| l.starts_with("E:") || l.starts_with("W:")),
        "{report}"
    );

    let euid = String::from_utf8_lossy(&run(Command::new("id").arg("-u")).stdout).into_owned();
    if euid.trim() != "0" {
        eprintln!("not root: the dpkg --root install is checked in CI, which runs as root");
        return;
    }
    let root = dir.join("root");
    throwaway_root(&root);
    let installed = dpkg(&root, &["-i", deb.to_str().unwrap()]);
    let at = |p: &str| root.join(p);
    assert!(
        text(&installed).contains("Setting up skypunch"),
        "{}",
        text(&installed)
    );

    let version = run(Command::new(at("usr/sbin/skypunch")).arg("--version"));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("skypunch "));
    let (uid, gid) = ids_in(&root, "skypunch").expect("postinst made no skypunch user");
    assert!(uid < 1000, "skypunch is not a system user");
    let conf = std::fs::metadata(at("etc/skypunch/skypunch.conf")).unwrap();
    assert_eq!(
        (conf.uid(), conf.gid(), conf.permissions().mode() & 0o777),
        (0, gid, 0o640)
    );
    let logs = std::fs::metadata(at("var/log/skypunch")).unwrap();
    assert_eq!(
        (logs.uid(), logs.gid(), logs.permissions().mode() & 0o777),
        (uid, gid, 0o750)
    );
    let wants = at("etc/systemd/system/multi-user.target.wants/skypunch.service");
    assert!(wants.symlink_metadata().is_ok(), "the unit is not enabled");
    assert!(at("etc/rc2.d/S01skypunch").symlink_metadata().is_ok());
    let conffiles = std::fs::read_to_string(at("var/lib/dpkg/info/skypunch.conffiles")).unwrap();
    for file in [
        "/etc/skypunch/skypunch.conf",
        "/etc/default/skypunch",
        "/etc/init.d/skypunch",
        "/etc/logrotate.d/skypunch",
    ] {
        assert!(
            conffiles.lines().any(|l| l == file),
            "{file} is no conffile"
        );
    }
    assert!(at("lib/systemd/system/skypunch.service").exists());
    assert!(at("usr/share/man/man8/skypunch.8.gz").exists());

    dpkg(&root, &["--purge", "skypunch"]);
    assert_eq!(ids_in(&root, "skypunch"), None, "purge left the user");
    let group = std::fs::read_to_string(at("etc/group")).unwrap();
    assert!(!group.contains("skypunch"), "purge left the group: {group}");
    for gone in [
        "var/log/skypunch",
        "etc/skypunch/skypunch.conf",
        "usr/sbin/skypunch",
        "etc/rc2.d/S01skypunch",
        "etc/systemd/system/multi-user.target.wants/skypunch.service",
    ] {
        assert!(at(gone).symlink_metadata().is_err(), "purge left {gone}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The host's account the throw-away root's `skypunch` user stands for: the init script
/// runs the daemon with runuser(1), which asks this host's password database, not the root's.
const SERVICE_USER: &str = "skypunchpkg";

/// [`SERVICE_USER`] on this host, created when absent and then removed again when the test
/// ends, however it ends.
struct HostUser {
    made: bool,
}

impl HostUser {
    fn ensure() -> HostUser {
        let exists = Command::new("id")
            .arg(SERVICE_USER)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            run(Command::new("useradd").args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ]));
        }
        HostUser { made: !exists }
    }
}

impl Drop for HostUser {
    fn drop(&mut self) {
        if self.made {
            let _ = Command::new("userdel").arg(SERVICE_USER).output();
        }
    }
}

fn id_of(args: &[&str]) -> u32 {
    let out = run(Command::new("id").args(args));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The throw-away root's `skypunch` user is the host's [`SERVICE_USER`], by uid and gid, so
/// that the ownership postinst gives the configuration and the log folder means the same on
/// both sides.
fn root_with_service_user(root: &Path) -> (u32, u32) {
    throwaway_root(root);
    let (uid, gid) = (id_of(&["-u", SERVICE_USER]), id_of(&["-g", SERVICE_USER]));
    std::fs::write(
        root.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/bin/sh\n\
             skypunch:x:{uid}:{gid}:skypunch monitoring daemon:/nonexistent:/usr/sbin/nologin\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        format!("root:x:0:\nskypunch:x:{gid}:\n"),
    )
    .unwrap();
    (uid, gid)
}

/// Rewrites the lines of `file` that start with one of `edits`' keys, keeping the file's
/// mode and owner (it is written in place).
fn edit_lines(file: &Path, edits: &[(&str, String)]) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        match edits.iter().find(|(key, _)| line.starts_with(key)) {
            Some((_, new)) => out.push_str(new),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    std::fs::write(file, out).unwrap();
}

/// The installed init script, pointed at the throw-away root's binary, configuration and
/// defaults (the script's own variables for that).
fn init_script(root: &Path, action: &str) -> Output {
    Command::new("sh")
        .arg(root.join("etc/init.d/skypunch"))
        .arg(action)
        .env("DAEMON", root.join("usr/sbin/skypunch"))
        .env("CONFIG", root.join("etc/skypunch/skypunch.conf"))
        .env("SKYPUNCH_DEFAULTS", root.join("etc/default/skypunch"))
        .env_remove("SKYPUNCH_CONFIG")
        .output()
        .unwrap()
}

/// Stops the daemon the init script started, whatever happens to the test.
struct Service<'a>(&'a Path);

impl Drop for Service<'_> {
    fn drop(&mut self) {
        let _ = init_script(self.0, "stop");
    }
}

#[test]
fn from_the_package_to_a_running_service_with_setup_db_and_the_init_script() {
    use crate::support::accounts::{admin_args, admin_conn, Made};
    use crate::support::http::HttpServer;
    use mysql::prelude::Queryable;

    if id_of(&["-u"]) != 0 {
        eprintln!("not root: the package is installed and started in CI, which runs as root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sp-first-hour-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let deb = build_package(&dir.join("dist"));
    let _host_user = HostUser::ensure();
    let root = dir.join("root");
    let (uid, gid) = root_with_service_user(&root);
    let installed = text(&dpkg(&root, &["-i", deb.to_str().unwrap()]));
    let at = |p: &str| root.join(p);
    let conf = at("etc/skypunch/skypunch.conf");
    let start_word = if Path::new("/run/systemd/system").is_dir() {
        "systemctl start skypunch"
    } else {
        "service skypunch start"
    };
    assert!(
        installed.contains("run `skypunch setup-db`") && installed.contains(start_word),
        "postinst does not say what to do next on this host:\n{installed}"
    );

    // The configuration as the package installs it: placeholders, never root.
    let binary = at("usr/sbin/skypunch");
    let cli = |args: &[&str]| {
        Command::new(&binary)
            .arg("-c")
            .arg(&conf)
            .args(args)
            .env("SKYPUNCH_DEFAULTS", at("etc/default/skypunch"))
            .env_remove("SKYPUNCH_CONFIG")
            .output()
            .unwrap()
    };
    let placeholders = format!(
        "[database] User/Password are the package's placeholders: run 'skypunch setup-db' or \
         edit {}",
        conf.display()
    );
    let refused = cli(&["start"]);
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused));
    assert!(text(&refused).contains(&placeholders), "{}", text(&refused));
    let unchecked = cli(&["check-config"]);
    assert_eq!(unchecked.status.code(), Some(1));
    assert!(
        text(&unchecked).contains(&placeholders),
        "{}",
        text(&unchecked)
    );

    // The operator's edits for a root that is not a chroot: its own run and log folders,
    // the test server and a database of this test's, no HTTP server (ports are shared).
    let made = Made::new("sppkg");
    let server = crate::support::server();
    edit_lines(
        &conf,
        &[
            (
                "LogFilePath:",
                format!(
                    "LogFilePath: {}",
                    at("var/log/skypunch/skypunch.log").display()
                ),
            ),
            (
                "PidFile:",
                format!("PidFile: {}", at("run/skypunch/skypunch.pid").display()),
            ),
            ("#Location:", format!("Location: {}", server.host)),
            ("#port:", format!("port: {}", server.port)),
            ("#DBName:", format!("DBName: {}", made.db)),
            ("User: <set", format!("User: {}", made.user)),
            ("#Listen:", "Listen:".to_string()),
        ],
    );
    edit_lines(
        &at("etc/default/skypunch"),
        &[
            ("SKYPUNCH_USER=", format!("SKYPUNCH_USER={SERVICE_USER}")),
            (
                "#RUNDIR=",
                format!("RUNDIR={}", at("run/skypunch").display()),
            ),
            (
                "#LOGDIR=",
                format!("LOGDIR={}", at("var/log/skypunch").display()),
            ),
        ],
    );

    let setup = cli(&admin_args()
        .iter()
        .map(String::as_str)
        .chain(["setup-db"])
        .collect::<Vec<_>>());
    let said = text(&setup);
    assert!(setup.status.success(), "{said}");
    let written = std::fs::read_to_string(&conf).unwrap();
    let password = written
        .lines()
        .find_map(|l| l.strip_prefix("Password: "))
        .expect("no Password line");
    assert_eq!(password.len(), 24, "not a generated password");
    assert!(
        !said.contains(password),
        "setup-db printed the password:\n{said}"
    );
    for expected in [
        format!("created database {}", made.db),
        format!(
            "created database user '{u}'@'localhost', '{u}'@'127.0.0.1', '{u}'@'::1'",
            u = made.user
        ),
        format!(
            "wrote [database] a new random Password to {}",
            conf.display()
        ),
        "created the skypunch 2.3 tables".to_string(),
        format!("then {start_word}"),
    ] {
        assert!(said.contains(&expected), "{expected} missing:\n{said}");
    }
    // Comments, mode and owner as the package left them.
    assert!(
        written.contains("# The daemon's database account."),
        "{written}"
    );
    let meta = std::fs::metadata(&conf).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.permissions().mode() & 0o777),
        (0, gid, 0o640)
    );
    assert!(made.hosts().contains(&"127.0.0.1".to_string()));

    // Before the first start: judged as the service's user, the run folder to come.
    assert!(!at("run/skypunch").exists());
    let checked = cli(&["check-config"]);
    let report = text(&checked);
    assert_eq!(checked.status.code(), Some(0), "{report}");
    assert!(
        report.contains(&format!("paths judged as user {SERVICE_USER}")),
        "{report}"
    );
    assert!(
        report.contains("is created by the service manager at start"),
        "{report}"
    );

    // A target to check, then the service through its init script, as the service's user.
    let web = HttpServer::start(200);
    admin_conn()
        .exec_drop(
            format!(
                "INSERT INTO `{}`.targets (name, url, frequency, timeout) VALUES ('pkg', ?, 1, 2)",
                made.db
            ),
            (web.url("/health"),),
        )
        .unwrap();
    let started = init_script(&root, "start");
    let service = Service(&root);
    assert!(started.status.success(), "{}", text(&started));
    assert!(
        text(&started).contains("skypunch started (pid "),
        "{}",
        text(&started)
    );
    let pid_file = at("run/skypunch/skypunch.pid");
    assert_eq!(
        std::fs::metadata(pid_file.parent().unwrap()).unwrap().uid(),
        uid
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let owner = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
    assert_eq!(owner, uid, "the daemon does not run as the service's user");
    crate::support::wait_for(std::time::Duration::from_secs(30), "a PASS", || {
        let status: Option<String> = admin_conn()
            .query_first(format!("SELECT status FROM `{}`.targets", made.db))
            .unwrap();
        (status.as_deref() == Some("PASS")).then_some(())
    });
    assert!(web.requests() > 0);
    let status = init_script(&root, "status");
    assert!(status.status.success(), "{}", text(&status));

    let stopped = init_script(&root, "stop");
    assert!(stopped.status.success(), "{}", text(&stopped));
    drop(service);
    dpkg(&root, &["--purge", "skypunch"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
