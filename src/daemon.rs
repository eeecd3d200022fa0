//! Starts the pipeline's threads on the main thread, waits for signals, and shuts the threads
//! down in order. Start-up ([`serve`]) takes the pid file, opens the log and connects before
//! the first pipeline thread starts; `skypunch start` forks before calling it (see
//! `lifecycle::daemonize`), so the fork happens while the process has one thread.
//!
//! Shutdown cascades by closing channels, in this order:
//! 1. the signal loop drops `shutdown`: the loader returns;
//! 2. the loader's return drops the wheel's `control` sender: the wheel returns, dropping the
//!    job queue, so workers finish the check in hand and leave their loop;
//! 3. the last worker drops its `results` sender: the writer writes what is left and returns,
//!    dropping the notifier's `wake` sender;
//! 4. once the writer is joined, `pipeline_done` is dropped: the stats thread logs its final
//!    line (every check counted) and returns;
//! 5. the notifier tries what is owed once more and returns.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver};

use crate::check::{CheckSettings, Checker};
use crate::config::{self, Config};
use crate::db::{self, targets::TargetRow, Pool};
use crate::lifecycle::{PidFile, StartError};
use crate::logging::LogFile;
use crate::stats::Stats;
use crate::{loader, notifier, state, target, wheel, worker, writer};

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

/// Runs the daemon in this process, attached to the terminal (systemd, tests), until SIGTERM
/// or SIGINT.
pub fn run_foreground(config: Config, opts: &Options) -> Result<(), StartError> {
    serve(config, opts, &mut |_| {})
}

/// The daemon from start to exit, in this process: takes the pid file, opens the log, installs
/// the signal handlers, connects and checks the schema, calls `started`, then runs the
/// pipeline until SIGTERM or SIGINT and removes the pid file. An `Err` before `started` was
/// called with [`Startup::Ready`] is a start-up failure.
pub fn serve(
    config: Config,
    opts: &Options,
    started: &mut dyn FnMut(Startup),
) -> Result<(), StartError> {
    let pid_file = PidFile::acquire(&config.pid_file)?;
    let log = LogFile::open(&config.log_file)?;
    crate::logging::install(&log, config.log_level, opts.echo)?;
    // The CLI printed the file's warnings (a password readable by everyone, unknown keys) on
    // stderr, which a daemon away from its terminal loses: the log keeps them.
    if let Some(Ok(loaded)) = config.source.as_deref().map(config::load_file) {
        for w in &loaded.warnings {
            log::warn!("{w}");
        }
    }
    let mut signals = crate::signals::Signals::new()?;
    let pool = match prepare(&config, opts.wait_for_db, &mut signals, &log, started) {
        Ok(Some(pool)) => pool,
        Ok(None) => {
            log::info!("stopped while waiting for the database");
            return Ok(());
        }
        Err(e) => {
            log::error!("not started: {e}");
            return Err(e.into());
        }
    };
    started(Startup::Ready);
    let outcome = run(config, pool, log, signals, opts);
    drop(pid_file);
    outcome.map_err(StartError::Failed)
}

/// Connects and checks the schema: the checks that make `start` fail on the terminal. With
/// `wait_for_db`, an unreachable database is retried every 5 s (`started` hears of it once)
/// until it answers, or until SIGTERM/SIGINT, which gives `Ok(None)`.
pub fn prepare(
    config: &Config,
    wait_for_db: bool,
    signals: &mut crate::signals::Signals,
    log: &LogFile,
    started: &mut dyn FnMut(Startup),
) -> Result<Option<Pool>, String> {
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
                // Sleep in small steps so that a stop request is answered at once.
                for _ in 0..50 {
                    if signals.stop_requested(log) {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The running pipeline's thread handles, joined in shutdown order.
struct Threads {
    loader: JoinHandle<()>,
    /// Dropped once the writer is joined: the stats thread then logs its final line.
    pipeline_done: crossbeam_channel::Sender<()>,
    stats: JoinHandle<()>,
    wheel: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    writer: JoinHandle<()>,
    notifier: JoinHandle<()>,
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawning a daemon thread")
}

/// Runs the pipeline until a stop signal; returns once every thread has finished.
pub fn run(
    config: Config,
    pool: Pool,
    log: LogFile,
    signals: crate::signals::Signals,
    opts: &Options,
) -> Result<(), String> {
    let config = Arc::new(config);
    log::info!(
        "skypunch {} started: {} workers, database {}, config {}",
        crate::cli::VERSION,
        config.workers,
        config.db.describe(),
        config
            .source
            .as_deref()
            .map_or("(defaults)".into(), |p| p.display().to_string())
    );
    let (shutdown_tx, shutdown_rx) = bounded::<()>(0);
    let threads = start(&config, pool, shutdown_rx);
    signals.wait(&log, opts, &config);
    log::info!("stopping: no new checks; waiting for the checks in flight");
    drop(shutdown_tx);
    join(threads);
    log::info!("skypunch stopped");
    Ok(())
}

fn start(config: &Arc<Config>, pool: Pool, shutdown: Receiver<()>) -> Threads {
    let stats = Arc::new(Stats::default());
    let checker = Arc::new(Checker::new(CheckSettings {
        max_body_bytes: config.max_body_bytes,
        token_lifetime: config.token_lifetime,
    }));
    let (control_tx, control_rx) = unbounded();
    let (finished_tx, finished_rx) = unbounded();
    let (jobs_tx, jobs_rx) = crate::jobs::queue(config.workers * 4);
    let (results_tx, results_rx) = bounded(writer::RESULTS_QUEUE);
    let (wake_tx, wake_rx) = bounded(1);

    let notifier = notifier::spawn(config.clone(), pool.clone(), wake_rx);
    let w = writer::Writer::new(stats.clone(), wake_tx, config.max_pending_alerts);
    let writer_pool = pool.clone();
    let writer = spawn("skypunch-writer", move || {
        writer::run(w, writer_pool, results_rx)
    });
    let ports = worker::Ports {
        jobs: jobs_rx.clone(),
        finished: finished_tx,
        results: results_tx,
    };
    let workers = worker::spawn(config.workers, checker, ports, stats.clone());
    let wheel_ports = wheel::Ports {
        control: control_rx,
        finished: finished_rx,
        jobs: jobs_tx,
        unstarted: jobs_rx,
    };
    let wheel_stats = stats.clone();
    let wheel = spawn("skypunch-wheel", move || {
        wheel::run(wheel_ports, wheel_stats)
    });
    let l = loader::Loader::new(pool, control_tx);
    let interval = config.reload_interval;
    let loader_shutdown = shutdown.clone();
    let loader = spawn("skypunch-loader", move || {
        loader::run(l, interval, loader_shutdown)
    });
    let stats_interval = config.stats_interval;
    let (pipeline_done, done_rx) = bounded::<()>(0);
    let stats = spawn("skypunch-stats", move || {
        crate::report::run(&stats, stats_interval, done_rx)
    });
    Threads {
        loader,
        pipeline_done,
        stats,
        wheel,
        workers,
        writer,
        notifier,
    }
}

fn join(t: Threads) {
    let _ = t.loader.join();
    let _ = t.wheel.join();
    for w in t.workers {
        let _ = w.join();
    }
    let _ = t.writer.join();
    drop(t.pipeline_done);
    let _ = t.stats.join();
    let _ = t.notifier.join();
}

/// Re-reads the configuration for SIGHUP: applies what can change while running, and logs
/// what needs a restart.
pub fn reload_config(opts: &Options, running: &Config) {
    let loaded = match config::load(opts.config_path) {
        Ok(l) => l,
        Err(e) => {
            log::error!("SIGHUP: configuration not reloaded, keeping the running one: {e}");
            return;
        }
    };
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    let mut new = loaded.config;
    new.resolve_paths(opts.start_dir);
    log::set_max_level(new.log_level);
    let restart_needed: Vec<&str> = [
        ("LogFilePath", new.log_file != running.log_file),
        ("PidFile", new.pid_file != running.pid_file),
        ("Workers", new.workers != running.workers),
        (
            "ReloadInterval",
            new.reload_interval != running.reload_interval,
        ),
        (
            "StatsInterval",
            new.stats_interval != running.stats_interval,
        ),
        ("MaxBodyBytes", new.max_body_bytes != running.max_body_bytes),
        (
            "TokenLifetime",
            new.token_lifetime != running.token_lifetime,
        ),
        (
            "MaxPendingAlerts",
            new.max_pending_alerts != running.max_pending_alerts,
        ),
        ("[database]", new.db != running.db),
        ("[notifications]", new.notify != running.notify),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    if restart_needed.is_empty() {
        log::info!("SIGHUP: configuration re-read, log file reopened");
    } else {
        log::warn!(
            "SIGHUP: configuration re-read; LogLevel applied; restart skypunch to apply: {}",
            restart_needed.join(", ")
        );
    }
}

/// `skypunch targets ID test`: checks the target now, prints the check line and the trace,
/// and records the result like any check, without sending a notification.
pub fn test_target(config: &Config, pool: &Pool, row: &TargetRow) -> Result<(), String> {
    let target = match target::from_row(row) {
        Ok(t) => t,
        Err(reason) => return Err(format!("target {} has a config error: {reason}", row.id)),
    };
    let checker = Checker::new(CheckSettings {
        max_body_bytes: config.max_body_bytes,
        token_lifetime: config.token_lifetime,
    });
    let outcome = worker::check_safely(&checker, &target);
    println!("{}", worker::check_line(&target, &outcome));
    print!("{}", outcome.trace);
    let transition = state::apply(target.stored, outcome.verdict, target.fail_threshold);
    // A test never alerts: keep the alert flag as it was.
    let mut update = state::RowUpdate::new(
        &transition,
        &outcome,
        crate::trace::Stamp(&chrono::Local::now(), '.').to_string(),
    );
    update.alerted = target.stored.alerted;
    let mut conn = db::checkout(pool).map_err(|e| e.to_string())?;
    let updates = std::iter::once((target.id, update)).collect();
    db::results::write(&mut conn, &updates, &[])
        .map_err(|e| format!("result not recorded: {e}"))?;
    Ok(())
}
