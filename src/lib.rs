//! skypunch: a service-monitoring daemon.
//!
//! Pipeline (each stage a module owning its thread(s) and channel ends):
//! loader → wheel → workers → writer → notifier, with the CLI beside it.

pub mod authn;
pub mod check;
pub mod config;
pub mod keystone;
pub mod model;
pub mod trace;
