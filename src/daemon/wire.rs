//! The wiring, on the main thread at start: the channels between the stages, with their
//! bounds, and every thread started in its stage of the [`Pipeline`]. The pipeline runs
//! loader → cluster → wheel → workers → writer (→ store) → notifier, with the stats thread,
//! the sight thread (the node's sight of its network, shared with the store and cluster
//! threads as `Arc<Sight>`), the HTTP server and systemd's watchdog beside it; the heartbeat
//! thread (in the loader's stage) hands the wheel and the workers the pushes of PUSH targets
//! through the checker's `Heartbeats`, a map under a lock, not a channel: nothing waits on it.
//!
//! The channels and what a full one does to its sender:
//! - loader → cluster (targets) and cluster → wheel (the targets this node owns): bounded by
//!   [`CONTROL_QUEUE`]; a message is never dropped while the daemon runs (a lost one is a
//!   target never checked, or checked after its deletion), so a sender waits for room, but
//!   not past the stop (`stop::Feed`). The wheel takes a message whenever one is ready and
//!   never blocks; the cluster thread takes them between heartbeats (a few statements, each
//!   bounded by `ReadTimeout`/`WriteTimeout`). Neither waits on its sender: no cycle.
//! - workers → wheel ("finished" notices): bounded by the jobs in circulation (see
//!   [`done_capacity`]), which it can never exceed; a worker's send would wait at most for
//!   the wheel's next tick, and fails once the wheel has returned.
//! - wheel → workers (jobs): `Workers` × [`JOBS_PER_WORKER`]; the wheel never waits on it
//!   (`jobs`). Workers, the loader and the cluster thread → writer: `writer::RESULTS_QUEUE`
//!   (a sender waits; the writer drains it every round). Writer → store: one batch at a
//!   time; writer → notifier: one wake-up, coalesced.
//! - confirm thread ↔ its checking threads (`confirm::SLOTS` each way): it hands out only as
//!   many requests as slots are free, so neither side waits; confirm → writer: waits at
//!   most 1 s for room; confirm → notifier: one wake-up, coalesced.

use std::net::TcpListener;
use std::sync::Arc;

use crossbeam_channel::{bounded, Sender};

use super::pipeline::{Handles, Pipeline};
use super::StartError;
use crate::base::keyring::Keyring;
use crate::base::model::ToWriter;
use crate::base::sight::Sight;
use crate::base::stats::{self, StageStats, Stats, StoreStats, WriterStats};
use crate::base::stop::{Feed, Stop};
use crate::check::{CheckSettings, Checker};
use crate::cluster::Member;
use crate::config::Config;
use crate::db::Pool;
use crate::watchdog::{self, Notify};
use crate::{confirm, heartbeats, loader, notifier, wheel, worker, writer};

/// Room in each of the two target channels (loader → cluster → wheel). A full load of
/// 100,000 targets passes through in batches of this many, at the cluster thread's pace.
pub const CONTROL_QUEUE: usize = 1024;

/// Jobs the queue to the workers holds per worker: a worker that finishes a check finds the
/// next one queued, between two of the wheel's ticks.
pub const JOBS_PER_WORKER: usize = 4;

/// Room for the workers' "finished" notices: each answers one job the wheel handed out, and
/// between two of its drains (once a tick, before it hands out more) the workers can finish
/// at most the jobs queued and those in hand.
pub fn done_capacity(workers: usize) -> usize {
    workers * (JOBS_PER_WORKER + 1)
}

/// The pipeline as the main thread holds it while it runs.
pub struct Running {
    pub pipeline: Pipeline,
    /// The counters, for the account at stop.
    pub stats: Arc<Stats>,
    /// systemd's notification socket, when the daemon runs under it.
    pub notify: Option<Arc<Notify>>,
    /// The `[secrets]` the loader, the workers and the log use; SIGHUP replaces them.
    pub keyring: Keyring,
}

/// A start that failed: why, and the pipeline started so far (if any), whose threads stop
/// in order when it is dropped; the caller logs the failure first.
pub struct Failed {
    pub error: StartError,
    pub started: Option<Pipeline>,
}

impl From<StartError> for Box<Failed> {
    fn from(error: StartError) -> Box<Failed> {
        Box::new(Failed {
            error,
            started: None,
        })
    }
}

/// Joins the cluster and starts every thread; an error if one cannot be started.
/// The error is boxed: it carries a pipeline, and it is the rare path.
pub fn start(config: &Arc<Config>, pool: Pool, keyring: Keyring) -> Result<Running, Box<Failed>> {
    // Bound first: a port in use fails the start before any thread runs.
    let listeners = crate::http::bind(config).map_err(StartError::Http)?;
    let (stats, stages) = stats::new();
    let member = crate::cluster::join(&pool, &config.cluster)
        .map_err(|e| StartError::Cluster(Box::new(e)))?;
    // Joining wrote this node's row: the database took a write (for `/healthz`).
    stages.cluster.db_write(true);
    let (mut pipeline, handles) =
        Pipeline::new(config.stop_timeout, config.stop_grace, stages.main.clone());
    let wiring = Wiring {
        pool,
        member,
        stats: stats.clone(),
        stages,
        handles,
        listeners,
        keyring: keyring.clone(),
    };
    match start_stages(&mut pipeline, config, wiring) {
        Ok(notify) => Ok(Running {
            pipeline,
            stats,
            notify,
            keyring,
        }),
        Err(error) => Err(Box::new(Failed {
            error,
            started: Some(pipeline),
        })),
    }
}

/// What the stages are started with.
struct Wiring {
    pool: Pool,
    member: Arc<Member>,
    stats: Arc<Stats>,
    stages: StageStats,
    handles: Handles,
    listeners: Vec<TcpListener>,
    keyring: Keyring,
}

/// Makes the channels and starts every stage in its group of `pipeline`, back to front.
/// Returns systemd's notification socket, when there is one. On an error, the channel ends
/// not yet given to a thread are dropped here, before the pipeline stops what runs.
fn start_stages(
    pipeline: &mut Pipeline,
    config: &Arc<Config>,
    wiring: Wiring,
) -> Result<Option<Arc<Notify>>, StartError> {
    let Wiring {
        pool,
        member,
        stats,
        stages,
        handles: Handles {
            stop,
            pipeline_done,
        },
        listeners,
        keyring,
    } = wiring;
    let (targets_tx, targets_rx) = bounded(CONTROL_QUEUE);
    let (control_tx, control_rx) = bounded(CONTROL_QUEUE);
    let (done_tx, done_rx) = bounded(done_capacity(config.workers));
    let (jobs_tx, jobs_rx) = crate::jobs::queue(config.workers * JOBS_PER_WORKER);
    let (reports_tx, reports_rx) = bounded(writer::RESULTS_QUEUE);
    let (sight, wanted) = Sight::new(!config.connectivity.is_empty());
    let sight = Arc::new(sight);
    let watch = crate::sight::Watch::new(sight.clone(), config.clone(), pool.clone());
    let st = stop.clone();
    pipeline.sight().spawn("skypunch-sight", None, move || {
        crate::sight::run(watch, wanted, st)
    })?;
    let back = Back {
        pool: pool.clone(),
        writer: stages.writer,
        store: stages.store,
        member: member.clone(),
        stop: stop.clone(),
        sight: sight.clone(),
    };
    let node = (pool.clone(), member.clone(), sight.clone());
    let wake = start_back(pipeline, config, back, reports_rx)?;
    let ports = worker::Ports {
        jobs: jobs_rx.clone(),
        done: done_tx,
        results: reports_tx.clone(),
        member: member.clone(),
        in_flight: pipeline.in_flight(),
    };
    let checker = checker(config, keyring.clone());
    let heartbeats = checker.heartbeats().clone();
    let confirm_ports = confirm::Ports {
        stop: stop.clone(),
        writer: reports_tx.clone(),
        wake,
    };
    start_confirm(
        pipeline,
        config,
        (checker.clone(), node),
        keyring.clone(),
        confirm_ports,
    )?;
    worker::spawn(
        pipeline.workers(),
        config.workers,
        checker,
        ports,
        stages.workers,
    )?;
    let wheel_ports = wheel::Ports {
        control: control_rx,
        stop: stop.clone(),
        done: done_rx,
        jobs: jobs_tx,
        unstarted: jobs_rx,
        member: member.clone(),
        workers: config.workers,
        heartbeats: heartbeats.clone(),
    };
    let s = stages.wheel;
    pipeline
        .wheel()
        .spawn("skypunch-wheel", None, move || wheel::run(wheel_ports, s))?;
    let cluster_ports = crate::cluster::Ports {
        targets: targets_rx,
        wheel: Feed::new(control_tx, stop.clone()),
        writer: reports_tx.clone(),
        stop: stop.clone(),
        pipeline_done: pipeline_done.clone(),
    };
    let c =
        crate::cluster::Cluster::new(pool.clone(), config.cluster.clone(), member, stages.cluster)
            .with_sight(sight);
    let read_timeout = config.db.read_timeout;
    pipeline
        .cluster()
        .spawn("skypunch-cluster", None, move || {
            crate::cluster::run(c, cluster_ports, read_timeout)
        })?;
    let l = loader::Loader::new(
        pool.clone(),
        Feed::new(targets_tx, stop.clone()),
        reports_tx,
        stop.clone(),
        crate::target::Shared::new(config),
        keyring.clone(),
    );
    let interval = config.reload_interval;
    pipeline
        .loader()
        .spawn("skypunch-loader", None, move || loader::run(l, interval))?;
    let (h, st) = (heartbeats::Watcher::new(pool, heartbeats), stop.clone());
    pipeline
        .loader()
        .spawn("skypunch-heartbeats", None, move || heartbeats::run(h, &st))?;
    let (s, interval) = (stats.clone(), config.stats_interval);
    pipeline
        .stats_line()
        .spawn("skypunch-stats", None, move || {
            crate::statsline::run(&s, interval, pipeline_done)
        })?;
    start_http(pipeline, config, listeners, &stats, stop.clone(), keyring)?;
    start_watchdog(pipeline, config, &stats, stop)
}

/// What the back of the pipeline shares with the rest.
struct Back {
    pool: Pool,
    writer: WriterStats,
    store: StoreStats,
    member: Arc<Member>,
    stop: Stop,
    sight: Arc<Sight>,
}

/// The back of the pipeline: the writer (results in from `reports`), its store thread, the
/// notifier it wakes, and the prune thread beside the notifier.
fn start_back(
    pipeline: &mut Pipeline,
    config: &Arc<Config>,
    back: Back,
    reports: crossbeam_channel::Receiver<ToWriter>,
) -> Result<Sender<()>, StartError> {
    let (wake_tx, wake_rx) = bounded(1);
    let wake_confirm = wake_tx.clone();
    let (store, store_ends) = writer::store_channels();
    let (p, s, m, sight) = (
        back.pool.clone(),
        back.store,
        back.member,
        back.sight.clone(),
    );
    // A peer whose heartbeat is older than half of DeadAfter is not asked to confirm.
    let confirm = config
        .cluster
        .confirm_failures
        .then(|| config.cluster.dead_after / 2);
    pipeline.store().spawn("skypunch-store", None, move || {
        writer::run_store(p, s, (m, sight), confirm, store_ends)
    })?;
    let w = writer::Writer::new(back.writer, wake_tx, config.max_pending_alerts)
        .with_sight(back.sight, config.blind_percent);
    let writer_stop = back.stop.clone();
    pipeline.writer().spawn("skypunch-writer", None, move || {
        writer::run(w, reports, store, writer_stop)
    })?;
    let (c, p, st) = (config.clone(), back.pool.clone(), back.stop.clone());
    pipeline.prune().spawn("skypunch-prune", None, move || {
        crate::prune::run(&c, &p, &st)
    })?;
    let (c, p, st) = (config.clone(), back.pool, back.stop);
    pipeline
        .notifier()
        .spawn("skypunch-notifier", None, move || {
            notifier::run(&c, &p, &wake_rx, &st)
        })?;
    Ok(wake_confirm)
}

/// The confirm stage: its checking threads in the workers' stage, its thread in its own.
fn start_confirm(
    pipeline: &mut Pipeline,
    config: &Config,
    (checker, (pool, member, sight)): (Arc<Checker>, (Pool, Arc<Member>, Arc<Sight>)),
    keyring: Keyring,
    ports: confirm::Ports,
) -> Result<(), StartError> {
    let in_flight = pipeline.in_flight();
    let ends = confirm::spawn_checks(pipeline.workers(), checker, sight.clone(), in_flight)?;
    let c = confirm::Confirm::new(
        pool,
        (member, sight),
        keyring,
        crate::target::Shared::new(config),
        config.cluster.dead_after,
        &ports,
    );
    let stop = ports.stop;
    pipeline
        .confirm()
        .spawn("skypunch-confirm", None, move || {
            confirm::run(c, ends, stop)
        })?;
    Ok(())
}

/// The check runner every worker shares.
fn checker(config: &Config, keyring: Keyring) -> Arc<Checker> {
    let settings = CheckSettings {
        max_body_bytes: config.max_body_bytes,
        token_lifetime: config.token_lifetime,
        source_address: config.source_address,
    };
    Arc::new(Checker::new(settings).with_keyring(keyring))
}

/// The HTTP server's threads, when `[http] Listen` names an address (bound already); its
/// answers mask the values of `keyring`'s `[secrets]`, as they are at each answer.
fn start_http(
    pipeline: &mut Pipeline,
    config: &Arc<Config>,
    listeners: Vec<TcpListener>,
    stats: &Arc<Stats>,
    stop: Stop,
    keyring: Keyring,
) -> Result<(), StartError> {
    if listeners.is_empty() {
        return Ok(());
    }
    let shared = Arc::new(crate::http::Shared {
        config: config.clone(),
        pool: crate::http::pool(&config.db).map_err(StartError::HttpDatabase)?,
        stats: stats.clone(),
        liveness: pipeline.liveness(),
        stop,
        keyring,
    });
    crate::http::spawn(pipeline.http(), listeners, shared).map_err(StartError::Http)
}

/// systemd's watchdog thread, when systemd asks for pings. Returns systemd's notification
/// socket, when there is one.
fn start_watchdog(
    pipeline: &mut Pipeline,
    config: &Config,
    stats: &Arc<Stats>,
    stop: Stop,
) -> Result<Option<Arc<Notify>>, StartError> {
    let Some(notify) = Notify::from_env().map(Arc::new) else {
        return Ok(None);
    };
    if let Some(every) = watchdog::period() {
        let pinger = notify.clone();
        let watched = watchdog::Watched {
            stats: stats.clone(),
            liveness: pipeline.liveness(),
            stop,
            dead_after: config.cluster.dead_after,
        };
        pipeline
            .watchdog()
            .spawn("skypunch-watchdog", None, move || {
                watchdog::run(pinger, every, watched)
            })?;
        log::info!(
            "systemd: watchdog on, a ping every {} ms",
            every.as_millis()
        );
    }
    Ok(Some(notify))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finished_notices_have_room_for_every_job_in_circulation() {
        for workers in [1, 7, 256] {
            let queued = workers * JOBS_PER_WORKER;
            assert!(done_capacity(workers) >= queued + workers);
        }
    }
}
