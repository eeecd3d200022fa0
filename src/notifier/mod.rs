//! The notifier thread: sends the alerts owed in the outbox (tables `alerts` and
//! `alert_deliveries`) to every enabled notifier, retrying with backoff.
//!
//! Interface placeholder: the notifier thread itself lands with the notifications issue.

pub mod outbox;

use std::thread::JoinHandle;

use crossbeam_channel::Receiver;

use crate::config::Config;
use crate::db::{notifiers::NotifierRow, Pool};

/// Starts the notifier thread. It wakes on every message (the writer sends one after each
/// commit that queued alerts) and on its own retry timer; it returns once `wake` is
/// disconnected and what is owed has been tried once more.
pub fn spawn(config: std::sync::Arc<Config>, pool: Pool, wake: Receiver<()>) -> JoinHandle<()> {
    let _ = (config, pool);
    std::thread::Builder::new()
        .name("skypunch-notifier".into())
        .spawn(move || for () in wake {})
        .expect("spawning the notifier thread")
}

/// `skypunch notifiers ID test`: sends a test message now and prints the outcome.
pub fn send_test(config: &Config, pool: &Pool, row: &NotifierRow) -> Result<(), String> {
    let _ = (config, pool);
    Err(format!(
        "notifier {}: sending comes with the notifications issue",
        row.id
    ))
}
