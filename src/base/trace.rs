//! The trace of one check: a timestamped line per step, with the time since the check began
//! and the time the step itself took. Built by the worker running the check; stored in
//! `targets.last_trace` and the alerts, in UTC marked `Z` whoever wrote it (the daemon or
//! `targets ID test` in any `TZ`); the CLI and the e-mails show it in local time with its
//! offset ([`localize`]).
//!
//! Nothing secret may be written here: callers pass only redacted values.

use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, TimeZone, Utc};

/// One step of a check.
#[derive(Debug, Clone)]
pub struct Step {
    pub at: DateTime<Utc>,
    /// Since the check began.
    pub offset: Duration,
    /// How long this step took, when it is a timed phase.
    pub took: Option<Duration>,
    pub text: String,
}

/// The steps of one check, in order.
#[derive(Debug, Clone)]
pub struct Trace {
    started: Instant,
    started_at: DateTime<Utc>,
    steps: Vec<Step>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

impl Trace {
    pub fn new() -> Trace {
        Trace {
            started: Instant::now(),
            started_at: Utc::now(),
            steps: Vec::with_capacity(8),
        }
    }

    /// The instant the check began.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Records a step that happened now.
    pub fn step(&mut self, text: impl Into<String>) {
        self.step_at(Instant::now(), None, text);
    }

    /// Records a timed phase that ended at `end` after taking `took`.
    pub fn phase(&mut self, end: Instant, took: Duration, text: impl Into<String>) {
        self.step_at(end, Some(took), text);
    }

    fn step_at(&mut self, at: Instant, took: Option<Duration>, text: impl Into<String>) {
        let offset = at.saturating_duration_since(self.started);
        let wall = self.started_at + chrono::Duration::from_std(offset).unwrap_or_default();
        self.steps.push(Step {
            at: wall,
            offset,
            took,
            text: text.into(),
        });
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// A failed step, in the original's words: `[Fail] reason: ...`.
    pub fn fail(&mut self, reason: &str) {
        self.step(format!("[Fail] reason: {reason}"));
    }

    /// Masks the `[secrets]` values in every step: the last thing done to a check's trace
    /// before it leaves the worker, whatever a server echoed into it.
    pub fn redact(&mut self, redactor: &crate::base::redactor::Redactor) {
        if redactor.is_empty() {
            return;
        }
        for step in &mut self.steps {
            if let std::borrow::Cow::Owned(text) = redactor.redact(&step.text) {
                step.text = text;
            }
        }
    }
}

/// The stored form: `2026-11-24 10:04:22.273Z +     3.0ms (    3.0ms) connected`, one line
/// per step, times in UTC.
impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            write!(f, "{}Z +{:>8}ms ", Stamp(&s.at, '.'), Ms(s.offset))?;
            match s.took {
                Some(took) => write!(f, "({:>7}ms) ", Ms(took))?,
                None => f.write_str("           ")?,
            }
            // One step, one line, whatever a server or a row put in the step's text.
            writeln!(f, "{}", crate::base::text::Visible(&s.text))?;
        }
        Ok(())
    }
}

/// A time (local, or UTC for the database) as `2026-11-24 10:04:22.273` (`sep` `.`) or `...22,273` (`sep` `,`, the
/// log's). Written field by field: chrono's strftime parses its pattern on every call, which
/// showed in profiles at thousands of checks a second.
pub struct Stamp<'a, Tz: TimeZone>(pub &'a DateTime<Tz>, pub char);

impl<Tz: TimeZone> fmt::Display for Stamp<'_, Tz> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::{Datelike, Timelike};
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{}{:03}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            self.1,
            t.timestamp_subsec_millis().min(999)
        )
    }
}

/// A `YYYY-MM-DD HH:MM:SS` time as the database gives it (in UTC: every connection runs with
/// `time_zone = '+00:00'`), shown in this host's time with its offset, as
/// `2026-11-24 11:04:22 +01:00`. Anything else (the zero date of a row never checked) is
/// shown as it is.
pub fn local_from_utc(utc: &str) -> String {
    match chrono::NaiveDateTime::parse_from_str(utc, "%Y-%m-%d %H:%M:%S") {
        Ok(naive) => naive
            .and_utc()
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        Err(_) => utc.to_string(),
    }
}

/// A stored trace with each line's UTC time (`2026-11-24 10:04:22.273Z`) shown in this
/// host's time with its offset (`2026-11-24 11:04:22.273 +01:00`). A line without such a time
/// (a trace written before times were marked, whose zone nobody knows) stays as it is.
pub fn localize(trace: &str) -> String {
    let mut out = String::with_capacity(trace.len() + trace.len() / 8);
    for line in trace.split_inclusive('\n') {
        let stamp = line.get(..24).filter(|s| s.ends_with('Z'));
        let parsed = stamp.and_then(|s| {
            chrono::NaiveDateTime::parse_from_str(&s[..23], "%Y-%m-%d %H:%M:%S%.3f").ok()
        });
        match parsed {
            Some(utc) => {
                let local = utc.and_utc().with_timezone(&Local);
                out.push_str(&format!("{} {}", Stamp(&local, '.'), local.format("%:z")));
                out.push_str(&line[24..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// Milliseconds with one decimal (`12.3`), in integer arithmetic: float formatting showed in
/// profiles. Honours the width of the format it is written with.
struct Ms(Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = (self.0.as_micros() + 50) / 100;
        f.pad(&format!("{}.{}", tenths / 10, tenths % 10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacting_masks_the_secret_values_in_every_step() {
        let mut t = Trace::new();
        t.step("GET https://h/hook/tok-123456 sent");
        t.step("response 200 OK");
        t.redact(&crate::base::redactor::Redactor::new(["tok-123456"]));
        let texts: Vec<&str> = t.steps().iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["GET https://h/hook/*** sent", "response 200 OK"]);
    }

    #[test]
    fn stamps_match_the_strftime_form() {
        let t = Local::now();
        assert_eq!(
            Stamp(&t, ',').to_string(),
            t.format("%Y-%m-%d %H:%M:%S,%3f").to_string()
        );
    }

    #[test]
    fn database_times_are_shown_in_local_time_with_the_offset() {
        let shown = local_from_utc("2026-07-01 12:00:00");
        let expected = chrono::DateTime::parse_from_rfc3339("2026-07-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string();
        assert_eq!(shown, expected);
        assert_eq!(local_from_utc("0000-00-00 00:00:00"), "0000-00-00 00:00:00");
    }

    #[test]
    fn a_trace_prints_one_line_per_step_with_offsets() {
        let mut t = Trace::new();
        let start = t.started();
        t.phase(
            start + Duration::from_millis(3),
            Duration::from_millis(3),
            "connected",
        );
        t.fail("target status:503 != 200");
        let text = t.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("+     3.0ms (    3.0ms) connected"),
            "{text}"
        );
        assert!(
            lines[1].ends_with("[Fail] reason: target status:503 != 200"),
            "{text}"
        );
        // Stored in UTC, and saying so.
        let stamp = Stamp(&t.steps()[0].at, '.').to_string();
        assert!(lines[0].starts_with(&format!("{stamp}Z +")), "{text}");
    }

    #[test]
    fn stored_traces_are_shown_in_local_time_with_the_offset() {
        let stored = "2026-07-01 12:00:00.250Z +     0.2ms (    0.2ms) connected\n\
                      2026-07-01 12:00:01.000 +     1.0ms            an old line\n";
        let local = chrono::DateTime::parse_from_rfc3339("2026-07-01T12:00:00.250Z")
            .unwrap()
            .with_timezone(&Local);
        let expected = format!(
            "{} {} +     0.2ms (    0.2ms) connected\n\
             2026-07-01 12:00:01.000 +     1.0ms            an old line\n",
            local.format("%Y-%m-%d %H:%M:%S%.3f"),
            local.format("%:z")
        );
        assert_eq!(localize(stored), expected);
    }
}
