//! Pipeline threads that cannot die unseen. [`Supervisor::spawn`] starts a named thread that
//! reports its end (normal return or panic) on a channel the main thread waits on beside the
//! signals, so a dead writer or wheel stops the daemon (exit 70) instead of leaving a process
//! that runs and checks nothing. [`install_panic_hook`] puts every panic's thread, message
//! and location in the log, since a daemon's stderr goes nowhere.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{unbounded, Receiver, Sender};

/// A pipeline thread has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub name: String,
    pub panicked: bool,
}

/// The names of the supervised threads that have ended, for `/healthz`. Shared as an `Arc`
/// between the supervisor, every supervised thread (which adds its name as it ends) and the
/// HTTP server; the lock is held only to push or copy a few names.
#[derive(Default)]
pub struct Liveness {
    ended: Mutex<Vec<String>>,
}

impl Liveness {
    /// The threads that ended so far, by name.
    pub fn ended(&self) -> Vec<String> {
        self.ended.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Sends [`Ended`] when the thread's body returns or unwinds.
struct EndGuard {
    name: String,
    tx: Sender<Ended>,
    liveness: Arc<Liveness>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if let Ok(mut ended) = self.liveness.ended.lock() {
            ended.push(self.name.clone());
        }
        let _ = self.tx.send(Ended {
            name: std::mem::take(&mut self.name),
            panicked: std::thread::panicking(),
        });
    }
}

/// The pipeline's threads, by name, and the channel on which they report their end.
pub struct Supervisor {
    tx: Sender<Ended>,
    rx: Receiver<Ended>,
    running: Vec<(String, JoinHandle<()>)>,
    liveness: Arc<Liveness>,
}

impl Default for Supervisor {
    fn default() -> Self {
        let (tx, rx) = unbounded();
        Supervisor {
            tx,
            rx,
            running: Vec::new(),
            liveness: Arc::default(),
        }
    }
}

impl Supervisor {
    /// Starts a named thread (`stack` bytes of stack when given). A failure to start one is
    /// an error for the caller to report: the daemon is not running as configured.
    pub fn spawn(
        &mut self,
        name: &str,
        stack: Option<usize>,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<(), String> {
        let guard = EndGuard {
            name: name.to_string(),
            tx: self.tx.clone(),
            liveness: self.liveness.clone(),
        };
        let mut builder = std::thread::Builder::new().name(name.to_string());
        if let Some(bytes) = stack {
            builder = builder.stack_size(bytes);
        }
        let handle = builder
            .spawn(move || {
                let _guard = guard;
                body();
            })
            .map_err(|e| format!("cannot start thread {name}: {e}"))?;
        self.running.push((name.to_string(), handle));
        Ok(())
    }

    /// The names of the threads that ended, shared.
    pub fn liveness(&self) -> Arc<Liveness> {
        self.liveness.clone()
    }

    /// Where ends are reported.
    pub fn ended(&self) -> &Receiver<Ended> {
        &self.rx
    }

    /// Takes note of an end reported on [`Self::ended`] and joins that thread.
    pub fn reap(&mut self, ended: &Ended) {
        if let Some(i) = self.running.iter().position(|(n, _)| *n == ended.name) {
            let (_, handle) = self.running.swap_remove(i);
            let _ = handle.join();
        }
    }

    /// The threads that have not ended, by name.
    pub fn running(&self) -> Vec<&str> {
        self.running.iter().map(|(n, _)| n.as_str()).collect()
    }

    pub fn is_running(&self, name: &str) -> bool {
        self.running.iter().any(|(n, _)| n == name)
    }
}

/// Logs every panic (thread name, message, location) before the default hook prints it to
/// stderr. Workers and the notifier catch a panic in one check or pass and go on; the
/// supervisor hears of any other.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let place = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_else(|| "an unknown place".into());
        log::error!("thread {name} panicked at {place}: {message}");
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_and_a_panic_are_both_reported() {
        let mut s = Supervisor::default();
        s.spawn("quiet", None, || {}).unwrap();
        s.spawn("bad", None, || panic!("on purpose")).unwrap();
        let mut ends = vec![s.ended().recv().unwrap(), s.ended().recv().unwrap()];
        ends.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            ends,
            vec![
                Ended {
                    name: "bad".into(),
                    panicked: true
                },
                Ended {
                    name: "quiet".into(),
                    panicked: false
                }
            ]
        );
        for e in &ends {
            s.reap(e);
        }
        assert!(s.running().is_empty());
    }
}
