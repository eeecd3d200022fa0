//! One round of the throughput run, on the main thread: a fresh bench database with the
//! run's targets, the daemon started and warmed up, the measured window (its stats lines, the
//! CPU of every process, the database counters), the stop and the no-loss verification, then
//! blackbox_exporter at the daemon's rate.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{shape, Setup};
use crate::bench::args::Settings;
use crate::bench::daemon::{self, Daemon};
use crate::bench::database::{self, BenchDb, Row};
use crate::bench::mix::{self, Kind, MixFigures, Urls};
use crate::bench::report::{Cpu, Machine, Results, TlsFigures, Verify};
use crate::bench::target::Server;
use crate::bench::tls;
use crate::bench::{blackbox, callgrind, procfs, statsline, Error};

/// One round: a fresh database, the daemon's run, then blackbox_exporter at its rate.
pub fn one_round(s: &Settings, setup: &Setup, dir: &Path, round: usize) -> Result<Results, Error> {
    let machine = Machine::read();
    // Each round's daemon and exporter log and config apart, so no round reads another's.
    let dir = &dir.join(format!("round-{round}"));
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut db = database::Server::parse(&s.db_url).and_then(BenchDb::create)?;
    let measured = measure(s, &mut db, setup, dir);
    if s.keep {
        eprintln!("skypunch-bench: kept database {}", db.name);
    } else if let Err(e) = db.drop_db() {
        eprintln!("skypunch-bench: {e}");
    }
    let mut r = measured?;
    r.machine = machine;
    if let Some(c) = r.callgrind.as_mut() {
        c.profile = callgrind::keep(c, &s.json, (s.rounds > 1).then_some(round))?;
    }
    if s.blackbox {
        let (target, ca) = setup.probed();
        let load = blackbox::Load {
            duration: s.blackbox_duration,
            concurrency: s.blackbox_concurrency,
            rate: s.blackbox_rate.unwrap_or_else(|| r.rate()),
        };
        eprintln!(
            "skypunch-bench: blackbox_exporter for {} s at {:.0} probes/s asked",
            load.duration.as_secs(),
            load.rate
        );
        r.blackbox = Some(blackbox::run(dir, &target, ca, load, || {
            setup.server.cpu_seconds()
        })?);
    }
    Ok(r)
}

fn mariadb_pid(db: &BenchDb) -> Option<u32> {
    db.server
        .is_local()
        .then(|| procfs::pid_of(&["mariadbd", "mysqld"]))
        .flatten()
}

/// CPU seconds of every process measured, at one moment.
fn cpu_now(daemon: u32, mariadb: Option<u32>, server: &Server) -> Result<Cpu, Error> {
    Ok(Cpu {
        daemon: procfs::cpu_seconds(daemon).ok_or("the daemon is gone")?,
        mariadb: mariadb.and_then(procfs::cpu_seconds),
        server: server.cpu_seconds(),
        bench: procfs::own_cpu_seconds(),
    })
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(b? - a?)
}

/// Inserts the run's targets: N copies of one URL (HTTPS through the run's CA with
/// `--tls`), or the mix.
fn insert(s: &Settings, db: &mut BenchDb, setup: &Setup) -> Result<Duration, Error> {
    let ca = setup.pki.as_ref().map(|p| p.ca_pem.display().to_string());
    let plain = format!("http://127.0.0.1:{}/", setup.server.port());
    if s.mix {
        let (slow, hanging) = setup.services.as_ref().ok_or("no mix services")?;
        let urls = Urls {
            failing: format!("{plain}500"),
            plain,
            https: setup.https_url().ok_or("no HTTPS server")?,
            slow: slow.url(),
            hanging: hanging.url(),
        };
        let shape = shape(s);
        return db.insert_rows(s.targets, |id| {
            let kind = mix::kind_of(id);
            Row {
                url: urls.of(kind).to_string(),
                frequency: mix::frequency_of(id, &shape),
                timeout: shape.timeout,
                ca_file: (kind == Kind::Https).then(|| ca.clone()).flatten(),
            }
        });
    }
    match setup.https_url() {
        Some(url) => db.insert_rows(s.targets, |_| Row {
            url: url.clone(),
            frequency: s.frequency,
            timeout: 5,
            ca_file: ca.clone(),
        }),
        None => db.insert_targets(s.targets, s.frequency, &plain),
    }
}

fn measure(s: &Settings, db: &mut BenchDb, setup: &Setup, dir: &Path) -> Result<Results, Error> {
    let server = &setup.server;
    let insert = insert(s, db, setup)?;
    eprintln!(
        "skypunch-bench: {} targets inserted in {:.1} s into {}",
        s.targets,
        insert.as_secs_f64(),
        db.name
    );
    let (mut d, first_check, rss_first_check_mib) = start_and_warm_up(s, db, dir)?;
    let mut r = Results {
        date: chrono::Local::now()
            .format("%Y-%m-%d %H:%M:%S %z")
            .to_string(),
        targets: s.targets,
        frequency: s.frequency,
        workers: s.workers,
        warmup_s: s.warmup.as_secs_f64(),
        server: server.describe(),
        insert_s: insert.as_secs_f64(),
        startup_s: first_check - d.spawned_at,
        load_ms: d.load_ms,
        rss_first_check_mib,
        ..Results::default()
    };
    measure_window(s, db, server, &mut d, &mut r, dir)?;
    let period = (!s.mix).then_some(f64::from(s.frequency));
    r.verify = stop_and_verify(db, d, first_check, period)?;
    if let Some(pki) = &setup.pki {
        if !s.mix {
            r.tls = Some(TlsFigures {
                key: pki.kind.name().to_string(),
                handshake_ms: tls::handshake_ms(&db.traces(10_000)?),
            });
        }
    }
    if let Some(m) = r.mix.as_mut() {
        // Until SIGTERM, not until the exit: a check still running at the stop is cut short
        // and not written, so the seconds of the shutdown cannot make it overdue.
        m.overdue_never_checked = overdue(db, s, r.verify.ran_s)?;
    }
    Ok(r)
}

/// Mix targets that should have been checked by now (their first check falls within one
/// period of the start; it ends within the timeout; its result is written within 3 s) and
/// were not.
fn overdue(db: &mut BenchDb, s: &Settings, ran_s: f64) -> Result<u64, Error> {
    let timeout = f64::from(shape(s).timeout);
    Ok(db
        .frequencies_and_counts()?
        .iter()
        .filter(|(_, f, n)| *n == 0 && f64::from(*f) + timeout + 3.0 <= ran_s)
        .count() as u64)
}

/// Starts the daemon and waits for its first check and the warm-up; gives the first check's
/// time (seconds since the epoch) and the daemon's RSS then (MiB).
fn start_and_warm_up(s: &Settings, db: &BenchDb, dir: &Path) -> Result<(Daemon, f64, f64), Error> {
    let config = daemon::write_config(dir, &db.db_config(), s.workers)?;
    let wrap = match s.callgrind {
        true => callgrind::wrap(dir),
        false => s.wrap.clone(),
    };
    let mut d = Daemon::start(&s.skypunch, &wrap, &config, dir)?;
    if s.mix {
        d.checks = Some(Vec::new());
    }
    let startup_limit =
        Duration::from_secs(60 + s.targets / 1000) + Duration::from_secs(s.frequency.into());
    d.wait_until(startup_limit, "the first check", |d| {
        d.first_check_at.is_some()
    })?;
    let first_check = d.first_check_at.unwrap_or(d.spawned_at);
    let rss_first_check_mib = procfs::rss_mib(d.pid()).unwrap_or(0.0);
    eprintln!(
        "skypunch-bench: first check {:.2} s after spawn; warming up {} s",
        first_check - d.spawned_at,
        s.warmup.as_secs()
    );
    let warm_until = Instant::now() + s.warmup;
    d.wait_until(s.warmup + Duration::from_secs(5), "the warm-up", |_| {
        Instant::now() >= warm_until
    })?;
    Ok((d, first_check, rss_first_check_mib))
}

/// The measured window. It runs from one stats line to a later one, so the daemon's check
/// count over it is exact; CPU and the database counters are read as soon as each line
/// appears.
fn measure_window(
    s: &Settings,
    db: &mut BenchDb,
    server: &Server,
    d: &mut Daemon,
    r: &mut Results,
    dir: &Path,
) -> Result<(), Error> {
    let mariadb = mariadb_pid(db);
    let start = d.next_stats(Duration::from_secs(10))?;
    if s.callgrind {
        callgrind::start(d.pid(), dir)?;
    }
    let cpu0 = cpu_now(d.pid(), mariadb, server)?;
    let db0 = db.recorded_checks()?;
    let seen = d.stats.len();
    eprintln!("skypunch-bench: measuring {} s", s.duration.as_secs());
    let end_at = start.at + s.duration.as_secs_f64();
    d.wait_until(
        s.duration + Duration::from_secs(10),
        "the end of the window",
        |d| d.stats.last().is_some_and(|l| l.at >= end_at - 0.01),
    )?;
    let cpu1 = cpu_now(d.pid(), mariadb, server)?;
    if s.callgrind {
        r.callgrind = Some(callgrind::stop(d.pid(), dir)?);
    }
    r.rss_end_mib = procfs::rss_mib(d.pid()).unwrap_or(0.0);
    r.db_checks_in_window = db.recorded_checks()?.saturating_sub(db0);
    r.window = statsline::window(&start, &d.stats[seen..]);
    if let Some(checks) = &d.checks {
        let end = d.stats.last().map_or(start.at, |l| l.at);
        r.mix = Some(MixFigures {
            shape: mix_shape(s),
            kinds: mix::by_kind(checks, start.at, end, s.targets),
            overdue_never_checked: 0,
        });
    }
    r.reload_scan = database::reload_scan(&db.db_config(), 7)?;
    r.peak_rss_mib = procfs::peak_rss_mib(d.pid()).unwrap_or(0.0);
    r.cpu = Cpu {
        daemon: cpu1.daemon - cpu0.daemon,
        mariadb: diff(cpu0.mariadb, cpu1.mariadb),
        server: diff(cpu0.server, cpu1.server),
        bench: cpu1.bench - cpu0.bench,
    };
    Ok(())
}

fn mix_shape(s: &Settings) -> String {
    let sh = shape(s);
    format!(
        "10 % HTTPS, 2 % slow, 1 % hanging, 0.5 % 500, the rest 200; frequencies {}-{} s, \
         timeout {} s, slow answers after {:.1} s",
        sh.min_frequency,
        sh.max_frequency,
        sh.timeout,
        sh.slow_after.as_secs_f64(),
    )
}

/// Stops the daemon and compares what it logged with what the database holds; `period`:
/// the one frequency of every target (None for a mix), for the expected count per target.
fn stop_and_verify(
    db: &mut BenchDb,
    mut d: Daemon,
    first_check: f64,
    period: Option<f64>,
) -> Result<Verify, Error> {
    let stop_at = daemon::now_epoch();
    let (status, shutdown) = d.stop(Duration::from_secs(60))?;
    let counts = db.per_target_counts()?;
    let (targets_failed, failure_example) = db.failing()?;
    Ok(Verify {
        daemon_total: d.final_stats().map(|f| f.total_checks),
        db_total: db.recorded_checks()?,
        per_target_min: counts.first().copied().unwrap_or(0),
        per_target_median: counts.get(counts.len() / 2).copied().unwrap_or(0),
        per_target_max: counts.last().copied().unwrap_or(0),
        ran_s: stop_at - first_check,
        per_target_expected: period.map_or(0.0, |p| (stop_at - first_check) / p),
        never_checked: counts.iter().filter(|c| **c == 0).count() as u64,
        targets_failed,
        failure_example,
        exit_ok: status.success(),
        exit_status: status.to_string(),
        shutdown_seconds: shutdown.as_secs_f64(),
        daemon_errors: d.errors.clone(),
        worker_warnings: d.worker_warnings.clone(),
    })
}
