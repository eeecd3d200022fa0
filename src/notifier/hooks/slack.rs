//! `SLACK`: an incoming-webhook message (also taken by Mattermost and Rocket.Chat), one line
//! per state change escaped by [`crate::base::text::slack`], then a link to the target's
//! status page. The URL's path is its token, so it is shown as its origin and `/***`. Pure.

use serde_json::{json, Value};

use super::facts::Facts;
use super::Channel;

#[derive(Debug)]
pub(super) struct Slack;

impl Channel for Slack {
    fn body(&self, f: &Facts) -> Value {
        let line = crate::base::text::slack(&f.line());
        let text = match &f.page {
            Some(page) => format!("{line} <{page}|status page>"),
            None => line,
        };
        json!({ "text": text })
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
