//! The unit tests of [`super`]: how figures read on the status pages.

use super::days::{percent, uptime_class};
use super::tables::span;

#[test]
fn percentages_never_round_up_to_100() {
    assert_eq!(percent(100.0), "100%");
    assert_eq!(percent(99.999), "99.99%");
    assert_eq!(percent(95.5), "95.50%");
}

#[test]
fn spans_read_naturally() {
    assert_eq!(span(45_000), "45 s");
    assert_eq!(span(12 * 60_000), "12 min");
    assert_eq!(span(3 * 3_600_000 + 5 * 60_000), "3 h 5 min");
    assert_eq!(span(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
}

#[test]
fn uptime_colours() {
    assert_eq!(uptime_class(Some(100.0)), "u4");
    assert_eq!(uptime_class(Some(99.95)), "u3");
    assert_eq!(uptime_class(Some(99.5)), "u2");
    assert_eq!(uptime_class(Some(97.0)), "u1");
    assert_eq!(uptime_class(Some(50.0)), "u0");
    assert_eq!(uptime_class(None), "none");
}
