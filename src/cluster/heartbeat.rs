//! The cluster thread's heartbeat: this node's row written with its state, its clock's
//! offset and its rate; dead nodes declared (not right after this node's own heartbeats were
//! held up, see [`steady`](super::steady)); the view of the live nodes adopted and the lease
//! renewed; a node declared dead joining again.

use std::time::{Duration, Instant};

use super::{clock, join, live_names, steady, Beat, Cluster, Ports, LEASE_MARGIN};
use crate::base::model::{Control, ToWriter};
use crate::db::{self, nodes};

impl Cluster {
    /// One heartbeat: the row written, dead nodes removed, the live ones read. Database
    /// errors are logged once per outage; the lease then runs out (see [`Self::renew_lease`]).
    pub(super) fn beat(&mut self, state: &str) -> Beat {
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

    pub(super) fn log_dead(&self, dead: &nodes::Dead) {
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
    pub(super) fn beat_active(&mut self, ports: &Ports) -> bool {
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
    pub(super) fn measure_clock(&mut self) {
        // Through an outage the heartbeat alone finds when the database is back: a second
        // statement that hangs or times out would only make each beat longer.
        if self.outage_logged {
            return;
        }
        let Ok(Some(offset)) = clock::measure(&self.pool) else {
            return;
        };
        let change = self.clock.observe(offset);
        self.stats.set_clock(offset, self.clock.skewed());
        if let Some(change) = change {
            clock::log(change, offset, self.config.max_clock_skew);
        }
    }

    pub(super) fn back_from_outage(&mut self) {
        if self.outage_logged {
            log::warn!("cluster: heartbeats get through again");
            self.outage_logged = false;
        }
    }

    /// The lease of a heartbeat that started at `started`, alone or not: a node frozen past
    /// it may have been declared dead, even one that was alone (a second one may have joined
    /// meanwhile), and dispatches nothing until its next heartbeat says what it owns.
    pub(super) fn renew_lease(&self, started: Instant) {
        let alone = self.live.len() <= 1;
        self.member
            .lease(started, started + self.lease_span(), alone);
    }

    pub(super) fn lease_span(&self) -> Duration {
        self.config.dead_after.saturating_sub(LEASE_MARGIN)
    }

    /// The others declared this node dead (it was frozen, or cut off from the database
    /// longer than `DeadAfter`) and took its targets: it drops them all and joins again.
    pub(super) fn rejoin(&mut self, ports: &Ports) {
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

    pub(super) fn rate(&mut self) -> f64 {
        let checks = self.stats.checks();
        let (before, at) = self.last_checks;
        let secs = at.elapsed().as_secs_f64();
        self.last_checks = (checks, Instant::now());
        if secs <= 0.0 {
            return 0.0;
        }
        (checks.saturating_sub(before)) as f64 / secs
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
