//! `SLACK`: an incoming-webhook message (also taken by Mattermost and Rocket.Chat), one line
//! per state change escaped by [`crate::base::text::slack`], then a link to the target's
//! status page; a grouped message is its title, then the first [`LISTED`] of those lines,
//! then how many more. The URL's path is its token, so it is shown as its origin and `/***`.
//! Pure.

use serde_json::{json, Value};

use super::facts::{Facts, GroupFacts};
use super::Channel;

/// State changes a grouped Slack message lists (Slack cuts a message past 40,000
/// characters); the rest are counted.
pub(super) const LISTED: usize = 20;

#[derive(Debug)]
pub(super) struct Slack;

impl Channel for Slack {
    fn body(&self, f: &Facts) -> Value {
        json!({ "text": line(f) })
    }

    fn group_bodies(&self, g: &GroupFacts) -> Vec<Value> {
        let mut text = crate::base::text::slack(&g.title());
        if let Some(front) = &g.front {
            text.push_str(&format!(" <{front}|status page>"));
        }
        for f in g.entries.iter().take(LISTED) {
            text.push('\n');
            text.push_str(&line(f));
        }
        let more = g.entries.len().saturating_sub(LISTED);
        if more > 0 {
            text.push_str(&format!("\n…and {more} more"));
        }
        vec![json!({ "text": text })]
    }
}

/// One state change: the line, escaped, and a link to the target's status page.
fn line(f: &Facts) -> String {
    let line = crate::base::text::slack(&f.line());
    match &f.page {
        Some(page) => format!("{line} <{page}|status page>"),
        None => line,
    }
}

/// A Slack URL (already in its display form) without its token: `scheme://host[:port]/***`.
pub(super) fn masked(shown: &str) -> String {
    let after_scheme = shown.find("://").map_or(0, |i| i + 3);
    let origin = match shown[after_scheme..].find('/') {
        Some(i) => &shown[..after_scheme + i],
        None => shown,
    };
    format!("{origin}/***")
}
