//! Fault injection for the test suite, compiled only with the cargo feature
//! `fault-injection` (which `scripts/test` turns on): a build without it has no switch an
//! operator could trip, and [`point`] is an empty function.
//!
//! With the feature, each pipeline thread calls [`point`] with its role once per round. When
//! the folder named by `SKYPUNCH_FAULT_DIR` holds a file `panic-<role>`, the first thread of
//! that role to pass removes it and panics, so a test can kill exactly one thread at the
//! moment it chooses. A file `freeze-<role>` makes the thread that passes [`freeze`] stop
//! the whole process (SIGSTOP) there, as a paused VM would: the test then sees what a node
//! frozen at that exact step (say, inside a result transaction) does to the others. A file
//! `hold-<role>` makes the thread that passes [`hold`] wait there for as long as the file
//! exists (or until its stop): a step that takes as long as the test wants, such as a prune
//! of millions of rows.
//! `nospawn-<thread name>` makes that thread fail to start ([`spawn_refused`]), as at the
//! system's limit on threads, to fail a start once other threads run.
//! `blind` makes the node blind for as long as the file exists ([`blind`]): every check's
//! connection and every probe of `[settings] Connectivity` fails with "network is
//! unreachable", as when the node's own uplink is down.
//! `clock-shift` holding a number of milliseconds (negative: behind) shifts the node's clock
//! as the cluster thread reads it against the database's ([`clock_shift_ms`]), for as long as
//! the file exists: a node whose clock is off, which a test cannot make of the system clock.

#[cfg(feature = "fault-injection")]
pub fn point(role: &str) {
    if triggered("panic", role) {
        panic!("fault injected by the test suite into the {role} thread");
    }
}

/// Whether the test asked for fault `kind` at `role` (the file `<kind>-<role>` in
/// `SKYPUNCH_FAULT_DIR`); the first caller to see the file takes it away.
#[cfg(feature = "fault-injection")]
fn triggered(kind: &str, role: &str) -> bool {
    std::env::var_os("SKYPUNCH_FAULT_DIR").is_some_and(|dir| {
        let trigger = std::path::Path::new(&dir).join(format!("{kind}-{role}"));
        std::fs::remove_file(trigger).is_ok()
    })
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_role: &str) {}

#[cfg(feature = "fault-injection")]
pub fn freeze(role: &str) {
    if triggered("freeze", role) {
        // SAFETY: raise() only sends a signal to this process.
        unsafe {
            libc::raise(libc::SIGSTOP);
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn freeze(_role: &str) {}

/// Waits while the file `hold-<role>` exists in `SKYPUNCH_FAULT_DIR` and `keep_going` holds,
/// looking every 20 ms.
#[cfg(feature = "fault-injection")]
pub fn hold(role: &str, keep_going: &dyn Fn() -> bool) {
    let Some(dir) = std::env::var_os("SKYPUNCH_FAULT_DIR") else {
        return;
    };
    let trigger = std::path::Path::new(&dir).join(format!("hold-{role}"));
    while trigger.exists() && keep_going() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether the thread `name` must fail to start (the file `nospawn-<name>`).
#[cfg(feature = "fault-injection")]
pub fn spawn_refused(name: &str) -> bool {
    triggered("nospawn", name)
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn hold(_role: &str, _keep_going: &dyn Fn() -> bool) {}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn spawn_refused(_name: &str) -> bool {
    false
}

/// Whether the node is to be blind now (the file `blind`, left in place).
#[cfg(feature = "fault-injection")]
pub fn blind() -> bool {
    std::env::var_os("SKYPUNCH_FAULT_DIR")
        .is_some_and(|dir| std::path::Path::new(&dir).join("blind").exists())
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn blind() -> bool {
    false
}

/// The shift of the node's clock reading, in ms (the file `clock-shift`, left in place; 0
/// without it or when it does not read as a number).
#[cfg(feature = "fault-injection")]
pub fn clock_shift_ms() -> i64 {
    std::env::var_os("SKYPUNCH_FAULT_DIR")
        .and_then(|dir| {
            std::fs::read_to_string(std::path::Path::new(&dir).join("clock-shift")).ok()
        })
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn clock_shift_ms() -> i64 {
    0
}
