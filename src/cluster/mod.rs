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
//! This file is the thread; [`member`] is the lease the wheel, the workers and the store
//! thread read, [`owner`] the hashing (the CLI's too), [`join`] the join protocol.

mod clock;
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

    /// One heartbeat: the row written, dead nodes removed, the live ones read. Database
    /// errors are logged once per outage; the lease then runs out (see [`Self::renew_lease`]).
    fn beat(&mut self, state: &str) -> Beat {
        let started = Instant::now();
        let beat = nodes::Beat {
            state,
            owned: self.owned.len() as u64,
            rate: self.rate(),
            clock_offset_ms: self.clock.offset_ms(),
        };
        let dead_after_ms = self.config.dead_after.as_millis() as i64;
        let fence = self.member.fence();
        let steady = &mut self.steady;
        let mut reaped = Vec::new();
        let result = db::with_conn(&self.pool, |conn| {
            let alive = nodes::beat(conn, &fence, &beat)?;
            if !alive {
                return Ok(None);
            }
            if may_reap(steady, started) {
                reaped = nodes::reap(conn, &fence, dead_after_ms)?;
            }
            nodes::all(conn).map(Some)
        });
        for dead in &reaped {
            self.log_dead(dead);
        }
        match &result {
            Ok(_) => self.stats.db_write(true),
            Err(e) if e.class() != db::Class::Transient => self.stats.db_write(false),
            Err(_) => {}
        }
        match result {
            Ok(Some(rows)) => {
                self.back_from_outage();
                let mut live = live_names(&rows);
                // This node's row was just written: a value edited into it that does not
                // decode must not make the node hand every target away; unless it is blind
                // or its clock is off.
                let me = self.member.name();
                if state == "active" && !live.iter().any(|n| n == me) {
                    live.push(self.member.name().to_string());
                    live.sort();
                }
                self.stats.set_live_nodes(live.len() as u64);
                Beat::View(live)
            }
            Ok(None) => {
                self.back_from_outage();
                Beat::DeclaredDead
            }
            Err(e) if e.class() == db::Class::Transient => {
                // A lock wait or a Galera certification conflict: the next beat will do.
                log::debug!("cluster: heartbeat met a passing conflict, retrying: {e}");
                Beat::Failed
            }
            Err(e) => {
                if !self.outage_logged {
                    log::error!("cluster: cannot write the heartbeat, will retry: {e}");
                    self.outage_logged = true;
                }
                Beat::Failed
            }
        }
    }

    fn log_dead(&self, dead: &nodes::Dead) {
        let name = crate::base::text::printable(&dead.name);
        let secs = self.config.dead_after.as_secs();
        if dead.ahead {
            log::warn!(
                "cluster: node {name}'s heartbeat is more than {secs} s ahead of the database's \
                 clock (a hand edit, or a database host with a skewed clock): declared dead, \
                 its targets are taken over"
            );
        } else {
            log::warn!(
                "cluster: node {name} sent no heartbeat for {secs} s: declared dead, its \
                 targets are taken over"
            );
        }
    }

    /// A heartbeat while running: the clock measured, a new view adopted (and only then
    /// the lease renewed, so that the wheel has the removals first); a node declared dead
    /// joins again. True when the heartbeat got through.
    fn beat_active(&mut self, ports: &Ports) -> bool {
        let started = Instant::now();
        self.member.beating(Some(started));
        // A test freezes the node here: frozen mid-heartbeat, it must not take the heartbeat
        // for one that hangs on the database when it wakes.
        crate::base::fault::freeze("heartbeat");
        self.measure_clock();
        let blind = self.sight.blind();
        self.stats.set_blind(blind);
        let state = if self.clock.skewed() {
            "skewed"
        } else if blind {
            "blind"
        } else {
            "active"
        };
        let beat = self.beat(state);
        let got_through = !matches!(beat, Beat::Failed);
        match beat {
            Beat::View(live) => {
                self.adopt_view(live, ports);
                self.renew_lease(started);
            }
            Beat::DeclaredDead => self.rejoin(ports),
            Beat::Failed if self.live.len() <= 1 => {
                // Alone, and the database away: nobody else checks these targets.
                let until = Instant::now() + self.lease_span();
                self.member.lease(started, until, true);
            }
            Beat::Failed => {}
        }
        self.member.beating(None);
        got_through
    }

    /// Measures the clock against the database's and says what changed; a failed
    /// measurement keeps the last one (the heartbeat then says whether the database is away).
    fn measure_clock(&mut self) {
        // Through an outage the heartbeat alone finds when the database is back: a second
        // statement that hangs or times out would only make each beat longer.
        if self.outage_logged {
            return;
        }
        let Ok(offset) = clock::measure(&self.pool) else {
            return;
        };
        let change = self.clock.observe(offset);
        self.stats.set_clock(offset, self.clock.skewed());
        if let Some(change) = change {
            clock::log(change, offset, self.config.max_clock_skew);
        }
    }

    fn back_from_outage(&mut self) {
        if self.outage_logged {
            log::warn!("cluster: heartbeats get through again");
            self.outage_logged = false;
        }
    }

    /// The lease of a heartbeat that started at `started`, alone or not: a node frozen past
    /// it may have been declared dead, even one that was alone (a second one may have joined
    /// meanwhile), and dispatches nothing until its next heartbeat says what it owns.
    fn renew_lease(&self, started: Instant) {
        let alone = self.live.len() <= 1;
        self.member
            .lease(started, started + self.lease_span(), alone);
    }

    fn lease_span(&self) -> Duration {
        self.config.dead_after.saturating_sub(LEASE_MARGIN)
    }

    /// The others declared this node dead (it was frozen, or cut off from the database
    /// longer than `DeadAfter`) and took its targets: it drops them all and joins again.
    fn rejoin(&mut self, ports: &Ports) {
        log::error!(
            "cluster: this node ({}) was declared dead by the others (no heartbeat got through \
             for {} s) and its targets were taken over; joining again",
            self.member.name(),
            self.config.dead_after.as_secs()
        );
        self.member.revoke();
        let generation = self.member.next_generation();
        for id in self.owned.drain() {
            let _ = ports.wheel.send(Control::Remove(id));
            let _ = ports.writer.send(ToWriter::HandedOver { id, generation });
        }
        self.live = Vec::new();
        match join::join_again(&self.pool, self.member.name(), &self.config) {
            Ok(fence) => {
                self.member.set_epoch(fence.epoch);
                log::info!(
                    "cluster: joined again as node {} (epoch {})",
                    fence.node,
                    fence.epoch
                );
            }
            Err(e) => log::error!("cluster: {e}; trying again at the next heartbeat"),
        }
    }

    fn rate(&mut self) -> f64 {
        let checks = self.stats.checks();
        let (before, at) = self.last_checks;
        let secs = at.elapsed().as_secs_f64();
        self.last_checks = (checks, Instant::now());
        if secs <= 0.0 {
            return 0.0;
        }
        (checks.saturating_sub(before)) as f64 / secs
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

/// Whether a heartbeat that started at `started` and was written just now may declare other
/// nodes dead; the first of a hold says why not.
fn may_reap(steady: &mut steady::Steady, started: Instant) -> bool {
    match steady.judge(started, Instant::now()) {
        steady::Verdict::Reap => true,
        steady::Verdict::Wait => false,
        steady::Verdict::HeldUp(held) => {
            log::warn!(
                "cluster: no heartbeat of this node got through for {:.1} s (the database held \
                 its writes up, as a Galera cluster does while it decides that a node is gone, \
                 or was away): no node is declared dead for two heartbeats, until the others \
                 have beaten again",
                held.as_secs_f64()
            );
            false
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
