//! The trace of one check: a timestamped line per step, with the time since the check began
//! and the time the step itself took. Built by the worker running the check; stored in
//! `targets.last_trace`, printed by `targets ID test`, and sent in alert e-mails.
//!
//! Nothing secret may be written here: callers pass only redacted values.

use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, TimeZone};

/// One step of a check.
#[derive(Debug, Clone)]
pub struct Step {
    pub at: DateTime<Local>,
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
    started_at: DateTime<Local>,
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
            started_at: Local::now(),
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

    /// The trace as text (what `Display` writes), in one allocation of about the right size.
    pub fn render(&self) -> String {
        use fmt::Write as _;
        let size = self.steps.iter().map(|s| s.text.len() + 56).sum();
        let mut text = String::with_capacity(size);
        let _ = write!(text, "{self}");
        text
    }

    /// A failed step, in the original's words: `[Fail] reason: ...`.
    pub fn fail(&mut self, reason: &str) {
        self.step(format!("[Fail] reason: {reason}"));
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            write!(f, "{} +{:>8}ms ", Stamp(&s.at, '.'), Ms(s.offset))?;
            match s.took {
                Some(took) => write!(f, "({:>7}ms) ", Ms(took))?,
                None => f.write_str("           ")?,
            }
            writeln!(f, "{}", s.text)?;
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
        // The local time once: each of chrono's field getters would add the offset again.
        let t = self.0.naive_local();
        let millis = self.0.timestamp_subsec_millis().min(999);
        let Ok(year) = u32::try_from(t.year()).map(|y| y.min(9999)) else {
            return write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S"));
        };
        // Digits into a buffer and one write: `{:02}` pads through the formatter's slow path,
        // which showed in profiles of plain checks (several stamps a check).
        let mut b = *b"0000-00-00 00:00:00.000";
        put(&mut b[0..4], year);
        put(&mut b[5..7], t.month());
        put(&mut b[8..10], t.day());
        put(&mut b[11..13], t.hour());
        put(&mut b[14..16], t.minute());
        put(&mut b[17..19], t.second());
        b[19] = u8::try_from(self.1).unwrap_or(b'.');
        put(&mut b[20..23], millis);
        f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?)
    }
}

/// Writes `n` as decimal digits right-aligned into `to`, zero-padded, keeping the low ones.
fn put(to: &mut [u8], mut n: u32) {
    for d in to.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
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

/// Milliseconds with one decimal (`12.3`), in integer arithmetic: float formatting showed in
/// profiles. Honours the width of the format it is written with.
struct Ms(Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = (self.0.as_micros() + 50) / 100;
        // Right to left into a stack buffer: no String per figure.
        let mut b = [0u8; 48];
        let mut at = b.len() - 2;
        b[at] = b'.';
        b[at + 1] = b'0' + (tenths % 10) as u8;
        let mut whole = tenths / 10;
        loop {
            at -= 1;
            b[at] = b'0' + (whole % 10) as u8;
            whole /= 10;
            if whole == 0 {
                break;
            }
        }
        f.pad(std::str::from_utf8(&b[at..]).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_match_the_strftime_form() {
        let t = Local::now();
        assert_eq!(
            Stamp(&t, ',').to_string(),
            t.format("%Y-%m-%d %H:%M:%S,%3f").to_string()
        );
        let epoch = chrono::DateTime::from_timestamp_millis(5).unwrap();
        assert_eq!(Stamp(&epoch, '.').to_string(), "1970-01-01 00:00:00.005");
    }

    #[test]
    fn milliseconds_have_one_decimal_and_honour_the_width() {
        let ms = |us: u64| format!("[{:>8}]", Ms(Duration::from_micros(us)));
        assert_eq!(ms(0), "[     0.0]");
        assert_eq!(ms(1_249), "[     1.2]");
        assert_eq!(ms(1_250), "[     1.3]");
        assert_eq!(ms(123_456_789), "[123456.8]");
        let huge = Ms(Duration::from_secs(u64::MAX)).to_string();
        assert!(huge.starts_with("18446744073709551615000") && huge.ends_with(".0"), "{huge}");
    }

    #[test]
    fn a_rendered_trace_is_its_display() {
        let mut t = Trace::new();
        t.step("resolved host to 127.0.0.1");
        t.fail("connection refused");
        assert_eq!(t.render(), t.to_string());
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
    }
}
