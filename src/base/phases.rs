//! How long each phase of a check took, as blackbox_exporter's
//! `probe_http_duration_seconds{phase=...}` gives them: the check records them on its worker
//! thread (`check::phase`), the outcome carries them to the writer, the row keeps those of
//! the last check in `last_phases` (a small JSON object), and `/metrics` and the API read
//! them back from there, so every node shows every target's. Pure; any thread.
//!
//! The phases, summed over the redirects a check follows (a token request's are not the
//! target's and are not counted):
//! - `dns`: resolving the host (0 for an IP address);
//! - `connect`: the TCP connection (through a proxy: the connection to the proxy and, for
//!   https, its CONNECT tunnel; the proxy's name lookup is `dns`);
//! - `tls`: the TLS handshake (0 for `http://`);
//! - `request`: writing the request, from the connection's readiness to its last byte;
//! - `first_byte`: from the request's last byte to the answer's first (the server's time);
//! - `body`: from the answer's first byte to the end of its body.

use std::num::NonZeroU32;
use std::time::Duration;

/// The phases' names, in their order: the `phase` label's values and the JSON keys.
pub const NAMES: [&str; 6] = ["dns", "connect", "tls", "request", "first_byte", "body"];

/// The longest phase a row holds (a phase saturates there): about 71 minutes, longer than
/// the longest timeout.
const MAX_SECONDS: f64 = (u32::MAX - 1) as f64 / 1e6;

/// One phase of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Dns,
    Connect,
    Tls,
    Request,
    FirstByte,
    Body,
}

/// The durations of one check's phases, in [`NAMES`] order; a phase the check did not go
/// through is 0. Each is held as its microseconds plus one, never 0, so that an
/// `Option<Phases>` is 24 bytes too: `/metrics` holds one per target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phases([NonZeroU32; 6]);

impl Default for Phases {
    fn default() -> Phases {
        Phases([NonZeroU32::MIN; 6])
    }
}

impl Phases {
    /// Adds `took` to `step` (redirects add up), saturating at about 71 minutes.
    pub fn add(&mut self, step: Step, took: Duration) {
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        let slot = &mut self.0[step as usize];
        *slot = slot.saturating_add(micros);
    }

    /// Each phase's microseconds, in [`NAMES`] order.
    fn micros(&self) -> [u32; 6] {
        self.0.map(|v| v.get() - 1)
    }

    /// Each phase's name and duration in seconds, in [`NAMES`] order.
    pub fn seconds(&self) -> impl Iterator<Item = (&'static str, f64)> {
        NAMES
            .into_iter()
            .zip(self.micros().map(|us| f64::from(us) / 1e6))
    }

    /// The row's `last_phases`: `{"dns":0.000412,"connect":...}`, seconds to the
    /// microsecond, every phase named. Digits are written by hand: six `write!` calls cost
    /// about 6,000 instructions, 5 % of a whole plain check.
    pub fn to_json(self) -> String {
        let mut out = String::with_capacity(120);
        out.push('{');
        for (i, (name, us)) in NAMES.iter().zip(self.micros()).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            push_seconds(&mut out, us);
        }
        out.push('}');
        out
    }

    /// Reads a `last_phases` value back. `None` for anything that is not a JSON object of
    /// known phase names and seconds from 0 to about 71 minutes (a hand edit): a row's
    /// odd value costs its phase series, never its row. A phase not named is 0.
    pub fn parse(text: &[u8]) -> Option<Phases> {
        let text = std::str::from_utf8(text).ok()?.trim();
        let inner = text.strip_prefix('{')?.strip_suffix('}')?.trim();
        let mut phases = Phases::default();
        if inner.is_empty() {
            return Some(phases);
        }
        for pair in inner.split(',') {
            let (key, value) = pair.split_once(':')?;
            let key = key.trim().strip_prefix('"')?.strip_suffix('"')?;
            let at = NAMES.iter().position(|n| *n == key)?;
            let seconds: f64 = value.trim().parse().ok()?;
            if !(0.0..=MAX_SECONDS).contains(&seconds) {
                return None;
            }
            let micros = (seconds * 1e6).round() as u32;
            phases.0[at] = NonZeroU32::MIN.saturating_add(micros);
        }
        Some(phases)
    }
}

/// `us` microseconds as seconds with six decimals: `0.000412`, `4294.967295`.
fn push_seconds(out: &mut String, us: u32) {
    // u32::MAX is 4294.967295 s: at most 4 whole digits, a point and 6 decimals.
    let mut b = *b"0000.000000";
    let mut n = us;
    for at in (0..b.len()).rev().filter(|at| *at != 4) {
        b[at] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let first = b[..3].iter().position(|d| *d != b'0').unwrap_or(3);
    out.push_str(std::str::from_utf8(&b[first..]).unwrap_or("0.000000"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_and_read_back_from_their_column() {
        let mut p = Phases::default();
        p.add(Step::Dns, Duration::from_micros(412));
        p.add(Step::Tls, Duration::from_millis(3));
        p.add(Step::Tls, Duration::from_millis(2));
        p.add(
            Step::Body,
            Duration::from_secs(61) + Duration::from_micros(7),
        );
        let json = p.to_json();
        assert_eq!(
            json,
            "{\"dns\":0.000412,\"connect\":0.000000,\"tls\":0.005000,\"request\":0.000000,\
             \"first_byte\":0.000000,\"body\":61.000007}"
        );
        assert_eq!(Phases::parse(json.as_bytes()), Some(p));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["tls"].as_f64(), Some(0.005));
        let seconds: Vec<(&str, f64)> = p.seconds().collect();
        assert_eq!(seconds[0], ("dns", 0.000412));
        assert_eq!(seconds[5], ("body", 61.000007));
    }

    #[test]
    fn seconds_are_written_as_the_formatter_would() {
        for us in [
            0,
            7,
            412,
            999_999,
            1_000_000,
            61_000_007,
            999_999_999,
            u32::MAX,
        ] {
            let mut out = String::new();
            push_seconds(&mut out, us);
            assert_eq!(out, format!("{}.{:06}", us / 1_000_000, us % 1_000_000));
        }
    }

    #[test]
    fn a_hand_edited_value_costs_its_phases_only() {
        assert_eq!(
            Phases::parse(b" { \"connect\" : 1.5 } "),
            Some({
                let mut p = Phases::default();
                p.add(Step::Connect, Duration::from_millis(1500));
                p
            })
        );
        assert_eq!(Phases::parse(b"{}"), Some(Phases::default()));
        for odd in [
            &b"[1,2]"[..],
            b"{\"dns\":-1}",
            b"{\"dns\":1e9}",
            b"{\"dns\":NaN}",
            b"{\"lookup\":1}",
            b"{dns:1}",
            b"\xff",
            b"",
        ] {
            assert_eq!(Phases::parse(odd), None, "{}", String::from_utf8_lossy(odd));
        }
    }

    #[test]
    fn a_phase_saturates_rather_than_wrapping() {
        let mut p = Phases::default();
        p.add(Step::FirstByte, Duration::from_secs(5000));
        p.add(Step::FirstByte, Duration::from_secs(5000));
        assert_eq!(p.micros()[4], u32::MAX - 1);
        assert_eq!(Phases::parse(p.to_json().as_bytes()), Some(p));
        assert_eq!(std::mem::size_of::<Option<Phases>>(), 24);
    }
}
