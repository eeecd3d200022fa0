//! Signals: SIGTERM and SIGINT stop the daemon, SIGHUP reopens the log file and re-reads the
//! configuration. signal-hook turns them into an iterator, so no code runs inside a signal
//! handler. The handlers are installed before the daemon connects to its database, so a
//! `stop` during a long start-up (`--wait`) is not lost; once the pipeline runs, a small
//! thread ("skypunch-signals") forwards them on a channel, so that the main thread waits on
//! signals and on the pipeline threads' ends at once and acts on what it receives.

use crossbeam_channel::{unbounded, Receiver};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Handle;

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT, by name.
    Stop(&'static str),
    /// SIGHUP.
    Reload,
}

fn meaning(signal: i32) -> Option<Signal> {
    match signal {
        SIGHUP => Some(Signal::Reload),
        SIGTERM => Some(Signal::Stop("SIGTERM")),
        SIGINT => Some(Signal::Stop("SIGINT")),
        _ => None,
    }
}

/// The registered handlers, before the pipeline runs.
pub struct Signals(signal_hook::iterator::Signals);

/// The handlers once forwarded; dropping this ends the forwarding thread.
pub struct Forwarded {
    rx: Receiver<Signal>,
    handle: Handle,
}

impl Signals {
    /// Registers the handlers; do this before starting threads, so no signal is missed.
    pub fn new() -> Result<Signals, String> {
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
            .map(Signals)
            .map_err(|e| format!("cannot install signal handlers: {e}"))
    }

    /// For start-up, before the pipeline runs: the signals that arrived since the last look.
    pub fn pending(&mut self) -> Vec<Signal> {
        self.0.pending().filter_map(meaning).collect()
    }

    /// Starts the thread that forwards every signal to [`Forwarded::channel`].
    pub fn forward(mut self) -> Result<Forwarded, String> {
        let (tx, rx) = unbounded();
        let handle = self.0.handle();
        std::thread::Builder::new()
            .name("skypunch-signals".into())
            .spawn(move || {
                for signal in self.0.forever().filter_map(meaning) {
                    if tx.send(signal).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start thread skypunch-signals: {e}"))?;
        Ok(Forwarded { rx, handle })
    }
}

impl Forwarded {
    pub fn channel(&self) -> &Receiver<Signal> {
        &self.rx
    }
}

impl Drop for Forwarded {
    fn drop(&mut self) {
        self.handle.close();
    }
}
