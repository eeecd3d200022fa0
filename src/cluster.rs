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
//! - Fencing: the others delete a dead node's row before they take its targets, and every
//!   result transaction is conditional on its fence row and epoch (`db::nodes::hold_fence`),
//!   so a node that was frozen cannot write once declared dead. It cannot check either: the
//!   wheel dispatches only within the lease of the last heartbeat that got through (the
//!   heartbeat's start plus `DeadAfter` less a margin), unless the node was alone then.
//!   Waking up, its heartbeat finds its row gone: it joins again with a new epoch.
//! - Stop: the node marks itself `stopping` at once (the others take its targets within a
//!   heartbeat), keeps beating while the writer writes what it holds, then deletes its row.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use crate::base::model::{Control, Target, TargetId, ToWriter};
use crate::base::stats::Stats;
use crate::base::stop::Stop;
use crate::config::ClusterConfig;
use crate::db::nodes::{self, Fence, JoinError, Joining, NodeRow};
use crate::db::{self, Pool};

/// Taken off the lease, for the time between the others' clock reading the heartbeat as
/// stale and this node's reading of its own.
const LEASE_MARGIN: Duration = Duration::from_millis(1000);

/// What the cluster thread shares with the wheel and the store thread.
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
}

impl Member {
    fn new(fence: Fence) -> Member {
        Member {
            name: fence.node,
            epoch: AtomicI64::new(fence.epoch),
            origin: Instant::now(),
            lease_until: AtomicU64::new(u64::MAX),
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

    fn set_epoch(&self, epoch: i64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Whether this node may start checks now: within the lease of its last heartbeat.
    pub fn may_check(&self, now: Instant) -> bool {
        let until = self.lease_until.load(Ordering::Relaxed);
        until == u64::MAX || self.millis(now) < until
    }

    fn lease(&self, until: Option<Instant>) {
        let value = until.map_or(u64::MAX, |t| self.millis(t));
        self.lease_until.store(value, Ordering::Relaxed);
    }

    fn millis(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_millis() as u64
    }
}

/// Joins the cluster for a daemon that starts: the row in `nodes`, with a new epoch. An error
/// when a live node has the same name.
pub fn join(pool: &Pool, config: &ClusterConfig) -> Result<Arc<Member>, String> {
    let fence = Fence {
        node: config.node_name(),
        epoch: new_epoch(),
    };
    let mut conn = db::checkout(pool).map_err(|e| e.to_string())?;
    join_as(&mut conn, &fence, config, false).map_err(join_error)?;
    log::info!(
        "cluster: joined as node {} (epoch {})",
        fence.node,
        fence.epoch
    );
    Ok(Arc::new(Member::new(fence)))
}

/// What an operator is told when joining fails.
fn join_error(e: JoinError) -> String {
    match e {
        JoinError::NameTaken(row) => format!(
            "node name {} is in use by a live skypunch on {} (pid {}, heartbeat {} ms ago): \
             give this one another [cluster] NodeName",
            row.name, row.host, row.pid, row.heartbeat_age_ms
        ),
        JoinError::Db(e) => format!("cannot join the cluster: {e}"),
    }
}

/// Joins with `fence`. A row of the same name left by a process of this host that is gone
/// (a daemon killed and restarted within `DeadAfter`) is taken over; `again` takes over this
/// process's own old row too (after it was declared dead).
fn join_as(
    conn: &mut db::Conn,
    fence: &Fence,
    config: &ClusterConfig,
    again: bool,
) -> Result<(), JoinError> {
    let host = crate::base::os::host_name();
    let me = Joining {
        fence,
        host: &host,
        pid: std::process::id(),
        version: crate::base::version::VERSION,
    };
    let dead_after_ms = config.dead_after.as_millis() as i64;
    match join_retrying(conn, &me, dead_after_ms, None) {
        Err(JoinError::NameTaken(row))
            if row.host == host && (again && row.pid == me.pid || !pid_alive(row.pid)) =>
        {
            join_retrying(conn, &me, dead_after_ms, Some(row.epoch))
        }
        other => other,
    }
}

/// [`nodes::join`], tried again after a passing conflict: daemons starting at the same moment
/// deadlock on the table's gap locks (error 1213), and one of them is told to retry.
fn join_retrying(
    conn: &mut db::Conn,
    me: &Joining,
    dead_after_ms: i64,
    replace: Option<i64>,
) -> Result<(), JoinError> {
    let mut tries = 0;
    loop {
        match nodes::join(conn, me, dead_after_ms, replace) {
            Err(JoinError::Db(e)) if e.class() == db::Class::Transient && tries < 10 => {
                tries += 1;
                log::debug!("cluster: joining met a passing conflict, retrying: {e}");
                std::thread::sleep(Duration::from_millis(20 * tries));
            }
            other => return other,
        }
    }
}

/// Whether the process `pid` of this host runs (a zombie does not).
fn pid_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(crate::lifecycle::process_alive)
}

/// A new epoch: the time in microseconds, which no earlier join of this name can have had.
fn new_epoch() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

/// The node that owns `id` among `live`: rendezvous (highest random weight) hashing, so a
/// node joining or leaving moves only the targets it gains or had.
pub fn owner(id: TargetId, live: &[String]) -> Option<&str> {
    live.iter()
        .max_by_key(|name| (weight(name, id), name.as_str()))
        .map(String::as_str)
}

fn weight(name: &str, id: TargetId) -> u64 {
    // FNV-1a of the name, mixed with the id by SplitMix64's finalizer: stable across
    // releases and platforms, which the nodes of a cluster must agree on.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The cluster thread's channel ends.
pub struct Ports {
    /// Every enabled target, from the loader.
    pub targets: Receiver<Control>,
    /// The targets this node owns, to the wheel.
    pub wheel: Sender<Control>,
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
    stats: Arc<Stats>,
    targets: HashMap<TargetId, Arc<Target>>,
    owned: HashSet<TargetId>,
    /// The live nodes' names, sorted: this node alone until a heartbeat says otherwise.
    live: Vec<String>,
    /// The view was logged once (a single node's never changes).
    announced: bool,
    outage_logged: bool,
    /// Checks counted at the previous heartbeat, for this node's checks per second.
    last_checks: (u64, Instant),
}

impl Cluster {
    pub fn new(
        pool: Pool,
        config: ClusterConfig,
        member: Arc<Member>,
        stats: Arc<Stats>,
    ) -> Cluster {
        let me = member.name().to_string();
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
        }
    }

    fn owns(&self, id: TargetId) -> bool {
        owner(id, &self.live) == Some(self.member.name())
    }

    /// The share figures `/metrics` shows, after every change of them.
    fn publish(&self) {
        Stats::set(&self.stats.targets_known, self.targets.len() as u64);
        Stats::set(&self.stats.targets_owned, self.owned.len() as u64);
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
                    self.owned.insert(id);
                    let _ = ports.wheel.send(Control::Upsert { target, first });
                } else if self.owned.remove(&id) {
                    let _ = ports.wheel.send(Control::Remove(id));
                    let _ = ports.writer.send(ToWriter::Forget(id));
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
        let mut gained = 0;
        let mut lost = 0;
        let ids: Vec<TargetId> = self.targets.keys().copied().collect();
        for id in ids {
            match (self.owns(id), self.owned.contains(&id)) {
                (true, false) => {
                    self.owned.insert(id);
                    let target = self.targets[&id].clone();
                    let _ = ports.wheel.send(Control::Upsert {
                        target,
                        first: true,
                    });
                    gained += 1;
                }
                (false, true) => {
                    self.owned.remove(&id);
                    let _ = ports.wheel.send(Control::Remove(id));
                    let _ = ports.writer.send(ToWriter::Forget(id));
                    lost += 1;
                }
                _ => {}
            }
        }
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
    /// errors are logged once per outage; the lease then runs out.
    fn beat(&mut self, state: &str) -> Beat {
        let started = Instant::now();
        let rate = self.rate();
        let owned = self.owned.len() as u64;
        let dead_after_ms = self.config.dead_after.as_millis() as i64;
        let fence = self.member.fence();
        let result = db::with_conn(&self.pool, |conn| {
            let alive = nodes::beat(conn, &fence, state, owned, rate)?;
            if !alive {
                return Ok(None);
            }
            for dead in nodes::reap(conn, &fence, dead_after_ms)? {
                self.log_dead(&dead);
            }
            nodes::all(conn).map(Some)
        });
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
                // decode must not make the node hand every target away.
                if !live.iter().any(|n| n == self.member.name()) {
                    live.push(self.member.name().to_string());
                    live.sort();
                }
                Stats::set(&self.stats.live_nodes, live.len() as u64);
                self.renew_lease(started, &live);
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

    /// A heartbeat while running: a new view is adopted; a node declared dead joins again.
    fn beat_active(&mut self, ports: &Ports) {
        match self.beat("active") {
            Beat::View(live) => self.adopt_view(live, ports),
            Beat::DeclaredDead => self.rejoin(ports),
            Beat::Failed => {}
        }
    }

    fn back_from_outage(&mut self) {
        if self.outage_logged {
            log::warn!("cluster: heartbeats get through again");
            self.outage_logged = false;
        }
    }

    /// Alone, the node needs no lease: nobody else would check its targets.
    fn renew_lease(&self, started: Instant, live: &[String]) {
        if live.len() <= 1 {
            self.member.lease(None);
        } else {
            let span = self.config.dead_after.saturating_sub(LEASE_MARGIN);
            self.member.lease(Some(started + span));
        }
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
        self.member.lease(Some(self.member.origin));
        for id in self.owned.drain() {
            let _ = ports.wheel.send(Control::Remove(id));
            let _ = ports.writer.send(ToWriter::Forget(id));
        }
        self.live = Vec::new();
        let fence = Fence {
            node: self.member.name().to_string(),
            epoch: new_epoch(),
        };
        // A database error goes through `with_conn`, which throws away a broken connection.
        let joined = db::with_conn(&self.pool, |conn| {
            match join_as(conn, &fence, &self.config, true) {
                Err(JoinError::Db(e)) => Err(e),
                other => Ok(other),
            }
        })
        .map_err(JoinError::Db)
        .and_then(|r| r)
        .map_err(join_error);
        match joined {
            Ok(()) => {
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
        let checks = Stats::get(&self.stats.checks);
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

/// The names of the active nodes, sorted. A node whose heartbeat is late still counts until
/// a live node has deleted its row (and its fence): its targets change hands only once it can
/// no longer write.
pub fn live_names(rows: &[NodeRow]) -> Vec<String> {
    let mut live: Vec<String> = rows
        .iter()
        .filter(|r| r.state == "active")
        .map(|r| r.name.clone())
        .collect();
    live.sort();
    live
}

/// The thread body: targets from the loader as they come, a heartbeat every interval, until
/// the stop request; then the hand-over.
pub fn run(mut cluster: Cluster, ports: Ports, read_timeout: Duration) {
    let every = cluster.config.heartbeat();
    cluster.beat_active(&ports);
    let mut next = Instant::now() + every;
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
            cluster.beat_active(&ports);
            next = Instant::now() + every;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_node_owns_everything() {
        let live = names(&["a"]);
        assert!((0..1000).all(|id| owner(id, &live) == Some("a")));
        assert_eq!(owner(1, &[]), None);
    }

    #[test]
    fn shares_are_even_and_a_leaving_node_moves_only_its_own_targets() {
        let three = names(&["node-a", "node-b", "node-c"]);
        let two = names(&["node-a", "node-c"]);
        let mut share: HashMap<&str, usize> = HashMap::new();
        for id in 0..30_000u64 {
            let before = owner(id, &three).unwrap();
            *share.entry(before).or_default() += 1;
            let after = owner(id, &two).unwrap();
            if before != "node-b" {
                assert_eq!(before, after, "target {id} moved between survivors");
            }
        }
        for (node, n) in share {
            assert!((9_000..=11_000).contains(&n), "{node} owns {n} of 30000");
        }
    }

    #[test]
    fn live_nodes_are_the_active_ones_until_their_row_is_deleted() {
        let row = |name: &str, state: &str, age: i64| NodeRow {
            name: name.into(),
            epoch: 1,
            host: String::new(),
            pid: 1,
            version: String::new(),
            state: state.into(),
            heartbeat_age_ms: age,
            targets_owned: 0,
            checks_per_s: 0.0,
        };
        let rows = [
            row("c", "active", 100),
            row("a", "active", 5999),
            row("b", "stopping", 10),
            row("d", "active", 6001),
        ];
        assert_eq!(live_names(&rows), names(&["a", "c", "d"]));
    }
}
