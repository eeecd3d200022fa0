//! Writing `[database] User` and `Password` into a configuration file for `skypunch setup-db`
//! (the CLI's main thread): only those lines change, every comment and other line stays, and
//! the file is replaced atomically (a temporary file in the same folder, renamed over it)
//! with its mode and owner, so that no reader ever sees half a file or a password readable by
//! others.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `text` with `User` and `Password` of its `[database]` section set to these values (each
/// when given). Every assignment of the key in a `[database]` section is rewritten; a key
/// that is absent goes right after the section's header; a file without the section gets one
/// at its end.
pub fn with_credentials(text: &str, user: Option<&str>, password: Option<&str>) -> String {
    let wanted: Vec<(&str, &str)> = [("User", user), ("Password", password)]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut written = vec![false; wanted.len()];
    let mut header_at = None;
    let mut in_database = false;
    for raw in text.lines() {
        let trimmed = raw.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            in_database = name.trim().eq_ignore_ascii_case("database");
            out.push(raw.to_string());
            if in_database && header_at.is_none() {
                header_at = Some(out.len());
            }
            continue;
        }
        let key = trimmed.split([':', '=']).next().unwrap_or("").trim();
        let is_comment = trimmed.starts_with('#') || trimmed.starts_with(';');
        match wanted.iter().position(|(k, _)| k.eq_ignore_ascii_case(key)) {
            Some(i) if in_database && !is_comment && trimmed.contains([':', '=']) => {
                out.push(format!("{}: {}", wanted[i].0, wanted[i].1));
                written[i] = true;
            }
            _ => out.push(raw.to_string()),
        }
    }
    let missing: Vec<String> = wanted
        .iter()
        .zip(&written)
        .filter(|(_, done)| !**done)
        .map(|((k, v), _)| format!("{k}: {v}"))
        .collect();
    match header_at {
        Some(at) => {
            out.splice(at..at, missing);
        }
        None if !missing.is_empty() => {
            out.push(String::new());
            out.push("[database]".into());
            out.extend(missing);
        }
        None => {}
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// Replaces the file at `path` (a symbolic link's target) with `text`, keeping its mode and
/// owner: the new text is written to a private temporary file beside it, given the old
/// file's owner and mode, flushed to disk, and renamed over it.
pub fn replace_file(path: &Path, text: &str) -> io::Result<()> {
    let real = fs::canonicalize(path)?;
    let meta = fs::metadata(&real)?;
    let dir = real.parent().unwrap_or(Path::new("/"));
    let name = real.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.setup-db.{}", std::process::id()));
    let written = write_private(&temp, text, &meta).and_then(|()| fs::rename(&temp, &real));
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    // The rename itself is on disk once the folder is.
    fs::File::open(dir)?.sync_all()
}

fn write_private(temp: &PathBuf, text: &str, like: &fs::Metadata) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::os::unix::fs::fchown(&file, Some(like.uid()), Some(like.gid()))?;
    file.set_permissions(fs::Permissions::from_mode(like.mode() & 0o7777))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGED: &str = "# head\n[settings]\nUser: not-this-one\n\n[database]\n\
        # The account.\n#User: root\nUser: <set by skypunch setup-db>\n\
        Password = <set by skypunch setup-db>\n#DBName: skypunch\n\n[http]\n#User: monitor\n";

    #[test]
    fn only_the_database_user_and_password_lines_change() {
        let out = with_credentials(PACKAGED, Some("skypunch"), Some("s3cr3t"));
        assert_eq!(
            out,
            "# head\n[settings]\nUser: not-this-one\n\n[database]\n# The account.\n\
             #User: root\nUser: skypunch\nPassword: s3cr3t\n#DBName: skypunch\n\n[http]\n\
             #User: monitor\n"
        );
        let only_password = with_credentials(PACKAGED, None, Some("x"));
        assert!(only_password.contains("User: <set by skypunch setup-db>\nPassword: x\n"));
    }

    #[test]
    fn absent_keys_follow_the_header_and_an_absent_section_is_added() {
        let out = with_credentials("[database]\nDBName: mon\n", Some("u"), Some("p"));
        assert_eq!(out, "[database]\nUser: u\nPassword: p\nDBName: mon\n");
        let out = with_credentials("[settings]\nWorkers: 8", Some("u"), Some("p"));
        assert_eq!(
            out,
            "[settings]\nWorkers: 8\n\n[database]\nUser: u\nPassword: p\n"
        );
    }

    #[test]
    fn the_file_is_replaced_with_its_mode_and_nothing_left_beside_it() {
        let dir = std::env::temp_dir().join(format!("sp-edit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("skypunch.conf");
        fs::write(&file, PACKAGED).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.join("link.conf");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        replace_file(&link, "[database]\nUser: u\n").unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "[database]\nUser: u\n");
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o640);
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            2,
            "a temporary file was left"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
