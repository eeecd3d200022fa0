//! Text made fit for where it is shown or stored: a log line, a table cell, a column of
//! limited size. Every output goes through these, so a hostile name or an endless body is
//! handled the same way everywhere. Pure; any thread.
//!
//! One sanitizer per sink, each the only way text from rows reaches it:
//!
//! | sink | function | what happens to hidden characters and markup |
//! |---|---|---|
//! | log line (every line, in the formatter) | [`Visible`] | shown escaped: one event, one line |
//! | Prometheus label value | [`label_value`] | shown escaped; the encoder escapes `\` and `"` |
//! | plain-text mail, subject | [`mail_line`] | shown escaped: one field, one line |
//! | Slack text, PagerDuty summary | [`slack`], [`visible`] | shown escaped; Slack's `&<>` escaped |
//! | HTML (status page, e-mail) | [`html`], [`html_lines`] | markup escaped; shown escaped |
//! | CLI table cell | [`printable`] | replaced by spaces |
//!
//! A hidden character ([`is_hidden`]) is a C0 or C1 control or DEL, the Unicode line and
//! paragraph separators, or a bidi embedding, override or isolate (which can make a line read
//! in another order than it was written). Shown escaped means `\n`, `\r`, `\t`, `\x1b` (other
//! C0 controls and DEL) or `\u{202e}` (the rest). A backslash is left as it is, so escaping
//! twice changes nothing and lines without hidden characters stay as they always were; the
//! escapes are for reading, and a name that spells `\x1b` reads the same as one holding ESC.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use unicode_width::UnicodeWidthStr;

/// Whether `c` is shown escaped in a line-oriented sink (see the module's table).
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every hidden character shown escaped; borrowed when there is none.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let _ = write_visible(&mut out, s);
    Cow::Owned(out)
}

/// What `D` displays, hidden characters shown escaped, without an allocation: the log
/// formatter writes every message through this.
pub struct Visible<D>(pub D);

impl<D: fmt::Display> fmt::Display for Visible<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

/// A writer that escapes what passes through it.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_visible(self.0, s)
    }
}

fn write_visible(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let mut plain = 0;
    for (i, c) in s.char_indices().filter(|(_, c)| is_hidden(*c)) {
        out.write_str(&s[plain..i])?;
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_ascii() => write!(out, "\\x{:02x}", u32::from(c))?,
            c => write!(out, "\\u{{{:x}}}", u32::from(c))?,
        }
        plain = i + c.len_utf8();
    }
    out.write_str(&s[plain..])
}

/// A Prometheus label value (`/metrics`): hidden characters shown escaped, so that the value
/// a scraper reads holds none. The exposition's own escapes (`\\`, `\"`, `\n`) are the
/// encoder's (prometheus-client), applied after this.
pub fn label_value(s: &str) -> Cow<'_, str> {
    visible(s)
}

/// One field of a plain-text e-mail or its subject: hidden characters shown escaped, so a
/// name, reason or URL can neither start a line of its own nor fold a header.
pub fn mail_line(s: &str) -> Cow<'_, str> {
    visible(s)
}

/// A Slack (Mattermost, Rocket.Chat) message line: hidden characters shown escaped, and the
/// three characters Slack's markup gives meaning (`&`, `<`, `>`) escaped as Slack asks.
pub fn slack(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in visible(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

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

/// Text escaped for HTML element content and attribute values (e-mails, the status page),
/// its hidden characters shown escaped as in a log line: a name cannot turn the text around
/// it with a bidi override, nor hide part of itself.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if is_hidden(c) => {
                let _ = write_visible(&mut out, c.encode_utf8(&mut [0; 4]));
            }
            c => out.push(c),
        }
    }
    out
}

/// Lines for a `<pre>` block (a trace): each line as [`html`] escapes it, the line breaks
/// kept.
pub fn html_lines(s: &str) -> String {
    s.split('\n').map(html).collect::<Vec<_>>().join("\n")
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
    fn hidden_characters_are_shown_escaped_once() {
        let evil = "evil\x1b[31mRED\x1b[0m\x07\0end\r\nforged\u{202e}txt\u{2028}\u{85}\x7f\t";
        let shown = visible(evil);
        assert_eq!(
            shown,
            "evil\\x1b[31mRED\\x1b[0m\\x07\\x00end\\r\\nforged\\u{202e}txt\\u{2028}\\u{85}\\x7f\\t"
        );
        assert_eq!(visible(&shown), shown, "escaping twice changes nothing");
        assert!(matches!(visible("plain \\ é 名前"), Cow::Borrowed(_)));
        assert_eq!(Visible(format_args!("a{}b", '\n')).to_string(), "a\\nb");
        assert_eq!(format!("{:<6}|", visible("\x07")), "\\x07  |");
    }

    #[test]
    fn each_sink_escapes_its_own_markup() {
        assert_eq!(slack("<b>&\n"), "&lt;b&gt;&amp;\\n");
        assert_eq!(html("a\nb\x1b\u{202e}<"), "a\\nb\\x1b\\u{202e}&lt;");
        assert_eq!(html_lines("a\r\n<b>\n"), "a\\r\n&lt;b&gt;\n");
        assert_eq!(mail_line("name\r\nBcc: x"), "name\\r\\nBcc: x");
        assert_eq!(label_value("a\"b\\c\n"), "a\"b\\c\\n");
    }

    #[test]
    fn time_left_reads_naturally() {
        assert_eq!(time_left(5 * 86_400 + 30), "in 5 days");
        assert_eq!(time_left(86_400 + 10), "in 24 hours");
        assert_eq!(time_left(-3 * 86_400), "expired 3 days ago");
        assert_eq!(time_left(300), "in 5 minutes");
    }
}
