//! The running daemon, on the main thread: serves SIGHUP until SIGTERM or SIGINT, or until a
//! pipeline thread ends unexpectedly; then stops the pipeline (in the order `pipeline` writes
//! down, a second SIGTERM or SIGINT cutting the wait short), logs what was left unwritten,
//! and chooses the exit status: 0 when nothing was left, 1 when work was left, 70 when a
//! thread ended unexpectedly.

use std::time::Instant;

use crossbeam_channel::{select, Receiver};

use super::pipeline::{Heard, Pipeline, Stopped, WindDown};
use super::wire::Running;
use super::{notify_systemd, reload, Exit, Options};
use crate::base::keyring::Keyring;
use crate::base::stats::Stats;
use crate::base::threads::Ended;
use crate::config::Config;
use crate::logging::LogFile;
use crate::signals::{Forwarded, Signal};

/// Why the daemon stops.
enum Cause {
    Signal(&'static str),
    Died(Ended),
}

/// Runs until a stop is due, stops the pipeline in order, and gives the account.
pub fn supervise(
    running: Running,
    signals: &Forwarded,
    log: &LogFile,
    opts: &Options,
    config: &Config,
) -> Exit {
    let Running {
        mut pipeline,
        stats,
        notify,
        keyring,
    } = running;
    let cause = wait_for_stop(&mut pipeline, signals, log, opts, config, &keyring);
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
    notify_systemd(notify.as_deref(), "STOPPING=1");
    let stopped = pipeline.stop(&mut |ended, until| listen(ended, until, signals, log));
    account(&stats, &stopped, &cause)
}

/// Serves SIGHUP until SIGTERM or SIGINT, or until a pipeline thread ends.
fn wait_for_stop(
    pipeline: &mut Pipeline,
    signals: &Forwarded,
    log: &LogFile,
    opts: &Options,
    config: &Config,
    keyring: &Keyring,
) -> Cause {
    loop {
        select! {
            recv(signals.channel()) -> signal => match signal {
                Ok(Signal::Reload) => {
                    reload::reopen(log);
                    reload::reload_config(opts, config, keyring);
                }
                Ok(Signal::Stop(name)) => return Cause::Signal(name),
                Err(_) => return Cause::Died(Ended { name: "skypunch-signals".into(), panicked: true }),
            },
            recv(pipeline.ended()) -> ended => {
                let ended = ended.expect("the supervisor keeps a sender");
                pipeline.reap(&ended);
                return Cause::Died(ended);
            }
        }
    }
}

/// The wait during the stop: the next thread's end, until `until`; a SIGHUP meanwhile
/// reopens the log, a second SIGTERM or SIGINT ends the wait.
fn listen(ended: &Receiver<Ended>, until: Instant, signals: &Forwarded, log: &LogFile) -> Heard {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        select! {
            recv(ended) -> ended => {
                if let Ok(ended) = ended {
                    return Heard::Ended(ended);
                }
            }
            recv(signals.channel()) -> signal => match signal {
                Ok(Signal::Stop(name)) => return Heard::Interrupted(name),
                Ok(Signal::Reload) => reload::reopen(log),
                // The signal thread is gone: its channel would be ready at every turn.
                Err(_) => return match ended.recv_deadline(until) {
                    Ok(ended) => Heard::Ended(ended),
                    Err(_) => Heard::Nothing,
                },
            },
            default(left) => return Heard::Nothing,
        }
    }
}

/// Logs what the stop left undone, and chooses the exit status.
fn account(stats: &Stats, stopped: &Stopped, cause: &Cause) -> Exit {
    let how = &stopped.how;
    match how {
        WindDown::Done => {}
        WindDown::Overdue => log::error!(
            "the stop deadline passed with threads still busy: {}",
            stopped.busy().join(", ")
        ),
        WindDown::Interrupted(name) => log::warn!(
            "{name} received again: exiting now, with threads still busy: {}",
            stopped.busy().join(", ")
        ),
    }
    let unwritten = stats.unwritten();
    let held = stats.held_checks().min(unwritten);
    let alerts = stats.held_alerts();
    let summary = format!(
        "skypunch stopped after {} checks: {unwritten} checks not written to the database \
         ({held} held by the writer, {} on their way to it), {alerts} alerts not queued for \
         sending; {} checks abandoned in flight at StopGrace (not recorded); {} checks \
         dropped earlier (refused for their values, of deleted targets, or recorded by \
         another node meanwhile)",
        stats.checks(),
        unwritten - held,
        stats.abandoned(),
        stats.results_dropped(),
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
