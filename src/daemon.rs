//! Starts the pipeline's threads on the main thread, waits for signals and for any thread's
//! end, and shuts the threads down in order within `StopTimeout`. Start-up ([`serve`]) takes
//! the pid file, opens the log and connects before the first pipeline thread starts, and
//! reports "started" only once every thread runs; `skypunch start` forks before calling it
//! (see `lifecycle::daemonize`), so the fork happens while the process has one thread.
//!
//! Shutdown, on SIGTERM or SIGINT, or when a pipeline thread ends unexpectedly:
//! 1. the main thread pulls the stop trigger with a deadline of `StopTimeout`: the wheel
//!    dispatches nothing more, the loader and the notifier leave between two statements or
//!    two deliveries, and the cluster thread marks the node `stopping` (the others take its
//!    targets at their next heartbeat);
//! 2. the wheel's return closes the job queue: workers finish the check in hand and leave;
//! 3. the main thread waits up to `StopGrace` for the workers; past it, it abandons the
//!    checks still in flight (`check::sockets`: their sockets are shut down, so they end at
//!    once and record nothing) and waits [`ABANDONED_EXIT`] more for their workers to leave;
//! 4. it then tells the writer that the checks are over (`StopTrigger::checks_over`): the
//!    writer writes what is left, the rollups of the current minute included, until shortly
//!    before the deadline, then returns, dropping the notifier's `wake` and the store
//!    thread's batch sender;
//! 5. once the writer has ended, `pipeline_done` is dropped: the stats thread logs its final
//!    line (with the checks abandoned), and the cluster thread removes the node's row;
//! 6. the notifier makes its last, bounded pass and returns.
//!
//! The HTTP server's threads (when `[http] Listen` is set) watch the same trigger: at step 1
//! the poller closes the listening sockets and the connections still sending their request,
//! the handlers drop the requests queued and finish the answer in hand within 2 s, so that
//! a load balancer sees the node go at once.
//!
//! The main thread waits for all of them until the deadline (a second SIGTERM or SIGINT cuts
//! the wait short), then logs what was left unwritten and exits: 0 when nothing was left,
//! 1 when work was left, 70 when a thread ended unexpectedly. A worker still blocked after
//! its check was abandoned (in a name lookup, which no socket reaches) is not waited for.
//! Whatever the database does, the process is gone within `StopTimeout` plus the few
//! milliseconds this takes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, unbounded, Sender};

use crate::base::stats::Stats;
use crate::base::stop::{self, StopTrigger};
use crate::base::threads::{self, Ended, Supervisor};
use crate::check::sockets::InFlight;
use crate::check::{CheckSettings, Checker};
use crate::config::{self, Config};
use crate::db::{self, Pool};
use crate::lifecycle::{PidFile, StartError};
use crate::logging::LogFile;
use crate::signals::{Forwarded, Signal, Signals};
use crate::watchdog::{self, Notify};
use crate::{loader, notifier, wheel, worker, writer};

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
    let pid_file = PidFile::acquire(&config.pid_file)?;
    let log = LogFile::open(&config.log_file)?;
    crate::logging::install(&log, config.log_level, opts.echo)?;
    threads::install_panic_hook();
    // The CLI printed the file's warnings (a password readable by everyone, unknown keys) on
    // stderr, which a daemon away from its terminal loses: the log keeps them.
    if let Some(Ok(loaded)) = config.source.as_deref().map(config::load_file) {
        for w in &loaded.warnings {
            log::warn!("{w}");
        }
    }
    let mut signals = Signals::new()?;
    let pool = match prepare(&config, opts.wait_for_db, &mut signals, &log, started) {
        Ok(Some(pool)) => pool,
        Ok(None) => {
            log::info!("stopped while waiting for the database");
            return Ok(Exit::Clean);
        }
        Err(e) => return Err(not_started(e)),
    };
    let config = Arc::new(config);
    let in_use = host_in_use(&config, &pool);
    let running = start(&config, pool).map_err(not_started)?;
    let signals = signals.forward().map_err(not_started)?;
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
    notify(&running, "READY=1");
    let exit = supervise(running, &signals, &log, opts, &config);
    drop(pid_file);
    Ok(exit)
}

/// Tells systemd `state`, when it listens; a failure is only logged.
fn notify(running: &Running, state: &str) {
    if let Some(n) = &running.notify {
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

fn not_started(reason: String) -> StartError {
    log::error!("not started: {reason}");
    StartError::Failed(reason)
}

/// Connects and checks the schema: the checks that make `start` fail on the terminal. With
/// `wait_for_db`, an unreachable database is retried every 5 s (`started` hears of it once)
/// until it answers, or until SIGTERM/SIGINT, which gives `Ok(None)`.
pub fn prepare(
    config: &Config,
    wait_for_db: bool,
    signals: &mut Signals,
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
                if stop_while_waiting(signals, log) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e.to_string()),
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
                Signal::Reload => reopen(log),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// How long the workers get to leave once their checks were abandoned: a check whose sockets
/// were shut down ends at once; a worker still busy after this is blocked where no socket
/// reaches (a name lookup) and is left to the process's exit.
const ABANDONED_EXIT: Duration = Duration::from_millis(500);

/// The running pipeline, as the main thread holds it.
struct Running {
    threads: Supervisor,
    trigger: StopTrigger,
    /// The workers' checks in flight, for the stop to abandon past `StopGrace`.
    in_flight: Arc<InFlight>,
    /// Workers still busy after their checks were abandoned: not waited for.
    workers_left: bool,
    /// Dropped once the writer has ended: the stats thread then logs its final line.
    pipeline_done: Option<Sender<()>>,
    stats: Arc<Stats>,
    /// systemd's notification socket, when the daemon runs under it.
    notify: Option<Arc<Notify>>,
}

/// Starts every pipeline thread; an error if one cannot be started (the ones already
/// started stop when the returned error drops the stop trigger).
fn start(config: &Arc<Config>, pool: Pool) -> Result<Running, String> {
    // Bound first: a port in use fails the start before any thread runs.
    let listeners = crate::http::bind(config).map_err(|e| e.to_string())?;
    let stats = Arc::new(Stats::default());
    let (trigger, stop) = stop::request();
    let mut threads = Supervisor::default();
    let member = crate::cluster::join(&pool, &config.cluster)?;
    // Joining wrote this node's row: the database took a write (for `/healthz`).
    stats.db_write(true);
    let (targets_tx, targets_rx) = unbounded();
    let (control_tx, control_rx) = unbounded();
    let (done_tx, done_rx) = unbounded();
    let (pipeline_done, pipeline_done_rx) = bounded::<()>(0);
    let (jobs_tx, jobs_rx) = crate::jobs::queue(config.workers * 4);
    let (reports_tx, reports_rx) = bounded(writer::RESULTS_QUEUE);
    let in_flight = Arc::new(InFlight::default());
    let back = Back {
        pool: pool.clone(),
        stats: stats.clone(),
        member: member.clone(),
        stop: stop.clone(),
    };
    start_back(config, back, reports_rx, &mut threads)?;
    let ports = worker::Ports {
        jobs: jobs_rx.clone(),
        done: done_tx,
        results: reports_tx.clone(),
        member: member.clone(),
        in_flight: in_flight.clone(),
    };
    let checker = checker(config);
    worker::spawn(&mut threads, config.workers, checker, ports, stats.clone())?;
    let wheel_ports = wheel::Ports {
        control: control_rx,
        stop: stop.clone(),
        done: done_rx,
        jobs: jobs_tx,
        unstarted: jobs_rx,
        member: member.clone(),
        workers: config.workers,
    };
    let s = stats.clone();
    threads.spawn("skypunch-wheel", None, move || wheel::run(wheel_ports, s))?;
    let cluster_ports = crate::cluster::Ports {
        targets: targets_rx,
        wheel: control_tx,
        writer: reports_tx.clone(),
        stop: stop.clone(),
        pipeline_done: pipeline_done_rx.clone(),
    };
    let c =
        crate::cluster::Cluster::new(pool.clone(), config.cluster.clone(), member, stats.clone());
    let read_timeout = config.db.read_timeout;
    threads.spawn("skypunch-cluster", None, move || {
        crate::cluster::run(c, cluster_ports, read_timeout)
    })?;
    let l = loader::Loader::new(
        pool,
        targets_tx,
        reports_tx,
        stop.clone(),
        config.ca_file.clone(),
    );
    let interval = config.reload_interval;
    threads.spawn("skypunch-loader", None, move || loader::run(l, interval))?;
    let (s, interval) = (stats.clone(), config.stats_interval);
    threads.spawn("skypunch-stats", None, move || {
        crate::report::run(&s, interval, pipeline_done_rx)
    })?;
    let notify = start_services(config, &mut threads, listeners, &stats, stop)?;
    Ok(Running {
        threads,
        trigger,
        in_flight,
        workers_left: false,
        pipeline_done: Some(pipeline_done),
        stats,
        notify,
    })
}

/// What the back of the pipeline shares with the rest.
struct Back {
    pool: Pool,
    stats: Arc<Stats>,
    member: Arc<crate::cluster::Member>,
    stop: stop::Stop,
}

/// The back of the pipeline: the writer (results in from `reports`), its store thread, and
/// the notifier it wakes.
fn start_back(
    config: &Arc<Config>,
    back: Back,
    reports: crossbeam_channel::Receiver<crate::base::model::ToWriter>,
    threads: &mut Supervisor,
) -> Result<(), String> {
    let (wake_tx, wake_rx) = bounded(1);
    let (store, store_ends) = writer::store_channels();
    let (p, s, m) = (back.pool.clone(), back.stats.clone(), back.member);
    threads.spawn("skypunch-store", None, move || {
        writer::run_store(p, s, m, store_ends)
    })?;
    let w = writer::Writer::new(back.stats, wake_tx, config.max_pending_alerts);
    let writer_stop = back.stop.clone();
    threads.spawn("skypunch-writer", None, move || {
        writer::run(w, reports, store, writer_stop)
    })?;
    let (c, p, st) = (config.clone(), back.pool, back.stop);
    threads.spawn("skypunch-notifier", None, move || {
        notifier::run(&c, &p, &wake_rx, &st)
    })
}

/// The check runner every worker shares.
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

fn checker(config: &Config) -> Arc<Checker> {
    Arc::new(Checker::new(CheckSettings {
        max_body_bytes: config.max_body_bytes,
        token_lifetime: config.token_lifetime,
    }))
}

/// The threads beside the pipeline: the HTTP server and systemd's watchdog. Returns
/// systemd's notification socket, when there is one.
fn start_services(
    config: &Arc<Config>,
    threads: &mut Supervisor,
    listeners: Vec<std::net::TcpListener>,
    stats: &Arc<Stats>,
    stop: stop::Stop,
) -> Result<Option<Arc<Notify>>, String> {
    start_http(config, threads, listeners, stats, stop.clone())?;
    let Some(notify) = Notify::from_env().map(Arc::new) else {
        return Ok(None);
    };
    if let Some(every) = watchdog::period() {
        let pinger = notify.clone();
        let watched = watchdog::Watched {
            stats: stats.clone(),
            liveness: threads.liveness(),
            stop,
            dead_after: config.cluster.dead_after,
        };
        threads.spawn("skypunch-watchdog", None, move || {
            watchdog::run(pinger, every, watched)
        })?;
        log::info!(
            "systemd: watchdog on, a ping every {} ms",
            every.as_millis()
        );
    }
    Ok(Some(notify))
}

/// The HTTP server's threads, when `[http] Listen` names an address (bound already).
fn start_http(
    config: &Arc<Config>,
    threads: &mut Supervisor,
    listeners: Vec<std::net::TcpListener>,
    stats: &Arc<Stats>,
    stop: stop::Stop,
) -> Result<(), String> {
    if listeners.is_empty() {
        return Ok(());
    }
    let shared = Arc::new(crate::http::Shared {
        config: config.clone(),
        pool: crate::http::pool(&config.db).map_err(|e| e.to_string())?,
        stats: stats.clone(),
        liveness: threads.liveness(),
        stop,
    });
    crate::http::spawn(threads, listeners, shared)
}

/// Why the daemon stops.
enum Cause {
    Signal(&'static str),
    Died(Ended),
}

/// How the wait for the threads at stop ended.
enum WindDown {
    /// Every thread ended.
    Done,
    /// The deadline passed first.
    Overdue,
    /// A second SIGTERM or SIGINT.
    Interrupted(&'static str),
}

/// Runs until a stop is due, stops the pipeline in order, and gives the account.
fn supervise(
    mut running: Running,
    signals: &Forwarded,
    log: &LogFile,
    opts: &Options,
    config: &Config,
) -> Exit {
    let cause = wait_for_stop(&mut running, signals, log, opts, config);
    match &cause {
        Cause::Signal(name) => log::info!(
            "{name} received; stopping: no new checks; the checks in flight get {} s to \
             finish (StopGrace), the last writes until {} s after the stop (StopTimeout)",
            config.stop_grace.as_secs(),
            config.stop_timeout.as_secs()
        ),
        Cause::Died(ended) => log::error!(
            "thread {} ended unexpectedly{}: stopping skypunch (exit status 70) so that it can \
             be restarted",
            ended.name,
            if ended.panicked { " (it panicked)" } else { "" }
        ),
    }
    notify(&running, "STOPPING=1");
    running.trigger.pull(config.stop_timeout);
    let how = match end_checks(&mut running, signals, log, config.stop_grace) {
        Ok(()) => wind_down(&mut running, signals, log),
        Err(interrupted) => interrupted,
    };
    account(&running, &how, &cause)
}

/// Serves SIGHUP until SIGTERM or SIGINT, or until a pipeline thread ends.
fn wait_for_stop(
    running: &mut Running,
    signals: &Forwarded,
    log: &LogFile,
    opts: &Options,
    config: &Config,
) -> Cause {
    loop {
        select! {
            recv(signals.channel()) -> signal => match signal {
                Ok(Signal::Reload) => {
                    reopen(log);
                    reload_config(opts, config);
                }
                Ok(Signal::Stop(name)) => return Cause::Signal(name),
                Err(_) => return Cause::Died(Ended { name: "skypunch-signals".into(), panicked: true }),
            },
            recv(running.threads.ended()) -> ended => {
                let ended = ended.expect("the supervisor keeps a sender");
                running.threads.reap(&ended);
                return Cause::Died(ended);
            }
        }
    }
}

/// Steps 3 and 4 of the stop: waits up to `grace` for the workers, abandons the checks still
/// in flight, and tells the writer the checks are over. `Err` when a second SIGTERM or
/// SIGINT ended the wait.
fn end_checks(
    running: &mut Running,
    signals: &Forwarded,
    log: &LogFile,
    grace: Duration,
) -> Result<(), WindDown> {
    let deadline = running.trigger.deadline().unwrap_or_else(Instant::now);
    let no_worker = |r: &mut Running| !r.threads.running().iter().any(|n| is_worker(n));
    let until = (Instant::now() + grace).min(deadline);
    if !wait_until(running, signals, log, until, no_worker)? {
        let cut = running.in_flight.abandon();
        log::info!(
            "stop: {cut} checks still in flight after StopGrace ({} s) abandoned: their \
             connections closed, their results not recorded",
            grace.as_secs()
        );
        let until = (Instant::now() + ABANDONED_EXIT).min(deadline);
        if !wait_until(running, signals, log, until, no_worker)? {
            let busy = running
                .threads
                .running()
                .iter()
                .filter(|n| is_worker(n))
                .count();
            log::warn!(
                "stop: {busy} workers still busy {} ms after their checks were abandoned \
                 (blocked where a closed connection does not reach them, such as a name \
                 lookup): not waited for",
                ABANDONED_EXIT.as_millis()
            );
            running.workers_left = true;
        }
    }
    Stats::set(&running.stats.abandoned, running.in_flight.abandoned());
    running.trigger.checks_over();
    Ok(())
}

fn is_worker(thread: &str) -> bool {
    thread.starts_with("skypunch-worker-")
}

/// Takes the threads' ends (and serves signals) until `done` holds (`Ok(true)`) or `until`
/// has passed (`Ok(false)`); `Err` on a second SIGTERM or SIGINT.
fn wait_until(
    running: &mut Running,
    signals: &Forwarded,
    log: &LogFile,
    until: Instant,
    mut done: impl FnMut(&mut Running) -> bool,
) -> Result<bool, WindDown> {
    loop {
        if done(running) {
            return Ok(true);
        }
        let left = until.saturating_duration_since(Instant::now());
        select! {
            recv(running.threads.ended()) -> ended => {
                if let Ok(ended) = ended {
                    log::debug!("thread {} ended", ended.name);
                    running.threads.reap(&ended);
                }
            }
            recv(signals.channel()) -> signal => match signal {
                Ok(Signal::Stop(name)) => return Err(WindDown::Interrupted(name)),
                Ok(Signal::Reload) => reopen(log),
                Err(_) => {}
            },
            default(left) => return Ok(false),
        }
    }
}

/// Steps 5 and 6: waits for every thread to end (but the workers left behind), until the
/// stop deadline.
fn wind_down(running: &mut Running, signals: &Forwarded, log: &LogFile) -> WindDown {
    let deadline = running.trigger.deadline().unwrap_or_else(Instant::now);
    let all_ended = |r: &mut Running| {
        if !r.threads.is_running("skypunch-writer") {
            r.pipeline_done = None;
        }
        let skip_workers = r.workers_left;
        r.threads
            .running()
            .iter()
            .all(|n| skip_workers && is_worker(n))
    };
    match wait_until(running, signals, log, deadline, all_ended) {
        Ok(true) => WindDown::Done,
        Ok(false) => WindDown::Overdue,
        Err(interrupted) => interrupted,
    }
}

/// Logs what the stop left undone, and chooses the exit status.
fn account(running: &Running, how: &WindDown, cause: &Cause) -> Exit {
    let stats = &running.stats;
    match how {
        WindDown::Done => {}
        WindDown::Overdue => log::error!(
            "the stop deadline passed with threads still busy: {}",
            running.threads.running().join(", ")
        ),
        WindDown::Interrupted(name) => log::warn!(
            "{name} received again: exiting now, with threads still busy: {}",
            running.threads.running().join(", ")
        ),
    }
    let unwritten = stats.unwritten();
    let held = Stats::get(&stats.held_checks).min(unwritten);
    let alerts = Stats::get(&stats.held_alerts);
    let summary = format!(
        "skypunch stopped after {} checks: {unwritten} checks not written to the database \
         ({held} held by the writer, {} on their way to it), {alerts} alerts not queued for \
         sending; {} checks abandoned in flight at StopGrace (not recorded); {} checks \
         dropped earlier for their values or deleted targets",
        Stats::get(&stats.checks),
        unwritten - held,
        Stats::get(&stats.abandoned),
        Stats::get(&stats.results_dropped),
    );
    let work_left = unwritten > 0 || (alerts > 0 && !matches!(how, WindDown::Done));
    if work_left {
        log::error!("{summary}");
    } else {
        log::info!("{summary}");
    }
    match cause {
        Cause::Died(_) => Exit::ThreadDied,
        Cause::Signal(_) if work_left => Exit::WorkLeft,
        Cause::Signal(_) => Exit::Clean,
    }
}

fn reopen(log: &LogFile) {
    // On failure the old file stays open, so this message still lands somewhere.
    if let Err(e) = log.reopen() {
        log::error!("SIGHUP: {e}");
    }
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
    if new.log_level != log::max_level() {
        log::info!(
            "SIGHUP: LogLevel is now {}",
            new.log_level.as_str().to_lowercase()
        );
        crate::logging::set_level(new.log_level);
    }
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
        ("StopTimeout", new.stop_timeout != running.stop_timeout),
        ("StopGrace", new.stop_grace != running.stop_grace),
        ("[database]", new.db != running.db),
        ("[notifications]", new.notify != running.notify),
        ("[history]", new.history != running.history),
        ("[http]", new.http != running.http),
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
