//! A notice about the node itself, sent by the sight thread (`crate::sight`) when the node
//! finds it cannot reach its network, and when it sees again: one message to every enabled
//! notifier, tried once each (a notifier it cannot reach is logged; the outbox's alerts are
//! what gets retried), never through the outbox, since it is no target's alert. Reads the
//! `notifiers` table; talks SMTP and HTTP, each send bounded by `SmtpTimeout`.

use log::{info, warn};

use super::{hooks, message, smtp};
use crate::base::stop::Stop;
use crate::base::text::{html, mail_line};
use crate::config::Config;
use crate::db::{self, notifiers::NotifierRow, Pool};

/// What a notice says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `[cluster] NodeName`.
    pub node: String,
    /// True: it cannot reach its network; false: it sees again.
    pub blind: bool,
    /// Why it thinks so, and what it does about it.
    pub reason: String,
}

impl Notice {
    /// `skypunch on NODE cannot reach its network`, or `... sees its network again`.
    pub fn headline(&self) -> String {
        let what = if self.blind {
            "cannot reach its network"
        } else {
            "sees its network again"
        };
        format!("skypunch on {} {what}", self.node)
    }
}

/// Sends `notice` to every enabled notifier, one at a time, until the stop; returns how many
/// took it. A database that does not answer is logged: the notice is then not sent.
pub fn send(config: &Config, pool: &Pool, notice: &Notice, stop: &Stop) -> usize {
    let rows = match db::with_conn(pool, db::notifiers::all) {
        Ok(rows) => rows,
        Err(e) => {
            warn!(
                "sight: `{}` not sent: cannot read the notifiers: {e}",
                notice.headline()
            );
            return 0;
        }
    };
    let mut sent = 0;
    for row in rows.iter().filter(|r| r.enabled) {
        if stop.requested() {
            break;
        }
        match send_one(config, row, notice) {
            Ok(to) => {
                info!(
                    "notifier {} ({}): sent `{}` to {to}",
                    row.id,
                    row.name,
                    notice.headline()
                );
                sent += 1;
            }
            Err(e) => warn!(
                "notifier {} ({}) <{}>: `{}` not sent (not retried): {e}",
                row.id,
                row.name,
                hooks::shown_address(row),
                notice.headline()
            ),
        }
    }
    sent
}

/// One notifier's message; where it went, or why not (never a secret).
fn send_one(config: &Config, row: &NotifierRow, notice: &Notice) -> Result<String, String> {
    let timeout = config.notify.smtp_timeout;
    if let Some(kind) = hooks::Kind::of(row) {
        let hook = hooks::Hook::build(row, kind).map_err(|e| e.to_string())?;
        let status = hook
            .send_notice(&notice.node, notice.blind, &notice.reason, timeout)
            .map_err(|e| e.to_string())?;
        return Ok(format!("{} (HTTP {status})", hook.shown()));
    }
    let mailer =
        smtp::Mailer::build(row, &config.notify.from, timeout).map_err(|e| e.to_string())?;
    let msg =
        message::build(&render(notice), &mailer.from, &mailer.to).map_err(|e| e.to_string())?;
    mailer.send(&msg).map_err(|e| e.to_string())?;
    Ok(format!("{} via {}", row.address, mailer.server()))
}

/// The e-mail: the headline as its subject, the reason as its body.
pub fn render(notice: &Notice) -> message::Rendered {
    let subject = mail_line(&notice.headline()).into_owned();
    let reason = mail_line(&notice.reason).into_owned();
    let text = format!("{subject}\n\n{reason}\n");
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{s}</title></head><body>\n\
         <h2>{s}</h2>\n<p>{r}</p>\n</body></html>\n",
        s = html(&subject),
        r = html(&reason)
    );
    message::Rendered {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_says_which_node_and_why_in_one_line() {
        let notice = Notice {
            node: "mon-1\nBcc: x@y".into(),
            blind: true,
            reason: "every Connectivity address failed".into(),
        };
        let r = render(&notice);
        assert!(r.subject.starts_with("skypunch on mon-1"), "{}", r.subject);
        assert!(!r.subject.contains('\n'), "{}", r.subject);
        assert!(r.subject.ends_with("cannot reach its network"));
        assert!(r.text.contains("every Connectivity address failed"));
        let back = Notice {
            blind: false,
            node: "mon-1".into(),
            ..notice
        };
        assert_eq!(back.headline(), "skypunch on mon-1 sees its network again");
    }
}
