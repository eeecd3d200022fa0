//! Pipeline threads that cannot die unseen. The [`Supervisor`] holds the one channel on which
//! every supervised thread reports its end (normal return or panic); the main thread waits on
//! it beside the signals, so a dead writer or wheel stops the daemon (exit 70) instead of
//! leaving a process that runs and checks nothing. Threads are started in [`Group`]s, one per
//! stage, which hold their join handles, so whoever owns the groups (the daemon's pipeline)
//! joins each stage in its turn. [`install_panic_hook`] puts every panic's thread, message and
//! location in the log, since a daemon's stderr goes nowhere.

use std::fmt;
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

/// A thread could not be started (the system's limit on threads or memory).
#[derive(Debug)]
pub struct SpawnError {
    name: String,
    source: std::io::Error,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot start thread {}: {}", self.name, self.source)
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The channel on which supervised threads report their end, and the names of those that
/// ended. One per daemon, on the main thread; its [`Group`]s start the threads.
pub struct Supervisor {
    tx: Sender<Ended>,
    rx: Receiver<Ended>,
    liveness: Arc<Liveness>,
}

impl Default for Supervisor {
    fn default() -> Self {
        // Unbounded, and yet bounded: each thread sends one end, once.
        let (tx, rx) = unbounded();
        Supervisor {
            tx,
            rx,
            liveness: Arc::default(),
        }
    }
}

impl Supervisor {
    /// A new, empty group of threads reporting here.
    pub fn group(&self) -> Group {
        Group {
            tx: self.tx.clone(),
            liveness: self.liveness.clone(),
            running: Vec::new(),
        }
    }

    /// The names of the threads that ended, shared.
    pub fn liveness(&self) -> Arc<Liveness> {
        self.liveness.clone()
    }

    /// Where ends are reported.
    pub fn ended(&self) -> &Receiver<Ended> {
        &self.rx
    }
}

/// One stage's threads, by name, with their join handles. Dropping a group leaves the
/// threads it still holds running, detached: its owner joins them first, within a bound
/// ([`Group::reap`] on each end reported).
pub struct Group {
    tx: Sender<Ended>,
    liveness: Arc<Liveness>,
    running: Vec<(String, JoinHandle<()>)>,
}

impl Group {
    /// Starts a named thread (`stack` bytes of stack when given). A failure to start one is
    /// an error for the caller to report: the daemon is not running as configured.
    pub fn spawn(
        &mut self,
        name: &str,
        stack: Option<usize>,
        body: impl FnOnce() + Send + 'static,
    ) -> Result<(), SpawnError> {
        if crate::base::fault::spawn_refused(name) {
            return Err(SpawnError {
                name: name.to_string(),
                source: std::io::Error::from_raw_os_error(libc::EAGAIN),
            });
        }
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
            .map_err(|source| SpawnError {
                name: name.to_string(),
                source,
            })?;
        self.running.push((name.to_string(), handle));
        Ok(())
    }

    /// Joins the thread whose end was reported, if it is one of this group's; true if it
    /// was. The thread has returned from its body by then, so the join takes no time.
    pub fn reap(&mut self, ended: &Ended) -> bool {
        let Some(i) = self.running.iter().position(|(n, _)| *n == ended.name) else {
            return false;
        };
        let (_, handle) = self.running.swap_remove(i);
        let _ = handle.join();
        true
    }

    /// The threads that have not ended, by name.
    pub fn running(&self) -> impl Iterator<Item = &str> {
        self.running.iter().map(|(n, _)| n.as_str())
    }

    /// Whether every thread of the group has ended (or none was started).
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
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
    fn an_end_and_a_panic_are_both_reported_and_each_group_joins_its_own() {
        let supervisor = Supervisor::default();
        let (mut one, mut two) = (supervisor.group(), supervisor.group());
        one.spawn("quiet", None, || {}).unwrap();
        two.spawn("bad", None, || panic!("on purpose")).unwrap();
        let mut ends = vec![
            supervisor.ended().recv().unwrap(),
            supervisor.ended().recv().unwrap(),
        ];
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
        assert!(!one.reap(&ends[0]), "not one's thread");
        assert!(two.reap(&ends[0]));
        assert!(one.reap(&ends[1]));
        assert!(one.is_empty() && two.is_empty());
        let mut ended = supervisor.liveness().ended();
        ended.sort();
        assert_eq!(ended, ["bad", "quiet"]);
    }

    #[test]
    fn a_thread_that_cannot_start_says_which() {
        let e = SpawnError {
            name: "skypunch-wheel".into(),
            source: std::io::Error::from_raw_os_error(libc::EAGAIN),
        };
        assert!(
            e.to_string()
                .starts_with("cannot start thread skypunch-wheel: Resource temporarily"),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
