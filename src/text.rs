//! Text made fit for where it is shown or stored: a log line, a table cell, a column of
//! limited size. Every output goes through these, so a hostile name or an endless body is
//! handled the same way everywhere.

use unicode_width::UnicodeWidthStr;

/// Control characters replaced by spaces: a name or URL holding a line break must not forge
/// a log line or break a table.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The first `max` characters of `s`.
pub fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// The first `max` characters of `s`, with `...` when something was cut: for a value quoted
/// in an error, so one hostile row cannot flood the log.
pub fn clip_marked(s: &str, max: usize) -> String {
    let head = clip(s, max);
    if head.len() < s.len() {
        format!("{head}...")
    } else {
        head.to_string()
    }
}

/// At most `max` bytes of `s`, cut at a character boundary: for columns sized in bytes.
pub fn clip_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Text escaped for HTML element content and attribute values (e-mails, the status page).
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A flag as the original's tables and messages showed it.
pub fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// Columns a terminal gives `s`: two for a CJK character or most emoji, none for a combining
/// mark.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// `in 5 days`, `in 3 hours`, `expired 2 days ago`.
pub fn time_left(seconds: i64) -> String {
    let (ago, s) = (seconds < 0, seconds.unsigned_abs());
    let span = if s >= 2 * 86_400 {
        format!("{} days", s / 86_400)
    } else if s >= 2 * 3600 {
        format!("{} hours", s / 3600)
    } else if s / 60 == 1 {
        "1 minute".to_string()
    } else {
        format!("{} minutes", s / 60)
    };
    if ago {
        format!("expired {span} ago")
    } else {
        format!("in {span}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_count_characters_and_bytes_without_splitting_one() {
        assert_eq!(clip("héllo", 2), "hé");
        assert_eq!(clip("hé", 5), "hé");
        assert_eq!(clip_marked("héllo", 2), "hé...");
        assert_eq!(clip_marked("hé", 2), "hé");
        assert_eq!(clip_bytes("hé", 2), "h");
        assert_eq!(clip_bytes("hé", 3), "hé");
    }

    #[test]
    fn control_characters_become_spaces_and_width_is_columns() {
        assert_eq!(printable("a\nb\tc"), "a b c");
        assert_eq!(width("名前"), 4);
        assert_eq!(width("e\u{301}"), 1);
        assert_eq!(width("ok"), 2);
    }

    #[test]
    fn time_left_reads_naturally() {
        assert_eq!(time_left(5 * 86_400 + 30), "in 5 days");
        assert_eq!(time_left(86_400 + 10), "in 24 hours");
        assert_eq!(time_left(-3 * 86_400), "expired 3 days ago");
        assert_eq!(time_left(300), "in 5 minutes");
    }
}
