//! scripts/install.sh into a temporary DESTDIR: every file lands where its header says, the
//! binary is stripped, paths in the init script and unit point at the installed binary, an
//! existing configuration is never overwritten, and (as root, as in CI) the daemon's system
//! user is created and given the configuration and the log folder.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The user the tests install for: not `skypunch`, which the machine's own install may own.
const TEST_USER: &str = "skypunchit";

/// Installs without the user and ownership steps, as scripts/package does.
fn install(destdir: &Path, prefix: &str) -> Output {
    run_install(destdir, prefix, &[("MAKE_USER", "no")])
}

fn install_as(destdir: &Path, prefix: &str, user: &str) -> Output {
    run_install(destdir, prefix, &[("SKYPUNCH_USER", user)])
}

fn run_install(destdir: &Path, prefix: &str, vars: &[(&str, &str)]) -> Output {
    let out = Command::new("sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .env("DESTDIR", destdir)
        .env("PREFIX", prefix)
        .env("BINARY", env!("CARGO_BIN_EXE_skypunch"))
        .envs(vars.iter().copied())
        .env_remove("SYSCONFDIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn temp_root(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sp-install-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn installs_every_file_under_destdir_and_prefix() {
    let root = temp_root("all");
    install(&root, "/usr");
    let at = |p: &str| root.join(p.trim_start_matches('/'));

    assert_eq!(mode(&at("/usr/sbin/skypunch")), 0o755);
    let version = Command::new(at("/usr/sbin/skypunch"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("skypunch "));
    assert_eq!(mode(&at("/etc/skypunch/skypunch.conf")), 0o640);
    assert_eq!(mode(&at("/etc/init.d/skypunch")), 0o755);
    for file in [
        "/usr/share/man/man8/skypunch.8",
        "/usr/share/man/man5/skypunch.conf.5",
        "/usr/lib/systemd/system/skypunch.service",
        "/etc/logrotate.d/skypunch",
        "/usr/share/skypunch/skypunch.sql",
        "/usr/share/skypunch/upgrade-1.0-to-2.0.sql",
        "/usr/share/skypunch/upgrade-2.1-to-2.2.sql",
        "/usr/share/skypunch/upgrade-2.2-to-2.3.sql",
        "/usr/share/skypunch/example-data.sql",
        "/etc/default/skypunch",
    ] {
        assert_eq!(mode(&at(file)), 0o644, "{file}");
    }
    let unit = std::fs::read_to_string(at("/usr/lib/systemd/system/skypunch.service")).unwrap();
    assert!(unit.contains(
        "ExecStart=/usr/sbin/skypunch -c /etc/skypunch/skypunch.conf --foreground --wait start"
    ));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_local_prefix_is_written_into_the_scripts_and_the_config_is_kept() {
    let root = temp_root("local");
    install(&root, "/opt/sp");
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let init = std::fs::read_to_string(at("/etc/init.d/skypunch")).unwrap();
    assert!(
        init.contains("DAEMON=${DAEMON:-/opt/sp/sbin/skypunch}"),
        "{init}"
    );
    let unit = std::fs::read_to_string(at("/opt/sp/lib/systemd/system/skypunch.service")).unwrap();
    assert!(unit.contains("ExecStart=/opt/sp/sbin/skypunch "), "{unit}");
    let logrotate = std::fs::read_to_string(at("/etc/logrotate.d/skypunch")).unwrap();
    assert!(logrotate.contains("/opt/sp/sbin/skypunch -c /etc/skypunch/skypunch.conf reload"));

    // A second install keeps the operator's configuration.
    let conf = at("/etc/skypunch/skypunch.conf");
    std::fs::write(&conf, "[database]\nPassword: mine\n").unwrap();
    let out = install(&root, "/opt/sp");
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept the existing"));
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "[database]\nPassword: mine\n"
    );
    assert!(at("/etc/skypunch/skypunch.conf.sample").exists());
    std::fs::remove_dir_all(&root).unwrap();
}

/// The ELF section names of a binary, by readelf (binutils, which `install -s` needs too).
fn sections(binary: &Path) -> String {
    let out = Command::new("readelf")
        .args(["-S", "--wide"])
        .arg(binary)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_installed_binary_is_stripped() {
    let root = temp_root("strip");
    install(&root, "/usr");
    let built = Path::new(env!("CARGO_BIN_EXE_skypunch"));
    let installed = root.join("usr/sbin/skypunch");
    assert!(
        sections(built).contains(" .debug_info "),
        "the test build has no debug info"
    );
    let left = sections(&installed);
    // .debug_gdb_scripts is loaded with the program and stays; the debug data and symbols go.
    assert!(
        !left.contains(" .debug_info ") && !left.contains(" .symtab "),
        "{left}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

fn uid_gid(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success().then(|| text.trim().parse().unwrap())
}

#[test]
fn as_root_it_creates_the_daemon_user_and_gives_it_the_config_and_the_log_folder() {
    if id(&["-u"]) != Some(0) {
        // Not root: the steps are printed for the operator instead.
        let root = temp_root("nonroot");
        let out = install_as(&root, "/usr", TEST_USER);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("not root: as root, create the user"),
            "{text}"
        );
        std::fs::remove_dir_all(&root).unwrap();
        return;
    }
    let root = temp_root("user");
    let out = install_as(&root, "/usr", TEST_USER);
    let uid = id(&["-u", TEST_USER]).expect("install.sh did not create the user");
    let gid = id(&["-g", TEST_USER]).unwrap();
    let passwd = Command::new("getent")
        .args(["passwd", TEST_USER])
        .output()
        .unwrap();
    let entry = String::from_utf8_lossy(&passwd.stdout);
    assert!(entry.trim_end().ends_with(":/usr/sbin/nologin"), "{entry}");
    assert!(uid < 1000, "not a system user: {entry}");

    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let conf = at("/etc/skypunch/skypunch.conf");
    assert_eq!((uid_gid(&conf).1, mode(&conf)), (gid, 0o640));
    let logs = at("/var/log/skypunch");
    assert_eq!((uid_gid(&logs), mode(&logs)), ((uid, gid), 0o750));
    let defaults = std::fs::read_to_string(at("/etc/default/skypunch")).unwrap();
    assert!(
        defaults.contains(&format!("\nSKYPUNCH_USER={TEST_USER}\n")),
        "{defaults}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Next steps"));

    // Run again: the user exists, the operator's defaults file stays.
    std::fs::write(at("/etc/default/skypunch"), "SKYPUNCH_USER=mine\n").unwrap();
    let again = install_as(&root, "/usr", TEST_USER);
    assert!(!String::from_utf8_lossy(&again.stdout).contains("created the system user"));
    assert_eq!(
        std::fs::read_to_string(at("/etc/default/skypunch")).unwrap(),
        "SKYPUNCH_USER=mine\n"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
