//! The command line: parses the arguments once into a [`Command`], runs it on the main thread,
//! and maps the outcome to an exit code. The words are the original's
//! (`start | stop | targets [id] [enable | disable | test] | notifiers [id] [enable | disable]`).

mod check_config;
mod database;
mod history;
mod lifecycle;
mod maintenance;
mod notifiers;
mod out;
mod report;
mod service;
mod setup_db;
pub mod table;
pub(crate) mod targets;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config;

use crate::base::version::VERSION;

/// The original's one-line usage, with the words added since.
pub const USAGE: &str = "usage: skypunch start | stop | status | reload | \
targets [id] [enable | disable | test | history] | notifiers [id] [enable | disable | test] | \
report [id...] | maintenance [add id|all | list | end n] | check-config | setup-db | init-db | \
upgrade-db";

const HELP: &str = "\
Commands:
  start                  start the daemon (in the background unless --foreground)
  stop                   stop the running daemon and wait until it has exited
  status                 say whether the daemon runs, summarize the targets, list the nodes
  reload                 make the daemon reopen its log file and re-read its config
  targets                list every target
  targets ID             show one target in detail
  targets ID enable      enable a target (disable: stop checking it)
  targets ID test        check a target now, print the result and trace, count it
  targets ID history     its incidents, uptime by day and p95 response time by hour
  report [ID...]         uptime, downtime, incidents, MTTR and response times per target
  notifiers              list every notifier
  notifiers ID           show one notifier in detail
  notifiers ID enable    enable a notifier (disable: stop sending to it)
  notifiers ID test      send a test message through a notifier now
  maintenance add ID|all --for SPAN [--reason TEXT]
                         hold a target's (or every target's) alerts for SPAN
  maintenance list       the maintenance windows, open and recent
  maintenance end N      end window N now
  check-config           check the config file, the log and pid folders (as the service's
                         user) and the database
  setup-db               as root on the database host: create the database and the daemon's
                         user when absent, write them into the config, create the tables
  init-db                create the skypunch tables in the configured database
  upgrade-db             upgrade a 1.0, 2.0, 2.1 or 2.2 database to schema 2.3 in place";

/// What went wrong, and the exit code that says so.
#[derive(Debug)]
pub struct Error {
    pub message: String,
    pub code: u8,
}

impl Error {
    /// A failure of the command (exit 1).
    pub fn failed(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            code: 1,
        }
    }

    /// The reader closed standard output: nothing more to say, and nothing went wrong.
    pub fn closed_pipe() -> Error {
        Error {
            message: String::new(),
            code: 0,
        }
    }

    /// Words the program does not understand (exit 2).
    pub fn usage(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            code: 2,
        }
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Error {
        Error::failed(e.to_string())
    }
}

/// The parsed command line.
#[derive(Debug, PartialEq)]
pub struct Invocation {
    pub config: Option<PathBuf>,
    pub foreground: bool,
    pub wait_for_db: bool,
    /// With `stop`: how long to wait for the daemon to exit; by default the configuration's
    /// `StopTimeout` plus [`STOP_GRACE`].
    pub stop_timeout: Option<std::time::Duration>,
    /// With `report` and `history`: the window and the output format, as given.
    pub since: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: Option<String>,
    /// `--for`: how long a maintenance window lasts.
    pub for_span: Option<String>,
    /// `--reason`: why (a maintenance window).
    pub reason: Option<String>,
    /// `--admin-user`, `--admin-password`: `setup-db`'s administrator account over TCP.
    pub admin_user: Option<String>,
    pub admin_password: Option<crate::base::authn::Secret>,
    pub words: Vec<String>,
}

/// How long `stop` waits for the daemon to exit unless `--timeout` says otherwise.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// One command-line option. Each is declared once, in [`OPTIONS`], which builds the parser and
/// its help and gives the man page test its list: a new flag cannot miss the man page.
pub struct Opt {
    pub short: &'static str,
    pub long: &'static str,
    /// The value's name in the help, for an option that takes one.
    pub value: Option<&'static str>,
    pub help: &'static str,
}

pub const OPTIONS: &[Opt] = &[
    Opt {
        short: "c",
        long: "config",
        value: Some("FILE"),
        help: "read the configuration from FILE",
    },
    Opt {
        short: "f",
        long: "foreground",
        value: None,
        help: "with start: stay in the foreground (systemd, tests)",
    },
    Opt {
        short: "w",
        long: "wait",
        value: None,
        help: "with start: wait for the database instead of failing when it is down",
    },
    Opt {
        short: "t",
        long: "timeout",
        value: Some("SECONDS"),
        help: "with stop: seconds to wait for the daemon to exit (default StopTimeout + 15)",
    },
    Opt {
        short: "",
        long: "since",
        value: Some("SPAN"),
        help: "with report and history: the last SPAN (30d, 12h, 90m, 2w)",
    },
    Opt {
        short: "",
        long: "from",
        value: Some("TIME"),
        help: "with report and history: from TIME (YYYY-MM-DD[ HH:MM[:SS]], local; Z: UTC)",
    },
    Opt {
        short: "",
        long: "to",
        value: Some("TIME"),
        help: "with report and history: up to TIME (default now)",
    },
    Opt {
        short: "",
        long: "format",
        value: Some("FORMAT"),
        help: "with report: table (default), csv or json",
    },
    Opt {
        short: "",
        long: "for",
        value: Some("SPAN"),
        help: "with maintenance add: how long the window lasts (2h, 90m, 1d)",
    },
    Opt {
        short: "",
        long: "reason",
        value: Some("TEXT"),
        help: "with maintenance add: why, shown by maintenance list",
    },
    Opt {
        short: "",
        long: "admin-user",
        value: Some("USER"),
        help: "with setup-db: connect as USER over TCP to [database] Location (default: root \
               through the local socket)",
    },
    Opt {
        short: "",
        long: "admin-password",
        value: Some("PASSWORD"),
        help: "with setup-db: the --admin-user's password; - reads it from standard input",
    },
    Opt {
        short: "h",
        long: "help",
        value: None,
        help: "print this help and exit",
    },
    Opt {
        short: "V",
        long: "version",
        value: None,
        help: "print the version and exit",
    },
];

fn options() -> getopts::Options {
    let mut o = getopts::Options::new();
    for opt in OPTIONS {
        match opt.value {
            Some(value) => o.optopt(opt.short, opt.long, opt.help, value),
            None => o.optflag(opt.short, opt.long, opt.help),
        };
    }
    o
}

/// Every option the program accepts, long form.
pub fn option_names() -> Vec<String> {
    OPTIONS.iter().map(|o| format!("--{}", o.long)).collect()
}

/// Every command word the program accepts.
pub const COMMANDS: &[&str] = &[
    "start",
    "stop",
    "status",
    "reload",
    "targets",
    "notifiers",
    "enable",
    "disable",
    "test",
    "history",
    "report",
    "maintenance",
    "add",
    "list",
    "end",
    "check-config",
    "setup-db",
    "init-db",
    "upgrade-db",
];

/// Runs the program with these arguments (without the program name).
pub fn main(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("skypunch: {}", e.message);
            }
            ExitCode::from(e.code)
        }
    }
}

fn run(args: &[String]) -> Result<(), Error> {
    let opts = options();
    let m = opts
        .parse(args)
        .map_err(|e| Error::usage(format!("{e}\n{USAGE}")))?;
    if m.opt_present("h") {
        return out::line(format_args!(
            "skypunch {VERSION}: service-monitoring daemon\n{USAGE}\n\n{}",
            opts.usage(HELP)
        ));
    }
    if m.opt_present("V") {
        return out::line(format_args!("skypunch {VERSION}"));
    }
    let stop_timeout = match m.opt_str("t") {
        None => None,
        Some(t) => Some(
            t.parse::<u64>()
                .ok()
                .filter(|&t| t <= 86400)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "--timeout takes whole seconds from 0 to 86400, not `{t}`"
                    ))
                })?,
        ),
    };
    let inv = Invocation {
        config: m.opt_str("c").map(PathBuf::from),
        foreground: m.opt_present("f"),
        wait_for_db: m.opt_present("w"),
        stop_timeout: stop_timeout.map(std::time::Duration::from_secs),
        since: m.opt_str("since"),
        from: m.opt_str("from"),
        to: m.opt_str("to"),
        format: m.opt_str("format"),
        for_span: m.opt_str("for"),
        reason: m.opt_str("reason"),
        admin_user: m.opt_str("admin-user"),
        admin_password: m
            .opt_str("admin-password")
            .map(crate::base::authn::Secret::new),
        words: m.free,
    };
    dispatch(&inv)
}

fn dispatch(inv: &Invocation) -> Result<(), Error> {
    let words: Vec<&str> = inv.words.iter().map(String::as_str).collect();
    if words.first() != Some(&"start") {
        // `start` runs the daemon, which logs to its own file.
        warnings_to_stderr();
    }
    match words.as_slice() {
        [] => {
            out::line(format_args!("version: {VERSION}\n{USAGE}"))?;
            Err(Error::usage(""))
        }
        ["targets", rest @ ..] => targets::run(&load_config(inv)?, inv, rest),
        ["report", rest @ ..] => report::run(&load_config(inv)?, inv, rest),
        ["maintenance", rest @ ..] => maintenance::run(&load_config(inv)?, inv, rest),
        ["check-config"] => check_config::run(inv),
        ["setup-db"] => setup_db::run(inv),
        ["notifiers", rest @ ..] => notifiers::run(&load_config(inv)?, rest),
        ["init-db"] | ["upgrade-db"] => database::upgrade(&load_config(inv)?, words[0]),
        ["start"] | ["stop"] | ["status"] | ["reload"] => lifecycle::run(inv, words[0]),
        [word, ..] => Err(Error::usage(format!("unknown command `{word}`\n{USAGE}"))),
    }
}

/// The CLI has no log file: what the layers below log at WARN or worse (a row left out
/// because it does not decode, a database host that did not answer) goes to stderr, and the
/// answer on stdout holds the rest.
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }

    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let line = crate::base::text::printable(&r.args().to_string());
            // Never a panic for a closed stderr, as `eprintln!` would.
            let _ = writeln!(std::io::stderr(), "skypunch: warning: {line}");
        }
    }

    fn flush(&self) {}
}

fn warnings_to_stderr() {
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// Loads the configuration, printing its warnings on stderr (the CLI has no log file).
pub fn load_config(inv: &Invocation) -> Result<config::Config, Error> {
    let loaded = config::load(inv.config.as_deref())?;
    for w in &loaded.warnings {
        eprintln!("skypunch: warning: {w}");
    }
    Ok(loaded.config)
}

/// `enable` or `disable`: the flag to set, and the word the original's message used.
pub fn toggle(word: &str) -> (bool, &'static str) {
    if word == "enable" {
        (true, "Enabled")
    } else {
        (false, "Disabled")
    }
}

/// Parses an id word the way the original did.
pub fn parse_id(word: &str) -> Result<u64, Error> {
    word.parse::<u64>()
        .map_err(|_| Error::failed(format!("{word} is not a valid id")))
}
