//! The numeric columns of a target row and their ranges, and the schedule `frequency` and
//! `timeout` make together, for the loader thread and the CLI. Pure.

use std::time::Duration;

use super::Error;

/// Longest frequency accepted: a week.
pub(super) const MAX_FREQUENCY: i64 = 7 * 86400;
/// Longest timeout accepted: an hour.
pub(super) const MAX_TIMEOUT: i64 = 3600;
/// Ten years: longer than any certificate a public CA issues.
pub(super) const MAX_CERT_WARN_DAYS: u32 = 3650;

/// Why a target is checked less often than its frequency says, when its timeout is longer:
/// a target is never checked twice at once, so a check that takes longer than the frequency
/// delays the next one, which starts as soon as it ends. Checks then come every `frequency`
/// to `timeout` seconds: the effective interval is the time the checks take. `None` when the
/// timeout fits in the frequency. Pure; the loader logs it, `targets ID` shows it.
pub fn stretched_schedule(frequency: Duration, timeout: Duration) -> Option<String> {
    let (f, t) = (frequency.as_secs(), timeout.as_secs());
    (timeout > frequency).then(|| {
        format!(
            "every {f}s to {t}s, not every {f}s: its timeout {t}s is longer than its frequency \
             {f}s, and a check that takes longer than {f}s delays the next (never two at once; \
             every {t}s while checks time out)"
        )
    })
}

pub(super) fn seconds(column: &'static str, value: i64, max: i64) -> Result<Duration, Error> {
    if value < 1 {
        return Err(Error::TooShort { column, value });
    }
    if value > max {
        return Err(Error::TooLong { column, value, max });
    }
    Ok(Duration::from_secs(value as u64))
}

pub(super) fn at_least_one(column: &'static str, value: i64) -> Result<(), Error> {
    if value < 1 {
        return Err(Error::BelowOne { column, value });
    }
    Ok(())
}
