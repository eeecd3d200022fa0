//! Which pages a recovery closes, for the notifier thread's PagerDuty deliveries: the
//! FAILURE and REMINDER alerts that opened a recovering target's page at a notifier (a
//! message of their own, or a grouped message), and whether every target of a grouped
//! message has recovered. Lookups on `alerts_target` and the deliveries' keys, so the work is
//! bounded by the alerts of the targets' current incidents.

use mysql::prelude::Queryable;
use mysql::Value;

use super::{id_list, DELIVERIES};
use crate::db::decode;
use crate::db::{Conn, Error};

/// An alert that opened a page a recovery closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opener {
    /// The recovery (SUCCESS) alert.
    pub success: u64,
    /// The grouped message the FAILURE or REMINDER went out in; `None`: a message of its own.
    pub group: Option<u64>,
}

/// The alerts of the message being sent now: its SUCCESS alerts, and (for a grouped
/// message) its id, under which this node claimed its deliveries.
#[derive(Debug, Clone, Copy)]
pub struct Sending<'a> {
    pub successes: &'a [u64],
    pub group: Option<u64>,
    pub node: &'a str,
}

/// For each SUCCESS alert of the message being sent to `notifier`, the FAILURE and REMINDER
/// alerts of its target since the target's previous recovery that were sent to it (or go out
/// in this same message).
pub fn openers(conn: &mut Conn, notifier: u64, now: &Sending) -> Result<Vec<Opener>, Error> {
    if now.successes.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<mysql::Row> = conn
        .exec(
            format!(
                "SELECT DISTINCT s.id, d.group_id FROM alerts s \
                 JOIN alerts a ON a.target_id = s.target_id AND a.id < s.id \
                 AND a.kind IN ('FAILURE', 'REMINDER') AND a.id > COALESCE((SELECT MAX(p.id) \
                 FROM alerts p WHERE p.target_id = s.target_id AND p.id < s.id \
                 AND p.kind = 'SUCCESS'), 0) \
                 JOIN alert_deliveries d ON d.alert_id = a.id AND d.notifier_id = ? \
                 AND (d.state = 'SENT' OR (d.state = 'PENDING' AND d.group_id = ? \
                 AND d.claimed_by = ?)) \
                 WHERE s.id IN ({}) ORDER BY s.id",
                id_list(now.successes)
            ),
            (notifier, group_param(now.group), now.node),
        )
        .map_err(Error::query(
            "reading what opened a recovering target's page",
        ))?;
    Ok(decode::good_rows(DELIVERIES, rows, |f| {
        Ok(Opener {
            success: f.id(0, "alerts.id")?,
            group: f.opt::<i64>(1, "group_id")?.map(|g| g.max(0) as u64),
        })
    }))
}

/// Whether every target of grouped message `group` to `notifier` has recovered: each of its
/// FAILURE and REMINDER alerts has a later SUCCESS of the same target that was sent to the
/// notifier or goes out in the message being sent now. A target deleted or disabled while
/// down never recovers, so its group stays open, as its own page would.
pub fn all_recovered(
    conn: &mut Conn,
    notifier: u64,
    group: u64,
    now: &Sending,
) -> Result<bool, Error> {
    let current = if now.successes.is_empty() {
        "0".to_string()
    } else {
        id_list(now.successes)
    };
    let open: Option<mysql::Row> = conn
        .exec_first(
            format!(
                "SELECT d.alert_id FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id \
                 WHERE d.notifier_id = ? AND d.group_id = ? \
                 AND a.kind IN ('FAILURE', 'REMINDER') \
                 AND (d.state = 'SENT' OR (d.state = 'PENDING' AND d.claimed_by = ?)) \
                 AND NOT EXISTS (SELECT 1 FROM alerts s JOIN alert_deliveries sd \
                 ON sd.alert_id = s.id AND sd.notifier_id = d.notifier_id \
                 WHERE s.target_id = a.target_id AND s.id > a.id AND s.kind = 'SUCCESS' \
                 AND (sd.state = 'SENT' OR s.id IN ({current}))) LIMIT 1"
            ),
            (notifier, group, now.node),
        )
        .map_err(Error::query("reading whether a group has recovered"))?;
    Ok(open.is_none())
}

fn group_param(group: Option<u64>) -> Value {
    group.map_or(Value::NULL, Value::from)
}
