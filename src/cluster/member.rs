//! This node's membership as the pipeline sees it: its name, its epoch, and the lease within
//! which it may start checks. The cluster thread writes it after each heartbeat; the wheel and
//! the workers read the lease before each dispatch and each check, the store thread reads the
//! fence every result write is conditional on.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use crate::db::nodes::Fence;

/// What the cluster thread shares with the wheel, the workers and the store thread, as one
/// `Arc<Member>`: atomics only, so a reader never waits for a heartbeat.
#[derive(Debug)]
pub struct Member {
    /// `[cluster] NodeName`: fixed for the life of the process.
    name: String,
    /// Changes each time the node joins again after being declared dead.
    epoch: AtomicI64,
    origin: Instant,
    /// Milliseconds since `origin` until which this node may dispatch checks; `u64::MAX`
    /// while it is the only live node.
    lease_until: AtomicU64,
    /// The wheel found the lease run out (and logged it); cleared, and logged, once a
    /// heartbeat renews it.
    lapsed: AtomicBool,
}

impl Member {
    pub(super) fn new(fence: Fence) -> Member {
        Member {
            name: fence.node,
            epoch: AtomicI64::new(fence.epoch),
            origin: Instant::now(),
            lease_until: AtomicU64::new(u64::MAX),
            lapsed: AtomicBool::new(false),
        }
    }

    /// The name and epoch every result write is conditional on.
    pub fn fence(&self) -> Fence {
        Fence {
            node: self.name.clone(),
            epoch: self.epoch.load(Ordering::Relaxed),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn set_epoch(&self, epoch: i64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Whether this node may start checks now: within the lease of its last heartbeat.
    pub fn may_check(&self, now: Instant) -> bool {
        let until = self.lease_until.load(Ordering::Relaxed);
        until == u64::MAX || self.millis(now) < until
    }

    /// [`Member::may_check`] for the wheel, which asks once a tick: the operator is told when
    /// the lease runs out (a heartbeat did not get through: the database is away, or a Galera
    /// node out of its cluster's primary component) and when a heartbeat renews it.
    pub fn may_dispatch(&self, now: Instant) -> bool {
        let may = self.may_check(now);
        if self.lapsed.swap(!may, Ordering::Relaxed) == may {
            if may {
                log::warn!("cluster: a heartbeat got through: this node checks its targets again");
            } else {
                log::error!(
                    "cluster: no heartbeat of this node got through within its lease \
                     (DeadAfter less 1 s): this node starts no checks until one does; the \
                     other nodes take its targets over"
                );
            }
        }
        may
    }

    /// Renews the lease until `until`; `None`: no lease needed (the node is alone).
    pub(super) fn lease(&self, until: Option<Instant>) {
        let value = until.map_or(u64::MAX, |t| self.millis(t));
        self.lease_until.store(value, Ordering::Relaxed);
    }

    /// Ends the lease at once: the node starts nothing until it has joined again.
    pub(super) fn revoke(&self) {
        self.lease(Some(self.origin));
    }

    fn millis(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lease_allows_checks_until_it_runs_out() {
        let m = Member::new(Fence {
            node: "a".into(),
            epoch: 1,
        });
        let now = Instant::now();
        assert!(
            m.may_check(now + Duration::from_secs(3600)),
            "alone: no lease"
        );
        m.lease(Some(now + Duration::from_secs(5)));
        assert!(m.may_check(now));
        assert!(!m.may_check(now + Duration::from_secs(6)));
        m.revoke();
        assert!(!m.may_check(Instant::now()));
    }

    #[test]
    fn the_wheel_sees_the_lease_lapse_and_come_back_once_each() {
        let m = Member::new(Fence {
            node: "a".into(),
            epoch: 1,
        });
        let now = Instant::now();
        m.lease(Some(now + Duration::from_secs(5)));
        assert!(m.may_dispatch(now));
        assert!(!m.lapsed.load(Ordering::Relaxed));
        let late = now + Duration::from_secs(6);
        assert!(!m.may_dispatch(late));
        assert!(!m.may_dispatch(late));
        assert!(m.lapsed.load(Ordering::Relaxed));
        m.lease(Some(late + Duration::from_secs(5)));
        assert!(m.may_dispatch(late));
        assert!(!m.lapsed.load(Ordering::Relaxed));
    }
}
