//! `/healthz`: 200 when the daemon works, 503 when it does not, with a one-line reason.
//!
//! Healthy means: no stop under way, every supervised thread alive, and the last database
//! write (the cluster heartbeat, made every `DeadAfter` / 6 and at most every 2 s, or a batch
//! of results) succeeded less than `[cluster] DeadAfter` ago, with no write failed for an
//! outage since. A node whose writes fail that long is also the one the others declare dead.

use std::sync::atomic::Ordering::Relaxed;

use super::server::Answer;
use super::Shared;

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
    pub fn read(shared: &Shared) -> Facts {
        let s = &shared.stats;
        Facts {
            now_ms: chrono::Utc::now().timestamp_millis().max(0) as u64,
            stopping: shared.stop.requested(),
            ended: shared.liveness.ended(),
            db_ok_ms: s.db_ok_ms.load(Relaxed),
            db_failed_ms: s.db_failed_ms.load(Relaxed),
            bound_ms: shared.config.cluster.dead_after.as_millis() as u64,
            unwritten: s.unwritten(),
        }
    }

    /// Whether the database took the daemon's writes lately.
    pub fn database_up(&self) -> bool {
        self.db_ok_ms > 0
            && self.db_failed_ms <= self.db_ok_ms
            && self.now_ms.saturating_sub(self.db_ok_ms) < self.bound_ms
    }
}

/// Healthy or not, and why, in one line.
pub fn verdict(f: &Facts) -> (bool, String) {
    if f.stopping {
        return (false, "stopping".into());
    }
    if !f.ended.is_empty() {
        return (false, format!("thread ended: {}", f.ended.join(", ")));
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

pub fn answer(shared: &Shared) -> Answer {
    let (ok, reason) = verdict(&Facts::read(shared));
    Answer::text(if ok { 200 } else { 503 }, &format!("{reason}\n"))
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
}
