//! This node's membership as the pipeline sees it: its name, its epoch, the lease within
//! which it may start checks, and its ownership generation. The cluster thread writes it
//! after each heartbeat; the wheel and the workers read the lease before each dispatch and
//! each check (the wheel stamps each check with the generation), the store thread reads the
//! fence every result write is conditional on.
//!
//! A lone node has a lease too: frozen (a paused VM, SIGSTOP) while a second node joined and
//! declared it dead, it must not dispatch its backlog on waking before its heartbeat has told
//! it so. Only a heartbeat that hangs on the database, started within the lease, keeps a lone
//! node's lease alive while it runs (nobody else could take its targets through a database it
//! cannot reach either), and a failed one renews it. Neither counts across a stall: the wheel
//! ticks every 10 ms and notes a gap longer than the lease's span ([`Member::tick`]), which
//! voids every lease (and hanging heartbeat) begun before it, so a node frozen in the middle
//! of a heartbeat does not take that heartbeat for a slow database on waking.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    /// until the first heartbeat.
    lease_until: AtomicU64,
    /// The wheel found the lease run out (and logged it); cleared, and logged, once a
    /// heartbeat renews it.
    lapsed: AtomicBool,
    /// Milliseconds since `origin` when the heartbeat that granted the lease started.
    lease_from: AtomicU64,
    /// The wheel's last tick (ms since `origin`; `NONE`: none yet), and one more than the
    /// time of the last stall it noted (0: none).
    ticked: AtomicU64,
    stalled_at: AtomicU64,
    /// A gap between two ticks longer than this is a stall (ms): the lease's span.
    stall_limit: AtomicU64,
    /// Whether the last view had this node alone.
    alone: AtomicBool,
    /// Milliseconds since `origin` when the heartbeat running now started; `NONE`: none runs.
    beating_since: AtomicU64,
    /// Moved on (by one) each time targets change hands here: a check carries the value of
    /// its dispatch, and its result is dropped if its target was handed over at a later or
    /// equal generation (see `ToWriter::HandedOver`).
    generation: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl Member {
    pub(super) fn new(fence: Fence) -> Member {
        Member {
            name: fence.node,
            epoch: AtomicI64::new(fence.epoch),
            origin: Instant::now(),
            lease_until: AtomicU64::new(u64::MAX),
            lapsed: AtomicBool::new(false),
            lease_from: AtomicU64::new(0),
            ticked: AtomicU64::new(NONE),
            stalled_at: AtomicU64::new(0),
            stall_limit: AtomicU64::new(1000),
            alone: AtomicBool::new(true),
            beating_since: AtomicU64::new(NONE),
            generation: AtomicU64::new(0),
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

    /// Whether this node may start checks now: within the lease of its last heartbeat, or,
    /// alone, while a heartbeat started within it still waits for the database; neither if
    /// begun before the last stall.
    pub fn may_check(&self, now: Instant) -> bool {
        let until = self.lease_until.load(Ordering::Relaxed);
        if until == u64::MAX {
            return true;
        }
        let now = self.millis(now);
        let stalled = self.stalled_at.load(Ordering::Relaxed);
        if now < until && self.lease_from.load(Ordering::Relaxed) >= stalled {
            return true;
        }
        let since = self.beating_since.load(Ordering::Relaxed);
        // A reader that runs before the wheel's first tick after a freeze sees the stall as
        // the wheel's silence.
        let ticking = now.saturating_sub(self.ticked.load(Ordering::Relaxed))
            <= self.stall_limit.load(Ordering::Relaxed);
        self.alone.load(Ordering::Relaxed)
            && since != NONE
            && since < until
            && since >= stalled
            && ticking
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

    /// Whether this node's last view of the cluster had it alone: then no other node can
    /// have asked it anything (the confirm thread does not look for requests).
    pub fn alone(&self) -> bool {
        self.alone.load(Ordering::Relaxed)
    }

    /// Renews the lease granted by a heartbeat that started at `from` until `until`, the
    /// node `alone` in its view or not.
    pub(super) fn lease(&self, from: Instant, until: Instant, alone: bool) {
        self.alone.store(alone, Ordering::Relaxed);
        self.lease_from.store(self.millis(from), Ordering::Relaxed);
        self.lease_until
            .store(self.millis(until), Ordering::Relaxed);
    }

    /// The lease's span: a gap between the wheel's ticks longer than this is a stall.
    pub(super) fn set_stall_limit(&self, span: Duration) {
        let ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
        self.stall_limit.store(ms, Ordering::Relaxed);
    }

    /// The wheel's tick at `now`: a gap since the last one longer than the lease's span (the
    /// process was frozen, or the machine stalled) voids the leases begun before it.
    pub fn tick(&self, now: Instant) {
        let now = self.millis(now);
        let last = self.ticked.swap(now, Ordering::Relaxed);
        if last != NONE && now.saturating_sub(last) > self.stall_limit.load(Ordering::Relaxed) {
            self.stalled_at.fetch_max(now + 1, Ordering::Relaxed);
        }
    }

    /// A heartbeat starts at `at` (`None`: it ended).
    pub(super) fn beating(&self, at: Option<Instant>) {
        let value = at.map_or(NONE, |t| self.millis(t));
        self.beating_since.store(value, Ordering::Relaxed);
    }

    /// The ownership generation now, which the wheel stamps on each check it dispatches.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Moves the generation on, before targets change hands: returns the new value.
    pub(super) fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Ends the lease at once: the node starts nothing until it has joined again.
    pub(super) fn revoke(&self) {
        self.alone.store(false, Ordering::Relaxed);
        self.lease_until.store(0, Ordering::Relaxed);
    }

    fn millis(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_millis() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn member() -> Member {
        Member::new(Fence {
            node: "a".into(),
            epoch: 1,
        })
    }

    #[test]
    fn a_lease_allows_checks_until_it_runs_out() {
        let m = member();
        let now = Instant::now();
        assert!(
            m.may_check(now + Duration::from_secs(3600)),
            "no lease before the first heartbeat"
        );
        m.lease(now, now + Duration::from_secs(5), false);
        assert!(m.may_check(now));
        assert!(!m.may_check(now + Duration::from_secs(6)));
        m.revoke();
        assert!(!m.may_check(Instant::now()));
    }

    #[test]
    fn a_lone_nodes_lease_runs_out_unless_a_heartbeat_started_within_it_still_runs() {
        let m = member();
        let now = Instant::now();
        let s = Duration::from_secs;
        m.set_stall_limit(s(5));
        m.lease(now, now + s(5), true);
        assert!(!m.may_check(now + s(60)), "frozen for a minute");
        m.beating(Some(now + s(4)));
        let ticking = |at: Instant| {
            for n in 0..=at.duration_since(now).as_secs() {
                m.tick(now + s(n));
            }
        };
        ticking(now + s(30));
        assert!(m.may_check(now + s(30)), "the database hangs its heartbeat");
        m.beating(None);
        assert!(!m.may_check(now + s(30)));
        m.beating(Some(now + s(60)));
        ticking(now + s(61));
        assert!(
            !m.may_check(now + s(61)),
            "a heartbeat begun after waking does not count"
        );
        m.lease(now, now + s(5), false);
        m.beating(Some(now + s(4)));
        assert!(!m.may_check(now + s(30)), "not alone: the others take over");
    }

    #[test]
    fn a_freeze_in_the_middle_of_a_heartbeat_voids_it_and_the_lease() {
        let m = member();
        let now = Instant::now();
        let s = Duration::from_secs;
        m.set_stall_limit(s(2));
        m.lease(now, now + s(2), true);
        m.tick(now);
        m.beating(Some(now + Duration::from_millis(1500)));
        // Frozen from 1.5 s to 10 s: a worker that reads before the wheel ticks again...
        assert!(!m.may_check(now + s(10)), "the wheel is silent");
        m.tick(now + s(10));
        assert!(
            !m.may_check(now + s(10)),
            "the heartbeat began before the stall"
        );
        // ... and a lease a heartbeat begun before the stall renews after it is void too.
        m.beating(None);
        m.lease(now + Duration::from_millis(1500), now + s(12), true);
        assert!(!m.may_check(now + s(10)));
        let after = now + Duration::from_millis(10_010);
        m.lease(after, now + s(12), true);
        assert!(m.may_check(now + s(11)), "a heartbeat begun after waking");
    }

    #[test]
    fn the_generation_moves_on() {
        let m = member();
        assert_eq!(m.generation(), 0);
        assert_eq!(m.next_generation(), 1);
        assert_eq!(m.generation(), 1);
    }

    #[test]
    fn the_wheel_sees_the_lease_lapse_and_come_back_once_each() {
        let m = member();
        let now = Instant::now();
        let s = Duration::from_secs;
        m.set_stall_limit(s(5));
        m.lease(now, now + s(5), false);
        assert!(m.may_dispatch(now));
        assert!(!m.lapsed.load(Ordering::Relaxed));
        let late = now + s(6);
        assert!(!m.may_dispatch(late));
        assert!(!m.may_dispatch(late));
        assert!(m.lapsed.load(Ordering::Relaxed));
        m.lease(late, late + s(5), false);
        assert!(m.may_dispatch(late));
        assert!(!m.lapsed.load(Ordering::Relaxed));
    }
}
