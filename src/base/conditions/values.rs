//! The scalar pieces of a condition: numbers (compared exactly when both are whole, else as
//! floating point), durations (`72h`, `1h30m`, `500ms`) and `pat()` patterns.

use std::cmp::Ordering;

/// A number read from text: exact when whole (ids beyond 2^53 compare right), else a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Num {
    int: Option<i128>,
    float: f64,
}

impl Num {
    pub(super) fn int(n: i64) -> Num {
        Num {
            int: Some(i128::from(n)),
            float: n as f64,
        }
    }

    /// `-?digits(.digits)?([eE][+-]?digits)?`, surrounding white space ignored; anything else
    /// (`0x10`, `inf`, `1_000`, an empty text) is not a number.
    pub(super) fn parse(text: &str) -> Option<Num> {
        let s = text.trim();
        let unsigned = s.strip_prefix('-').unwrap_or(s);
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
            None => (unsigned, None),
        };
        let (whole, fraction) = match mantissa.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (mantissa, None),
        };
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
        if !digits(whole) || !fraction.is_none_or(digits) || !exponent_ok {
            return None;
        }
        let float: f64 = s.parse().ok().filter(|f: &f64| f.is_finite())?;
        let int = match (fraction, exponent) {
            (None, None) => s.parse::<i128>().ok(),
            _ => None,
        };
        Some(Num { int, float })
    }

    pub(super) fn compare(&self, other: &Num) -> Ordering {
        match (self.int, other.int) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.float.total_cmp(&other.float),
        }
    }
}

/// A duration in milliseconds: one or more `<number><unit>`, the unit `ms`, `s`, `m`, `h` or
/// `d` (Go's units as Gatus reads them, and days), such as `72h`, `1h30m`, `1.5s`.
pub(super) fn duration_ms(text: &str) -> Option<i64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let amount: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let (unit_ms, len) = [
            ("ms", 1.0),
            ("s", 1e3),
            ("m", 6e4),
            ("h", 3.6e6),
            ("d", 8.64e7),
        ]
        .into_iter()
        .find(|(unit, _)| rest.starts_with(unit))
        .map(|(unit, ms)| (ms, unit.len()))?;
        rest = &rest[len..];
        total += amount * unit_ms;
    }
    // A century is far beyond any certificate; larger is a typo.
    (total <= 3.2e12).then_some(total.round() as i64)
}

/// Milliseconds as a reader takes them in a failure: `41h12m`, `3d4h`, `12m5s`, `950ms`;
/// `expired 2h5m ago` below zero.
pub(super) fn human_ms(ms: i64) -> String {
    if ms < 0 {
        return format!("expired {} ago", human_ms(-ms));
    }
    let s = ms / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) if s == 0 => format!("{ms}ms"),
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters (line breaks
/// and `/` included) and everything else for itself. Linear in the text: each piece between
/// stars is found at its leftmost place, which is never worse than a later one.
pub(super) fn matches(pattern: &str, text: &str) -> bool {
    let pieces: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = pieces.as_slice() else {
        return text == pattern;
    };
    if !text.starts_with(first) {
        return false;
    }
    let mut rest = &text[first.len()..];
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_are_what_json_calls_numbers() {
        for good in ["0", "-7", "007", "3.25", "1e3", "2.5E-2", " 42 "] {
            assert!(Num::parse(good).is_some(), "{good}");
        }
        for bad in [
            "", "-", "0x10", "inf", "NaN", "1_000", "1.", ".5", "+1", "1e", "12ab",
        ] {
            assert!(Num::parse(bad).is_none(), "{bad}");
        }
        let n = |s| Num::parse(s).unwrap();
        assert_eq!(n("7").compare(&n("7.0")), Ordering::Equal);
        assert_eq!(n("1e3").compare(&n("999")), Ordering::Greater);
        let big = n("9007199254740993");
        assert_eq!(big.compare(&n("9007199254740992")), Ordering::Greater);
    }

    #[test]
    fn durations_read_as_gatus_writes_them() {
        assert_eq!(duration_ms("72h"), Some(72 * 3_600_000));
        assert_eq!(duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(duration_ms("10s"), Some(10_000));
        assert_eq!(duration_ms("500ms"), Some(500));
        assert_eq!(duration_ms("1.5s"), Some(1500));
        assert_eq!(duration_ms("14d"), Some(14 * 86_400_000));
        for bad in ["", "h", "10", "10x", "1h 30m", "-1h", "99999999d"] {
            assert_eq!(duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn milliseconds_are_shown_in_the_largest_units() {
        assert_eq!(human_ms(950), "950ms");
        assert_eq!(human_ms(12_000), "12s");
        assert_eq!(human_ms(725_000), "12m5s");
        assert_eq!(human_ms(41 * 3_600_000 + 12 * 60_000), "1d17h");
        assert_eq!(human_ms(5 * 3_600_000 + 60_000), "5h1m");
        assert_eq!(human_ms(-7_500_000), "expired 2h5m ago");
    }

    #[test]
    fn stars_stand_for_any_run_of_characters() {
        assert!(matches(
            "application/json*",
            "application/json; charset=utf-8"
        ));
        assert!(matches(r#"*"ok"*"#, "{\n \"status\": \"ok\"\n}"));
        assert!(matches("a*b*c", "abc") && matches("a*b*c", "a-b/b-c"));
        assert!(!matches("a*b*c", "acb") && !matches("ab*ba", "aba"));
        assert!(matches("*", "") && matches("", "") && !matches("", "x"));
        assert!(matches("exact", "exact") && !matches("exact", "exactly"));
    }

    /// Whether `text` matches `pattern` by trying every split: slow, plainly right.
    fn reference(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|i| reference(rest, &text[i..])),
            Some((c, rest)) => text.first() == Some(c) && reference(rest, &text[1..]),
        }
    }

    proptest! {
        #[test]
        fn matching_agrees_with_trying_every_split(
            pattern in "[ab*]{0,8}",
            text in "[ab]{0,10}",
        ) {
            prop_assert_eq!(
                matches(&pattern, &text),
                reference(pattern.as_bytes(), text.as_bytes())
            );
        }

        #[test]
        fn whole_numbers_compare_as_integers_do(a in any::<i64>(), b in any::<i64>()) {
            let (x, y) = (Num::parse(&a.to_string()).unwrap(), Num::parse(&b.to_string()).unwrap());
            prop_assert_eq!(x.compare(&y), a.cmp(&b));
            prop_assert_eq!(Num::int(a).compare(&y), a.cmp(&b));
        }
    }
}
