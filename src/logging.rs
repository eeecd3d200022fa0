//! The log file, through fern, in the original's line format:
//! `2013-07-11 06:10:57,053 INFO [1] HP Cloud Dot COM               GET https://... PASS (OK)`.
//!
//! Every thread logs through the `log` macros. The file is behind a [`LogFile`] handle that
//! the main thread reopens on SIGHUP (after logrotate moved it away).
//!
//! One event, one line: the formatter writes every message through [`crate::base::text::Visible`],
//! so a control character, line break or bidi override that a row, a server or a library put
//! in a message is shown escaped (`\x1b`, `\n`, `\u{202e}`), whichever call site logged it.
//! A message of several lines (a panic's) becomes one line with `\n` between its parts.
//!
//! Every line also goes through the redactor of the `[secrets]` in force (see
//! [`crate::base::keyring`]): whatever a line quotes (a server's answer, a URL, an error), a
//! secret's value is `***` in it. Without secrets this costs nothing.
//!
//! fern is installed passing every level, and the level in force is `log`'s global maximum,
//! which [`set_level`] moves either way: fern's own filter is fixed when it is installed and
//! could only ever narrow a later change.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::base::keyring::Keyring;

/// A thread's line buffer larger than this after a line is let go rather than kept.
const KEPT_LINE: usize = 16 * 1024;

/// `LogFilePath: -`: the log goes to stderr, for the journal.
pub const STDERR: &str = "-";

/// The open log file; clones share it. Each line is formatted first and then written with one
/// `write` call on the append-mode file, so lines from different threads never interleave.
/// Writers share the read side of a lock, so many workers log at once; only a SIGHUP reopen
/// takes it exclusively, for the moment of swapping the file.
#[derive(Clone)]
pub struct LogFile {
    inner: Arc<RwLock<Sink>>,
}

struct Sink {
    path: PathBuf,
    file: File,
    /// Writing to stderr for systemd's journal: each line starts with its priority.
    journal: bool,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    /// Opens (creating) the log file for appending.
    pub fn open(path: &Path) -> Result<LogFile, String> {
        let journal = path.as_os_str() == STDERR;
        let file = if journal { stderr_file() } else { open(path) }
            .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
        let sink = Sink {
            path: path.to_path_buf(),
            file,
            journal,
        };
        Ok(LogFile {
            inner: Arc::new(RwLock::new(sink)),
        })
    }

    /// Reopens the file by its path: after logrotate moved the old one away, a new one is made.
    pub fn reopen(&self) -> Result<(), String> {
        let mut sink = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if sink.journal {
            return Ok(());
        }
        let file = open(&sink.path)
            .map_err(|e| format!("cannot reopen log file {}: {e}", sink.path.display()))?;
        sink.file = file;
        Ok(())
    }

    /// Writing to stderr for the journal, not to a file.
    pub fn is_journal(&self) -> bool {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).journal
    }

    /// Appends one whole line. A failed write (a full disk) is dropped: logging must never
    /// stop a check. The line is formatted into this thread's buffer, kept from line to line,
    /// instead of into new strings (two per line, at thousands of check lines a second).
    fn write_line(&self, level: log::Level, line: &fmt::Arguments<'_>, keyring: &Keyring) {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        let vault = keyring.now();
        let sink = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let write = |text: &mut String| {
            text.clear();
            if sink.journal {
                let _ = write!(text, "<{}>", priority(level));
            }
            let _ = writeln!(text, "{line}");
            let shown = vault.redactor.redact(text);
            let _ = (&sink.file).write_all(shown.as_bytes());
        };
        LINE.with(|buffer| match buffer.try_borrow_mut() {
            Ok(mut text) => {
                write(&mut text);
                // One huge line must not stay allocated on every thread that logged it.
                if text.capacity() > KEPT_LINE {
                    *text = String::new();
                }
            }
            // Logging from inside a Display of this thread's line: a string of its own.
            Err(_) => write(&mut String::new()),
        });
    }
}

/// Installs the process logger writing to `file` (and to stderr too when `echo` is set, for
/// `--foreground` runs in a terminal) at `level`, the values of `keyring`'s secrets masked.
/// Can only be called once per process.
pub fn install(
    file: &LogFile,
    level: log::LevelFilter,
    echo: bool,
    keyring: Keyring,
) -> Result<(), String> {
    let mut dispatch = fern::Dispatch::new()
        .format(|out, message, record| {
            out.finish(format_args!(
                "{}",
                Line {
                    at: chrono::Local::now(),
                    level: record.level(),
                    message,
                }
            ))
        })
        .level(log::LevelFilter::Trace)
        // ureq and rustls say too much even at debug for a log people tail.
        .level_for("ureq", log::LevelFilter::Warn)
        .level_for("ureq_proto", log::LevelFilter::Warn)
        .level_for("rustls", log::LevelFilter::Warn)
        .level_for("mysql", log::LevelFilter::Warn)
        .level_for("r2d2", log::LevelFilter::Warn)
        .chain(fern::Output::call({
            let (file, keyring) = (file.clone(), keyring.clone());
            move |record| file.write_line(record.level(), record.args(), &keyring)
        }));
    if echo && !file.is_journal() {
        dispatch = dispatch.chain(fern::Output::call(move |record| {
            let line = record.args().to_string();
            let shown = keyring.now().redactor.redact(&line).into_owned();
            let _ = writeln!(io::stderr(), "{shown}");
        }));
    }
    dispatch
        .apply()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    set_level(level);
    Ok(())
}

/// One log line as the formatter writes it, without its line end:
/// `2013-07-11 06:10:57,053 INFO <message>`, the message's hidden characters shown escaped.
pub(crate) struct Line<M> {
    pub at: chrono::DateTime<chrono::Local>,
    pub level: log::Level,
    pub message: M,
}

impl<M: std::fmt::Display> std::fmt::Display for Line<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            crate::base::trace::Stamp(&self.at, ','),
            self.level,
            crate::base::text::Visible(&self.message)
        )
    }
}

/// The journal's priority for a level (sd-daemon(3) prefixes): `journalctl -p err` then
/// shows the failed checks.
fn priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// A handle on fd 2 of its own, so that the log writes like to any file.
fn stderr_file() -> io::Result<File> {
    use std::os::fd::AsFd;
    io::stderr().as_fd().try_clone_to_owned().map(File::from)
}

/// Sets the level in force, higher or lower than before (SIGHUP with a new `LogLevel`).
pub fn set_level(level: log::LevelFilter) {
    log::set_max_level(level);
}

/// The name column of a check line: left-aligned in 30 columns as the original, the hidden
/// characters of a hostile name shown escaped before padding, so the column stays aligned.
/// Written straight into the line being formatted (no String of its own for a clean name:
/// one per check line).
pub struct NameColumn<'a>(pub &'a str);

impl fmt::Display for NameColumn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Padded by characters, not display columns: the original's `%-30s` did so, and log
        // parsers written for it count on that.
        const SPACES: &str = "                              ";
        let shown = crate::base::text::visible(self.0);
        f.write_str(&shown)?;
        let count = shown.chars().count();
        f.write_str(&SPACES[..SPACES.len().saturating_sub(count)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_written_with_the_values_of_the_secrets_masked() {
        let path = std::env::temp_dir().join(format!("skypunch-log-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let file = LogFile::open(&path).unwrap();
        let mut secrets = crate::base::secrets::Secrets::new();
        secrets.insert("API_KEY", "k3y-7f3a9c21");
        let keyring = Keyring::new(&secrets);
        let echoed = "k3y-7f3a9c21";
        file.write_line(
            log::Level::Warn,
            &format_args!("server answered {echoed} and {}", "k3y-7f3a9c21%"),
            &keyring,
        );
        secrets.insert("API_KEY", "n3w-0c1d2e3f");
        keyring.replace(&secrets);
        file.write_line(
            log::Level::Info,
            &format_args!("old k3y-7f3a9c21, new n3w-0c1d2e3f"),
            &keyring,
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(text, "server answered *** and ***%\nold ***, new ***\n");
    }

    #[test]
    fn the_name_column_is_thirty_characters_with_hidden_ones_escaped() {
        let old = |name: &str| format!("{:<30}", crate::base::text::visible(name));
        for name in [
            "HP Cloud",
            "",
            "line\nbreak\tand tab",
            "ünïcödé 名前",
            "evil\u{1b}[31m\u{202e}",
            &"x".repeat(40),
        ] {
            assert_eq!(NameColumn(name).to_string(), old(name), "{name:?}");
        }
    }
}
