//! The daemon's health, as `/healthz` and systemd's watchdog judge it.
//!
//! Healthy means: no stop under way, every supervised thread alive, and the last database
//! write (the cluster heartbeat, made every `DeadAfter` / 6 and at most every 2 s, or a batch
//! of results) succeeded less than `[cluster] DeadAfter` ago, with no write failed for an
//! outage since. A node whose writes fail that long is also the one the others declare dead.
//! The watchdog looks only at the process's part ([`process_fault`]): restarting the daemon
//! cannot bring a database back, and would throw away the results held for it.

use std::time::Duration;

use crate::base::stats::Stats;
use crate::base::stop::Stop;
use crate::base::threads::Liveness;

/// What the verdict is made of, read from the shared state at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub now_ms: u64,
    pub stopping: bool,
    pub ended: Vec<String>,
    pub db_ok_ms: u64,
    pub db_failed_ms: u64,
    pub bound_ms: u64,
    pub unwritten: u64,
}

impl Facts {
    /// The facts now; `bound` is `[cluster] DeadAfter`.
    pub fn read(stats: &Stats, liveness: &Liveness, stop: &Stop, bound: Duration) -> Facts {
        Facts {
            now_ms: chrono::Utc::now().timestamp_millis().max(0) as u64,
            stopping: stop.requested(),
            ended: liveness.ended(),
            db_ok_ms: stats.db_ok_ms(),
            db_failed_ms: stats.db_failed_ms(),
            bound_ms: bound.as_millis() as u64,
            unwritten: stats.unwritten(),
        }
    }

    /// Whether the database took the daemon's writes lately.
    pub fn database_up(&self) -> bool {
        self.db_ok_ms > 0
            && self.db_failed_ms <= self.db_ok_ms
            && self.now_ms.saturating_sub(self.db_ok_ms) < self.bound_ms
    }
}

/// What is wrong with the process itself (stopping, a thread ended): the part of the
/// verdict a restart can mend, which systemd's watchdog acts on.
pub fn process_fault(f: &Facts) -> Option<String> {
    if f.stopping {
        return Some("stopping".into());
    }
    if !f.ended.is_empty() {
        return Some(format!("thread ended: {}", f.ended.join(", ")));
    }
    None
}

/// Healthy or not, and why, in one line.
pub fn verdict(f: &Facts) -> (bool, String) {
    if let Some(fault) = process_fault(f) {
        return (false, fault);
    }
    if !f.database_up() {
        let ago = if f.db_ok_ms == 0 {
            "no database write has succeeded yet".to_string()
        } else {
            format!(
                "the last database write succeeded {:.1} s ago",
                f.now_ms.saturating_sub(f.db_ok_ms) as f64 / 1000.0
            )
        };
        return (
            false,
            format!("database not written: {ago}; {} checks held", f.unwritten),
        );
    }
    let ago = f.now_ms.saturating_sub(f.db_ok_ms) as f64 / 1000.0;
    (
        true,
        format!(
            "ok: every thread alive, last database write {ago:.1} s ago, {} checks unwritten",
            f.unwritten
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            now_ms: 100_000,
            stopping: false,
            ended: Vec::new(),
            db_ok_ms: 99_000,
            db_failed_ms: 0,
            bound_ms: 6_000,
            unwritten: 0,
        }
    }

    #[test]
    fn healthy_when_alive_and_written_lately() {
        let (ok, why) = verdict(&facts());
        assert!(ok, "{why}");
        assert!(why.starts_with("ok: "), "{why}");
    }

    #[test]
    fn each_fault_is_named() {
        let cases = [
            (
                Facts {
                    stopping: true,
                    ..facts()
                },
                "stopping",
            ),
            (
                Facts {
                    ended: vec!["skypunch-writer".into()],
                    ..facts()
                },
                "thread ended: skypunch-writer",
            ),
            (
                Facts {
                    db_ok_ms: 90_000,
                    ..facts()
                },
                "succeeded 10.0 s ago",
            ),
            (
                Facts {
                    db_failed_ms: 99_500,
                    ..facts()
                },
                "database not written",
            ),
            (
                Facts {
                    db_ok_ms: 0,
                    ..facts()
                },
                "no database write has succeeded yet",
            ),
        ];
        for (f, text) in cases {
            let (ok, why) = verdict(&f);
            assert!(!ok && why.contains(text), "{why}");
        }
    }

    #[test]
    fn the_watchdog_ignores_the_database() {
        let down = Facts {
            db_ok_ms: 0,
            ..facts()
        };
        assert_eq!(process_fault(&down), None);
        let dead = Facts {
            ended: vec!["skypunch-wheel".into()],
            ..down
        };
        assert_eq!(
            process_fault(&dead).unwrap(),
            "thread ended: skypunch-wheel"
        );
    }
}
