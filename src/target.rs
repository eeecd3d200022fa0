//! Validation of a target row into a [`Target`] the workers can run. Pure; used by the
//! loader thread and the CLI. A row that does not validate is never scheduled: its error
//! becomes the row's `config error: ...` description.

use std::time::Duration;

use crate::base::authn;
use crate::base::ca::CaFiles;
use crate::base::model::{Method, Status, Target, TargetState};
use crate::base::text;
use crate::base::urls::WebUrl;
use crate::db::targets::TargetRow;

/// Longest frequency accepted: a week.
const MAX_FREQUENCY: i64 = 7 * 86400;
/// Longest timeout accepted: an hour.
const MAX_TIMEOUT: i64 = 3600;
/// Ten years: longer than any certificate a public CA issues.
const MAX_CERT_WARN_DAYS: u32 = 3650;

/// Validates a row; the error is the text after `config error: `.
/// `cas` reads the row's `ca_file` (or the configured default): a file that cannot be read
/// is the row's config error.
pub fn from_row(row: &TargetRow, cas: &mut CaFiles) -> Result<Target, String> {
    if let Some(problem) = &row.undecodable {
        return Err(problem.clone());
    }
    let method = Method::parse(&row.method).ok_or_else(|| {
        format!(
            "unknown method `{}`: use GET, POST, PUT, DELETE, HEAD, PATCH or OPTIONS",
            text::clip_marked(&row.method, 60)
        )
    })?;
    let url = WebUrl::parse(&row.url)?;
    let auth = authn::parse(&row.authn, row.authn_parms.as_deref())?;
    let pass_result = u16::try_from(row.pass_result)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| {
            format!(
                "pass_result {} is not an HTTP status (100-599)",
                row.pass_result
            )
        })?;
    let frequency = seconds("frequency", row.frequency, MAX_FREQUENCY)?;
    let timeout = seconds("timeout", row.timeout, MAX_TIMEOUT)?;
    if row.fail_threshold < 1 {
        return Err(format!(
            "fail_threshold {} is less than 1",
            row.fail_threshold
        ));
    }
    if row.success_threshold < 1 {
        return Err(format!(
            "success_threshold {} is less than 1",
            row.success_threshold
        ));
    }
    let cert_warn_days = u32::try_from(row.cert_warn_days)
        .ok()
        .filter(|d| *d <= MAX_CERT_WARN_DAYS)
        .ok_or_else(|| {
            format!(
                "cert_warn_days {} is not between 0 and {MAX_CERT_WARN_DAYS}",
                row.cert_warn_days
            )
        })?;
    let max_response_ms = match row.max_response_ms {
        Some(ms) if ms < 1 => return Err(format!("max_response_ms {ms} is less than 1")),
        other => other.map(|ms| ms as u64),
    };
    Ok(Target {
        id: row.id,
        name: row.name.clone(),
        url,
        method,
        auth,
        pass_result,
        frequency,
        timeout,
        request_body: row.request_body.clone(),
        content_type: row.content_type.clone().filter(|c| !c.trim().is_empty()),
        expect_body: row.expect_body.clone().filter(|e| !e.is_empty()),
        max_response_ms,
        follow_redirects: row.follow_redirects,
        verify_tls: row.verify_tls,
        fail_threshold: row.fail_threshold as u64,
        success_threshold: row.success_threshold as u64,
        realert: (row.realert_minutes > 0)
            .then(|| Duration::from_secs(row.realert_minutes as u64 * 60)),
        ca: cas.get(row.ca_file.as_deref()).map_err(|e| e.to_string())?,
        cert_warn_days,
    })
}

/// The result state a row holds: what the writer starts from the first time it writes the
/// target, and what `targets ID test` applies its one check to. Values edited out of range
/// are taken as their repairs (see [`TargetRow::fixes`]).
pub fn state_of(row: &TargetRow) -> TargetState {
    let fixes = row.fixes();
    let now = |column: &str, was: i64| crate::db::decode::repaired(&fixes, column, was) as u64;
    TargetState {
        status: Status::parse(&row.status),
        repeated_fails: now("repeated_fails", row.repeated_fails),
        alerted: row.alerted,
        repeated_passes: now("repeated_passes", row.repeated_passes),
        last_alerted_ms: row.last_alerted_ms,
        seq: now("state_seq", row.state_seq),
        cert_alerted_for: row.cert_alerted_for,
    }
}

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

fn seconds(column: &str, value: i64, max: i64) -> Result<Duration, String> {
    if value < 1 {
        return Err(format!("{column} {value} is less than 1 second"));
    }
    if value > max {
        return Err(format!("{column} {value} is more than {max} seconds"));
    }
    Ok(Duration::from_secs(value as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> TargetRow {
        TargetRow {
            id: 7,
            name: "Example".into(),
            status: "NEW".into(),
            url: "http://127.0.0.1:8080/health".into(),
            method: "GET".into(),
            authn: "NONE".into(),
            pass_result: 200,
            frequency: 60,
            timeout: 10,
            enabled: true,
            verify_tls: true,
            fail_threshold: 1,
            success_threshold: 1,
            cert_warn_days: 14,
            ..TargetRow::default()
        }
    }

    #[test]
    fn a_defaulted_row_is_a_valid_target() {
        let t = from_row(&row(), &mut CaFiles::default()).unwrap();
        assert_eq!(
            (
                t.method,
                t.pass_result,
                t.frequency.as_secs(),
                t.timeout.as_secs()
            ),
            (Method::Get, 200, 60, 10)
        );
    }

    #[test]
    fn each_bad_value_gets_its_own_config_error() {
        type Spoil = fn(&mut TargetRow);
        let cases: Vec<(Spoil, &str)> = vec![
            (|r| r.method = "FETCH".into(), "unknown method `FETCH`"),
            (
                |r| r.url = "ftp://x/".into(),
                "is not an absolute http:// or https:// URL",
            ),
            (|r| r.url = "http://a b/".into(), "contains white space"),
            (|r| r.url = String::new(), "url is empty"),
            (|r| r.frequency = 0, "frequency 0 is less than 1 second"),
            (|r| r.timeout = -5, "timeout -5 is less than 1 second"),
            (
                |r| r.pass_result = 42,
                "pass_result 42 is not an HTTP status",
            ),
            (|r| r.authn = "KERBEROS".into(), "unknown authn `KERBEROS`"),
            (
                |r| r.authn = "BASIC".into(),
                "BASIC needs user and password",
            ),
            (|r| r.fail_threshold = 0, "fail_threshold 0 is less than 1"),
            (
                |r| r.success_threshold = 0,
                "success_threshold 0 is less than 1",
            ),
        ];
        for (spoil, expected) in cases {
            let mut r = row();
            spoil(&mut r);
            let err = from_row(&r, &mut CaFiles::default()).unwrap_err();
            assert!(err.contains(expected), "{err} should contain {expected}");
        }
    }

    #[test]
    fn a_timeout_longer_than_the_frequency_says_how_often_checks_really_come() {
        let secs = Duration::from_secs;
        assert_eq!(stretched_schedule(secs(60), secs(10)), None);
        assert_eq!(stretched_schedule(secs(5), secs(5)), None);
        let why = stretched_schedule(secs(2), secs(8)).unwrap();
        assert!(why.starts_with("every 2s to 8s, not every 2s: "), "{why}");
        assert!(
            why.contains("timeout 8s is longer than its frequency 2s"),
            "{why}"
        );
        assert!(
            why.ends_with("(never two at once; every 8s while checks time out)"),
            "{why}"
        );
    }

    #[test]
    fn a_row_that_does_not_decode_is_its_own_config_error() {
        let mut r = row();
        r.undecodable = Some("frequency: 'abc' is not a whole number".into());
        let err = from_row(&r, &mut CaFiles::default()).unwrap_err();
        assert_eq!(err, "frequency: 'abc' is not a whole number");
    }

    #[test]
    fn a_state_edited_out_of_range_is_taken_as_its_repair() {
        let mut r = row();
        (r.state_seq, r.repeated_fails, r.repeated_passes) = (-1, i64::MAX, 3);
        let s = state_of(&r);
        assert_eq!((s.seq, s.repeated_fails, s.repeated_passes), (0, 0, 3));
    }

    #[test]
    fn methods_are_case_insensitive() {
        let mut r = row();
        r.method = " post ".into();
        assert_eq!(
            from_row(&r, &mut CaFiles::default()).unwrap().method,
            Method::Post
        );
    }
}
