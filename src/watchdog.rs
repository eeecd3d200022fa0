//! systemd's service notifications and watchdog ("skypunch-watchdog"). Under a unit with
//! `WatchdogSec=`, systemd gives the daemon a socket (`NOTIFY_SOCKET`) and the period
//! (`WATCHDOG_USEC`), and kills and restarts it when no `WATCHDOG=1` arrives for that long.
//! The thread sends one every half period while the process passes the health test's part a
//! restart can mend ([`crate::health::process_fault`]: not stopping, no thread ended); a
//! frozen or hung process sends nothing. It also sends `READY=1` once the daemon runs (which
//! a `Type=notify` unit waits for) and `STOPPING=1` when the stop begins. Without
//! `NOTIFY_SOCKET` none of this happens.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use crossbeam_channel::select;

use crate::base::stats::Stats;
use crate::base::stop::Stop;
use crate::base::threads::Liveness;
use crate::health::{process_fault, Facts};

/// The socket systemd listens on for this service's notifications.
pub struct Notify {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notify {
    /// From `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace); `None` when the
    /// daemon does not run under systemd with notifications.
    pub fn from_env() -> Option<Notify> {
        let name = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())?;
        let addr = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
            None => SocketAddr::from_pathname(&name),
        };
        let made = addr.and_then(|addr| Ok((UnixDatagram::unbound()?, addr)));
        match made {
            Ok((socket, addr)) => Some(Notify { socket, addr }),
            Err(e) => {
                log::warn!("systemd: cannot use NOTIFY_SOCKET {name}: {e}");
                None
            }
        }
    }

    /// Sends one notification (`READY=1`, `WATCHDOG=1`, ...).
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(state.as_bytes(), &self.addr)
            .map(|_| ())
    }
}

/// Half of `WATCHDOG_USEC` when the watchdog is on for this process (`WATCHDOG_PID`, when
/// set, names it).
pub fn period() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// What the thread judges the process by.
pub struct Watched {
    pub stats: std::sync::Arc<Stats>,
    pub liveness: std::sync::Arc<Liveness>,
    pub stop: Stop,
    pub dead_after: Duration,
}

/// The thread body: `WATCHDOG=1` every `every` while the process is sound; a fault is logged
/// once, and the pings stop, so systemd restarts the daemon. Ends with the stop request.
pub fn run(notify: std::sync::Arc<Notify>, every: Duration, watched: Watched) {
    let mut fault_logged = false;
    loop {
        let facts = Facts::read(
            &watched.stats,
            &watched.liveness,
            &watched.stop,
            watched.dead_after,
        );
        match process_fault(&facts) {
            None => {
                if let Err(e) = notify.send("WATCHDOG=1") {
                    log::warn!("systemd: cannot send the watchdog ping: {e}");
                }
            }
            Some(fault) if !fault_logged => {
                log::error!(
                    "systemd: watchdog pings stop ({fault}); systemd will restart the daemon"
                );
                fault_logged = true;
            }
            Some(_) => {}
        }
        select! {
            recv(watched.stop.channel()) -> _ => return,
            default(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("skypunch-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let notify = Notify {
            socket: UnixDatagram::unbound().unwrap(),
            addr: SocketAddr::from_pathname(&path).unwrap(),
        };
        notify.send("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
