//! `skypunch-bench`: measures the real daemon against N local targets and checks that no
//! result was lost. Usage in `bench::args::USAGE`; what it reports in BENCHMARKS.md. This
//! file, on the main thread: the flags parsed, the mode's run chosen (each in `bench/`), its
//! table printed, its JSON written, the exit status (2: bad flags; 1: a run that failed).

mod bench;

use std::path::Path;
use std::process::ExitCode;

use bench::args::{ServerKind, Settings};
use bench::database::{self, BenchDb};
use bench::report::Rounds;
use bench::target::Server;
use bench::Error;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = match bench::args::parse(&args) {
        Ok(Some(s)) => s,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skypunch-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if settings.history {
        return history(&settings);
    }
    if settings.crypto {
        return crypto(&settings);
    }
    if settings.http {
        return http(&settings, &args);
    }
    if settings.nodes > 0 {
        return cluster(&settings, &args);
    }
    if settings.storm {
        return run_mode(&settings, &args, |dir| bench::storm::run(&settings, dir));
    }
    throughput(&settings, &args)
}

/// The throughput run (plain HTTP, `--tls`, `--mix`): a table per round, the rounds' comparison
/// with blackbox_exporter, the JSON, and the no-loss verdict.
fn throughput(s: &Settings, args: &[String]) -> ExitCode {
    match bench::throughput::run(s, args) {
        Ok(rounds) => {
            let results = Rounds(&rounds);
            for (i, r) in rounds.iter().enumerate() {
                if rounds.len() > 1 {
                    println!("round {} of {}:", i + 1, rounds.len());
                }
                print!("{}", r.table());
            }
            if rounds.iter().any(|r| r.blackbox.is_some()) {
                print!("{}", results.table());
            }
            let problems = results.problems();
            if let Err(e) = write_json(&s.json, &results.json()) {
                eprintln!("skypunch-bench: {e}");
                return ExitCode::from(1);
            }
            println!("results written to {}", s.json.display());
            if problems.is_empty() {
                println!("verified: 0 lost, every target checked");
                ExitCode::SUCCESS
            } else {
                for p in problems {
                    eprintln!("skypunch-bench: FAILED: {p}");
                }
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("skypunch-bench: {e}");
            ExitCode::from(1)
        }
    }
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), Error> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}

/// `--http`: the HTTP server's cost with N targets.
fn http(s: &Settings, args: &[String]) -> ExitCode {
    run_mode(s, args, |dir| bench::http::run(s, dir))
}

/// What the modes with their own figures (`--http`, `--nodes`) give the common ending.
trait Outcome {
    fn table(&self) -> String;
    fn json(&self, command: &str) -> serde_json::Value;
    fn problems(&self) -> Vec<String>;
}

impl Outcome for bench::http::Figures {
    fn table(&self) -> String {
        self.table()
    }
    fn json(&self, command: &str) -> serde_json::Value {
        self.json(command)
    }
    fn problems(&self) -> Vec<String> {
        self.problems()
    }
}

impl Outcome for bench::storm::Figures {
    fn table(&self) -> String {
        self.table()
    }
    fn json(&self, command: &str) -> serde_json::Value {
        self.json(command)
    }
    fn problems(&self) -> Vec<String> {
        self.problems()
    }
}

impl Outcome for bench::cluster::Figures {
    fn table(&self) -> String {
        self.table()
    }
    fn json(&self, command: &str) -> serde_json::Value {
        self.json(command)
    }
    fn problems(&self) -> Vec<String> {
        self.problems()
    }
}

/// Runs `measure` in a temp folder, prints its table, writes its JSON, and fails on its
/// problems; the folder is kept after a failure (for its logs) or with `--keep`.
fn run_mode<F: Outcome>(
    s: &Settings,
    args: &[String],
    measure: impl FnOnce(&Path) -> Result<F, Error>,
) -> ExitCode {
    let dir = std::env::temp_dir().join(format!("skybench-{}", std::process::id()));
    let command = std::iter::once("skypunch-bench".to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let measured = std::fs::create_dir_all(&dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))
        .and_then(|()| measure(&dir));
    let figures = match measured {
        Ok(f) => f,
        Err(e) => {
            eprintln!("skypunch-bench: {e} (logs kept in {})", dir.display());
            return ExitCode::from(1);
        }
    };
    print!("{}", figures.table());
    if let Err(e) = write_json(&s.json, &figures.json(&command)) {
        eprintln!("skypunch-bench: {e}");
        return ExitCode::from(1);
    }
    println!("results written to {}", s.json.display());
    let problems = figures.problems();
    for p in &problems {
        eprintln!("skypunch-bench: FAILED: {p}");
    }
    if problems.is_empty() && !s.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `--history`: the cost of reading and keeping history.
fn history(s: &Settings) -> ExitCode {
    let dir = std::env::temp_dir().join(format!("skybench-{}", std::process::id()));
    let measured = std::fs::create_dir_all(&dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))
        .and_then(|()| bench::history::run(s, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    match measured.and_then(|f| {
        print!("{}", f.table());
        write_json(&s.json, &f.json())
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skypunch-bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// `--crypto`: the crypto providers' operations, timed.
fn crypto(s: &Settings) -> ExitCode {
    let dir = std::env::temp_dir().join(format!("skybench-{}", std::process::id()));
    let measured = std::fs::create_dir_all(&dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))
        .and_then(|()| bench::crypto::run(&dir, s.rounds));
    let _ = std::fs::remove_dir_all(&dir);
    match measured.and_then(|(table, json)| {
        print!("{table}");
        write_json(&s.json, &json)
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skypunch-bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// `--nodes K`: several daemons on one database.
fn cluster(s: &Settings, args: &[String]) -> ExitCode {
    run_mode(s, args, |dir| {
        let server = match s.server {
            ServerKind::Nginx => Server::nginx(dir, None)?,
            ServerKind::Builtin => Server::builtin(None)?,
        };
        let url = format!("http://127.0.0.1:{}/", server.port());
        let mut db = database::Server::parse(&s.db_url).and_then(BenchDb::create)?;
        let figures = bench::cluster::run(s, &mut db, &url, dir);
        if !s.keep {
            let _ = db.drop_db();
        }
        server.stop();
        figures
    })
}
