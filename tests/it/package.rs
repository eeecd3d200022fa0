//! scripts/package: the .deb passes lintian with no errors or warnings, and (as root, as in
//! CI) installs into a throw-away root with `dpkg --root --force-script-chrootless`, where
//! its maintainer scripts create the skypunch user, its log folder and the boot links, and a
//! purge removes them again.

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
