//! skypunch: a service-monitoring daemon.
//!
//! Pipeline (each stage a module owning its thread(s) and channel ends):
//! loader → wheel → workers → writer → notifier, with the CLI beside it.

pub mod authn;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub mod model;
pub mod notifier;
pub mod state;
pub mod target;
pub mod trace;
