//! skypunch: a service-monitoring daemon.
//!
//! Pipeline (each stage a module owning its thread(s) and channel ends):
//! loader → cluster → wheel → workers → writer → notifier, with the CLI beside it. `daemon` starts the
//! threads; `daemon::pipeline` owns them, its fields in the order the stop ends them.
//!
//! The public API is what the `skypunch` command, the bench tool (src/bin/bench) and the
//! integration tests (tests/it) build on: the configuration file, the schema, one synchronous
//! check of a target, URLs as shown, and the names the manual pages document. It gives no way
//! into the running pipeline (its threads, channels or database writes): a program drives that
//! as an operator does, through the binary, its configuration file and the database's tables.
//! Everything else is private to the crate, so rustc reports the code nothing uses.

mod backlog;
mod base;
mod check;
mod cli;
mod cluster;
mod config;
mod confirm;
mod daemon;
mod db;
mod health;
mod heartbeats;
mod http;
mod jobs;
mod lifecycle;
mod loader;
mod logging;
mod notifier;
mod prune;
mod sight;
mod signals;
mod statsline;
mod target;
mod watchdog;

#[cfg(test)]
mod parsers_test;
#[cfg(test)]
mod secrets_test;
#[cfg(test)]
mod sinks_test;
mod wheel;
mod worker;
mod writer;

/// The command line, for `main.rs`.
pub use cli::main;

/// The configuration file, read as the daemon reads it: the bench tool writes a daemon's
/// config from a [`DbConfig`], the man page test loads the sample file.
pub use config::{load_file, Config, DbConfig, Error as ConfigError, Loaded};

/// One check of one target, synchronously, as a worker makes it: the integration tests check
/// real servers through it (every outcome, Keystone, TLS) without a daemon or a database.
pub use check::{CheckSettings, Checker};

/// A target as a check reads it, built with [`Target::new`] and its public fields.
pub use base::model::{Method, Target};

/// What a check found: [`CheckOutcome`] with its [`Verdict`], the [`CheckError`] that failed
/// it and the [`Phase`] a timeout cut short.
pub use base::model::{CheckError, CheckOutcome, Phase, Verdict};

/// The CA bundles a target's `ca_file` names, read once and shared by the checks.
pub use base::ca::CaFiles;

/// A target's authentication, from its `authn` and `authn_parms` columns: tests build a
/// Keystone target from the words an operator writes.
pub mod authn {
    pub use crate::base::authn::{parse, Auth, ParamError, Secret};
}

/// The database schema, the SQL that `skypunch init-db` runs: the bench tool and the tests
/// load it into a fresh database of their own.
pub mod schema {
    pub use crate::db::schema::{tables_sql, SCHEMA_SQL};
    pub use crate::db::split_script;
}

/// URLs as every output shows them, user info and secret query values masked: the bench tool
/// shows the `--db` URL it was given so, and the tests queue alerts with the URL the writer
/// stores.
pub mod urls {
    pub use crate::base::urls::shown;
}

/// The names the manual pages must document, from their real definitions: tests/it/man.rs
/// checks skypunch(8) and skypunch.conf(5) against them, so the pages cannot drift.
pub mod manual {
    pub use crate::cli::{option_names, COMMANDS};
    pub use crate::config::{known_keys, Key, KEYS, SEARCH_PATH};
}
