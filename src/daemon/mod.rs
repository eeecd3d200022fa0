//! The daemon from start to exit, on the main thread. Start-up ([`serve`]) takes the pid
//! file, opens the log and connects before the first pipeline thread starts, and reports
//! "started" only once every thread runs; `skypunch start` forks before calling it (see
//! `lifecycle::daemonize`), so the fork happens while the process has one thread.
//!
//! - [`wire`]: the channels between the stages, and the threads started in a pipeline;
//! - [`pipeline`]: the value that owns the threads, whose fields are the stages in the order
//!   the stop ends them (the stop's steps and bounds are written there, once);
//! - [`supervise`]: the wait for a signal or a thread's end, the stop, the account and the
//!   exit status;
//! - [`reload`]: SIGHUP (the log file reopened, the configuration re-read).
//!
//! Whatever the database does, the process is gone within `StopTimeout` plus the few
//! milliseconds the exit takes.

mod pipeline;
mod reload;
mod supervise;
mod wire;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::base::keyring::Keyring;
use crate::base::threads::{self, SpawnError};
use crate::config::{self, Config};
use crate::db::{self, Pool};
use crate::lifecycle::pidfile::AcquireError;
use crate::lifecycle::PidFile;
use crate::logging::LogFile;
use crate::signals::{Signal, Signals};
use crate::watchdog::Notify;

/// How the daemon was asked to start.
pub struct Options<'a> {
    /// The file to re-read on SIGHUP (an absolute path: the daemon runs in `/`).
    pub config_path: Option<&'a Path>,
    /// The folder `start` was run in: relative paths in a re-read configuration are taken
    /// from there, as they were at start.
    pub start_dir: &'a Path,
    /// Wait for the database instead of failing when it is down at start.
    pub wait_for_db: bool,
    /// Also log to stderr (a foreground run in a terminal).
    pub echo: bool,
}

/// Where start-up stands, for whoever waits on it (the `start` command of a daemon).
#[derive(Debug, PartialEq, Eq)]
pub enum Startup {
    /// The pipeline is running.
    Ready,
    /// Everything is set up but the database is down; with `--wait` the daemon keeps trying.
    WaitingForDatabase(String),
}

/// How a daemon that started ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Stopped with every check written and every alert queued.
    Clean,
    /// Stopped, but the database did not take everything in time (logged).
    WorkLeft,
    /// A pipeline thread ended unexpectedly (logged); systemd's `Restart=on-failure` restarts.
    ThreadDied,
}

impl Exit {
    /// The process's exit status: 0, 1, or 70 (EX_SOFTWARE).
    pub fn code(&self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::WorkLeft => 1,
            Exit::ThreadDied => 70,
        }
    }
}

/// Why the daemon did not start. Each message is the one the part that failed gives; that
/// part's error is kept as the source.
#[derive(Debug)]
pub enum StartError {
    /// Another daemon holds the pid file, or the pid file cannot be used.
    PidFile(AcquireError),
    /// The log file cannot be opened, or the logger installed.
    Log(String),
    /// The signal handlers cannot be installed, or their thread started.
    Signals(String),
    /// The database cannot be reached or used (no schema, a refused account).
    Database(db::Error),
    /// `[http] Listen` cannot be served: an address, or the server's poller or threads.
    Http(crate::http::Error),
    /// The HTTP server's own database connections cannot be made.
    HttpDatabase(db::Error),
    /// The node cannot join the cluster (its name is in use, or the database refused).
    /// Boxed: it holds a database error and more, and start-up's results stay small.
    Cluster(Box<crate::cluster::JoinError>),
    /// A pipeline thread cannot be started.
    Thread(SpawnError),
}

impl StartError {
    /// The pid of the daemon that runs already, when that is why.
    pub fn already_running(&self) -> Option<i32> {
        match self {
            StartError::PidFile(AcquireError::Running(pid)) => Some(*pid),
            _ => None,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::PidFile(e) => e.fmt(f),
            StartError::Log(reason) | StartError::Signals(reason) => f.write_str(reason),
            StartError::Database(e) | StartError::HttpDatabase(e) => e.fmt(f),
            StartError::Http(e) => e.fmt(f),
            StartError::Cluster(e) => e.fmt(f),
            StartError::Thread(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::PidFile(e) => Some(e),
            StartError::Log(_) | StartError::Signals(_) => None,
            StartError::Database(e) | StartError::HttpDatabase(e) => Some(e),
            StartError::Http(e) => Some(e),
            StartError::Cluster(e) => Some(e.as_ref()),
            StartError::Thread(e) => Some(e),
        }
    }
}

impl From<SpawnError> for StartError {
    fn from(e: SpawnError) -> StartError {
        StartError::Thread(e)
    }
}

/// Runs the daemon in this process, attached to the terminal (systemd, tests), until SIGTERM
/// or SIGINT.
pub fn run_foreground(config: Config, opts: &Options) -> Result<Exit, StartError> {
    serve(config, opts, &mut |_| {})
}

/// The daemon from start to exit, in this process: takes the pid file, opens the log, installs
/// the signal handlers, connects and checks the schema, starts every thread, calls `started`,
/// then runs the pipeline until it stops and removes the pid file. An `Err` is a start-up
/// failure (`started` was not called with [`Startup::Ready`]).
pub fn serve(
    config: Config,
    opts: &Options,
    started: &mut dyn FnMut(Startup),
) -> Result<Exit, StartError> {
    fewer_malloc_arenas();
    let pid_file = PidFile::acquire(&config.pid_file).map_err(StartError::PidFile)?;
    let log = LogFile::open(&config.log_file).map_err(StartError::Log)?;
    // Shared from here on: every log line, the loader and the workers use the one in force.
    let keyring = Keyring::new(&config.secrets);
    crate::logging::install(&log, config.log_level, opts.echo, keyring.clone())
        .map_err(StartError::Log)?;
    threads::install_panic_hook();
    // The CLI printed the file's warnings (a password readable by everyone, unknown keys) on
    // stderr, which a daemon away from its terminal loses: the log keeps them.
    if let Some(Ok(loaded)) = config.source.as_deref().map(config::load_file) {
        for w in &loaded.warnings {
            log::warn!("{w}");
        }
    }
    let mut signals = Signals::new().map_err(StartError::Signals)?;
    let pool = match prepare(&config, opts.wait_for_db, &mut signals, &log, started) {
        Ok(Some(pool)) => pool,
        Ok(None) => {
            log::info!("stopped while waiting for the database");
            return Ok(Exit::Clean);
        }
        Err(e) => return Err(not_started(StartError::Database(e))),
    };
    let config = Arc::new(config);
    let in_use = host_in_use(&config, &pool);
    let running = match wire::start(&config, pool, keyring) {
        Ok(running) => running,
        Err(failed) => {
            let wire::Failed { error, started } = *failed;
            let error = not_started(error);
            // The threads started so far stop in order, after the line above.
            drop(started);
            return Err(error);
        }
    };
    let signals = signals
        .forward()
        .map_err(|e| not_started(StartError::Signals(e)))?;
    log::info!(
        "skypunch {} started: {} workers, database {}{in_use}, config {}",
        crate::base::version::VERSION,
        config.workers,
        config.db.describe(),
        config
            .source
            .as_deref()
            .map_or("(defaults)".into(), |p| p.display().to_string())
    );
    started(Startup::Ready);
    notify_systemd(running.notify.as_deref(), "READY=1");
    let exit = supervise::supervise(running, &signals, &log, opts, &config);
    drop(pid_file);
    Ok(exit)
}

/// Tells systemd `state`, when it listens; a failure is only logged.
fn notify_systemd(notify: Option<&Notify>, state: &str) {
    if let Some(n) = notify {
        if let Err(e) = n.send(state) {
            log::warn!("systemd: cannot send {state}: {e}");
        }
    }
}

/// `" (using host:port)"` when `Location` lists several hosts, for the start line.
fn host_in_use(config: &Config, pool: &Pool) -> String {
    if config.db.endpoints().len() < 2 {
        return String::new();
    }
    db::checkout(pool).map_or_else(|_| String::new(), |c| format!(" (using {})", c.host()))
}

fn not_started(e: StartError) -> StartError {
    log::error!("not started: {e}");
    e
}

/// Connects and checks the schema: the checks that make `start` fail on the terminal. With
/// `wait_for_db`, an unreachable database is retried every 5 s (`started` hears of it once)
/// until it answers, or until SIGTERM/SIGINT, which gives `Ok(None)`.
fn prepare(
    config: &Config,
    wait_for_db: bool,
    signals: &mut Signals,
    log: &LogFile,
    started: &mut dyn FnMut(Startup),
) -> Result<Option<Pool>, db::Error> {
    let mut logged = false;
    loop {
        let attempt = db::open(&config.db).map(|(pool, _)| pool);
        match attempt {
            Ok(pool) => return Ok(Some(pool)),
            Err(e) if wait_for_db && e.is_outage() => {
                if !logged {
                    log::error!("{e}; waiting for it (retrying every 5 s)");
                    started(Startup::WaitingForDatabase(e.to_string()));
                    logged = true;
                }
                if stop_while_waiting(signals, log) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits 5 s for the database, in small steps so that a stop request is answered at once;
/// true when one came. A SIGHUP meanwhile only reopens the log file: the configuration is
/// read afresh once the daemon starts.
fn stop_while_waiting(signals: &mut Signals, log: &LogFile) -> bool {
    for _ in 0..50 {
        for signal in signals.pending() {
            match signal {
                Signal::Stop(_) => return true,
                Signal::Reload => reload::reopen(log),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// glibc gives threads that allocate at the same time arenas of their own, up to 8 per core,
/// each keeping its freed peak: with 256 workers the per-check buffers spread over 16 of
/// them. Two arenas took ~23 MiB off the RSS of the 100,000-target mix (BENCHMARKS.md) and
/// cost no CPU measurable at 15,000 checks a second (alternating runs: 109–110 µs per check
/// against 111–115). glibc fixes its arena limit when a second thread first allocates, so
/// this runs before the daemon starts any thread (the signal thread, the database pool).
fn fewer_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; an unknown value is refused, not UB.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_keep_the_operators_message_and_their_source() {
        let running = StartError::PidFile(AcquireError::Running(42));
        assert_eq!(running.to_string(), "skypunch is already running (pid 42)");
        assert_eq!(running.already_running(), Some(42));
        let schema = StartError::Database(db::Error::Schema("no skypunch schema".into()));
        assert_eq!(schema.to_string(), "no skypunch schema");
        assert_eq!(schema.already_running(), None);
        let source = std::error::Error::source(&schema).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("no skypunch schema"));
    }

    #[test]
    fn a_start_error_stays_small() {
        // Every start-up step returns one: no variant may make them all large.
        assert!(std::mem::size_of::<StartError>() <= 128);
    }
}
