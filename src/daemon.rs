//! Starts the pipeline's threads, waits for a stop signal, and shuts them down in order.

use std::path::Path;

use crate::config::Config;
use crate::db::{targets::TargetRow, Pool};

/// Runs the daemon in this process until SIGTERM or SIGINT.
pub fn run_foreground(
    config: Config,
    source: Option<&Path>,
    wait_for_db: bool,
) -> Result<(), String> {
    let _ = (config, source, wait_for_db);
    Err("the monitoring engine lands with issue 3".into())
}

/// `skypunch targets ID test`.
pub fn test_target(config: &Config, pool: &Pool, row: &TargetRow) -> Result<(), String> {
    let _ = (config, pool);
    Err(format!("testing target {} lands with issue 3", row.id))
}
