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

    /// Records a step that happened at `at`, untimed.
    pub fn note(&mut self, at: Instant, text: impl Into<String>) {
        self.step_at(at, None, text);
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

    /// The trace as text, one line per step, times in UTC: `2026-11-24 10:04:22.273Z +
    /// 1.2ms (    0.3ms) connected to 127.0.0.1:80`. Built by hand into one String of about the right size:
    /// the writer renders every check's trace, and the formatting machinery (a call per
    /// padding character) cost more than the text.
    pub fn render(&self) -> String {
        let size = self.steps.iter().map(|s| s.text.len() + 56).sum();
        let mut text = String::with_capacity(size);
        for s in &self.steps {
            match stamp(&s.at, '.') {
                Some(b) => text.push_str(std::str::from_utf8(&b).unwrap_or_default()),
                None => text.push_str(&Stamp(&s.at, '.').to_string()),
            }
            text.push_str("Z +");
            push_ms(&mut text, s.offset, 8);
            text.push_str("ms ");
            match s.took {
                Some(took) => {
                    text.push('(');
                    push_ms(&mut text, took, 7);
                    text.push_str("ms) ");
                }
                None => text.push_str("           "),
            }
            // One step, one line, whatever a server or a row put in the step's text.
            text.push_str(&crate::base::text::visible(&s.text));
            text.push('\n');
        }
        text
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
        f.write_str(&self.render())
    }
}

/// A time (local, or UTC for the database) as `2026-11-24 10:04:22.273` (`sep` `.`) or `...22,273` (`sep` `,`, the
/// log's). Written field by field: chrono's strftime parses its pattern on every call, which
/// showed in profiles at thousands of checks a second.
pub struct Stamp<'a, Tz: TimeZone>(pub &'a DateTime<Tz>, pub char);

impl<Tz: TimeZone> fmt::Display for Stamp<'_, Tz> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match stamp(self.0, self.1) {
            Some(b) => f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?),
            None => write!(f, "{}", self.0.naive_local().format("%Y-%m-%d %H:%M:%S")),
        }
    }
}

/// A stamp's 23 characters, digits written straight into a buffer: `{:02}` pads through the
/// formatter's slow path, which showed in profiles of plain checks (a stamp per trace line).
/// None for a year outside 0-9999 (never from a clock).
fn stamp<Tz: TimeZone>(t: &DateTime<Tz>, sep: char) -> Option<[u8; 23]> {
    use chrono::{Datelike, Timelike};
    // The local time once: each of chrono's field getters would add the offset again.
    let n = t.naive_local();
    let year = u32::try_from(n.year()).ok().filter(|y| *y <= 9999)?;
    let mut b = *b"0000-00-00 00:00:00.000";
    put(&mut b[0..4], year);
    put(&mut b[5..7], n.month());
    put(&mut b[8..10], n.day());
    put(&mut b[11..13], n.hour());
    put(&mut b[14..16], n.minute());
    put(&mut b[17..19], n.second());
    b[19] = u8::try_from(sep).unwrap_or(b'.');
    put(&mut b[20..23], t.timestamp_subsec_millis().min(999));
    Some(b)
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

/// `d` in milliseconds with one decimal (`12.3`), written right to left into `b`: in integer
/// arithmetic (float formatting showed in profiles) and no String per figure.
fn ms_digits(d: Duration, b: &mut [u8; 48]) -> &str {
    let tenths = (d.as_micros() + 50) / 100;
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
    std::str::from_utf8(&b[at..]).unwrap_or_default()
}

/// `d` in milliseconds right-aligned in `width` columns, as `{:>width$}` would.
fn push_ms(out: &mut String, d: Duration, width: usize) {
    let mut b = [0u8; 48];
    let digits = ms_digits(d, &mut b);
    for _ in digits.len()..width {
        out.push(' ');
    }
    out.push_str(digits);
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
        let epoch = chrono::DateTime::from_timestamp_millis(5).unwrap();
        assert_eq!(Stamp(&epoch, '.').to_string(), "1970-01-01 00:00:00.005");
    }

    #[test]
    fn milliseconds_have_one_decimal_and_honour_the_width() {
        let ms = |us: u64| {
            let mut out = String::from("[");
            push_ms(&mut out, Duration::from_micros(us), 8);
            out + "]"
        };
        assert_eq!(ms(0), "[     0.0]");
        assert_eq!(ms(1_249), "[     1.2]");
        assert_eq!(ms(1_250), "[     1.3]");
        assert_eq!(ms(123_456_789), "[123456.8]");
        let mut huge = String::new();
        push_ms(&mut huge, Duration::from_secs(u64::MAX), 8);
        assert!(
            huge.starts_with("18446744073709551615000") && huge.ends_with(".0"),
            "{huge}"
        );
    }

    #[test]
    fn a_rendered_line_is_the_formatted_one() {
        let mut t = Trace::new();
        let start = t.started();
        t.step("resolved host to 127.0.0.1");
        t.phase(
            start + Duration::from_micros(123_456_789),
            Duration::from_micros(12_345_678),
            "slow",
        );
        let text = t.render();
        // The formatter's way, as the trace was written before.
        let ms = |d: Duration| {
            let tenths = (d.as_micros() + 50) / 100;
            format!("{}.{}", tenths / 10, tenths % 10)
        };
        for (line, s) in text.lines().zip(t.steps()) {
            let took = s
                .took
                .map_or("           ".to_string(), |d| format!("({:>7}ms) ", ms(d)));
            let formatted = format!(
                "{}Z +{:>8}ms {took}{}",
                s.at.format("%Y-%m-%d %H:%M:%S.%3f"),
                ms(s.offset),
                s.text
            );
            assert_eq!(line, formatted);
        }
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("+123456.8ms (12345.7ms) slow"), "{text}");
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
