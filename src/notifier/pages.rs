//! Which PagerDuty pages a message closes besides what it says itself, for the notifier
//! thread: the recoveries in it whose failure was a message of its own (each resolves its
//! own key, as always), and the grouped messages whose every target has now recovered (see
//! [`outbox::openers`] and [`outbox::all_recovered`]). Reads the outbox only.

use super::{hooks, outbox};
use crate::base::model::Alert;
use crate::db::{self, Pool};

/// The PagerDuty pages a message closes besides what it says itself.
#[derive(Debug, Default)]
pub(super) struct Closes {
    /// Recoveries whose failure was a message of its own: each resolves its own key.
    pub alone: Vec<u64>,
    /// Grouped messages whose every target has now recovered.
    pub groups: Vec<u64>,
}

/// The pages the recoveries among `alerts` close, for a PAGERDUTY notifier; `None` for
/// other kinds, a message without recoveries, or when no recovery's page was found (a
/// recovery alone then resolves its own key, as it always did). `group`: the message's id
/// when it is a grouped one, claimed by `node`.
pub(super) fn closes(
    pool: &Pool,
    kind: hooks::Kind,
    notifier: u64,
    alerts: &[Alert],
    group: Option<u64>,
    node: &str,
) -> Result<Option<Closes>, db::Error> {
    let successes: Vec<u64> = alerts
        .iter()
        .filter(|a| a.kind.eq_ignore_ascii_case("SUCCESS"))
        .map(|a| a.id)
        .collect();
    if kind != hooks::Kind::PagerDuty || successes.is_empty() {
        return Ok(None);
    }
    let sending = outbox::Sending {
        successes: &successes,
        group,
        node,
    };
    db::with_conn(pool, |conn| {
        let openers = outbox::openers(conn, notifier, &sending)?;
        if openers.is_empty() {
            return Ok(None);
        }
        let mut closes = Closes::default();
        let mut checked: Vec<u64> = Vec::new();
        for o in &openers {
            match o.group {
                None if !closes.alone.contains(&o.success) => closes.alone.push(o.success),
                Some(g) if !checked.contains(&g) => {
                    checked.push(g);
                    if outbox::all_recovered(conn, notifier, g, &sending)? {
                        closes.groups.push(g);
                    }
                }
                _ => {}
            }
        }
        Ok(Some(closes))
    })
}
