//! The parts of `skypunch-bench`, one file or folder per concern: each mode's run
//! (`throughput/`, `http/`, `storm`, `cluster`, `history`, `crypto`), the flags, the HTTP
//! target, the bench database, the daemon under test and its log, /proc readings,
//! blackbox_exporter, the throughput run's report (`report/`).

pub mod args;
pub mod blackbox;
pub mod callgrind;
pub mod cluster;
pub mod crypto;
pub mod daemon;
pub mod database;
pub mod history;
pub mod http;
pub mod mix;
pub mod procfs;
pub mod report;
pub mod sinks;
pub mod statsline;
pub mod storm;
pub mod target;
pub mod throughput;
pub mod tls;

/// Why a benchmark run could not finish; the message says what to do.
pub type Error = String;
