//! Signals, on the main thread of the daemon: SIGTERM and SIGINT stop it, SIGHUP reopens the
//! log file and re-reads the configuration. signal-hook turns them into an iterator, so no
//! code runs inside a signal handler.

use std::path::Path;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::config::Config;
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
    pub fn wait(mut self, log: &LogFile, config_path: Option<&Path>, running: &Config) {
        for signal in self.0.forever() {
            match signal {
                SIGHUP => {
                    if let Err(e) = log.reopen() {
                        eprintln!("skypunch: {e}");
                    }
                    crate::daemon::reload_config(config_path, running);
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
}
