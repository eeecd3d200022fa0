//! Signals, on the main thread of the daemon: SIGTERM and SIGINT stop it, SIGHUP reopens the
//! log file and re-reads the configuration. signal-hook turns them into an iterator, so no
//! code runs inside a signal handler. The handlers are installed before the daemon connects
//! to its database, so a `stop` during a long start-up (`--wait`) is not lost.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::config::Config;
use crate::daemon::Options;
use crate::logging::LogFile;

pub struct Signals(signal_hook::iterator::Signals);

impl Signals {
    /// Registers the handlers; do this before starting threads, so no signal is missed.
    pub fn new() -> Result<Signals, String> {
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
            .map(Signals)
            .map_err(|e| format!("cannot install signal handlers: {e}"))
    }

    /// Blocks until SIGTERM or SIGINT, handling SIGHUP meanwhile.
    pub fn wait(mut self, log: &LogFile, opts: &Options, running: &Config) {
        for signal in self.0.forever() {
            match signal {
                SIGHUP => {
                    // On failure the old file stays open, so this message still lands somewhere.
                    if let Err(e) = log.reopen() {
                        log::error!("SIGHUP: {e}");
                    }
                    crate::daemon::reload_config(opts, running);
                }
                SIGTERM | SIGINT => {
                    let name = if signal == SIGTERM {
                        "SIGTERM"
                    } else {
                        "SIGINT"
                    };
                    log::info!("{name} received");
                    return;
                }
                _ => {}
            }
        }
    }

    /// For start-up, before the pipeline runs: has SIGTERM or SIGINT arrived? A SIGHUP meanwhile
    /// only reopens the log file; the configuration is read afresh by the next start anyway.
    pub fn stop_requested(&mut self, log: &LogFile) -> bool {
        let mut stop = false;
        for signal in self.0.pending() {
            match signal {
                SIGHUP => {
                    if let Err(e) = log.reopen() {
                        log::error!("SIGHUP: {e}");
                    }
                }
                SIGTERM | SIGINT => stop = true,
                _ => {}
            }
        }
        stop
    }
}
