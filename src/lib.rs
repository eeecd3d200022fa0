//! skypunch: a service-monitoring daemon.
//!
//! Pipeline (each stage a module owning its thread(s) and channel ends):
//! loader → wheel → workers → writer → notifier, with the CLI beside it. `daemon` starts the
//! threads and says in which order they stop.

pub mod authn;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub mod fault;
pub mod jobs;
pub mod keystone;
pub mod lifecycle;
pub mod loader;
pub mod logging;
pub mod model;
pub mod notifier;
pub mod report;
pub mod signals;
pub mod state;
pub mod stats;
pub mod stop;
pub mod target;
pub mod text;
pub mod threads;
pub mod trace;
pub mod wheel;
pub mod worker;
pub mod writer;
