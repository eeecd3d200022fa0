//! The CLI's standard output. Every answer goes through [`print`]: a reader that closes the
//! pipe early (`skypunch targets | head -1`) ends the output quietly with exit 0, as ripgrep
//! does, where `println!` would panic with "failed printing to stdout".

use std::fmt::Display;
use std::io::{self, Write};

use super::Error;

/// Writes `text` as it is (a table ends with its own newline).
pub fn print(text: impl Display) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    write!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(failed)
}

/// Writes `text` and a newline.
pub fn line(text: impl Display) -> Result<(), Error> {
    print(format_args!("{text}\n"))
}

/// `1 problem`, `2 problems`: a count and its noun (a regular plural).
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn failed(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Error::closed_pipe()
    } else {
        Error::failed(format!("cannot write to standard output: {e}"))
    }
}
