//! What the CLI writes: a pipe closed early by its reader (`skypunch targets | head -1`) ends
//! the output quietly, and tables line up whatever script the names are in.

use std::process::Stdio;

use crate::support::{skypunch_cmd, stderr, stdout, TestDb};

#[test]
fn a_reader_that_closes_the_pipe_early_ends_the_output_quietly() {
    let db = TestDb::new();
    db.write_config("");
    for i in 0..50 {
        db.add_target("name, url", &format!("'target {i}', 'http://127.0.0.1:9/'"));
    }
    let mut child = skypunch_cmd(&db.config_path(), &["targets"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the program has connected to the database, let alone written.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no panic, no message");
}

#[test]
fn tables_line_up_with_wide_and_combining_characters() {
    let db = TestDb::new();
    db.write_config("");
    db.add_target("name, url", "'監視サーバー 🚀', 'http://127.0.0.1:9/'");
    db.add_target("name, url", "'cafe\u{301}', 'http://127.0.0.1:9/'");
    db.add_target("name, url", "'plain ascii', 'http://127.0.0.1:9/'");
    let out = db.cli(&["targets"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let columns: Vec<usize> = text.lines().map(unicode_columns).collect();
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "every line of the table is as wide as the others:\n{text}"
    );
}

/// Terminal columns of a line, as a terminal shows it.
fn unicode_columns(line: &str) -> usize {
    line.chars()
        .map(|c| match c {
            '\u{300}'..='\u{36f}' => 0,
            '\u{1100}'..='\u{115f}' | '\u{2e80}'..='\u{a4cf}' | '\u{ac00}'..='\u{d7a3}' => 2,
            '\u{f900}'..='\u{faff}' | '\u{fe30}'..='\u{fe4f}' | '\u{ff00}'..='\u{ff60}' => 2,
            '\u{1f300}'..='\u{1faff}' => 2,
            _ => 1,
        })
        .sum()
}
