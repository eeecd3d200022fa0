//! `--callgrind`: the daemon runs under valgrind's callgrind with instrumentation off, turned
//! on for exactly the measured window (`callgrind_control`), so the instructions counted are
//! those of the window's checks in user space, whatever else runs on the machine: a figure
//! that repeats from run to run where CPU seconds on a shared machine do not.
//!
//! Caveat kept in the report: valgrind counts each iteration of a `rep stos`/`rep movs` (glibc's
//! memset and memcpy of large blocks) as one instruction, so zeroing a buffer weighs more here
//! than in CPU time; the kernel's share of a check (TCP) is not counted at all.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Error;

/// The valgrind command line the daemon is started under; its profile goes to `dir`.
pub fn wrap(dir: &Path) -> Vec<String> {
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--instr-atstart=no".into(),
        format!("--callgrind-out-file={}", out_base(dir).display()),
    ]
}

fn out_base(dir: &Path) -> PathBuf {
    dir.join("callgrind.out")
}

fn control(pid: u32, args: &[&str]) -> Result<(), Error> {
    let out = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run callgrind_control (valgrind installed?): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "callgrind_control {} {pid} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn dump_file(dir: &Path) -> PathBuf {
    PathBuf::from(format!("{}.1", out_base(dir).display()))
}

/// Starts counting (the window begins).
pub fn start(pid: u32, dir: &Path) -> Result<(), Error> {
    // An earlier round's dump would otherwise be read as this one's.
    let _ = std::fs::remove_file(dump_file(dir));
    control(pid, &["--zero"])?;
    control(pid, &["--instr=on"])
}

/// What the window counted.
#[derive(Debug, Clone, Default)]
pub struct Counted {
    /// Instructions executed by the daemon (all threads, user space) in the window.
    pub instructions: u64,
    /// The dumped profile (for `callgrind_annotate`).
    pub profile: PathBuf,
}

/// Stops counting (the window ends): dumps the profile and reads its total.
pub fn stop(pid: u32, dir: &Path) -> Result<Counted, Error> {
    control(pid, &["--dump"])?;
    control(pid, &["--instr=off"])?;
    let profile = dump_file(dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&profile).unwrap_or_default();
        if let Some(n) = totals(&text) {
            return Ok(Counted {
                instructions: n,
                profile,
            });
        }
        if Instant::now() > deadline {
            return Err(format!(
                "callgrind wrote no totals to {} within 60 s",
                profile.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `totals:` (or `summary:`) line of a callgrind profile.
fn totals(profile: &str) -> Option<u64> {
    profile.lines().rev().find_map(|l| {
        l.strip_prefix("totals:")
            .or_else(|| l.strip_prefix("summary:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    })
}

/// Copies the profile next to the JSON (`<json>.callgrind`, `<json>.<round>.callgrind` when
/// there are several rounds), for `callgrind_annotate`.
pub fn keep(counted: &Counted, json: &Path, round: Option<usize>) -> Result<PathBuf, Error> {
    let round = round.map_or(String::new(), |r| format!(".{r}"));
    let to = PathBuf::from(format!("{}{round}.callgrind", json.display()));
    std::fs::copy(&counted.profile, &to)
        .map_err(|e| format!("copying {}: {e}", counted.profile.display()))?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_read_from_the_profile() {
        let p = "events: Ir\nsummary: 260217518\n\nfn=(1) x\n1 2\ntotals: 260217518\n";
        assert_eq!(totals(p), Some(260_217_518));
        assert_eq!(totals("events: Ir\n"), None);
    }
}
