//! The cluster thread ("skypunch-cluster"): this daemon's membership of the nodes sharing
//! the database, and which targets it checks. It stands between the loader and the wheel:
//! the loader tells it of every enabled target, and it passes on to the wheel only those this
//! node owns.
//!
//! - Membership: at start the node joins `nodes` with a new epoch (a live node of the same
//!   name is a start error). Every heartbeat (`DeadAfter` / 6) it writes its row, deletes the
//!   rows of nodes whose heartbeat is older than `DeadAfter`, and reads the live ones.
//! - Ownership: rendezvous hashing of the target id over the live nodes' names: each target
//!   belongs to the node with the highest hash, so a node that joins or leaves moves only its
//!   own share. One node alone owns everything.
//! - Judging: nobody is declared dead right after this node's own heartbeats were held up
//!   (a Galera view change holds every node's), see [`steady`].
//! - Fencing: the others delete a dead node's row before they take its targets, and every
//!   result transaction is conditional on its fence row and epoch (`db::nodes::hold_fence`),
//!   so a node that was frozen cannot write once declared dead. It cannot check either: the
//!   wheel dispatches only within the lease of the last heartbeat that got through (the
//!   heartbeat's start plus `DeadAfter` less a margin), unless the node was alone then.
//!   Waking up, its heartbeat finds its row gone: it joins again with a new epoch.
//! - Stop: the node marks itself `stopping` at once (the others take its targets within a
//!   heartbeat), keeps beating while the writer writes what it holds, then deletes its row.
//! - Blindness: while the node cannot reach its network (`base::sight`), it beats as
//!   `blind`: the others take its targets, as for a stop, until it sees again; blind nodes
//!   share the targets among themselves only when no node sees.
//! - Generations: every change of hands moves the node's ownership generation on
//!   ([`Member::generation`]); a target handed over is told to the writer with that
//!   generation, so a check dispatched before and ending after is dropped, not written.
//! - Clock: each heartbeat measures the node's clock against the database's ([`clock`]); a
//!   node past `[cluster] MaxClockSkew` beats as `skewed` and, while another node is live,
//!   checks nothing until it is back.
//!
//! This file is the thread and what it owns; [`heartbeat`] one heartbeat and what follows
//! from it, [`member`] the lease the wheel, the workers and the store thread read, [`owner`]
//! the hashing (the CLI's too), [`join`] the join protocol, [`clock`] the clock's offset from
//! the database's, [`steady`] when this node may declare others dead.

mod clock;
mod heartbeat;
mod join;
mod member;
mod owner;
mod steady;

pub use join::{join, Error as JoinError};
pub use member::Member;
pub use owner::{live_names, owner};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use crate::base::model::{Control, Target, TargetId, ToWriter};
use crate::base::sight::Sight;
use crate::base::stats::ClusterStats;
use crate::base::stop::{Feed, Stop};
use crate::config::ClusterConfig;
use crate::db::nodes;
use crate::db::{self, Pool};

/// Taken off the lease, for the time between the others' clock reading the heartbeat as
/// stale and this node's reading of its own.
const LEASE_MARGIN: Duration = Duration::from_millis(1000);

/// The cluster thread's channel ends.
pub struct Ports {
    /// Every enabled target, from the loader.
    pub targets: Receiver<Control>,
    /// The targets this node owns, to the wheel.
    pub wheel: Feed<Control>,
    /// Targets no longer owned here, for the writer to forget.
    pub writer: Sender<ToWriter>,
    pub stop: Stop,
    /// Disconnected once the writer has ended (its last writes done).
    pub pipeline_done: Receiver<()>,
}

/// What a heartbeat found.
enum Beat {
    /// The live nodes, sorted by name.
    View(Vec<String>),
    /// This node's row was gone: the others declared it dead.
    DeclaredDead,
    /// The database did not answer.
    Failed,
}

/// The cluster thread's state.
pub struct Cluster {
    pool: Pool,
    config: ClusterConfig,
    member: Arc<Member>,
    stats: ClusterStats,
    targets: HashMap<TargetId, Arc<Target>>,
    owned: HashSet<TargetId>,
    /// The live nodes' names, sorted: this node alone until a heartbeat says otherwise.
    live: Vec<String>,
    /// The view was logged once (a single node's never changes).
    announced: bool,
    outage_logged: bool,
    /// Checks counted at the previous heartbeat, for this node's checks per second.
    last_checks: (u64, Instant),
    /// The pace of this node's own heartbeats: whether it may declare others dead.
    steady: steady::Steady,
    /// The node's sight of its network: while it is blind, it beats as `blind` and checks
    /// none of its targets when another node can (see [`owner::live_names`]).
    sight: Arc<Sight>,
    /// The node's clock against the database's.
    clock: clock::Watch,
}

impl Cluster {
    pub fn new(
        pool: Pool,
        config: ClusterConfig,
        member: Arc<Member>,
        stats: ClusterStats,
    ) -> Cluster {
        let me = member.name().to_string();
        let every = config.heartbeat();
        let max_clock_skew = config.max_clock_skew;
        member.set_stall_limit(config.dead_after.saturating_sub(LEASE_MARGIN));
        Cluster {
            pool,
            config,
            member,
            stats,
            targets: HashMap::new(),
            owned: HashSet::new(),
            live: vec![me],
            announced: false,
            outage_logged: false,
            last_checks: (0, Instant::now()),
            steady: steady::Steady::new(every),
            sight: Arc::new(Sight::new(false).0),
            clock: clock::Watch::new(max_clock_skew),
        }
    }

    /// The node's sight, shared with the sight thread.
    pub fn with_sight(mut self, sight: Arc<Sight>) -> Cluster {
        self.sight = sight;
        self
    }

    fn owns(&self, id: TargetId) -> bool {
        owner(id, &self.live) == Some(self.member.name())
    }

    /// The share figures `/metrics` shows, after every change of them.
    fn publish(&self) {
        self.stats
            .set_share(self.targets.len() as u64, self.owned.len() as u64);
    }

    /// A target from the loader: kept, and passed on when it is this node's.
    fn take(&mut self, msg: Control, ports: &Ports) {
        self.take_one(msg, ports);
        self.publish();
    }

    fn take_one(&mut self, msg: Control, ports: &Ports) {
        match msg {
            Control::Upsert { target, first } => {
                let id = target.id;
                self.targets.insert(id, target.clone());
                if self.owns(id) {
                    if self.owned.insert(id) {
                        // Newer than any generation it was handed over at before.
                        self.member.next_generation();
                    }
                    let _ = ports.wheel.send(Control::Upsert { target, first });
                } else if self.owned.remove(&id) {
                    let generation = self.member.next_generation();
                    let _ = ports.wheel.send(Control::Remove(id));
                    let _ = ports.writer.send(ToWriter::HandedOver { id, generation });
                }
            }
            Control::Remove(id) => {
                self.targets.remove(&id);
                if self.owned.remove(&id) {
                    let _ = ports.wheel.send(Control::Remove(id));
                }
            }
        }
    }

    /// Takes a new set of live nodes: the targets that changed hands are added to or removed
    /// from the wheel. Added ones have their first check spread over their period.
    fn adopt_view(&mut self, live: Vec<String>, ports: &Ports) {
        if live == self.live && self.announced {
            return;
        }
        self.announced = true;
        self.live = live;
        let (mut gained, mut lost) = (Vec::new(), Vec::new());
        for &id in self.targets.keys() {
            match (self.owns(id), self.owned.contains(&id)) {
                (true, false) => gained.push(id),
                (false, true) => lost.push(id),
                _ => {}
            }
        }
        // Before anything is sent: a check the wheel dispatches of a target lost here,
        // before it reads the removal, carries at most this generation.
        let generation = if gained.is_empty() && lost.is_empty() {
            self.member.generation()
        } else {
            self.member.next_generation()
        };
        for &id in &lost {
            self.owned.remove(&id);
            let _ = ports.wheel.send(Control::Remove(id));
            let _ = ports.writer.send(ToWriter::HandedOver { id, generation });
        }
        for &id in &gained {
            self.owned.insert(id);
            let target = self.targets[&id].clone();
            let _ = ports.wheel.send(Control::Upsert {
                target,
                first: true,
            });
        }
        let (gained, lost) = (gained.len(), lost.len());
        self.publish();
        log::info!(
            "cluster: live nodes {}; this node checks {} of {} targets ({gained} taken over, \
             {lost} handed over)",
            self.live.join(", "),
            self.owned.len(),
            self.targets.len()
        );
    }

    /// The last part of a stop: beats as `stopping` (so the others take the targets now)
    /// until the writer has written what it held, then leaves the table. While the database
    /// is away, or when the stop deadline is too near for a statement that may hang for
    /// `read_timeout`, it leaves the row for the others to remove after `DeadAfter`.
    fn leave(&mut self, pipeline_done: &Receiver<()>, stop: &Stop, read_timeout: Duration) {
        let every = self.config.heartbeat();
        let has_time = |stop: &Stop| stop.time_left().is_none_or(|left| left > read_timeout);
        loop {
            if !self.outage_logged && has_time(stop) {
                self.beat("stopping");
            }
            select! {
                recv(pipeline_done) -> _ => break,
                default(every) => {}
            }
        }
        let fence = self.member.fence();
        if self.outage_logged || !has_time(stop) {
            log::warn!(
                "cluster: node {} leaves its row for the others to remove after DeadAfter \
                 (the database is away or the stop deadline is near)",
                fence.node
            );
            return;
        }
        match db::with_conn(&self.pool, |conn| nodes::leave(conn, &fence)) {
            Ok(()) => log::info!("cluster: node {} left", fence.node),
            Err(e) => log::warn!(
                "cluster: could not remove this node's row ({e}); the others remove it after \
                 DeadAfter"
            ),
        }
    }
}

/// The thread body: targets from the loader as they come, a heartbeat every interval, until
/// the stop request; then the hand-over.
pub fn run(mut cluster: Cluster, ports: Ports, read_timeout: Duration) {
    let every = cluster.config.heartbeat();
    // A heartbeat that did not get through is tried again sooner: the lease runs on, and
    // the database may be back (or the pool on another host) by then.
    let retry = (every / 4).max(Duration::from_millis(250));
    let after = |ok: bool| Instant::now() + if ok { every } else { retry };
    let mut next = after(cluster.beat_active(&ports));
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        select! {
            recv(ports.targets) -> msg => match msg {
                Ok(msg) => cluster.take(msg, &ports),
                Err(_) => break,
            },
            recv(ports.stop.channel()) -> _ => break,
            default(wait) => {}
        }
        if Instant::now() >= next {
            crate::base::fault::point("cluster");
            next = after(cluster.beat_active(&ports));
        }
    }
    // The writer ends once every sender of results is gone: this one goes first.
    let Ports {
        pipeline_done,
        writer,
        wheel,
        stop,
        ..
    } = ports;
    drop((writer, wheel));
    cluster.leave(&pipeline_done, &stop, read_timeout);
}
