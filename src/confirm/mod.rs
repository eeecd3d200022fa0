//! The confirm stage: this node's part in confirming failures from a second node (`[cluster]
//! ConfirmFailures`; the requests live in `confirmations`, see `db::confirm`). One thread,
//! "skypunch-confirm", looks every `db::confirm::poll::EVERY`:
//! - it settles the requests that are due: its own (answered, past their deadline of 5 s
//!   plus the target's timeout, taken by a node that left, or with no other node active),
//!   and anybody's past their deadline by `DeadAfter` (their node is gone). Settling one
//!   queues the FAILURE (the notifier is woken) or records the incident as unconfirmed (this
//!   node's writer is told, so the target's next failing check raises the FAILURE again);
//! - unless the node is blind, stopping or outside its cluster lease, it takes the other
//!   nodes' new requests, at most [`SLOTS`] at a time, reads each target's row, and hands it
//!   to its checking threads ("skypunch-confirm-N", [`check`]), which check it with the
//!   workers' check function and hand back what they found; it writes the answer.
//!
//! The checking threads are in the workers' stage: a stop abandons their checks with the
//! workers' past `StopGrace`. The thread leaves at the stop request; what it took and did
//! not answer, the node that asked settles when its taker has left the cluster.

mod check;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use crate::base::keyring::Keyring;
use crate::base::model::{Method, Target, TargetId, ToWriter};
use crate::base::sight::Sight;
use crate::base::stop::Stop;
use crate::base::threads::{Group, SpawnError};
use crate::check::sockets::InFlight;
use crate::check::Checker;
use crate::cluster::Member;
use crate::db::confirm::poll::{self, Answer, Claim};
use crate::db::confirm::{self as requests, Fate};
use crate::db::{self, Pool};
use crate::target;

pub use check::Done;

/// Confirming checks this node makes at a time for the others; requests beyond them wait
/// for a free slot or another node, or expire (their FAILURE then goes out unconfirmed).
pub const SLOTS: usize = 4;

/// The longest the confirm thread waits for room in the writer's channel.
const WRITER_WAIT: Duration = Duration::from_secs(1);

/// A request taken, with the target as its row reads now.
pub struct Job {
    claim: Claim,
    target: Arc<Target>,
}

/// What the confirm thread works with.
pub struct Confirm {
    pool: Pool,
    member: Arc<Member>,
    sight: Arc<Sight>,
    keyring: Keyring,
    shared: target::Shared,
    /// This node's writer, told of its targets found up by another node.
    writer: Sender<ToWriter>,
    /// The notifier, woken when a settled request queued an alert.
    wake: Sender<()>,
    /// Past its deadline by this, any node settles a request (`DeadAfter`).
    orphaned: Duration,
    /// Checks handed to the checking threads and not answered yet.
    busy: usize,
    /// A database error was logged, and none got through since.
    failing: bool,
}

/// The confirm thread's channel ends.
pub struct Ports {
    pub stop: Stop,
    pub writer: Sender<ToWriter>,
    pub wake: Sender<()>,
}

impl Confirm {
    pub fn new(
        pool: Pool,
        (member, sight): (Arc<Member>, Arc<Sight>),
        keyring: Keyring,
        shared: target::Shared,
        orphaned: Duration,
        ports: &Ports,
    ) -> Confirm {
        Confirm {
            pool,
            member,
            sight,
            keyring,
            shared,
            writer: ports.writer.clone(),
            wake: ports.wake.clone(),
            orphaned,
            busy: 0,
            failing: false,
        }
    }

    fn me(&self) -> String {
        self.member.name().to_string()
    }

    /// A database error, logged once until a statement gets through again.
    fn db_failed(&mut self, e: &db::Error) {
        if e.class() == db::Class::Transient {
            log::debug!("confirm: a passing conflict, retrying at the next look: {e}");
        } else if !self.failing {
            log::warn!(
                "confirm: {e}; retrying every {} ms",
                poll::EVERY.as_millis()
            );
            self.failing = true;
        }
    }

    fn db_worked(&mut self) {
        if std::mem::take(&mut self.failing) {
            log::info!("confirm: the database answers again");
        }
    }

    /// Settles the requests due now.
    fn settle(&mut self) {
        let (me, orphaned) = (self.me(), self.orphaned);
        let due = match db::with_conn(&self.pool, |conn| poll::due(conn, &me, orphaned)) {
            Ok(due) => due,
            Err(e) => return self.db_failed(&e),
        };
        self.db_worked();
        for id in due {
            let settled = db::with_conn(&self.pool, |conn| {
                let mut tx = conn
                    .start_transaction(mysql::TxOpts::default())
                    .map_err(db::Error::query("starting to settle a confirmation"))?;
                let settled = requests::resolve(&mut tx, id, false)?;
                tx.commit()
                    .map_err(db::Error::query("settling a confirmation"))?;
                Ok(settled)
            });
            match settled {
                Ok(Some(r)) => {
                    r.log();
                    self.tell(r.target_id, r.fate, r.requested_by == me);
                }
                Ok(None) => {}
                Err(e) => return self.db_failed(&e),
            }
        }
    }

    /// After a request was settled: the notifier wakes for the alert it queued (a full
    /// channel means a wake is pending); this node's writer hears of its target found up,
    /// waiting at most [`WRITER_WAIT`] for room. A writer that cannot take it (stopping, or
    /// drowning) goes on believing the FAILURE went out: the target is not asked about
    /// again before it recovers, and its recovery still pages nobody.
    fn tell(&self, target: TargetId, fate: Fate, mine: bool) {
        match fate {
            Fate::Unconfirmed if mine => {
                let word = ToWriter::Unconfirmed(target);
                if self.writer.send_timeout(word, WRITER_WAIT).is_err() {
                    log::debug!("confirm: [{target}] the writer could not take the word");
                }
            }
            Fate::Unconfirmed => {}
            Fate::Confirmed | Fate::NotConfirmed => {
                let _ = self.wake.try_send(());
            }
        }
    }

    /// Whether this node may check for the others now: not blind, not stopping, and within
    /// its cluster lease (a node cut off from the database checks nothing).
    fn may_confirm(&self, stop: &Stop) -> bool {
        !stop.requested() && !self.sight.blind() && self.member.may_check(Instant::now())
    }

    /// Takes the others' requests while checking slots are free, and hands them out.
    fn take(&mut self, jobs: &Sender<Job>, stop: &Stop) {
        let free = SLOTS.saturating_sub(self.busy);
        // Alone, nobody else asks: a lone node (the common case) would look four times a
        // second for requests that cannot exist.
        if free == 0 || self.member.alone() || !self.may_confirm(stop) {
            return;
        }
        let me = self.me();
        let claims = match db::with_conn(&self.pool, |conn| poll::claim(conn, &me, free)) {
            Ok(c) => c,
            Err(e) => return self.db_failed(&e),
        };
        if claims.is_empty() {
            return;
        }
        let ids: Vec<TargetId> = claims.iter().map(|c| c.target_id).collect();
        let rows = match db::with_conn(&self.pool, |conn| db::targets::by_ids(conn, &ids)) {
            Ok(rows) => rows,
            Err(e) => return self.db_failed(&e),
        };
        for claim in claims {
            let row = rows.iter().find(|r| r.id == claim.target_id);
            match self.target_of(row) {
                Ok(target) => match jobs.try_send(Job { claim, target }) {
                    Ok(()) => self.busy += 1,
                    Err(e) => {
                        let job = e.into_inner();
                        self.write(&job.claim, Answer::None, "no checking slot was free");
                    }
                },
                Err(why) => self.write(&claim, Answer::None, &why),
            }
        }
    }

    /// The target a request is about, as its row reads now; why it cannot be checked.
    fn target_of(&mut self, row: Option<&db::targets::TargetRow>) -> Result<Arc<Target>, String> {
        let row = row.ok_or("the target's row is gone")?;
        if !row.enabled {
            return Err("the target is disabled".into());
        }
        let vault = self.keyring.now();
        let target = target::from_row(row, &mut self.shared, &vault.secrets)
            .map_err(|e| format!("config error: {e}"))?;
        if target.method == Method::Push {
            return Err("a PUSH target is judged from its pushes, not checked".into());
        }
        Ok(Arc::new(target))
    }

    /// A check came back: its line logged, its answer written.
    fn answered(&mut self, done: Done) {
        self.busy = self.busy.saturating_sub(1);
        log::info!(
            "confirm: for node {}: {}",
            done.claim.requested_by,
            done.line
        );
        self.write(&done.claim, done.answer, &done.trace);
    }

    /// Writes this node's answer to a request it took.
    fn write(&mut self, claim: &Claim, answer: Answer, trace: &str) {
        let me = self.me();
        match db::with_conn(&self.pool, |conn| {
            poll::answer(conn, claim.id, &me, answer, trace)
        }) {
            Ok(true) => self.db_worked(),
            Ok(false) => log::debug!(
                "confirm: [{}] the answer came after node {} settled the request",
                claim.target_id,
                claim.requested_by
            ),
            Err(e) => self.db_failed(&e),
        }
    }
}

/// Starts the checking threads in `workers` (the workers' stage, whose checks a stop
/// abandons past `StopGrace`); returns the channel ends the confirm thread works them with.
pub fn spawn_checks(
    workers: &mut Group,
    checker: Arc<Checker>,
    sight: Arc<Sight>,
    in_flight: Arc<InFlight>,
) -> Result<(Sender<Job>, Receiver<Done>), SpawnError> {
    let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<Job>(SLOTS);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Done>(SLOTS);
    for n in 0..SLOTS {
        let (checker, sight, in_flight) = (checker.clone(), sight.clone(), in_flight.clone());
        let (jobs, done) = (jobs_rx.clone(), done_tx.clone());
        let name = format!("skypunch-confirm-{n}");
        workers.spawn(&name, Some(crate::worker::STACK), move || {
            check::run(&checker, &sight, &in_flight, jobs, done)
        })?;
    }
    Ok((jobs_tx, done_rx))
}

/// The confirm thread's body: settles and takes requests every look, and writes answers as
/// they come, until the stop request; then closes the checking threads' queue.
pub fn run(mut c: Confirm, (jobs, done): (Sender<Job>, Receiver<Done>), stop: Stop) {
    loop {
        crate::base::fault::point("confirm");
        c.settle();
        c.take(&jobs, &stop);
        select! {
            recv(done) -> d => match d {
                Ok(d) => c.answered(d),
                Err(_) => break,
            },
            recv(stop.channel()) -> _ => break,
            default(poll::EVERY) => {}
        }
    }
    log::debug!("confirm: stopped");
}
