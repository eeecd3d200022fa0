//! The documentation cannot drift from the program: every option and command word appears in
//! skypunch(8), every configuration key in skypunch.conf(5) and in the sample config, and
//! both pages render without a groff warning.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The page's source with groff's escaped hyphens and font changes made plain, as a reader
/// sees the words.
fn page(path: &str) -> String {
    let mut text = std::fs::read_to_string(repo(path))
        .unwrap()
        .replace("\\-", "-");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        text = text.replace(font, "");
    }
    text
}

/// Whether `word` occurs in `text` with no word character or hyphen on either side.
fn has_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[test]
fn every_option_and_command_is_in_skypunch_8() {
    let text = page("man/skypunch.8");
    for option in skypunch::manual::option_names() {
        assert!(
            has_word(&text, &option),
            "{option} is not in man/skypunch.8"
        );
    }
    for command in skypunch::manual::COMMANDS {
        assert!(
            has_word(&text, command),
            "{command} is not in man/skypunch.8"
        );
    }
    for section in [
        "SYNOPSIS",
        "COMMANDS",
        "OPTIONS",
        "TARGETS",
        "NOTIFIERS",
        "CHECKS",
        "ALERTS",
        "SIGNALS",
        "FILES",
        "EXIT STATUS",
        "EXAMPLES",
    ] {
        assert!(
            text.contains(&format!(".SH {section}\n")),
            "no {section} section"
        );
    }
}

#[test]
fn every_table_column_is_in_skypunch_8() {
    let text = page("man/skypunch.8");
    let schema = std::fs::read_to_string(repo("schema/skypunch.sql")).unwrap();
    let mut table = None;
    for line in schema.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["CREATE", "TABLE", "IF", "NOT", "EXISTS", name, ..] => table = Some(*name),
            [")", ..] => table = None,
            [column, kind, ..]
                if matches!(table, Some("targets" | "notifiers"))
                    && kind.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && !["PRIMARY", "KEY", "--"].contains(column) =>
            {
                assert!(
                    has_word(&text, column),
                    "column {}.{column} is not in man/skypunch.8",
                    table.unwrap()
                );
            }
            _ => {}
        }
    }
}

#[test]
fn every_config_key_is_in_skypunch_conf_5_and_the_sample() {
    let text = page("man/skypunch.conf.5");
    let sample = std::fs::read_to_string(repo("etc/skypunch.conf")).unwrap();
    for (section, key) in skypunch::manual::known_keys() {
        assert!(
            has_word(&text, key),
            "[{section}] {key} is not in man/skypunch.conf.5"
        );
        assert!(
            has_word(&sample, key),
            "[{section}] {key} is not in etc/skypunch.conf"
        );
    }
    for path in skypunch::manual::SEARCH_PATH {
        assert!(text.contains(path), "{path} is not in man/skypunch.conf.5");
    }
    assert!(text.contains("SKYPUNCH_CONFIG"));
}

#[test]
fn the_sample_config_is_valid_and_complete() {
    let loaded = skypunch::load_file(&repo("etc/skypunch.conf")).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The package's account is a placeholder until `setup-db`: never root by default.
    let db = &loaded.config.db;
    assert_eq!(db.user, "<set by skypunch setup-db>");
    assert!(db
        .placeholder_error()
        .unwrap()
        .contains("run 'skypunch setup-db' or edit /"));
    // Every key is there, commented out with its default or set.
    let sample = std::fs::read_to_string(repo("etc/skypunch.conf")).unwrap();
    for key in skypunch::manual::KEYS {
        let set = sample.lines().any(|l| {
            let l = l.trim_start_matches('#');
            l.starts_with(&format!("{}:", key.name))
        });
        assert!(set, "etc/skypunch.conf has no `{}:` line", key.name);
    }
}

#[test]
fn both_pages_render_without_warnings() {
    assert!(
        Command::new("groff").arg("--version").output().is_ok(),
        "groff is not installed: run the tests with scripts/test, which installs groff-base"
    );
    for page in ["man/skypunch.8", "man/skypunch.conf.5"] {
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z", "-K", "utf8"])
            .arg(repo(page))
            .output()
            .unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "groff failed on {page}: {warnings}");
        assert!(
            warnings.trim().is_empty(),
            "groff warns about {page}:\n{warnings}"
        );
    }
}

#[test]
fn no_quote_is_left_over_in_the_rendered_page() {
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(repo("man/skypunch.8"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("maintenance add id|all --for span"))
        .expect("the maintenance add entry");
    assert_eq!(
        line.trim(),
        "maintenance add id|all --for span [--reason text]"
    );
}
