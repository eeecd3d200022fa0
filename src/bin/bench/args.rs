//! The command line: raw flags parsed by getopts into validated [`Settings`], once.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: skypunch-bench --targets N --frequency F --duration S [--warmup W] [--workers K]
                      [--json FILE] [--skypunch PATH] [--db URL] [--keep] [--no-blackbox]
                      [--blackbox-duration S] [--blackbox-concurrency C] [--blackbox-rate R|max]
                      [--rounds R] [--builtin-server] [--wrap 'CMD ARGS' | --callgrind]
       skypunch-bench --tls [ecdsa|rsa] --targets N --frequency F --duration S [...]
       skypunch-bench --mix [--targets N] [--duration S] [--workers K] [...]
       skypunch-bench --smoke [--tls | --mix] [--skypunch PATH] [--db URL] [--json FILE]
       skypunch-bench --history --targets N [--skypunch PATH] [--db URL] [--json FILE]
       skypunch-bench --http --targets N [--frequency F] [--duration S] [--warmup W]
                      [--workers K] [--skypunch PATH] [--db URL] [--json FILE]
       skypunch-bench --nodes K --targets N --frequency F --duration S [--warmup W]
                      [--workers K] [--builtin-server] [--json FILE] [--skypunch PATH] [--db URL]
       skypunch-bench --storm [--targets N] [--frequency F] [--duration S] [--workers K]
                      [--group-wait W] [--group-interval I] [--builtin-server] [--json FILE]
                      [--skypunch PATH] [--db URL] [--keep]
       skypunch-bench --crypto [--rounds R] [--json FILE]

Runs the release skypunch daemon against N targets on a local HTTP server and a fresh
MariaDB database, measures it, checks that no result was lost, and compares its CPU cost
with Prometheus blackbox_exporter driven at the daemon's rate of checks (or its maximum
where lower), alternating daemon and blackbox_exporter runs --rounds times (default 3) and
reporting the median ratio with its spread. --callgrind: the daemon under valgrind's
callgrind, counting instructions per check in the window only (no blackbox_exporter). --smoke: 200 targets, every 1 s, 5 s, built-in HTTP
server, no blackbox_exporter; exits 1 if anything was lost (what CI runs). --history: times
`skypunch report` over N targets with 30 days of history, and measures the history tables'
size per target per year. --http: the daemon's HTTP server with N targets (default every
60 s): /metrics scrape time and memory, status page time, and the checks' dispatch lag
without and with hostile clients (500 connections, slow and 10 MB requests). --nodes K: K
daemons on one database: aggregate checks/s, each node's share, targets checked twice, statements per check, and the takeover time after a
SIGKILL of one node. --tls: the targets are HTTPS with a certificate from a private CA made
with openssl (ECDSA P-256, or RSA-2048 with `--tls rsa`), verified through the targets'
ca_file; blackbox_exporter probes the same URL with the same CA. --mix: 100,000 targets at
10-300 s, 10 % HTTPS, 2 % answering after 2 s, 1 % never answering (10 s timeout), 0.5 %
answering 500, the rest 200; per-kind figures from the log. --smoke with --tls: 200 HTTPS
targets on a built-in rustls server; with --mix: 2,000 targets at 1-4 s (timeout 4 s, slow
answers after 0.5 s), built-in servers. --crypto: the CPU cost of one HTTPS check's
cryptography (X25519, P-256 and RSA-2048 verification) with ring and with aws-lc-rs,
--rounds rounds alternating. --storm: N targets (default 10,000) every F s (default 1) on
nginx (or the built-in server), which is SIGKILLed once every target passed and started
again S s later (default 60); SMTP, webhook and Slack notifiers on receivers of this tool
(GroupWait W, GroupInterval I: default the daemon's 10 and 60): per notifier the messages,
the time from the kill (and the revival) to the first and last delivery, every incident
recorded and every delivery SENT (else the run fails), and the database's CPU per alert.";

/// Where the HTTP target comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// nginx from Debian's packages, with a private config (the benchmark's reference target).
    Nginx,
    /// A small HTTP server thread inside the tool (the smoke run: nothing to install).
    Builtin,
}

/// Validated settings for one run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub targets: u64,
    pub frequency: u32,
    pub duration: Duration,
    pub warmup: Duration,
    pub workers: usize,
    pub json: PathBuf,
    pub skypunch: PathBuf,
    pub db_url: String,
    pub keep: bool,
    pub blackbox: bool,
    pub blackbox_duration: Duration,
    pub blackbox_concurrency: usize,
    /// Probes per second asked of blackbox_exporter: None for the daemon's rate of checks in
    /// the same round, infinity for as many as it manages.
    pub blackbox_rate: Option<f64>,
    /// Daemon runs, each followed by its blackbox_exporter run.
    pub rounds: usize,
    /// `--callgrind`: count the daemon's instructions in the window.
    pub callgrind: bool,
    /// `--crypto`: time the crypto providers' operations instead of running the daemon.
    pub crypto: bool,
    pub server: ServerKind,
    /// A command the daemon runs under (a profiler), split at spaces.
    pub wrap: Vec<String>,
    /// `--history`: measure the history tables instead of the daemon.
    pub history: bool,
    /// `--nodes K`: K daemons on one database; 0 for the one-daemon benchmark.
    pub nodes: usize,
    /// `--http`: measure the HTTP server (scrapes, pages, hostile clients).
    pub http: bool,
    /// `--tls`: HTTPS targets with a certificate of this key type.
    pub tls: Option<super::tls::KeyKind>,
    /// `--mix`: the fleet mix of `bench::mix`.
    pub mix: bool,
    pub smoke: bool,
    /// `--storm`: an alert storm (`bench::storm`).
    pub storm: bool,
    /// `[notifications] GroupWait` and `GroupInterval` of the storm's daemon, in seconds.
    pub group_wait: u64,
    pub group_interval: u64,
}

fn options() -> getopts::Options {
    let mut o = getopts::Options::new();
    o.optopt("n", "targets", "number of targets", "N");
    o.optopt("f", "frequency", "seconds between checks of a target", "F");
    o.optopt("d", "duration", "measured window, seconds", "S");
    o.optopt(
        "",
        "warmup",
        "seconds after the first check before measuring (default 5)",
        "W",
    );
    o.optopt(
        "",
        "workers",
        "the daemon's Workers setting (default 64; with --mix 256, the daemon's default)",
        "K",
    );
    o.optopt(
        "",
        "json",
        "where to write the results (default target/bench-results.json)",
        "FILE",
    );
    o.optopt(
        "",
        "skypunch",
        "the daemon binary (default: skypunch next to this tool)",
        "PATH",
    );
    o.optopt(
        "",
        "db",
        "MariaDB server (default $SKYPUNCH_TEST_DB or mysql://root@127.0.0.1:3306)",
        "URL",
    );
    o.optflag("", "keep", "keep the bench database and temp folder");
    o.optflag("", "no-blackbox", "skip the blackbox_exporter comparison");
    o.optopt(
        "",
        "blackbox-duration",
        "seconds of blackbox_exporter load (default 10)",
        "S",
    );
    o.optopt(
        "",
        "blackbox-concurrency",
        "load generator threads (default 32)",
        "C",
    );
    o.optopt(
        "",
        "blackbox-rate",
        "probes per second asked of blackbox_exporter (default: the daemon's checks per \
         second in the same round; max: as many as it manages)",
        "R",
    );
    o.optopt(
        "",
        "rounds",
        "daemon and blackbox_exporter runs, alternating (default 3 with blackbox_exporter, \
         else 1)",
        "R",
    );
    o.optflag(
        "",
        "callgrind",
        "run the daemon under callgrind, counting instructions in the window only",
    );
    o.optflag(
        "",
        "builtin-server",
        "use the built-in HTTP server instead of nginx",
    );
    o.optopt(
        "",
        "wrap",
        "run the daemon under this command, e.g. 'valgrind --tool=callgrind'",
        "CMD",
    );
    mode_options(&mut o);
    o.optflag("h", "help", "print this help");
    o
}

/// The flags that choose what is measured.
fn mode_options(o: &mut getopts::Options) {
    o.optflag(
        "",
        "smoke",
        "200 targets, F=1, 5 s, built-in server, no blackbox; fail on loss",
    );
    o.optflag(
        "",
        "history",
        "time `skypunch report` over N targets' history and measure its size",
    );
    o.optflag(
        "",
        "http",
        "measure the HTTP server: scrapes, status page, hostile clients",
    );
    o.optopt(
        "",
        "nodes",
        "run K daemons on one database and measure the cluster",
        "K",
    );
    o.optflagopt(
        "",
        "tls",
        "HTTPS targets through a private CA: ecdsa (default) or rsa",
        "KEY",
    );
    o.optflag("", "mix", "100,000 targets of mixed kinds and frequencies");
    o.optflag(
        "",
        "storm",
        "kill the targets' server, revive it S s later, measure the alerts",
    );
    o.optopt(
        "",
        "group-wait",
        "--storm: the daemon's [notifications] GroupWait (default 10)",
        "W",
    );
    o.optopt(
        "",
        "group-interval",
        "--storm: the daemon's [notifications] GroupInterval (default 60)",
        "I",
    );
    o.optflag(
        "",
        "crypto",
        "time X25519 and signature verification with ring and with aws-lc-rs",
    );
}

fn server_kind(builtin: bool) -> ServerKind {
    if builtin {
        ServerKind::Builtin
    } else {
        ServerKind::Nginx
    }
}

/// The arguments with `--tls rsa` joined as `--tls=rsa` (getopts takes only the latter for an
/// optional value).
fn join_tls(args: &[String]) -> Vec<String> {
    let mut joined: Vec<String> = Vec::new();
    for a in args {
        match joined.last_mut() {
            Some(last) if last == "--tls" && (a == "rsa" || a == "ecdsa") => {
                *last = format!("--tls={a}")
            }
            _ => joined.push(a.clone()),
        }
    }
    joined
}

/// Each mode's defaults for `--targets`, `--frequency` and `--duration` (none: required).
fn defaults(
    smoke: bool,
    mix: bool,
    history: bool,
    http: bool,
    storm: bool,
) -> (Option<u64>, Option<u64>, Option<u64>) {
    if storm {
        (Some(10_000), Some(1), Some(60))
    } else if smoke && mix {
        (Some(2000), Some(1), Some(5))
    } else if smoke {
        (Some(200), Some(1), Some(5))
    } else if mix {
        (Some(100_000), Some(1), Some(90))
    } else if history {
        (None, Some(60), Some(2))
    } else if http {
        (None, Some(60), Some(20))
    } else {
        (None, None, None)
    }
}

/// `--skypunch PATH`, else `skypunch` beside this program; it must exist.
fn skypunch_binary(given: Option<String>) -> Result<PathBuf, String> {
    let skypunch = match given {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this program's folder: {e}"))?
            .with_file_name("skypunch"),
    };
    if !skypunch.is_file() {
        return Err(format!(
            "no skypunch binary at {}: build it (cargo build --release) or pass --skypunch PATH",
            skypunch.display()
        ));
    }
    Ok(skypunch)
}

/// `--blackbox-rate`: a number of probes per second, or `max`.
fn blackbox_rate(given: Option<String>) -> Result<Option<f64>, String> {
    match given.as_deref() {
        None => Ok(None),
        Some("max") => Ok(Some(f64::INFINITY)),
        Some(v) => match v.parse::<f64>() {
            Ok(r) if r >= 1.0 && r.is_finite() => Ok(Some(r)),
            _ => Err(format!(
                "--blackbox-rate {v}: expected probes per second (at least 1) or max"
            )),
        },
    }
}

/// Parses the arguments (without the program name). `Ok(None)` means help was printed.
pub fn parse(args: &[String]) -> Result<Option<Settings>, String> {
    let opts = options();
    let m = opts
        .parse(join_tls(args))
        .map_err(|e| format!("{e}\n{USAGE}"))?;
    if m.opt_present("h") {
        println!("{}", opts.usage(USAGE));
        return Ok(None);
    }
    let smoke = m.opt_present("smoke");
    let num = |name: &str, default: Option<u64>, min: u64, max: u64| -> Result<u64, String> {
        match (m.opt_str(name), default) {
            (Some(v), _) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(format!(
                    "--{name} {v}: expected a whole number from {min} to {max}"
                )),
            },
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("--{name} is required (or --smoke)\n{USAGE}")),
        }
    };
    let history = m.opt_present("history");
    let http = m.opt_present("http");
    let mix = m.opt_present("mix");
    let storm = m.opt_present("storm");
    let tls = match m.opt_present("tls") {
        true => Some(super::tls::KeyKind::parse(
            &m.opt_str("tls").unwrap_or_default(),
        )?),
        false => None,
    };
    let (n, f, d) = match m.opt_present("crypto") {
        // Unused by --crypto; any valid value.
        true => (Some(1), Some(1), Some(2)),
        false => defaults(smoke, mix, history, http, storm),
    };
    let targets = num("targets", n, 1, 10_000_000)?;
    let frequency = num("frequency", f, 1, 86_400)? as u32;
    let duration = Duration::from_secs(num("duration", d, 2, 86_400)?);
    let warmup = Duration::from_secs(num("warmup", Some(if smoke { 1 } else { 5 }), 0, 3600)?);
    // The mix and HTTP runs use the daemon's own default; the throughput runs keep the 64 of
    // their history, so that their figures stay comparable.
    let workers = num("workers", Some(if mix || http { 256 } else { 64 }), 1, 4096)? as usize;
    let blackbox_duration = Duration::from_secs(num("blackbox-duration", Some(20), 1, 3600)?);
    let blackbox_concurrency = num("blackbox-concurrency", Some(32), 1, 1024)? as usize;
    let skypunch = skypunch_binary(m.opt_str("skypunch"))?;
    let db_url = m
        .opt_str("db")
        .or_else(|| std::env::var("SKYPUNCH_TEST_DB").ok())
        .unwrap_or_else(|| "mysql://root@127.0.0.1:3306".into());
    let server = server_kind(smoke || m.opt_present("builtin-server"));
    let callgrind = m.opt_present("callgrind");
    if callgrind && m.opt_present("wrap") {
        return Err("--callgrind and --wrap: choose one".into());
    }
    let crypto = m.opt_present("crypto");
    let blackbox =
        !smoke && !mix && !storm && !callgrind && !crypto && !m.opt_present("no-blackbox");
    let default_rounds = match (crypto, blackbox) {
        (true, _) => 5,
        (false, true) => 3,
        (false, false) => 1,
    };
    let rounds = num("rounds", Some(default_rounds), 1, 9)? as usize;
    let blackbox_rate = blackbox_rate(m.opt_str("blackbox-rate"))?;
    Ok(Some(Settings {
        targets,
        frequency,
        duration,
        warmup,
        workers,
        json: PathBuf::from(
            m.opt_str("json")
                .unwrap_or_else(|| "target/bench-results.json".into()),
        ),
        skypunch,
        db_url,
        keep: m.opt_present("keep"),
        blackbox,
        blackbox_duration,
        blackbox_concurrency,
        blackbox_rate,
        rounds,
        callgrind,
        crypto,
        server,
        wrap: m
            .opt_str("wrap")
            .map(|w| w.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
        history,
        nodes: num("nodes", Some(0), 0, 16)? as usize,
        http,
        tls,
        mix,
        smoke,
        storm,
        group_wait: num("group-wait", Some(10), 0, 600)?,
        group_interval: num("group-interval", Some(60), 1, 3600)?,
    }))
}
