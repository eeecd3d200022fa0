//! SIGHUP, on the main thread: the log file reopened (for logrotate), the configuration file
//! re-read. `LogLevel` and `[secrets]` take effect at once (the loader validates the rows
//! naming secrets again at its next pass); the other settings are fixed while the daemon
//! runs, and a change to them is logged with the keys that need a restart.

use super::Options;
use crate::base::keyring::Keyring;
use crate::config::{self, Config};
use crate::logging::LogFile;

/// Reopens the log file (logrotate moved it away).
pub fn reopen(log: &LogFile) {
    // On failure the old file stays open, so this message still lands somewhere.
    if let Err(e) = log.reopen() {
        log::error!("SIGHUP: {e}");
    }
}

/// Re-reads the configuration for SIGHUP: applies what can change while running, and logs
/// what needs a restart.
pub fn reload_config(opts: &Options, running: &Config, keyring: &Keyring) {
    let loaded = match config::load(opts.config_path) {
        Ok(l) => l,
        Err(e) => {
            log::error!("SIGHUP: configuration not reloaded, keeping the running one: {e}");
            return;
        }
    };
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    let mut new = loaded.config;
    new.resolve_paths(opts.start_dir);
    if new.log_level != log::max_level() {
        log::info!(
            "SIGHUP: LogLevel is now {}",
            new.log_level.as_str().to_lowercase()
        );
        crate::logging::set_level(new.log_level);
    }
    if new.secrets != keyring.now().secrets {
        keyring.replace(&new.secrets);
        // Names and values stay out of the log: the count says the file was taken.
        log::info!(
            "SIGHUP: [secrets] re-read: {} secrets; the targets naming them are validated \
             again within ReloadInterval",
            new.secrets.len()
        );
    }
    let restart_needed = restart_needed(&new, running);
    if restart_needed.is_empty() {
        log::info!("SIGHUP: configuration re-read, log file reopened");
    } else {
        log::warn!(
            "SIGHUP: configuration re-read; LogLevel applied; restart skypunch to apply: {}",
            restart_needed.join(", ")
        );
    }
}

/// The settings that differ between `new` and the `running` configuration and take effect
/// only at a restart, by the name the operator knows them by.
fn restart_needed(new: &Config, running: &Config) -> Vec<&'static str> {
    [
        ("LogFilePath", new.log_file != running.log_file),
        ("PidFile", new.pid_file != running.pid_file),
        ("Workers", new.workers != running.workers),
        (
            "ReloadInterval",
            new.reload_interval != running.reload_interval,
        ),
        (
            "StatsInterval",
            new.stats_interval != running.stats_interval,
        ),
        ("MaxBodyBytes", new.max_body_bytes != running.max_body_bytes),
        ("Proxy", new.proxy != running.proxy),
        ("NoProxy", new.no_proxy != running.no_proxy),
        (
            "TokenLifetime",
            new.token_lifetime != running.token_lifetime,
        ),
        (
            "MaxPendingAlerts",
            new.max_pending_alerts != running.max_pending_alerts,
        ),
        ("Connectivity", new.connectivity != running.connectivity),
        ("BlindPercent", new.blind_percent != running.blind_percent),
        (
            "SourceAddress",
            new.source_address != running.source_address,
        ),
        (
            "ConfirmFailures",
            new.cluster.confirm_failures != running.cluster.confirm_failures,
        ),
        ("StopTimeout", new.stop_timeout != running.stop_timeout),
        ("StopGrace", new.stop_grace != running.stop_grace),
        ("[database]", new.db != running.db),
        ("[notifications]", new.notify != running.notify),
        ("[history]", new.history != running.history),
        ("[http]", new.http != running.http),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_setting_that_needs_a_restart_is_named_and_loglevel_is_not() {
        let running = Config::default();
        assert!(restart_needed(&running.clone(), &running).is_empty());
        let mut new = running.clone();
        new.workers += 1;
        new.stop_grace += std::time::Duration::from_secs(1);
        new.log_level = log::LevelFilter::Trace;
        assert_eq!(restart_needed(&new, &running), ["Workers", "StopGrace"]);
    }
}
