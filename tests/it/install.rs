//! scripts/install.sh into a temporary DESTDIR: every file lands where its header says, paths
//! in the init script and unit point at the installed binary, and an existing configuration
//! is never overwritten.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn install(destdir: &Path, prefix: &str) -> Output {
    let out = Command::new("sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .env("DESTDIR", destdir)
        .env("PREFIX", prefix)
        .env("BINARY", env!("CARGO_BIN_EXE_skypunch"))
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
